//! AWS KMS: one attempt at an item (`item.rs`), key synchronization of an account/region (`sync.rs`), from a
//! key id to a ready KMS client (`resolve.rs`) and the pacing partitions and quotas (`pacing.rs`).

mod item;
pub mod pacing;
pub(crate) mod resolve;
mod sync;

use async_trait::async_trait;
use keyfleet_core::*;

use crate::cloud::{Cloud, ItemResult, SyncStep, Target};
use crate::worker::ItemLease;
use crate::{Engine, EngineError};

pub use item::POLICY_TEMPLATE_TAG;

pub(crate) struct Aws;

#[async_trait]
impl Cloud for Aws {
    fn id(&self) -> &'static str {
        CLOUD_AWS
    }

    async fn prepare(&self, engine: &Engine, items: &[&ClaimedItem]) -> Result<Vec<Target>, EngineError> {
        let ids: Vec<KeyId> = items.iter().map(|i| i.key_id).collect();
        Ok(engine.resolver.aws_keys(&ids).await?.into_iter().map(|t| Target::Aws(t.map(Box::new))).collect())
    }

    async fn run_item(
        &self,
        engine: &Engine,
        item: &ClaimedItem,
        target: Target,
        lease: &ItemLease,
    ) -> Result<ItemResult, EngineError> {
        match target {
            Target::Aws(target) => engine.run_aws_item(item, target, lease).await,
            Target::Backup { .. } => Err(EngineError::Missing("an AWS item prepared as a backup".into())),
        }
    }

    async fn sync_steps<'a>(
        &self,
        engine: &'a Engine,
        job: &'a SyncJobRecord,
    ) -> Result<Vec<SyncStep<'a>>, EngineError> {
        engine.aws_sync_steps(job).await
    }

    fn default_rate(&self, action: &str) -> Option<f64> {
        pacing::default_rate(action)
    }
}
