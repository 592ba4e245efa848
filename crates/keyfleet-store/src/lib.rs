#![doc = include_str!("../README.md")]

pub mod audit;
mod postgres;
mod sql;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness or reference rule of the schema was broken; the text says which.
    #[error("{0}")]
    Conflict(String),
    /// A stored value could not be read back (e.g. an unknown enum spelling).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Fields each list can be sorted by, as the API names them.
pub mod sort_fields {
    pub const JOBS: &[&str] = &["createdAt", "updatedAt", "completed_at", "overall_status", "operation", "id"];
    pub const KEYS: &[&str] = &["createdAt", "updatedAt", "region", "KeyID", "KeyState", "synced_at", "id"];
    pub const NAMED: &[&str] = &["createdAt", "updatedAt", "name", "id"];
    pub const AZURE_KEYS: &[&str] = &["createdAt", "updatedAt", "name", "synced_at", "id"];
    pub const USERS: &[&str] = &["created_at", "username", "user_id"];
    pub const REFRESH_TOKENS: &[&str] = &["createdAt", "expires_at", "id"];
    pub const AUDIT: &[&str] = &["seq", "at", "user", "action"];
}

/// A lease being taken: `owner` takes something at `now` until `until`. A lease someone else holds counts as
/// free once its end is before `now`.
#[derive(Clone, Copy, Debug)]
pub struct Lease<'a> {
    pub owner: &'a str,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl<'a> Lease<'a> {
    pub fn new(owner: &'a str, now: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Lease { owner, now, until }
    }
}

/// A cloud refused a connection's credentials: the pending items reached through it fail with this error
/// instead of being tried.
#[derive(Clone, Copy, Debug)]
pub struct Refusal<'a> {
    pub connection: ConnectionId,
    pub code: &'a str,
    pub message: &'a str,
}

/// The keys one region of a KMS container holds, as a synchronization listed them.
#[derive(Clone, Copy, Debug)]
pub struct AwsRegionKeys<'a> {
    pub kms_id: KmsId,
    pub region: &'a str,
    pub keys: &'a [AwsKeyMaterial],
}

/// A create request taking an `Idempotency-Key`: the key and the hash of the body, for one user, at a time;
/// an earlier use of the key before `reusable_before` has expired.
#[derive(Clone, Copy, Debug)]
pub struct IdempotencyClaim<'a> {
    pub user: UserId,
    pub key: &'a str,
    pub body_hash: &'a str,
    pub at: DateTime<Utc>,
    pub reusable_before: DateTime<Utc>,
}

/// Everything keyfleet persists. One implementation (`sql`) for both database backends, split by concern.
pub trait Store:
    AuthStore
    + AuditStore
    + InventoryStore
    + AzureStore
    + JobStore
    + IdempotencyStore
    + SyncJobStore
    + EngineStore
    + MonitorStore
{
}

/// A connection pool's use at one moment (`/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// `main` (PostgreSQL), or SQLite's `reader` and `writer`.
    pub pool: &'static str,
    /// Connections open.
    pub size: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The pool's limit.
    pub max: u32,
}

/// What a job's view shows of one of its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLine {
    pub job_id: JobId,
    pub key_id: KeyId,
    pub status: ItemStatus,
    /// `Success`, `Failed: ...`, `Skipped: ...` once the item has ended.
    pub detail: Option<String>,
}

/// How many jobs of one (cloud, operation) are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub cloud: String,
    pub operation: String,
    pub status: String,
    pub count: u64,
}

/// Health and monitoring: what `/readyz` and `/metrics` ask of the database.
#[async_trait]
pub trait MonitorStore: Send + Sync {
    /// Overwrites one small row (`meta` key `ready_probe`) through the writer: the database is reachable and
    /// accepts writes.
    async fn probe_write(&self, at: DateTime<Utc>) -> Result<()>;
    /// Versions of this binary's migrations the database has not applied (empty: the schema is current).
    async fn pending_migrations(&self) -> Result<Vec<i64>>;
    /// The connection pools' use, without touching the database.
    fn pool_stats(&self) -> Vec<PoolStats>;
    /// Jobs in the database by cloud, operation and status.
    async fn job_counts(&self) -> Result<Vec<JobCount>>;
}

/// What the engine needs, and nothing else: the work queue of bulk-job items, the lookups that turn an item
/// into a cloud client, and key synchronization. A `dyn Store` upcasts to a `dyn EngineStore`; the engine's
/// simulation harness implements it in memory.
pub trait EngineStore: WorkQueue + SyncQueue + AwsWorkStore + AzureWorkStore + Send + Sync + 'static {}

impl<T: WorkQueue + SyncQueue + AwsWorkStore + AzureWorkStore + Send + Sync + 'static> EngineStore for T {}

/// What finishing an item changes besides the item and its job, in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ItemEffect<'a> {
    None,
    /// Refresh the cached AWS key after an effect.
    RefreshAwsKey(KeyId, &'a AwsKeyMaterial),
    /// `delete-key-backups`: delete the backup (nothing when it is already gone). Applied only with a
    /// `Succeeded` outcome.
    DeleteBackup(BackupId),
}

/// One item's attempt, as [`WorkQueue::finish_items`] records it.
#[derive(Debug, Clone, Copy)]
pub struct FinishedItem<'a> {
    pub seq: i64,
    /// The attempt (the item's `attempts` after its claim) this result is of: the write is fenced to that
    /// claim, so that a node that claimed the item again (its earlier lease expired while it was paused) never
    /// records the earlier claim's result onto the later one. `None`: fenced by the owner alone.
    pub attempt: Option<i64>,
    pub outcome: &'a ItemOutcome,
    pub effect: ItemEffect<'a>,
    /// The state-changing calls the attempt sent, in order: each audited with the outcome, in the same
    /// transaction.
    pub cloud_calls: &'a [CloudCall],
    /// `applypolicytemplate`: the key policy the template replaced (kept for a revert; `None` leaves what an
    /// earlier attempt recorded).
    pub policy_before: Option<&'a str>,
}

/// How a new job takes its items from a finished one ([`JobStore::create_derived_job`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    /// `retry-failed`: the failed and skipped (not attempted) items, as they were.
    Retry,
    /// `revert`: the items that succeeded and changed their key (state or policy), each restoring the key's
    /// state and policy from before.
    Revert,
}

/// Attempts of one job's items that `owner` finished, recorded together at `at`.
#[derive(Debug, Clone, Copy)]
pub struct FinishedBatch<'a> {
    pub job: JobId,
    pub owner: &'a str,
    pub at: DateTime<Utc>,
    pub items: &'a [FinishedItem<'a>],
}

/// A state-changing call sent to a cloud for a bulk-job item (audited as `<cloud>.<action>`).
#[derive(Debug, Clone, PartialEq)]
pub struct CloudCall {
    /// `aws`, `azure`.
    pub cloud: &'static str,
    /// The cloud's name for the call: `DisableKey`, `PutKeyPolicy`, ...
    pub action: &'static str,
    /// The key as the cloud names it (AWS KeyId, Key Vault kid).
    pub key: String,
    /// The cloud's id of the request (AWS `x-amzn-RequestId`), when it answered.
    pub request_id: Option<String>,
}

/// Server metadata, users, groups and refresh tokens.
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// A number that moves whenever a change may have ended a token's validity or changed what its holder may
    /// do (a password, a user disabled or deleted, a token generation, a group membership), on any node. A
    /// cache of verified tokens filled under one epoch holds while it is current. SQLite (one node) keeps it in
    /// the process and reads it without I/O; PostgreSQL reads one row that those changes move in their own
    /// transaction.
    async fn auth_epoch(&self) -> Result<u64>;
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value` unless the key exists; returns the value now stored.
    async fn put_meta_if_absent(&self, key: &str, value: &str) -> Result<String>;

    async fn insert_user(&self, user: &UserRecord) -> Result<()>;
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<UserRecord>>;
    async fn list_users(&self, page: &Page) -> Result<(Vec<UserRecord>, u64)>;
    async fn record_login(&self, id: UserId, at: DateTime<Utc>) -> Result<()>;
    /// Sets a new password hash, raises the user's token generation and revokes every refresh token of the
    /// user, atomically. False when the user does not exist.
    async fn change_password(&self, id: UserId, password_hash: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Applies an administrator's change; a new password or disabling also revokes every token of the user
    /// (as `change_password`), atomically. False when the user does not exist.
    async fn update_user(&self, id: UserId, change: &UserChange, at: DateTime<Utc>) -> Result<bool>;
    /// Deletes the user with their memberships, refresh tokens and ACL entries. False when there is none.
    async fn delete_user(&self, id: UserId) -> Result<bool>;
    async fn user_groups(&self, id: UserId) -> Result<Vec<String>>;
    /// Creates the group unless it exists; true when created.
    async fn ensure_group(&self, name: &str, description: &str, at: DateTime<Utc>) -> Result<bool>;
    async fn get_group(&self, name: &str) -> Result<Option<GroupRecord>>;
    async fn list_groups(&self, page: &Page) -> Result<(Vec<GroupRecord>, u64)>;
    /// Sets the description; false when there is no such group.
    async fn update_group(&self, name: &str, description: &str, at: DateTime<Utc>) -> Result<bool>;
    /// Deletes the group with its memberships and ACL entries; false when there is none.
    async fn delete_group(&self, name: &str) -> Result<bool>;
    async fn add_group_member(&self, group: &str, user: UserId) -> Result<()>;
    async fn remove_group_member(&self, group: &str, user: UserId) -> Result<bool>;
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> Result<()>;
    async fn refresh_token_by_hash(&self, hash: &str) -> Result<Option<RefreshTokenRecord>>;
    async fn refresh_token_by_id(&self, id: RefreshTokenId) -> Result<Option<RefreshTokenRecord>>;
    /// A page of the user's refresh tokens that are neither revoked nor expired at `at`.
    async fn list_refresh_tokens(
        &self,
        user: UserId,
        at: DateTime<Utc>,
        page: &Page,
    ) -> Result<(Vec<RefreshTokenRecord>, u64)>;
    /// False when it was revoked already (or does not exist).
    async fn revoke_refresh_token(&self, id: RefreshTokenId) -> Result<bool>;
}

/// The audit trail. Changes append their records themselves, in their own transactions (see `audit`).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends a record of something that changed nothing else (a refused login).
    async fn record_audit(&self, event: &audit::AuditEvent) -> Result<()>;
    /// A page of records (default order: the chain's).
    async fn list_audit(&self, filter: &audit::AuditFilter, page: &Page) -> Result<(Vec<audit::AuditRecord>, u64)>;
    /// Up to `limit` records with `seq` above `after_seq`, in `seq` order (to verify the chain page by page).
    async fn audit_chain(&self, after_seq: i64, limit: u64) -> Result<Vec<audit::AuditRecord>>;
}

/// Cloud connections, KMS containers and their ACLs, synced keys, policy templates.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    async fn insert_aws_connection(&self, c: &AwsConnectionRecord) -> Result<()>;
    async fn update_aws_connection(&self, c: &AwsConnectionRecord) -> Result<()>;
    async fn aws_connection_by_name(&self, name: &str) -> Result<Option<AwsConnectionRecord>>;
    async fn list_aws_connections(&self, page: &Page) -> Result<(Vec<AwsConnectionRecord>, u64)>;
    /// Conflict when a KMS container still uses it.
    async fn delete_aws_connection(&self, id: ConnectionId) -> Result<bool>;

    async fn insert_kms(&self, k: &KmsRecord) -> Result<()>;
    async fn update_kms(&self, k: &KmsRecord) -> Result<()>;
    async fn kms_by_name(&self, name: &str) -> Result<Option<KmsRecord>>;
    async fn list_kms(&self, page: &Page) -> Result<(Vec<KmsRecord>, u64)>;
    async fn delete_kms(&self, id: KmsId) -> Result<bool>;

    async fn acls(&self, resource: AclResource) -> Result<Vec<AclEntry>>;
    /// Replaces the actions of one principal on one resource; an empty list removes the entry.
    async fn set_acl(&self, resource: AclResource, principal: &Principal, actions: &[String]) -> Result<()>;

    async fn aws_keys_by_ids(&self, ids: &[KeyId]) -> Result<Vec<AwsKeyRecord>>;
    async fn list_aws_keys(&self, filter: &AwsKeyFilter, page: &Page) -> Result<(Vec<AwsKeyRecord>, u64)>;
    /// Refreshes the cached metadata of one key after an effect.
    async fn update_aws_key_material(&self, id: KeyId, material: &AwsKeyMaterial, at: DateTime<Utc>) -> Result<()>;
    async fn mark_aws_key_gone(&self, id: KeyId, at: DateTime<Utc>) -> Result<()>;

    async fn insert_template(&self, t: &TemplateRecord) -> Result<()>;
    async fn update_template(&self, t: &TemplateRecord) -> Result<()>;
    async fn list_templates(&self, page: &Page) -> Result<(Vec<TemplateRecord>, u64)>;
    async fn delete_template(&self, id: TemplateId) -> Result<bool>;
}

/// The AWS inventory as the engine uses it: from an item to a client, and key synchronization.
#[async_trait]
pub trait AwsWorkStore: Send + Sync {
    async fn get_aws_connection(&self, id: ConnectionId) -> Result<Option<AwsConnectionRecord>>;
    async fn get_kms(&self, id: KmsId) -> Result<Option<KmsRecord>>;
    async fn get_aws_key(&self, id: KeyId) -> Result<Option<AwsKeyRecord>>;
    /// The keys of a batch of items (one read for the batch; unknown ids are left out).
    async fn get_aws_keys(&self, ids: &[KeyId]) -> Result<Vec<AwsKeyRecord>> {
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            keys.extend(self.get_aws_key(*id).await?);
        }
        Ok(keys)
    }
    async fn get_template(&self, id: TemplateId) -> Result<Option<TemplateRecord>>;
    /// Every KMS container (the list is small).
    async fn all_kms(&self) -> Result<Vec<KmsRecord>>;
    /// Records the keys one region of a container holds now, in one transaction: new keys are added,
    /// known keys updated, and keys of that container and region that are not listed marked gone (nor
    /// written by a [`AwsWorkStore::sync_aws_region_part`] with the same `at`). Returns (added, updated, gone).
    async fn sync_aws_region(&self, listed: &AwsRegionKeys<'_>, at: DateTime<Utc>) -> Result<(u64, u64, u64)>;
    /// Records part of a region's listing ahead of the [`AwsWorkStore::sync_aws_region`] that ends it (same
    /// `at`), in one transaction: new keys added, known keys updated; nothing is marked gone. Returns (added,
    /// updated).
    async fn sync_aws_region_part(&self, listed: &AwsRegionKeys<'_>, at: DateTime<Utc>) -> Result<(u64, u64)>;
}

/// Azure connections, vaults, synced Azure keys and cloud key backups.
#[async_trait]
pub trait AzureStore: Send + Sync {
    async fn insert_azure_connection(&self, c: &AzureConnectionRecord) -> Result<()>;
    async fn update_azure_connection(&self, c: &AzureConnectionRecord) -> Result<()>;
    async fn azure_connection_by_name(&self, name: &str) -> Result<Option<AzureConnectionRecord>>;
    async fn list_azure_connections(&self, page: &Page) -> Result<(Vec<AzureConnectionRecord>, u64)>;
    /// Conflict when a vault still uses it.
    async fn delete_azure_connection(&self, id: ConnectionId) -> Result<bool>;

    /// Conflict when a vault of that name exists.
    async fn insert_vault(&self, v: &VaultRecord) -> Result<()>;
    async fn update_vault(&self, v: &VaultRecord) -> Result<()>;
    async fn vault_by_name(&self, name: &str) -> Result<Option<VaultRecord>>;
    async fn list_vaults(&self, filter: &VaultFilter, page: &Page) -> Result<(Vec<VaultRecord>, u64)>;

    /// Adds or updates one key of a vault (after a restore), leaving the vault's other keys alone.
    async fn upsert_azure_key(
        &self,
        vault: VaultId,
        key: &AzureKeyMaterial,
        at: DateTime<Utc>,
    ) -> Result<AzureKeyRecord>;
    async fn get_azure_key(&self, id: KeyId) -> Result<Option<AzureKeyRecord>>;
    async fn azure_keys_by_ids(&self, ids: &[KeyId]) -> Result<Vec<AzureKeyRecord>>;
    async fn list_azure_keys(&self, filter: &AzureKeyFilter, page: &Page) -> Result<(Vec<AzureKeyRecord>, u64)>;

    async fn key_backups_by_ids(&self, ids: &[BackupId]) -> Result<Vec<KeyBackupRecord>>;
    /// The encrypted blob of a backup.
    async fn key_backup_blob(&self, id: BackupId) -> Result<Option<Vec<u8>>>;
    async fn list_key_backups(&self, filter: &KeyBackupFilter, page: &Page) -> Result<(Vec<KeyBackupRecord>, u64)>;
    /// Saves `name`, `description` and `updated_at`.
    async fn update_key_backup(&self, b: &KeyBackupRecord) -> Result<()>;
    async fn delete_key_backup(&self, id: BackupId) -> Result<bool>;
}

/// The Azure inventory as the engine uses it: from an item to a client, key synchronization, backups.
#[async_trait]
pub trait AzureWorkStore: Send + Sync {
    async fn get_azure_connection(&self, id: ConnectionId) -> Result<Option<AzureConnectionRecord>>;
    async fn get_vault(&self, id: VaultId) -> Result<Option<VaultRecord>>;
    async fn get_key_backup(&self, id: BackupId) -> Result<Option<KeyBackupRecord>>;
    /// The backups of a batch of items that still exist (one read for the batch).
    async fn get_key_backups(&self, ids: &[BackupId]) -> Result<Vec<KeyBackupRecord>> {
        let mut backups = Vec::with_capacity(ids.len());
        for id in ids {
            backups.extend(self.get_key_backup(*id).await?);
        }
        Ok(backups)
    }
    /// Every vault (the list is small).
    async fn all_vaults(&self) -> Result<Vec<VaultRecord>>;
    /// A page of a vault's keys that are not gone, in the store's list order.
    async fn live_azure_keys(&self, vault: VaultId, skip: u64, limit: u64) -> Result<Vec<AzureKeyRecord>>;
    /// Records the keys a vault holds now, in one transaction: new keys (by name, case-insensitive) are added,
    /// known keys updated (and no longer gone), keys of the vault not in `keys` (nor written by a
    /// [`AzureWorkStore::sync_azure_vault_part`] with the same `at`) marked gone; the vault's `synced_at`
    /// becomes `at`. Returns (added, updated, gone).
    async fn sync_azure_vault(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)>;
    /// Records part of a vault's listing ahead of the [`AzureWorkStore::sync_azure_vault`] that ends it (same
    /// `at`), in one transaction: new keys added, known keys updated; nothing is marked gone. Returns (added,
    /// updated).
    async fn sync_azure_vault_part(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64)>;
    /// Stores a backup's metadata and its encrypted blob.
    async fn insert_key_backup(&self, b: &KeyBackupRecord, blob_enc: &[u8]) -> Result<()>;
}

/// Bulk jobs and their items: creation, views, cancel (the worker side is [`WorkQueue`]).
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts the job and one pending item per key, in one transaction.
    async fn create_job(&self, job: &JobRecord, items: &[NewItem]) -> Result<()>;
    /// How many live (not gone) AWS keys a selector matches.
    async fn count_selector(&self, selector: &KeySelector) -> Result<u64>;
    /// Inserts the job and one item per key the selector matches, resolved inside the database in one
    /// transaction (nothing proportional to the number of keys is held in memory). Returns the item count.
    async fn create_job_from_selector(&self, job: &JobRecord, selector: &KeySelector) -> Result<i64>;
    /// How many cloud key backups a selector matches.
    async fn count_backup_selection(&self, selector: &BackupSelector) -> Result<u64>;
    /// The distinct vaults of the backups a selector matches (for permission checks).
    async fn backup_selection_vaults(&self, selector: &BackupSelector) -> Result<Vec<VaultId>>;
    /// Inserts a `delete-key-backups` job and one item per matching backup (partition: the backup's vault),
    /// resolved inside the database in one transaction, oldest backup first. Returns the item count.
    async fn create_job_from_backups(&self, job: &JobRecord, selector: &BackupSelector) -> Result<i64>;
    /// Deletes a terminal job and its items. `Ok(None)` when there is no such job; `Ok(Some(false))` (and
    /// nothing deleted) when it is still in progress.
    async fn delete_job(&self, id: JobId) -> Result<Option<bool>>;
    /// A page of a job's items in key order, optionally only those in one status.
    /// Without a status the page is a range of item numbers (a job's items are numbered 0, 1, 2, ... without
    /// gaps), so every page costs the same however deep; the total is the highest number plus one.
    async fn list_items(&self, job: JobId, status: Option<ItemStatus>, page: &Page) -> Result<(Vec<ItemRecord>, u64)>;
    /// What the views of `jobs` show of their items (key, status, detail), each job's in key order: every item,
    /// or with `failed_up_to` only the first that many failed ones.
    async fn item_lines(&self, jobs: &[JobId], failed_up_to: Option<u64>) -> Result<Vec<ItemLine>>;
    async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>>;
    /// A page of jobs and how many match. Without an `id` or `overall_status` filter the total comes from a
    /// counter table (`job_totals`), not from counting; in creation order, a deep `skip` seeks from a position
    /// this node remembers in that list instead of walking every row before it.
    async fn list_jobs(&self, filter: &JobFilter, page: &Page) -> Result<(Vec<JobRecord>, u64)>;
    async fn job_items(&self, id: JobId) -> Result<Vec<ItemRecord>>;
    /// Sets `abort`; on a running job also skips every pending item and, when nothing is in flight,
    /// ends the job as cancelled. Returns the job as it is afterwards.
    async fn cancel_job(&self, id: JobId, at: DateTime<Utc>) -> Result<Option<JobRecord>>;
    /// A job's items grouped by container (KMS container or vault), region and the target's current state
    /// (AWS: the key's cached state; Azure: `stored`), for a plan's summary.
    async fn plan_groups(&self, id: JobId, cloud: Cloud) -> Result<Vec<PlanGroup>>;
    /// Up to `limit` rows of a job's report, in key order, after item `after_seq` (keyset paging: a report of
    /// any size is read a page at a time); each item with its target's ARN/kid, name, account/subscription,
    /// region/vault and current state.
    async fn report_rows(&self, id: JobId, cloud: Cloud, after_seq: i64, limit: i64) -> Result<Vec<ReportRow>>;
    /// A job's failed items grouped by error code, largest group first, with up to `samples` keys each (in one
    /// query).
    async fn error_groups(&self, id: JobId, samples: i64) -> Result<Vec<ErrorGroup>>;
    /// Records a planned job's summary.
    async fn set_job_plan(&self, id: JobId, plan: &serde_json::Value) -> Result<()>;
    /// Starts a planned job on its frozen items (`planned → pending`), in one transaction. `None` when the job
    /// is not (or no longer) planned; otherwise the job as it is afterwards.
    async fn start_planned_job(&self, id: JobId, at: DateTime<Utc>) -> Result<Option<JobRecord>>;
    /// Creates `job` over items of the finished job `from`, chosen and filled as [`Derived`] says, with its
    /// audit record (`bulkjob.retry`, `bulkjob.revert`), in one transaction. Returns the item count; 0 means
    /// no item qualified and nothing was created.
    async fn create_derived_job(&self, job: &JobRecord, from: JobId, how: Derived) -> Result<i64>;
}

/// `Idempotency-Key`s of create requests, per user (see `migrations/*/0006_job_safety.sql`).
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Takes `key` for `user` with the hash of the request's body: `None` when it was free (never used, or
    /// last used before `reusable_before`); otherwise the earlier request's `(body_hash, job)`, the job `None`
    /// while that request is still creating it.
    async fn claim_idempotency_key(&self, claim: &IdempotencyClaim<'_>) -> Result<Option<(String, Option<JobId>)>>;
    /// Records the job the request holding `key` created.
    async fn set_idempotency_job(&self, user: UserId, key: &str, job: JobId) -> Result<()>;
    /// Frees `key` again: the request holding it created nothing.
    async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<()>;
}

/// The worker side of bulk jobs: partition and item leases, claims, fenced results.
#[async_trait]
pub trait WorkQueue: Send + Sync {
    /// Fails every pending item of the job whose key is reached through the refused connection (the rest would
    /// fail the same way). Returns how many.
    async fn fail_pending_for_connection(&self, job: JobId, refusal: &Refusal<'_>, at: DateTime<Utc>) -> Result<u64>;
    /// Hands back items `owner` claimed but never sent (while they waited for a cloud slot their job was
    /// cancelled or stopped by a failure threshold, or their connection's credentials were refused): they are
    /// pending again with the claim's attempt undone, and the job's stop, if any, skips them as it skipped its
    /// other pending items. `items` are `(seq, attempt)`: only the claim that made the attempt is handed back.
    /// Returns how many were handed back.
    async fn return_unsent(&self, job: JobId, items: &[(i64, i64)], owner: &str, at: DateTime<Utc>) -> Result<u64>;
    /// Was the job cancelled, or stopped by a failure threshold (true also when it is gone)?
    async fn job_aborted(&self, id: JobId) -> Result<bool>;
    /// Partitions that have pending items, with the earliest time one of them is due.
    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>>;
    /// Resolves when another node may have created a job (PostgreSQL: `LISTEN`); never on a single-node
    /// backend. Workers also poll, so a lost notification only delays work by a poll interval.
    async fn job_announced(&self);
    /// Takes (or extends) the lease on driving a partition: true when `owner` holds it until `until` — it had
    /// it, nobody had it, or the holder's lease expired before `now`.
    async fn acquire_partition(&self, partition: &str, lease: Lease<'_>) -> Result<bool>;
    /// Extends every partition lease `owner` holds.
    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64>;
    /// Gives a partition lease up (its driver ran out of work).
    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()>;
    /// Leases up to `limit` pending items of one partition, due at `now`, to the lease's owner until its end,
    /// marking them running and counting the attempt (write-ahead: the row says "running" before any cloud
    /// call). Oldest first.
    async fn claim_items(&self, partition: &str, lease: Lease<'_>, limit: u32) -> Result<Vec<ClaimedItem>>;
    /// Does `owner` still hold a live lease on the item at `now`, from the claim that made `attempt`? Checked
    /// right before a state-changing cloud call, so a node that was paused past its lease acts neither on an
    /// item another node has taken over nor on one it claimed again since (that later claim runs it).
    async fn holds_item(&self, job: JobId, seq: i64, attempt: i64, owner: &str, now: DateTime<Utc>) -> Result<bool>;
    /// Extends every lease `owner` holds; returns how many.
    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64>;
    /// Returns running items whose lease expired to pending (their next attempt reconciles first).
    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Records how attempts of one job's items ended, all in one transaction (group commit: one commit, and
    /// on PostgreSQL one lock of the job row, for the whole batch). Each item is fenced by its lease: its
    /// entry is false (and nothing written for it) when the batch's owner no longer holds it. Ends the job when its
    /// last item becomes terminal.
    async fn finish_items(&self, batch: &FinishedBatch<'_>) -> Result<Vec<bool>>;
    /// [`finish_items`](WorkQueue::finish_items) for one item without an effect on the inventory.
    async fn finish_item(
        &self,
        job: JobId,
        seq: i64,
        owner: &str,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.finish_item_with(job, seq, owner, outcome, at, ItemEffect::None).await
    }
    /// [`finish_items`](WorkQueue::finish_items) for one item.
    async fn finish_item_with(
        &self,
        job: JobId,
        seq: i64,
        owner: &str,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
        effect: ItemEffect<'_>,
    ) -> Result<bool> {
        let items = [FinishedItem { seq, attempt: None, outcome, effect, cloud_calls: &[], policy_before: None }];
        let recorded = self.finish_items(&FinishedBatch { job, owner, at, items: &items }).await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }
}

/// Key synchronization jobs (the worker side is [`SyncQueue`]).
#[async_trait]
pub trait SyncJobStore: Send + Sync {
    async fn create_sync_job(&self, job: &SyncJobRecord) -> Result<()>;
    /// The sync jobs of one cloud ([`CLOUD_AWS`] or [`CLOUD_AZURE`]).
    async fn list_sync_jobs(
        &self,
        cloud: &str,
        status: Option<JobStatus>,
        page: &Page,
    ) -> Result<(Vec<SyncJobRecord>, u64)>;
    async fn cancel_sync_job(&self, id: SyncJobId, at: DateTime<Utc>) -> Result<Option<SyncJobRecord>>;
}

/// The worker side of key synchronization jobs.
#[async_trait]
pub trait SyncQueue: Send + Sync {
    /// Leases the oldest in-progress sync job (of any cloud) nobody holds (or whose lease expired).
    async fn claim_sync_job(&self, lease: Lease<'_>) -> Result<Option<SyncJobRecord>>;
    async fn get_sync_job(&self, id: SyncJobId) -> Result<Option<SyncJobRecord>>;
    /// Saves progress (and extends the lease); fenced by the lease like item writes.
    async fn update_sync_job(&self, job: &SyncJobRecord, owner: &str, lease_until: DateTime<Utc>) -> Result<bool>;
}
