//! The engine's store in memory: the same rules as the SQL backends (claims oldest-due first, leases fence
//! every write, the last terminal item ends the job), over maps. Each node sees it through its own
//! [`NodeStore`], whose calls pass the node's [`Gate`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use keyfleet_engine::store::{AwsWorkStore, AzureWorkStore, SyncQueue, WorkQueue};
use keyfleet_store::{AwsRegionKeys, FinishedBatch, FinishedItem, ItemEffect, Lease, Refusal, Result};

use super::gate::{Gate, Moment};

/// One item row.
#[derive(Debug, Clone)]
pub struct Item {
    pub key_id: KeyId,
    pub partition: String,
    pub status: ItemStatus,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub not_before: DateTime<Utc>,
    pub detail: Option<String>,
    /// How many times the item became terminal (the property: exactly once).
    pub terminal_writes: u32,
}

/// A sync job and its lease (owner, until).
type SyncJobRow = (SyncJobRecord, Option<(String, DateTime<Utc>)>);

#[derive(Debug, Default)]
pub struct Db {
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Keyed by (insertion order, job, seq): iteration order is the SQL backends' rowid order.
    pub items: BTreeMap<(u64, JobId, i64), Item>,
    pub partitions: BTreeMap<String, (String, DateTime<Utc>)>,
    pub aws_keys: BTreeMap<KeyId, AwsKeyRecord>,
    pub kms: BTreeMap<KmsId, KmsRecord>,
    pub aws_connections: BTreeMap<ConnectionId, AwsConnectionRecord>,
    pub templates: BTreeMap<TemplateId, TemplateRecord>,
    pub azure_connections: BTreeMap<ConnectionId, AzureConnectionRecord>,
    pub vaults: BTreeMap<VaultId, VaultRecord>,
    pub azure_keys: BTreeMap<KeyId, AzureKeyRecord>,
    pub backups: BTreeMap<BackupId, (KeyBackupRecord, Vec<u8>)>,
    pub sync_jobs: BTreeMap<SyncJobId, SyncJobRow>,
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

impl Db {
    /// Ends the job when every item is terminal (the SQL backends' `finalize_if_done`).
    fn finalize_if_done(&mut self, id: JobId, at: DateTime<Utc>) {
        let Some(j) = self.jobs.get_mut(&id) else { return };
        if j.status == JobStatus::InProgress && j.finished() >= j.total {
            j.status = if j.abort {
                JobStatus::Cancelled
            } else if j.failed == j.total {
                JobStatus::Failed
            } else {
                JobStatus::Completed
            };
            j.completed_at = Some(at);
            j.updated_at = at;
        }
    }

    fn item_mut(&mut self, job: JobId, seq: i64) -> Option<&mut Item> {
        self.items.iter_mut().find(|((_, j, s), _)| *j == job && *s == seq).map(|(_, i)| i)
    }

    fn count(&mut self, job: JobId, status: ItemStatus, n: i64, at: DateTime<Utc>) {
        if let Some(j) = self.jobs.get_mut(&job) {
            match status {
                ItemStatus::Succeeded => j.succeeded += n,
                ItemStatus::Failed => j.failed += n,
                ItemStatus::Skipped => j.skipped += n,
                ItemStatus::Planned | ItemStatus::Pending | ItemStatus::Running => {}
            }
            j.updated_at = at;
        }
    }

    /// The test's side: a new job and its items (as `create_job`).
    pub fn create_job(&mut self, job: JobRecord, items: &[NewItem]) {
        let mut job = job;
        job.total = items.len() as i64;
        for (seq, it) in items.iter().enumerate() {
            let row = self.items.len() as u64;
            self.items.insert(
                (row, job.id, seq as i64 + 1),
                Item {
                    key_id: it.key_id,
                    partition: it.partition.clone(),
                    status: ItemStatus::Pending,
                    attempts: 0,
                    lease_owner: None,
                    lease_expires_at: None,
                    first_attempt_at: None,
                    not_before: epoch(),
                    detail: None,
                    terminal_writes: 0,
                },
            );
        }
        self.jobs.insert(job.id, job);
    }

    /// The test's side: the API's cancel (`cancel_job`): abort, skip what is pending, end the job when
    /// nothing is in flight.
    pub fn cancel_job(&mut self, id: JobId, at: DateTime<Utc>) {
        let Some(job) = self.jobs.get_mut(&id) else { return };
        job.abort = true;
        if job.status.is_terminal() {
            return;
        }
        let mut n = 0;
        for ((_, j, _), it) in self.items.iter_mut() {
            if *j == id && it.status == ItemStatus::Pending {
                it.status = ItemStatus::Skipped;
                it.detail = Some("Skipped: cancelled".into());
                it.terminal_writes += 1;
                n += 1;
            }
        }
        self.count(id, ItemStatus::Skipped, n, at);
        self.finalize_if_done(id, at);
    }
}

/// The store as one node sees it.
#[derive(Clone)]
pub struct NodeStore {
    pub db: Arc<Mutex<Db>>,
    pub gate: Arc<Gate>,
}

impl NodeStore {
    /// Passes the node's gate, then locks the database (never across an await).
    async fn db(&self) -> MutexGuard<'_, Db> {
        self.gate.store_call().await;
        self.db.lock().unwrap()
    }
}

#[async_trait]
impl WorkQueue for NodeStore {
    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let db = self.db().await;
        let mut due: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for it in db.items.values().filter(|i| i.status == ItemStatus::Pending) {
            let d = due.entry(it.partition.clone()).or_insert(it.not_before);
            *d = (*d).min(it.not_before);
        }
        Ok(due.into_iter().collect())
    }

    async fn job_announced(&self) {
        // A single store: nobody else announces jobs.
        std::future::pending::<()>().await
    }

    async fn acquire_partition(&self, partition: &str, lease: Lease<'_>) -> Result<bool> {
        let Lease { owner, now, until } = lease;
        let mut db = self.db().await;
        let free = match db.partitions.get(partition) {
            None => true,
            Some((holder, expires)) => holder == owner || *expires < now,
        };
        if free {
            db.partitions.insert(partition.to_string(), (owner.to_string(), until));
        }
        Ok(free)
    }

    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db().await;
        let mut n = 0;
        for (holder, expires) in db.partitions.values_mut() {
            if holder == owner {
                *expires = (*expires).max(until); // never shortened, as item leases
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()> {
        let mut db = self.db().await;
        if db.partitions.get(partition).is_some_and(|(holder, _)| holder == owner) {
            db.partitions.remove(partition);
        }
        Ok(())
    }

    async fn claim_items(&self, partition: &str, lease: Lease<'_>, limit: u32) -> Result<Vec<ClaimedItem>> {
        let Lease { owner, now, until: lease_until } = lease;
        let mut db = self.db().await;
        // Items attempted before first, then oldest due first (the SQL backends' two indexes).
        let mut due: Vec<(bool, DateTime<Utc>, (u64, JobId, i64))> = db
            .items
            .iter()
            .filter(|(_, i)| i.status == ItemStatus::Pending && i.partition == partition && i.not_before <= now)
            .map(|(k, i)| (i.attempts == 0, i.not_before, *k))
            .collect();
        due.sort();
        due.truncate(limit as usize);
        let mut out = Vec::with_capacity(due.len());
        for (_, _, k) in due {
            let it = db.items.get_mut(&k).expect("row just listed");
            it.status = ItemStatus::Running;
            it.attempts += 1;
            it.lease_owner = Some(owner.to_string());
            it.lease_expires_at = Some(lease_until);
            let first = *it.first_attempt_at.get_or_insert(now);
            let (key_id, attempts, partition) = (it.key_id, it.attempts, it.partition.clone());
            let job = &db.jobs[&k.1];
            out.push(ClaimedItem {
                job_id: k.1,
                seq: k.2,
                key_id,
                operation: job.operation,
                params: job.params.clone(),
                partition,
                attempts,
                first_attempt_at: first,
                restore: None,
            });
        }
        out.sort_by_key(|c| (c.job_id, c.seq));
        Ok(out)
    }

    async fn holds_item(&self, job: JobId, seq: i64, attempt: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let held = self.db().await.item_mut(job, seq).is_some_and(|i| {
            i.status == ItemStatus::Running
                && i.attempts == attempt
                && i.lease_owner.as_deref() == Some(owner)
                && i.lease_expires_at.is_some_and(|e| e > now)
        });
        self.gate.reached(Moment::LeaseConfirmed).await;
        Ok(held)
    }

    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64> {
        self.gate.reached(Moment::HeartbeatSending).await;
        let mut db = self.db().await;
        let mut n = 0;
        for it in db.items.values_mut() {
            if it.status == ItemStatus::Running && it.lease_owner.as_deref() == Some(owner) {
                // Never shortened (the SQL backends' `renew_leases`).
                it.lease_expires_at = it.lease_expires_at.max(Some(lease_until));
                n += 1;
            }
        }
        Ok(n)
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db().await;
        let mut n = 0;
        for it in db.items.values_mut() {
            if it.status == ItemStatus::Running && it.lease_expires_at.is_some_and(|e| e < now) {
                it.status = ItemStatus::Pending;
                it.lease_owner = None;
                it.lease_expires_at = None;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn finish_items(&self, batch: &FinishedBatch<'_>) -> Result<Vec<bool>> {
        let mut db = self.db().await; // one lock for the batch: one transaction
        Ok(batch.items.iter().map(|i| db.finish(batch, i)).collect())
    }

    async fn fail_pending_for_connection(&self, job: JobId, refusal: &Refusal<'_>, at: DateTime<Utc>) -> Result<u64> {
        let Refusal { connection, code, message } = *refusal;
        let mut db = self.db().await;
        let Db { items, aws_keys, kms, .. } = &mut *db;
        let mut n = 0;
        for ((_, j, _), it) in items.iter_mut() {
            let of_connection = aws_keys
                .get(&it.key_id)
                .and_then(|k| kms.get(&k.kms_id))
                .is_some_and(|m| m.connection_id == connection);
            if *j == job && it.status == ItemStatus::Pending && of_connection {
                it.status = ItemStatus::Failed;
                it.detail = Some(keyfleet_core::rules::failed_detail(code, message));
                it.terminal_writes += 1;
                n += 1;
            }
        }
        db.count(job, ItemStatus::Failed, n, at);
        db.finalize_if_done(job, at);
        Ok(n as u64)
    }

    async fn return_unsent(&self, job: JobId, items: &[(i64, i64)], owner: &str, at: DateTime<Utc>) -> Result<u64> {
        let mut db = self.db().await;
        let mut returned = 0;
        for &(seq, attempt) in items {
            if let Some(it) = db.item_mut(job, seq)
                && it.status == ItemStatus::Running
                && it.attempts == attempt
                && it.lease_owner.as_deref() == Some(owner)
            {
                it.status = ItemStatus::Pending;
                it.attempts -= 1;
                if it.attempts == 0 {
                    it.first_attempt_at = None;
                }
                it.lease_owner = None;
                it.lease_expires_at = None;
                returned += 1;
            }
        }
        // A cancelled job's returned items are skipped as its other pending items were (no thresholds here).
        if returned > 0 && db.jobs.get(&job).is_some_and(|j| j.abort) {
            db.cancel_job(job, at);
        }
        Ok(returned)
    }

    async fn job_aborted(&self, id: JobId) -> Result<bool> {
        Ok(self.db().await.jobs.get(&id).is_some_and(|j| j.abort))
    }
}

#[async_trait]
impl AzureWorkStore for NodeStore {
    async fn get_azure_connection(&self, id: ConnectionId) -> Result<Option<AzureConnectionRecord>> {
        Ok(self.db().await.azure_connections.get(&id).cloned())
    }
    async fn get_vault(&self, id: VaultId) -> Result<Option<VaultRecord>> {
        Ok(self.db().await.vaults.get(&id).cloned())
    }
    async fn get_key_backup(&self, id: BackupId) -> Result<Option<KeyBackupRecord>> {
        Ok(self.db().await.backups.get(&id).map(|(b, _)| b.clone()))
    }
    async fn sync_azure_vault(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        self.sync_azure_rows(vault, keys, at, true).await
    }
    async fn sync_azure_vault_part(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let (added, updated, _) = self.sync_azure_rows(vault, keys, at, false).await?;
        Ok((added, updated))
    }
    async fn insert_key_backup(&self, b: &KeyBackupRecord, blob_enc: &[u8]) -> Result<()> {
        self.db().await.backups.insert(b.id, (b.clone(), blob_enc.to_vec()));
        Ok(())
    }
    async fn all_vaults(&self) -> Result<Vec<VaultRecord>> {
        Ok(self.db().await.vaults.values().cloned().collect())
    }
    async fn live_azure_keys(&self, vault: VaultId, skip: u64, limit: u64) -> Result<Vec<AzureKeyRecord>> {
        let db = self.db().await;
        let keys = db.azure_keys.values().filter(|k| k.vault_id == vault && !k.gone);
        Ok(keys.skip(skip as usize).take(limit as usize).cloned().collect())
    }
}

#[async_trait]
impl AwsWorkStore for NodeStore {
    async fn get_aws_connection(&self, id: ConnectionId) -> Result<Option<AwsConnectionRecord>> {
        Ok(self.db().await.aws_connections.get(&id).cloned())
    }
    async fn get_kms(&self, id: KmsId) -> Result<Option<KmsRecord>> {
        Ok(self.db().await.kms.get(&id).cloned())
    }
    async fn get_aws_key(&self, id: KeyId) -> Result<Option<AwsKeyRecord>> {
        Ok(self.db().await.aws_keys.get(&id).cloned())
    }
    async fn get_template(&self, id: TemplateId) -> Result<Option<TemplateRecord>> {
        Ok(self.db().await.templates.get(&id).cloned())
    }
    async fn sync_aws_region(&self, listed: &AwsRegionKeys<'_>, at: DateTime<Utc>) -> Result<(u64, u64, u64)> {
        self.sync_aws_rows(listed, at, true).await
    }
    async fn sync_aws_region_part(&self, listed: &AwsRegionKeys<'_>, at: DateTime<Utc>) -> Result<(u64, u64)> {
        let (added, updated, _) = self.sync_aws_rows(listed, at, false).await?;
        Ok((added, updated))
    }
    async fn all_kms(&self) -> Result<Vec<KmsRecord>> {
        Ok(self.db().await.kms.values().cloned().collect())
    }
}

impl NodeStore {
    async fn sync_azure_rows(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
        complete: bool,
    ) -> Result<(u64, u64, u64)> {
        let new = |id, m: &AzureKeyMaterial| AzureKeyRecord {
            id,
            vault_id: vault,
            material: m.clone(),
            gone: false,
            synced_at: at,
            created_at: at,
            updated_at: at,
        };
        let same = |a: &AzureKeyMaterial, b: &AzureKeyMaterial| a.name == b.name;
        Ok(sync_rows(&mut self.db().await.azure_keys, |k| k.vault_id == vault, keys, same, new, at, complete))
    }

    async fn sync_aws_rows(
        &self,
        listed: &AwsRegionKeys<'_>,
        at: DateTime<Utc>,
        complete: bool,
    ) -> Result<(u64, u64, u64)> {
        let AwsRegionKeys { kms_id, region, keys } = *listed;
        let new = |id, m: &AwsKeyMaterial| AwsKeyRecord {
            id,
            kms_id,
            region: region.to_string(),
            material: m.clone(),
            gone: false,
            synced_at: at,
            created_at: at,
            updated_at: at,
        };
        let in_scope = |k: &AwsKeyRecord| k.kms_id == kms_id && k.region == region;
        let same = |a: &AwsKeyMaterial, b: &AwsKeyMaterial| a.key_id == b.key_id;
        Ok(sync_rows(&mut self.db().await.aws_keys, in_scope, keys, same, new, at, complete))
    }
}

#[async_trait]
impl SyncQueue for NodeStore {
    async fn claim_sync_job(&self, lease: Lease<'_>) -> Result<Option<SyncJobRecord>> {
        let Lease { owner, now, until: lease_until } = lease;
        let mut db = self.db().await;
        let mut free: Vec<&mut SyncJobRow> = db
            .sync_jobs
            .values_mut()
            .filter(|(j, lease)| {
                j.status == JobStatus::InProgress && lease.as_ref().is_none_or(|(_, until)| *until < now)
            })
            .collect();
        free.sort_by_key(|(j, _)| (j.created_at, j.id));
        Ok(free.into_iter().next().map(|(j, lease)| {
            *lease = Some((owner.to_string(), lease_until));
            j.clone()
        }))
    }
    async fn get_sync_job(&self, id: SyncJobId) -> Result<Option<SyncJobRecord>> {
        Ok(self.db().await.sync_jobs.get(&id).map(|(j, _)| j.clone()))
    }
    async fn update_sync_job(&self, job: &SyncJobRecord, owner: &str, lease_until: DateTime<Utc>) -> Result<bool> {
        let mut db = self.db().await;
        let Some((stored, lease)) = db.sync_jobs.get_mut(&job.id) else { return Ok(false) };
        if lease.as_ref().is_none_or(|(holder, _)| holder != owner) {
            return Ok(false);
        }
        // `abort` is the API's to set; the engine saves progress and the ending.
        let abort = stored.abort;
        *stored = SyncJobRecord { abort, ..job.clone() };
        *lease = Some((owner.to_string(), lease_until));
        Ok(true)
    }
}

/// An inventory row a sync writes: its material, `gone`, `synced_at` and `updated_at`.
trait Synced {
    type Material: PartialEq + Clone;
    fn material(&self) -> &Self::Material;
    fn parts(&mut self) -> (&mut Self::Material, &mut bool, &mut DateTime<Utc>, &mut DateTime<Utc>);
}

impl Synced for AwsKeyRecord {
    type Material = AwsKeyMaterial;
    fn material(&self) -> &AwsKeyMaterial {
        &self.material
    }
    fn parts(&mut self) -> (&mut AwsKeyMaterial, &mut bool, &mut DateTime<Utc>, &mut DateTime<Utc>) {
        (&mut self.material, &mut self.gone, &mut self.synced_at, &mut self.updated_at)
    }
}

impl Synced for AzureKeyRecord {
    type Material = AzureKeyMaterial;
    fn material(&self) -> &AzureKeyMaterial {
        &self.material
    }
    fn parts(&mut self) -> (&mut AzureKeyMaterial, &mut bool, &mut DateTime<Utc>, &mut DateTime<Utc>) {
        (&mut self.material, &mut self.gone, &mut self.synced_at, &mut self.updated_at)
    }
}

/// A sync of one scope (a region, a vault): keys seen are added or updated; once the listing is `complete`,
/// the scope's keys not synced at `at` are gone. Returns (added, updated, gone).
fn sync_rows<R: Synced>(
    rows: &mut BTreeMap<KeyId, R>,
    in_scope: impl Fn(&R) -> bool,
    seen: &[R::Material],
    same: impl Fn(&R::Material, &R::Material) -> bool,
    new: impl Fn(KeyId, &R::Material) -> R,
    at: DateTime<Utc>,
    complete: bool,
) -> (u64, u64, u64) {
    let (mut added, mut updated, mut gone) = (0, 0, 0);
    for m in seen {
        match rows.values_mut().find(|r| in_scope(r) && same(r.material(), m)) {
            Some(r) => {
                let (material, is_gone, synced_at, updated_at) = r.parts();
                if material != m || *is_gone {
                    *material = m.clone();
                    *is_gone = false;
                    *updated_at = at;
                    updated += 1;
                }
                *synced_at = at;
            }
            None => {
                let id = KeyId::new();
                rows.insert(id, new(id, m));
                added += 1;
            }
        }
    }
    for r in rows.values_mut().filter(|r| complete && in_scope(r)) {
        let (_, is_gone, synced_at, updated_at) = r.parts();
        if !*is_gone && *synced_at < at {
            *is_gone = true;
            *updated_at = at;
            gone += 1;
        }
    }
    (added, updated, gone)
}

impl Db {
    /// Records one attempt, fenced by its lease (the in-memory `finish_items`).
    fn finish(&mut self, batch: &FinishedBatch<'_>, item: &FinishedItem<'_>) -> bool {
        let (FinishedBatch { job, owner, at, .. }, FinishedItem { seq, attempt, outcome, effect, .. }) =
            (*batch, *item);
        let db = self;
        let Some(it) = db.item_mut(job, seq) else { return false };
        if it.status != ItemStatus::Running
            || it.lease_owner.as_deref() != Some(owner)
            || attempt.is_some_and(|a| a != it.attempts)
        {
            return false; // the lease was lost: someone else owns this item now
        }
        it.lease_owner = None;
        it.lease_expires_at = None;
        it.not_before = epoch();
        let status = match outcome {
            ItemOutcome::Succeeded { detail, .. } => {
                it.detail = Some(detail.clone());
                ItemStatus::Succeeded
            }
            ItemOutcome::Failed { code, message, .. } => {
                it.detail = Some(keyfleet_core::rules::failed_detail(code, message));
                ItemStatus::Failed
            }
            ItemOutcome::Skipped { reason } => {
                it.detail = Some(keyfleet_core::rules::skipped_detail(reason));
                ItemStatus::Skipped
            }
            ItemOutcome::Retry { not_before, .. } => {
                it.not_before = *not_before;
                ItemStatus::Pending
            }
        };
        it.status = status;
        if status.is_terminal() {
            it.terminal_writes += 1;
            db.count(job, status, 1, at);
            db.finalize_if_done(job, at);
        }
        match effect {
            ItemEffect::None => {}
            ItemEffect::RefreshAwsKey(id, m) => {
                if let Some(k) = db.aws_keys.get_mut(&id) {
                    k.material = m.clone();
                    k.gone = false;
                    k.updated_at = at;
                }
            }
            ItemEffect::DeleteBackup(id) => {
                if status == ItemStatus::Succeeded {
                    db.backups.remove(&id);
                }
            }
        }
        true
    }
}
