//! Azure Key Vault: one attempt at an item (`item.rs`: `delete-key-backups`, a local delete), key
//! synchronization of a vault (`sync.rs`), every Key Vault call paced and retried, and backup/restore of one
//! key (`vault.rs`), from a vault to a ready client (`resolve.rs`) and the pacing partitions (`pacing.rs`).

mod item;
pub mod pacing;
pub(crate) mod resolve;
mod sync;
mod vault;

use async_trait::async_trait;
use keyfleet_core::*;

use crate::cloud::{Cloud, ItemResult, SyncStep, Target};
use crate::worker::ItemLease;
use crate::{Engine, EngineError};

pub use vault::backup_name;

pub(crate) struct Azure;

#[async_trait]
impl Cloud for Azure {
    fn id(&self) -> &'static str {
        CLOUD_AZURE
    }

    async fn prepare(&self, engine: &Engine, items: &[&ClaimedItem]) -> Result<Vec<Target>, EngineError> {
        engine.prepare_azure_items(items).await
    }

    async fn run_item(
        &self,
        engine: &Engine,
        item: &ClaimedItem,
        target: Target,
        _lease: &ItemLease,
    ) -> Result<ItemResult, EngineError> {
        match target {
            Target::Backup { stored } => Ok(engine.run_azure_item(item, stored)),
            Target::Aws(_) => Err(EngineError::Missing("an Azure item prepared as an AWS key".into())),
        }
    }

    async fn sync_steps<'a>(
        &self,
        engine: &'a Engine,
        job: &'a SyncJobRecord,
    ) -> Result<Vec<SyncStep<'a>>, EngineError> {
        engine.azure_sync_steps(job).await
    }

    fn default_rate(&self, action: &str) -> Option<f64> {
        pacing::default_rate(action)
    }
}
