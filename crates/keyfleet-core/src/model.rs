//! Operations, state machines and the records keyfleet stores.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::*;

/// A bulk-job operation, spelled on the wire as CCKM spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    ApplyPolicyTemplate,
    /// Azure: delete cloud key backups keyfleet keeps (a local effect, no Key Vault call).
    DeleteKeyBackups,
}

impl Operation {
    pub const AWS: [Operation; 5] = [
        Operation::EnableKey,
        Operation::DisableKey,
        Operation::ScheduleKeyDeletion,
        Operation::CancelKeyDeletion,
        Operation::ApplyPolicyTemplate,
    ];
    pub const AZURE: [Operation; 1] = [Operation::DeleteKeyBackups];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::EnableKey => "enablekey",
            Operation::DisableKey => "disablekey",
            Operation::ScheduleKeyDeletion => "schedulekeydeletion",
            Operation::CancelKeyDeletion => "cancelkeydeletion",
            Operation::ApplyPolicyTemplate => "applypolicytemplate",
            Operation::DeleteKeyBackups => "delete-key-backups",
        }
    }

    /// Any operation of either cloud, in any case; callers check it belongs to theirs with [`Operation::cloud`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::AWS.into_iter().chain(Self::AZURE).find(|op| op.as_str().eq_ignore_ascii_case(s))
    }

    /// The `cloud` of the jobs that run this operation: `aws` or `azure`.
    pub fn cloud(self) -> &'static str {
        match self {
            Operation::DeleteKeyBackups => CLOUD_AZURE,
            _ => CLOUD_AWS,
        }
    }

    /// The cloud API action that carries out the operation; also the name of its rate-limit bucket.
    pub fn cloud_action(self) -> &'static str {
        match self {
            Operation::EnableKey => "EnableKey",
            Operation::DisableKey => "DisableKey",
            Operation::ScheduleKeyDeletion => "ScheduleKeyDeletion",
            Operation::CancelKeyDeletion => "CancelKeyDeletion",
            Operation::ApplyPolicyTemplate => "PutKeyPolicy",
            Operation::DeleteKeyBackups => "DeleteKeyBackup",
        }
    }
}

/// `jobs.cloud` of AWS bulk jobs (and of AWS sync jobs).
pub const CLOUD_AWS: &str = "aws";
/// `jobs.cloud` of Azure bulk jobs (and of Azure sync jobs); the view shows [`AZURE_CLOUD_NAME`].
pub const CLOUD_AZURE: &str = "azure";
/// The Azure cloud name CCKM shows (`cloud` of an Azure job, `cloud_name` of a connection).
pub const AZURE_CLOUD_NAME: &str = "AzureCloud";

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Job `overall_status`. Terminal states never change again (cancel on a terminal job only sets `abort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JobStatus {
    /// Extension: created with `dry_run`; resolved and frozen, nothing runs until it is confirmed.
    Planned,
    InProgress,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Planned, JobStatus::InProgress, JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Planned => "planned",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// In any case (`Completed` is `completed`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Planned | JobStatus::InProgress)
    }
}

/// Item state machine: `pending → running → succeeded | failed | skipped`; a retry returns `running → pending`.
/// The items of a planned job are `planned` (never claimed) until the plan is confirmed (`planned → pending`)
/// or cancelled (`planned → skipped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemStatus {
    Planned,
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl ItemStatus {
    pub const ALL: [ItemStatus; 6] = [
        ItemStatus::Planned,
        ItemStatus::Pending,
        ItemStatus::Running,
        ItemStatus::Succeeded,
        ItemStatus::Failed,
        ItemStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Planned => "planned",
            ItemStatus::Pending => "pending",
            ItemStatus::Running => "running",
            ItemStatus::Succeeded => "succeeded",
            ItemStatus::Failed => "failed",
            ItemStatus::Skipped => "skipped",
        }
    }

    /// In any case (`Failed` is `failed`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s))
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, ItemStatus::Succeeded | ItemStatus::Failed | ItemStatus::Skipped)
    }
}

/// Parameters a job was created with, echoed in its view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobParams {
    /// The id of the request that created the job (an incoming `X-Request-Id` is kept), so that the engine's
    /// log lines for its items can be found from the request. Not shown in the job's view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_template_id: Option<TemplateId>,
    /// The selector a large job was created with (extension), as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<serde_json::Value>,
    /// Azure `delete-key-backups`: the request's `delete_key_backups_param`, as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_key_backups_param: Option<serde_json::Value>,
    /// Extension: the job stops once more items than this failed (`rules::FailureLimits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<i64>,
    /// Extension: the job stops once more than this percentage of its finished items failed (from 100 finished
    /// items on). The server's default when the request gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_percent: Option<i64>,
    /// Extension: the job retries the failed and not-attempted items of this finished job (`retry-failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_of: Option<JobId>,
    /// Extension: the job puts back what this finished job changed (`revert`); its items carry a [`Restore`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_of: Option<JobId>,
}

/// Which keys a selector job acts on, resolved to stored ids (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeySelector {
    pub kms: Vec<KmsId>,
    pub regions: Vec<String>,
    /// `key` or `key=value`; a key must carry every one.
    pub tags: Vec<(String, Option<String>)>,
    pub alias_prefix: Option<String>,
    pub key_state: Option<String>,
}

/// The rate-limit partition of an item: the cloud account and region its key lives in. Each partition's
/// quotas are separate, so partitions are driven in parallel.
pub fn partition_of(account: &str, region: &str) -> String {
    format!("{account}/{region}")
}

/// Which cloud key backups a `delete-key-backups` job deletes: every condition given must hold (an empty
/// list or `None` places no condition).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackupSelector {
    pub backups: Vec<BackupId>,
    /// Backups of these Azure keys (`key_id` or `keys`).
    pub keys: Vec<KeyId>,
    pub vault: Option<VaultId>,
    /// Created at or after (inclusive).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before (exclusive).
    pub created_before: Option<DateTime<Utc>>,
}

/// The rate-limit partition of an Azure item or call: Key Vault's quotas are per vault.
pub fn azure_partition(vault: VaultId) -> String {
    partition_of(CLOUD_AZURE, &vault.to_string())
}

/// A key to put into a new job, with its partition. For `delete-key-backups`, `key_id` holds the backup's id
/// (the item column names what the item acts on).
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    pub key_id: KeyId,
    pub partition: String,
}

/// A bulk job as stored. Items are separate rows (`ItemRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub cloud: String,
    pub operation: Operation,
    pub params: JobParams,
    pub status: JobStatus,
    pub abort: bool,
    pub created_by: UserId,
    /// Number of items, and how many of them ended each way (kept on the job row so that progress and
    /// completion never need a scan of the items).
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Extension: a planned job's summary (`dry_run`), as its view shows it.
    pub plan: Option<serde_json::Value>,
    /// Extension: when a planned job can no longer be confirmed.
    pub plan_expires_at: Option<DateTime<Utc>>,
    /// Extension: why the job stopped before its items ran out (a failure threshold was crossed).
    pub stop_reason: Option<String>,
}

/// One group of a plan's items: how many items of one container (KMS container or vault) and region are in
/// one current state.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanGroup {
    pub container: String,
    pub region: String,
    pub state: String,
    /// Revert items: the state they return their keys to (`None` for the items of any other job).
    pub restore_state: Option<String>,
    pub items: i64,
    /// How many of the items put back a key policy.
    pub restore_policies: i64,
}

/// One row of a job's report: an item with what the inventory knows of its target (`None` where the target
/// is no longer there, e.g. a deleted Azure backup).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub item: ItemRecord,
    /// AWS: the key's ARN; Azure: the kid of the backed-up key version.
    pub key_ref: Option<String>,
    /// AWS: the key's first alias; Azure: the key's name.
    pub key_name: Option<String>,
    /// AWS: the account id; Azure: the subscription id.
    pub account: Option<String>,
    /// AWS: the region; Azure: the vault's name.
    pub location: Option<String>,
    /// The target's current state (AWS: the cached key state; Azure: `stored`); `None` when gone.
    pub current_state: Option<String>,
}

/// A job's failed items of one error code: how many, and the first few keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorGroup {
    /// Empty when the failure carried no code.
    pub code: String,
    pub count: i64,
    /// The message of the group's first failure.
    pub message: Option<String>,
    pub sample_keys: Vec<KeyId>,
}

impl ItemRecord {
    /// The backup a `delete-key-backups` item acts on.
    pub fn backup_id(&self) -> BackupId {
        BackupId(self.key_id.0)
    }
}

impl ClaimedItem {
    /// The backup a `delete-key-backups` item acts on.
    pub fn backup_id(&self) -> BackupId {
        BackupId(self.key_id.0)
    }
}

impl JobRecord {
    pub fn finished(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }
}

/// One key of a bulk job, with its own state and the evidence of what happened to it. For `delete-key-backups`
/// the item is a backup and `key_id` holds its id (see [`ItemRecord::backup_id`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRecord {
    pub job_id: JobId,
    pub seq: i64,
    pub key_id: KeyId,
    pub status: ItemStatus,
    pub attempts: i64,
    /// The text shown in `detailed_status` once the item is terminal.
    pub detail: Option<String>,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    /// A revert item: the key state it returns the key to (see [`Restore`]).
    pub restore_state: Option<String>,
    /// A revert item: whether it puts back a key policy (the policy itself is read only by the worker).
    pub restores_policy: bool,
    pub updated_at: DateTime<Utc>,
}

/// What one item of a revert job puts back on its key, taken from what the reverted job's item recorded. The
/// item does whatever takes the key there from its live state (e.g. `PendingDeletion` to `Enabled`: cancel the
/// deletion, then enable), and nothing when the key is already there.
#[derive(Clone, Default, PartialEq)]
pub struct Restore {
    /// The key state to return to (the reverted item's `state_before`): `Enabled` or `Disabled`.
    pub state: Option<String>,
    /// The exact key policy to put back (the reverted item's policy before a template replaced it).
    pub policy: Option<String>,
}

impl fmt::Debug for Restore {
    // A key policy names the account's principals: it stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Restore")
            .field("state", &self.state)
            .field("policy", &self.policy.as_ref().map(|_| "<policy>"))
            .finish()
    }
}

/// An item a worker holds a lease on, with what it needs to act without further lookups of the job.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedItem {
    pub job_id: JobId,
    pub seq: i64,
    pub key_id: KeyId,
    pub operation: Operation,
    pub params: JobParams,
    pub partition: String,
    /// Attempts including the one this claim starts.
    pub attempts: i64,
    /// When the first attempt started; the per-item deadline counts from here.
    pub first_attempt_at: DateTime<Utc>,
    /// A revert item: what it puts back, in place of the job's operation.
    pub restore: Option<Restore>,
}

/// How a worker's attempt on an item ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemOutcome {
    Succeeded {
        detail: String,
        state_before: Option<String>,
        state_after: Option<String>,
    },
    Failed {
        code: String,
        message: String,
        state_before: Option<String>,
    },
    /// Try again no earlier than `not_before`.
    Retry {
        code: String,
        message: String,
        not_before: DateTime<Utc>,
    },
    Skipped {
        reason: String,
    },
}

/// Local user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub username: String,
    pub name: String,
    pub email: String,
    pub nickname: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
    pub logins_count: i64,
    /// Raised by every password change and by disabling; access tokens of an older generation are refused.
    pub token_generation: i64,
    /// A disabled user can neither log in nor use a token.
    pub disabled: bool,
}

impl UserRecord {
    /// A new, enabled user created at `at` who has never logged in; name, email and nickname empty.
    pub fn new(username: String, password_hash: String, at: DateTime<Utc>) -> Self {
        UserRecord {
            id: UserId::new(),
            username,
            name: String::new(),
            email: String::new(),
            nickname: String::new(),
            password_hash,
            created_at: at,
            updated_at: at,
            last_login: None,
            logins_count: 0,
            token_generation: 0,
            disabled: false,
        }
    }
}

/// What an administrator changes on a user (`PATCH /v1/usermgmt/users/{id}`); `None` keeps the value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserChange {
    pub password_hash: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    pub nickname: Option<String>,
    pub disabled: Option<bool>,
}

impl UserChange {
    /// A new password or disabling ends every session of the user.
    pub fn revokes_tokens(&self) -> bool {
        self.password_hash.is_some() || self.disabled == Some(true)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub users_count: i64,
}

/// A stored refresh token: only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshTokenRecord {
    pub id: RefreshTokenId,
    pub user_id: UserId,
    pub client_id: String,
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

/// Who an ACL entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    User(UserId),
    Group(String),
}

/// The kinds of resource ACLs attach to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclResource {
    AwsKms(KmsId),
    AzureVault(VaultId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AclEntry {
    pub principal: Principal,
    pub actions: Vec<String>,
}

/// An AWS connection. The secret is kept only as ciphertext (see `crypto`).
#[derive(Clone, PartialEq)]
pub struct AwsConnectionRecord {
    pub id: ConnectionId,
    pub name: String,
    pub description: String,
    pub access_key_id: String,
    pub secret_enc: Vec<u8>,
    pub aws_region: String,
    pub assume_role_arn: Option<String>,
    pub assume_role_external_id: Option<String>,
    pub endpoint_url: Option<String>,
    pub cloud_name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for AwsConnectionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsConnectionRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("secret_enc", &"<redacted>")
            .field("endpoint_url", &self.endpoint_url)
            .finish_non_exhaustive()
    }
}

/// An AWS KMS container: one account reached through one connection, in some regions.
#[derive(Debug, Clone, PartialEq)]
pub struct KmsRecord {
    pub id: KmsId,
    pub name: String,
    pub account_id: String,
    pub connection_id: ConnectionId,
    pub regions: Vec<String>,
    /// Requests per second per action for this container's account, overriding AWS's defaults (e.g. when
    /// other tools share the quota).
    pub quotas: std::collections::BTreeMap<String, f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// AWS's KeyMetadata and the rest of what a sync learns about a key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AwsKeyMaterial {
    pub key_id: String,
    pub arn: String,
    pub account_id: String,
    pub key_state: String,
    pub enabled: bool,
    pub description: String,
    pub key_usage: String,
    pub origin: String,
    pub key_manager: String,
    pub creation_date: Option<DateTime<Utc>>,
    pub deletion_date: Option<DateTime<Utc>>,
    pub multi_region: bool,
    pub policy: String,
    pub tags: Vec<(String, String)>,
    pub aliases: Vec<String>,
}

/// A synced AWS key: keyfleet's id, where it lives, and the cached metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsKeyRecord {
    pub id: KeyId,
    pub kms_id: KmsId,
    pub region: String,
    pub material: AwsKeyMaterial,
    pub gone: bool,
    pub synced_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key-policy template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRecord {
    pub id: TemplateId,
    pub name: String,
    pub kms_id: Option<KmsId>,
    pub account_id: String,
    pub policy: serde_json::Value,
    pub key_admins: Vec<String>,
    pub key_users: Vec<String>,
    pub key_admins_roles: Vec<String>,
    pub key_users_roles: Vec<String>,
    pub is_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key synchronization job. Its per-region results live in `detailed_status` (`"<account>/<region>"`; for
/// Azure, the vault's name).
#[derive(Debug, Clone, PartialEq)]
pub struct SyncJobRecord {
    pub id: SyncJobId,
    /// [`CLOUD_AWS`] or [`CLOUD_AZURE`].
    pub cloud: String,
    pub kms: Vec<KmsId>,
    pub regions: Vec<String>,
    /// Azure: the vaults to synchronize (empty with `synchronize_all`).
    pub vaults: Vec<VaultId>,
    /// Azure: back up every synchronized key (a cloud key backup each).
    pub take_cloud_key_backup: bool,
    pub synchronize_all: bool,
    pub status: JobStatus,
    pub abort: bool,
    pub detailed_status: std::collections::BTreeMap<String, String>,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Sort order of a list: a field and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: String,
    pub descending: bool,
}

/// Paging of a list query; `limit` is already validated and capped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub skip: u64,
    pub limit: u64,
    pub sort: Vec<SortKey>,
}

/// Filters of the bulk-job list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub id: Option<JobId>,
    pub status: Option<JobStatus>,
    pub cloud: Option<String>,
    pub operation: Option<Operation>,
    pub created_by: Option<UserId>,
}

/// Filters of the AWS key list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsKeyFilter {
    pub kms_id: Option<KmsId>,
    pub region: Option<String>,
    pub aws_key_id: Option<String>,
    pub arn: Option<String>,
    pub alias: Option<String>,
    pub key_state: Option<String>,
    pub enabled: Option<bool>,
    pub gone: Option<bool>,
    /// `key` or `key=value` entries; a key matches when it has every one.
    pub tags: Vec<(String, Option<String>)>,
}

/// An Azure connection: an Entra ID application (client credentials) and the endpoints to reach. The secret is
/// kept only as ciphertext (see `crypto`). Endpoints left `None` mean Azure's public cloud.
#[derive(Clone, PartialEq)]
pub struct AzureConnectionRecord {
    pub id: ConnectionId,
    pub name: String,
    pub description: String,
    pub client_id: String,
    pub tenant_id: String,
    pub secret_enc: Vec<u8>,
    pub cloud_name: String,
    /// Entra ID authority host, default `https://login.microsoftonline.com`.
    pub active_directory_endpoint: Option<String>,
    /// Token resource, default `https://vault.azure.net` (scope `<resource>/.default`).
    pub vault_resource_url: Option<String>,
    /// Default `vault.azure.net`: a vault without a stored URI is `https://<name>.<suffix>`.
    pub key_vault_dns_suffix: Option<String>,
    /// Extension: a URL template for every vault of this connection, `{vault}` standing for the vault's
    /// name (tests, fakes, private endpoints), e.g. `https://127.0.0.1:4600/vaults/{vault}`.
    pub vault_endpoint_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AzureConnectionRecord {
    /// A connection to Azure's public cloud with the default endpoints and no description, created at `at`.
    /// `secret_enc` is the client secret sealed for `id`.
    pub fn public(
        id: ConnectionId,
        name: String,
        (client_id, tenant_id): (String, String),
        secret_enc: Vec<u8>,
        at: DateTime<Utc>,
    ) -> Self {
        AzureConnectionRecord {
            id,
            name,
            description: String::new(),
            client_id,
            tenant_id,
            secret_enc,
            cloud_name: AZURE_CLOUD_NAME.into(),
            active_directory_endpoint: None,
            vault_resource_url: None,
            key_vault_dns_suffix: None,
            vault_endpoint_url: None,
            created_at: at,
            updated_at: at,
        }
    }
}

impl fmt::Debug for AzureConnectionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConnectionRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("secret_enc", &"<redacted>")
            .field("active_directory_endpoint", &self.active_directory_endpoint)
            .field("vault_endpoint_url", &self.vault_endpoint_url)
            .finish_non_exhaustive()
    }
}

/// An Azure key vault added to keyfleet. `name` is the vault's Azure name (globally unique in a cloud).
#[derive(Debug, Clone, PartialEq)]
pub struct VaultRecord {
    pub id: VaultId,
    pub name: String,
    /// The ARM resource id, `/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<name>`.
    pub azure_vault_id: String,
    pub connection_id: ConnectionId,
    pub subscription_id: String,
    pub location: String,
    /// `Microsoft.KeyVault/vaults` (or `.../managedHSMs`).
    pub vault_type: String,
    /// The data-plane URL, `https://<name>.vault.azure.net/`; empty when the connection decides it.
    pub vault_uri: String,
    /// Azure's `properties` object as given when the vault was added.
    pub properties: serde_json::Value,
    pub tags: std::collections::BTreeMap<String, String>,
    pub synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One version of an Azure key, as a listing shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AzureKeyVersion {
    pub version: String,
    pub enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub exp: Option<DateTime<Utc>>,
    pub nbf: Option<DateTime<Utc>>,
}

/// What a sync learns about an Azure key: its current version in full and the list of its versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AzureKeyMaterial {
    /// The key's name in its vault.
    pub name: String,
    /// Versioned key identifier, `https://<vault>.vault.azure.net/keys/<name>/<version>`.
    pub kid: String,
    pub version: String,
    /// `RSA`, `RSA-HSM`, `EC`, `EC-HSM`, `oct-HSM`.
    pub kty: String,
    pub key_ops: Vec<String>,
    pub key_size: Option<i64>,
    pub curve: Option<String>,
    pub enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub exp: Option<DateTime<Utc>>,
    pub nbf: Option<DateTime<Utc>>,
    pub recovery_level: String,
    pub recoverable_days: Option<i64>,
    pub managed: bool,
    pub tags: std::collections::BTreeMap<String, String>,
    /// Every version, oldest first.
    pub versions: Vec<AzureKeyVersion>,
}

/// A synced Azure key: keyfleet's id, its vault, and the cached material. Keys are matched by name
/// (case-insensitively, as Key Vault does) within their vault.
#[derive(Debug, Clone, PartialEq)]
pub struct AzureKeyRecord {
    pub id: KeyId,
    pub vault_id: VaultId,
    pub material: AzureKeyMaterial,
    pub gone: bool,
    pub synced_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A cloud key backup: metadata only. The blob (Key Vault's opaque backup, encrypted under the master key
/// with [`BackupId::blob_aad`]) is stored beside it and read on its own, for a restore.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyBackupRecord {
    pub id: BackupId,
    pub key_id: KeyId,
    pub vault_id: VaultId,
    /// The key's name and the version that was current when the backup was taken.
    pub key_name: String,
    pub key_version: String,
    pub name: String,
    pub description: String,
    /// Size of the backup blob as Key Vault returned it (before encryption).
    pub size_bytes: i64,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Filters of the vault list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VaultFilter {
    pub name: Option<String>,
    pub connection_id: Option<ConnectionId>,
    pub subscription_id: Option<String>,
}

/// Filters of the Azure key list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AzureKeyFilter {
    pub vault_id: Option<VaultId>,
    /// The key's name (case-insensitive).
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub gone: Option<bool>,
}

/// Filters of the backup list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyBackupFilter {
    pub key_id: Option<KeyId>,
    pub vault_id: Option<VaultId>,
}
