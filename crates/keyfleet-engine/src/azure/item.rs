//! One attempt at one Azure item. `delete-key-backups` deletes a cloud key backup keyfleet keeps: no Key Vault
//! call, the backup row goes in the transaction that records the item, fenced by the item's lease.

use keyfleet_core::*;

use crate::cloud::ItemResult;
use crate::{Engine, EngineError};

impl Engine {
    pub(crate) async fn run_azure_item(&self, item: &ClaimedItem) -> Result<ItemResult, EngineError> {
        if item.operation != Operation::DeleteKeyBackups {
            return Ok(ItemOutcome::Failed {
                code: "UnsupportedOperation".into(),
                message: format!("{} is not an Azure operation", item.operation),
                state_before: None,
            }
            .into());
        }
        if self.store.job_aborted(item.job_id).await? {
            return Ok(ItemOutcome::Skipped { reason: "cancelled".into() }.into());
        }
        let id = item.backup_id();
        // Deleted since the job was created (one by one, or by another job): the goal holds, nothing to do.
        let before = if self.store.get_key_backup(id).await?.is_some() { "stored" } else { "absent" };
        // The backup is keyfleet's own copy: no call to Key Vault.
        let outcome = ItemOutcome::Succeeded {
            detail: "Success".into(),
            state_before: Some(before.into()),
            state_after: Some("deleted".into()),
        };
        Ok(ItemResult { deleted_backup: Some(id), ..outcome.into() })
    }
}
