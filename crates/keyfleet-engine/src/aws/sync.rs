//! AWS key synchronization: every key of a container's regions (ListAliases, ListKeys, then DescribeKey,
//! GetKeyPolicy and ListResourceTags per key) into the inventory, one account/region per sync step, stored
//! while the reads go on (`sync.rs::store_while_reading`). Every
//! call is paced on its (account, region, action) bucket and retried like a job's (`retry.rs`).

use std::collections::HashMap;

use futures::StreamExt;
use keyfleet_clouds::aws::AliasEntry;
use keyfleet_clouds::{AwsKms, CloudError, ErrorKind};
use keyfleet_core::*;

use super::pacing::partition;
use crate::cloud::SyncStep;
use crate::pacing::Partition;
use crate::retry::Repeat;
use crate::{Engine, EngineError};

/// Keys read in parallel per region: enough to keep DescribeKey's 2,000/s quota busy over tens of ms of
/// network latency, few enough to bound our own load.
const KEY_CONCURRENCY: usize = 32;

impl Engine {
    /// One step per (container, region) the job covers; its label is `"<account>/<region>"`.
    pub(crate) async fn aws_sync_steps<'a>(&'a self, job: &'a SyncJobRecord) -> Result<Vec<SyncStep<'a>>, EngineError> {
        let targets = self.aws_sync_targets(job).await?;
        Ok(targets
            .into_iter()
            .map(|(kms, region)| SyncStep {
                label: format!("{}/{}", kms.account_id, region),
                run: Box::pin(async move { self.sync_aws_target(job, &kms, &region).await }),
            })
            .collect())
    }

    async fn sync_aws_target(&self, job: &SyncJobRecord, kms: &KmsRecord, region: &str) -> Result<String, EngineError> {
        match self.sync_region(kms, region).await {
            Ok((added, updated, gone)) => {
                tracing::info!(sync.id = %job.id, kms = %kms.name, region, added, updated, gone, "region synchronized");
                Ok("Success".to_string())
            }
            Err(SyncError::Cloud(e)) => Ok(format!("Failed: {}: {}", e.code, e.message)),
            Err(SyncError::Engine(e)) => Err(e),
        }
    }

    /// The (container, region) pairs an AWS job covers, in a stable order.
    async fn aws_sync_targets(&self, job: &SyncJobRecord) -> Result<Vec<(KmsRecord, String)>, EngineError> {
        let containers = if job.synchronize_all || job.kms.is_empty() {
            self.store.all_kms().await?
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
        let client = client.as_ref();
        let reads = RegionReads { engine: self, kms, region, client };
        let aliases = reads.all_aliases().await?;
        let mut key_ids = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = reads.call("ListKeys", || client.list_keys(marker.clone(), 1000)).await?;
            key_ids.extend(page.items);
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        let started = self.now();
        let keys = futures::stream::iter(key_ids)
            .map(|id| {
                let reads = &reads;
                let aliases = &aliases;
                async move { reads.key(&id, aliases).await }
            })
            .buffer_unordered(KEY_CONCURRENCY);
        let store = &self.store;
        crate::sync::store_while_reading(keys, |keys, complete| async move {
            let listed = keyfleet_store::AwsRegionKeys { kms_id: kms.id, region, keys: &keys };
            Ok(if complete {
                store.sync_aws_region(&listed, started).await?
            } else {
                let (added, updated) = store.sync_aws_region_part(&listed, started).await?;
                (added, updated, 0)
            })
        })
        .await
    }
}

/// The reads of one account/region's sync: each call paced on its bucket and retried.
struct RegionReads<'a> {
    engine: &'a Engine,
    kms: &'a KmsRecord,
    region: &'a str,
    client: &'a dyn AwsKms,
}

impl RegionReads<'_> {
    async fn call<T, F, Fut>(&self, action: &'static str, call: F) -> Result<T, CloudError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, CloudError>>,
    {
        let p: Partition = partition(&self.kms.account_id, self.region, action);
        let quota = self.kms.quotas.get(action).copied();
        self.engine.call_retried(CLOUD_AWS, action, &p, quota, Repeat::Safe, call).await
    }

    async fn all_aliases(&self) -> Result<HashMap<String, Vec<String>>, CloudError> {
        let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self.call("ListAliases", || self.client.list_aliases(marker.clone(), 100)).await?;
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

    /// DescribeKey, GetKeyPolicy and ListResourceTags of one key; None when it vanished meanwhile. A policy or
    /// tags this connection may not read are left empty; a read that kept failing after its retries fails the
    /// region (its keys are then not replaced by incomplete ones).
    async fn key(
        &self,
        id: &str,
        aliases: &HashMap<String, Vec<String>>,
    ) -> Result<Option<AwsKeyMaterial>, CloudError> {
        let meta = match self.call("DescribeKey", || self.client.describe_key(id)).await {
            Ok(m) => m,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(policy) = optional(self.call("GetKeyPolicy", || self.client.get_key_policy(id)).await)? else {
            return Ok(None);
        };
        let Some(tags) = optional(self.call("ListResourceTags", || self.client.list_resource_tags(id)).await)? else {
            return Ok(None);
        };
        let mut alias = aliases.get(&meta.key_id).cloned().unwrap_or_default();
        alias.sort();
        Ok(Some(AwsKeyMaterial { policy, tags, aliases: alias, ..meta }))
    }
}

/// A key's policy or tags: `None` when the key vanished, empty when the connection may not read them, the error
/// when it is one the retries could not get past.
fn optional<T: Default>(read: Result<T, CloudError>) -> Result<Option<T>, CloudError> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind.is_retryable() => Err(e),
        Err(_) => Ok(Some(T::default())),
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
