//! Azure Key Vault's pacing partitions: one per vault, whatever the operation (Key Vault's quota is per
//! vault).

use keyfleet_core::{CLOUD_AZURE, VaultRecord};

use crate::pacing::Partition;

/// The action name of every Key Vault call's bucket.
pub const VAULT_ACTION: &str = "KeyVault";

/// The bucket of every call to `vault`.
pub fn partition(vault: &VaultRecord) -> Partition {
    Partition { account: CLOUD_AZURE.to_string(), region: vault.name.clone(), action: VAULT_ACTION }
}

/// Key Vault: 4,000 "all other" transactions per vault per 10 s (software keys).
pub fn default_rate(action: &str) -> Option<f64> {
    (action == VAULT_ACTION).then_some(400.0)
}
