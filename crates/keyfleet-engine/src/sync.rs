//! Key synchronization: read every key of a container's regions from AWS, or of Azure vaults from Key Vault,
//! into the inventory. A job covers targets (an AWS account/region, an Azure vault) one after another and
//! records each target's result in `detailed_status`, so an interrupted job resumes at the first target
//! without a result.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use keyfleet_clouds::aws::AliasEntry;
use keyfleet_clouds::{AwsKms, CloudError};
use keyfleet_core::time::now;
use keyfleet_core::*;
use tokio::sync::watch;

use crate::pacing::Partition;
use crate::{Engine, EngineError};

/// Keys read in parallel per region (DescribeKey's quota is large; this bounds our own load).
const KEY_CONCURRENCY: usize = 8;

impl Engine {
    pub(crate) async fn sync_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let lease = now() + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
            match self.store.claim_sync_job(&self.config.node_id, now(), lease).await {
                Ok(Some(job)) => {
                    let id = job.id;
                    if let Err(e) = self.run_sync_job(job).await {
                        tracing::error!(sync.id = %id, error = %e, "sync job failed");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.sync_wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming sync job failed");
                    tokio::time::sleep(self.config.poll_interval).await;
                }
            }
        }
    }

    async fn run_sync_job(&self, mut job: SyncJobRecord) -> Result<(), EngineError> {
        let owner = self.config.node_id.clone();
        let targets = self.sync_targets(&job).await?;
        for target in targets {
            let label = target.label();
            if job.detailed_status.contains_key(&label) {
                continue; // done before an interruption
            }
            if self.store.get_sync_job(job.id).await?.is_some_and(|j| j.abort) {
                job.abort = true;
                break;
            }
            let text = self.sync_target(&job, &target).await?;
            job.detailed_status.insert(label, text);
            job.updated_at = now();
            let lease = now() + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
            if !self.store.update_sync_job(&job, &owner, lease).await? {
                return Ok(()); // lease lost: another node carries on
            }
        }
        let any_failed = job.detailed_status.values().any(|v| v != "Success");
        let all_failed = !job.detailed_status.is_empty() && job.detailed_status.values().all(|v| v != "Success");
        job.status = if job.abort {
            JobStatus::Cancelled
        } else if all_failed {
            JobStatus::Failed
        } else {
            JobStatus::Completed
        };
        if any_failed && !all_failed {
            tracing::warn!(sync.id = %job.id, "some regions failed to synchronize");
        }
        job.updated_at = now();
        job.completed_at = Some(job.updated_at);
        self.store.update_sync_job(&job, &owner, job.updated_at).await?;
        Ok(())
    }

    /// Synchronizes one target; returns its `detailed_status` text. A cloud failure is the target's result;
    /// only a store failure ends the job's run (it resumes later).
    async fn sync_target(&self, job: &SyncJobRecord, target: &SyncTarget) -> Result<String, EngineError> {
        match target {
            SyncTarget::AwsRegion(kms, region) => match self.sync_region(kms, region).await {
                Ok((added, updated, gone)) => {
                    tracing::info!(sync.id = %job.id, kms = %kms.name, region, added, updated, gone, "region synchronized");
                    Ok("Success".to_string())
                }
                Err(SyncError::Cloud(e)) => Ok(format!("Failed: {}: {}", e.code, e.message)),
                Err(SyncError::Engine(e)) => Err(e),
            },
            SyncTarget::AzureVault(vault) => {
                let backup_by = job.take_cloud_key_backup.then_some(job.created_by);
                match self.sync_vault(vault, backup_by).await {
                    Ok(r) => {
                        tracing::info!(
                            sync.id = %job.id, azure.vault = %vault.name, added = r.added, updated = r.updated,
                            gone = r.gone, backups = r.backups, failed_backups = r.failed_backups.len(),
                            "vault synchronized"
                        );
                        Ok(match r.failed_backups.first() {
                            None => "Success".to_string(),
                            Some((key, why)) => format!(
                                "Failed: {} of {} key backups failed; first: key {key}: {why}",
                                r.failed_backups.len(),
                                r.failed_backups.len() as u64 + r.backups
                            ),
                        })
                    }
                    Err(EngineError::Cloud(e)) => Ok(format!("Failed: {}: {}", e.code, e.message)),
                    Err(EngineError::Missing(why)) => Ok(format!("Failed: {why}")),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// What a job covers, in a stable order.
    async fn sync_targets(&self, job: &SyncJobRecord) -> Result<Vec<SyncTarget>, EngineError> {
        if job.cloud == CLOUD_AZURE {
            let vaults = if job.synchronize_all || job.vaults.is_empty() {
                let page = Page { skip: 0, limit: u64::MAX >> 1, sort: vec![] };
                self.store.list_vaults(&VaultFilter::default(), &page).await?.0
            } else {
                let mut v = Vec::new();
                for id in &job.vaults {
                    if let Some(vault) = self.store.get_vault(*id).await? {
                        v.push(vault);
                    }
                }
                v
            };
            return Ok(vaults.into_iter().map(SyncTarget::AzureVault).collect());
        }
        Ok(self.aws_sync_targets(job).await?.into_iter().map(|(k, r)| SyncTarget::AwsRegion(k, r)).collect())
    }

    /// The (container, region) pairs an AWS job covers, in a stable order.
    async fn aws_sync_targets(&self, job: &SyncJobRecord) -> Result<Vec<(KmsRecord, String)>, EngineError> {
        let containers = if job.synchronize_all || job.kms.is_empty() {
            let page = Page { skip: 0, limit: u64::MAX >> 1, sort: vec![] };
            self.store.list_kms(&page).await?.0
        } else {
            let mut v = Vec::new();
            for id in &job.kms {
                if let Some(k) = self.store.get_kms(*id).await? {
                    v.push(k);
                }
            }
            v
        };
        let mut out = Vec::new();
        for kms in containers {
            for region in &kms.regions {
                if job.regions.is_empty() || job.regions.contains(region) {
                    out.push((kms.clone(), region.clone()));
                }
            }
        }
        Ok(out)
    }

    async fn sync_region(&self, kms: &KmsRecord, region: &str) -> Result<(u64, u64, u64), SyncError> {
        let client = self.resolver.aws_client(kms, region).await?;
        let part = |action| Partition { account: kms.account_id.clone(), region: region.to_string(), action };
        let aliases = self.all_aliases(client.as_ref(), &part("ListAliases")).await?;
        let mut key_ids = Vec::new();
        let mut marker = None;
        loop {
            self.pacer.acquire(&part("ListKeys"), kms.quotas.get("ListKeys").copied()).await;
            let page = client.list_keys(marker, 1000).await?;
            key_ids.extend(page.items);
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        let started = now();
        let materials: Vec<Result<Option<AwsKeyMaterial>, CloudError>> = futures::stream::iter(key_ids)
            .map(|id| {
                let client = client.clone();
                let aliases = &aliases;
                let part = &part;
                async move { self.read_key(client.as_ref(), &id, aliases, part).await }
            })
            .buffer_unordered(KEY_CONCURRENCY)
            .collect()
            .await;
        let mut keys = Vec::with_capacity(materials.len());
        for m in materials {
            if let Some(m) = m? {
                keys.push(m);
            }
        }
        Ok(self.store.sync_aws_region(kms.id, region, &keys, started).await.map_err(EngineError::from)?)
    }

    async fn all_aliases(
        &self,
        client: &dyn AwsKms,
        part: &Partition,
    ) -> Result<HashMap<String, Vec<String>>, CloudError> {
        let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
        let mut marker = None;
        loop {
            self.pacer.acquire(part, None).await;
            let page = client.list_aliases(marker, 100).await?;
            for AliasEntry { alias_name, target_key_id } in page.items {
                if let Some(t) = target_key_id {
                    by_key.entry(t).or_default().push(alias_name);
                }
            }
            marker = page.next_marker;
            if marker.is_none() {
                return Ok(by_key);
            }
        }
    }

    /// DescribeKey, GetKeyPolicy and ListResourceTags of one key; None when it vanished meanwhile.
    async fn read_key(
        &self,
        client: &dyn AwsKms,
        id: &str,
        aliases: &HashMap<String, Vec<String>>,
        part: &(dyn Fn(&'static str) -> Partition + Sync),
    ) -> Result<Option<AwsKeyMaterial>, CloudError> {
        self.pacer.acquire(&part("DescribeKey"), None).await;
        let meta = match client.describe_key(id).await {
            Ok(m) => m,
            Err(e) if e.kind == keyfleet_clouds::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.pacer.acquire(&part("GetKeyPolicy"), None).await;
        let policy = client.get_key_policy(id).await.unwrap_or_default();
        self.pacer.acquire(&part("ListResourceTags"), None).await;
        let tags = client.list_resource_tags(id).await.unwrap_or_default();
        let mut alias = aliases.get(&meta.key_id).cloned().unwrap_or_default();
        alias.sort();
        Ok(Some(AwsKeyMaterial {
            key_id: meta.key_id,
            arn: meta.arn,
            account_id: meta.account_id,
            key_state: meta.key_state,
            enabled: meta.enabled,
            description: meta.description,
            key_usage: meta.key_usage,
            origin: meta.origin,
            key_manager: meta.key_manager,
            creation_date: meta.creation_date,
            deletion_date: meta.deletion_date,
            multi_region: meta.multi_region,
            policy,
            tags,
            aliases: alias,
        }))
    }
}

enum SyncTarget {
    AwsRegion(KmsRecord, String),
    AzureVault(VaultRecord),
}

impl SyncTarget {
    /// The target's key in `detailed_status`: `"<account>/<region>"`, or the vault's name.
    fn label(&self) -> String {
        match self {
            SyncTarget::AwsRegion(kms, region) => format!("{}/{}", kms.account_id, region),
            SyncTarget::AzureVault(v) => v.name.clone(),
        }
    }
}

enum SyncError {
    Cloud(CloudError),
    Engine(EngineError),
}

impl From<CloudError> for SyncError {
    fn from(e: CloudError) -> Self {
        SyncError::Cloud(e)
    }
}

impl From<EngineError> for SyncError {
    fn from(e: EngineError) -> Self {
        SyncError::Engine(e)
    }
}
