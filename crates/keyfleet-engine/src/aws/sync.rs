//! AWS key synchronization: every key of a container's regions (ListAliases, ListKeys, then DescribeKey,
//! GetKeyPolicy and ListResourceTags per key) into the inventory, one account/region per sync step.

use std::collections::HashMap;

use futures::StreamExt;
use keyfleet_clouds::aws::AliasEntry;
use keyfleet_clouds::{AwsKms, CloudError};
use keyfleet_core::*;

use super::pacing::partition;
use crate::cloud::SyncStep;
use crate::pacing::Partition;
use crate::{Engine, EngineError};

/// Keys read in parallel per region (DescribeKey's quota is large; this bounds our own load).
const KEY_CONCURRENCY: usize = 8;

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
        let part = |action| partition(&kms.account_id, region, action);
        let aliases = self.all_aliases(client.as_ref(), &part("ListAliases")).await?;
        let mut key_ids = Vec::new();
        let mut marker = None;
        loop {
            self.pacer.acquire(&part("ListKeys"), kms.quotas.get("ListKeys").copied()).await;
            let page = self.timed(CLOUD_AWS, "ListKeys", client.list_keys(marker, 1000)).await?;
            key_ids.extend(page.items);
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        let started = self.now();
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
        let listed = keyfleet_store::AwsRegionKeys { kms_id: kms.id, region, keys: &keys };
        Ok(self.store.sync_aws_region(&listed, started).await.map_err(EngineError::from)?)
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
            let page = self.timed(CLOUD_AWS, "ListAliases", client.list_aliases(marker, 100)).await?;
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
        let meta = match self.timed(CLOUD_AWS, "DescribeKey", client.describe_key(id)).await {
            Ok(m) => m,
            Err(e) if e.kind == keyfleet_clouds::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        self.pacer.acquire(&part("GetKeyPolicy"), None).await;
        let policy = self.timed(CLOUD_AWS, "GetKeyPolicy", client.get_key_policy(id)).await.unwrap_or_default();
        self.pacer.acquire(&part("ListResourceTags"), None).await;
        let tags = self.timed(CLOUD_AWS, "ListResourceTags", client.list_resource_tags(id)).await.unwrap_or_default();
        let mut alias = aliases.get(&meta.key_id).cloned().unwrap_or_default();
        alias.sort();
        Ok(Some(AwsKeyMaterial { policy, tags, aliases: alias, ..meta }))
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
