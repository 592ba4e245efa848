//! What the engine needs from the store, and nothing else: the work queue of bulk-job items (partitions,
//! leases, claims, fenced results), the lookups that turn an item into a cloud client, and the writes of
//! key synchronization. [`keyfleet_store::Store`] provides all of it ([`FullStore`] adapts one); a test can
//! provide it in memory (see `tests/harness`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use keyfleet_store::{ItemEffect, Result, Store};

#[async_trait]
pub trait EngineStore: Send + Sync + 'static {
    // The work queue (see `keyfleet_store::JobStore` for each call's contract).
    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>>;
    async fn job_announced(&self);
    async fn acquire_partition(
        &self,
        partition: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64>;
    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()>;
    async fn claim_items(
        &self,
        owner: &str,
        partition: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedItem>>;
    async fn holds_item(&self, job: JobId, seq: i64, owner: &str, now: DateTime<Utc>) -> Result<bool>;
    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64>;
    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64>;
    async fn finish_item_with(
        &self,
        job: JobId,
        seq: i64,
        owner: &str,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
        effect: ItemEffect<'_>,
    ) -> Result<bool>;
    async fn fail_pending_for_connection(
        &self,
        job: JobId,
        connection: ConnectionId,
        code: &str,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<u64>;
    async fn job_aborted(&self, id: JobId) -> Result<bool>;

    // From an item to a client.
    async fn get_aws_key(&self, id: KeyId) -> Result<Option<AwsKeyRecord>>;
    async fn get_kms(&self, id: KmsId) -> Result<Option<KmsRecord>>;
    async fn get_aws_connection(&self, id: ConnectionId) -> Result<Option<AwsConnectionRecord>>;
    async fn get_template(&self, id: TemplateId) -> Result<Option<TemplateRecord>>;
    async fn get_azure_connection(&self, id: ConnectionId) -> Result<Option<AzureConnectionRecord>>;
    async fn get_vault(&self, id: VaultId) -> Result<Option<VaultRecord>>;
    async fn get_key_backup(&self, id: BackupId) -> Result<Option<KeyBackupRecord>>;

    // Key synchronization.
    async fn claim_sync_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SyncJobRecord>>;
    async fn get_sync_job(&self, id: SyncJobId) -> Result<Option<SyncJobRecord>>;
    async fn update_sync_job(&self, job: &SyncJobRecord, owner: &str, lease_until: DateTime<Utc>) -> Result<bool>;
    /// Every KMS container.
    async fn all_kms(&self) -> Result<Vec<KmsRecord>>;
    /// Every Azure vault.
    async fn all_vaults(&self) -> Result<Vec<VaultRecord>>;
    /// A page of a vault's keys that are not gone, in the store's list order.
    async fn live_azure_keys(&self, vault: VaultId, skip: u64, limit: u64) -> Result<Vec<AzureKeyRecord>>;
    async fn sync_aws_region(
        &self,
        kms_id: KmsId,
        region: &str,
        keys: &[AwsKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)>;
    async fn sync_azure_vault(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)>;
    async fn insert_key_backup(&self, b: &KeyBackupRecord, blob_enc: &[u8]) -> Result<()>;
}

/// The whole store, seen as the engine's part of it.
pub struct FullStore(pub Arc<dyn Store>);

/// Every row: the lists the engine reads are small (containers, vaults).
fn everything() -> Page {
    Page { skip: 0, limit: u64::MAX >> 1, sort: vec![] }
}

#[async_trait]
impl EngineStore for FullStore {
    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        self.0.pending_partitions().await
    }
    async fn job_announced(&self) {
        self.0.job_announced().await
    }
    async fn acquire_partition(
        &self,
        partition: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        self.0.acquire_partition(partition, owner, now, until).await
    }
    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        self.0.renew_partitions(owner, until).await
    }
    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()> {
        self.0.release_partition(partition, owner).await
    }
    async fn claim_items(
        &self,
        owner: &str,
        partition: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedItem>> {
        self.0.claim_items(owner, partition, now, lease_until, limit).await
    }
    async fn holds_item(&self, job: JobId, seq: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        self.0.holds_item(job, seq, owner, now).await
    }
    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64> {
        self.0.renew_leases(owner, lease_until).await
    }
    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64> {
        self.0.release_expired_leases(now).await
    }
    async fn finish_item_with(
        &self,
        job: JobId,
        seq: i64,
        owner: &str,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
        effect: ItemEffect<'_>,
    ) -> Result<bool> {
        self.0.finish_item_with(job, seq, owner, outcome, at, effect).await
    }
    async fn fail_pending_for_connection(
        &self,
        job: JobId,
        connection: ConnectionId,
        code: &str,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        self.0.fail_pending_for_connection(job, connection, code, message, at).await
    }
    async fn job_aborted(&self, id: JobId) -> Result<bool> {
        self.0.job_aborted(id).await
    }
    async fn get_aws_key(&self, id: KeyId) -> Result<Option<AwsKeyRecord>> {
        self.0.get_aws_key(id).await
    }
    async fn get_kms(&self, id: KmsId) -> Result<Option<KmsRecord>> {
        self.0.get_kms(id).await
    }
    async fn get_aws_connection(&self, id: ConnectionId) -> Result<Option<AwsConnectionRecord>> {
        self.0.get_aws_connection(id).await
    }
    async fn get_template(&self, id: TemplateId) -> Result<Option<TemplateRecord>> {
        self.0.get_template(id).await
    }
    async fn get_azure_connection(&self, id: ConnectionId) -> Result<Option<AzureConnectionRecord>> {
        self.0.get_azure_connection(id).await
    }
    async fn get_vault(&self, id: VaultId) -> Result<Option<VaultRecord>> {
        self.0.get_vault(id).await
    }
    async fn get_key_backup(&self, id: BackupId) -> Result<Option<KeyBackupRecord>> {
        self.0.get_key_backup(id).await
    }
    async fn claim_sync_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SyncJobRecord>> {
        self.0.claim_sync_job(owner, now, lease_until).await
    }
    async fn get_sync_job(&self, id: SyncJobId) -> Result<Option<SyncJobRecord>> {
        self.0.get_sync_job(id).await
    }
    async fn update_sync_job(&self, job: &SyncJobRecord, owner: &str, lease_until: DateTime<Utc>) -> Result<bool> {
        self.0.update_sync_job(job, owner, lease_until).await
    }
    async fn all_kms(&self) -> Result<Vec<KmsRecord>> {
        Ok(self.0.list_kms(&everything()).await?.0)
    }
    async fn all_vaults(&self) -> Result<Vec<VaultRecord>> {
        Ok(self.0.list_vaults(&VaultFilter::default(), &everything()).await?.0)
    }
    async fn live_azure_keys(&self, vault: VaultId, skip: u64, limit: u64) -> Result<Vec<AzureKeyRecord>> {
        let filter = AzureKeyFilter { vault_id: Some(vault), gone: Some(false), ..Default::default() };
        Ok(self.0.list_azure_keys(&filter, &Page { skip, limit, sort: vec![] }).await?.0)
    }
    async fn sync_aws_region(
        &self,
        kms_id: KmsId,
        region: &str,
        keys: &[AwsKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        self.0.sync_aws_region(kms_id, region, keys, at).await
    }
    async fn sync_azure_vault(
        &self,
        vault: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        self.0.sync_azure_vault(vault, keys, at).await
    }
    async fn insert_key_backup(&self, b: &KeyBackupRecord, blob_enc: &[u8]) -> Result<()> {
        self.0.insert_key_backup(b, blob_enc).await
    }
}
