//! One attempt at one Azure item. `delete-key-backups` deletes a cloud key backup keyfleet keeps: no Key Vault
//! call, the backup row goes in the transaction that records the item, fenced by the item's lease.

use std::collections::HashSet;

use keyfleet_core::*;

use crate::cloud::{ItemResult, Target};
use crate::{Engine, EngineError};

impl Engine {
    /// Which of a claim's backups are still stored: one read for the claim.
    pub(crate) async fn prepare_azure_items(&self, items: &[&ClaimedItem]) -> Result<Vec<Target>, EngineError> {
        let ids: Vec<BackupId> = items.iter().map(|i| i.backup_id()).collect();
        let stored: HashSet<BackupId> = self.store.get_key_backups(&ids).await?.into_iter().map(|b| b.id).collect();
        Ok(ids.iter().map(|id| Target::Backup { stored: stored.contains(id) }).collect())
    }

    /// A stop of the job was checked right before (`stops.rs`).
    pub(crate) fn run_azure_item(&self, item: &ClaimedItem, stored: bool) -> ItemResult {
        if item.operation != Operation::DeleteKeyBackups {
            return ItemOutcome::Failed {
                code: "UnsupportedOperation".into(),
                message: format!("{} is not an Azure operation", item.operation),
                state_before: None,
            }
            .into();
        }
        // Deleted since the job was created (one by one, or by another job): the goal holds, nothing to do.
        let before = if stored { "stored" } else { "absent" };
        // The backup is keyfleet's own copy: no call to Key Vault.
        let outcome = ItemOutcome::Succeeded {
            detail: "Success".into(),
            state_before: Some(before.into()),
            state_after: Some("deleted".into()),
        };
        ItemResult { deleted_backup: Some(item.backup_id()), ..outcome.into() }
    }
}
