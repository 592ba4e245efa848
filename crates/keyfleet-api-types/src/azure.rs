//! Azure inventory: connections, vaults, keys, cloud key backups and key synchronization jobs; the body of an
//! Azure bulk job.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::common::AclView;

/// `POST /v1/connectionmgmt/services/azure/connections` and its PATCH (every field optional there).
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AzureConnectionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Write-only: stored encrypted, never shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_directory_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_resource_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_dns_suffix: Option<String>,
    /// Extension: every vault of this connection at this URL, `{vault}` standing for the vault's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_endpoint_url: Option<String>,
}

resource! {
    /// An Azure connection as the API shows it: never the secret.
    pub struct AzureConnectionView {
        pub name: String,
        pub description: String,
        pub category: String,
        pub service: String,
        pub cloud_name: String,
        pub client_id: String,
        pub tenant_id: String,
        pub active_directory_endpoint: String,
        pub vault_resource_url: String,
        pub key_vault_dns_suffix: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub vault_endpoint_url: Option<String>,
        pub products: Vec<String>,
    }
}

/// `POST /v1/cckm/azure/add-vaults`: vaults of one subscription, reached through one connection.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddVaultsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vaults: Option<Vec<AddVaultEntry>>,
}

/// One vault of `add-vaults`, as Azure's vault listing (`get-vaults`) describes it.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddVaultEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The ARM resource id; `id` is accepted too.
    #[serde(default, alias = "id", skip_serializing_if = "Option::is_none")]
    pub azure_vault_id: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub vault_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Azure's vault properties; `vaultUri` is where keyfleet reaches the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
}

resource! {
    /// An Azure key vault added to keyfleet.
    pub struct VaultView {
        pub name: String,
        pub azure_name: String,
        pub azure_vault_id: String,
        pub cloud_name: String,
        pub connection: String,
        pub connection_id: String,
        pub subscription_id: String,
        pub location: String,
        #[serde(rename = "type")]
        pub vault_type: String,
        pub properties: serde_json::Value,
        pub tags: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub synced_at: Option<Timestamp>,
        pub acls: Vec<AclView>,
    }
}

list_query! {
    /// Query of `GET /v1/cckm/azure/vaults`.
    pub struct VaultQuery {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub connection: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub subscription_id: Option<String>,
    }
}

/// Key Vault's key attributes, with Azure's spellings.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AzureKeyAttributes {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<Timestamp>,
    #[serde(rename = "recoveryLevel")]
    pub recovery_level: String,
    #[serde(rename = "recoverableDays", default, skip_serializing_if = "Option::is_none")]
    pub recoverable_days: Option<i64>,
}

/// The key as Key Vault describes its current version.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AzureParam {
    pub kid: String,
    pub kty: String,
    pub key_ops: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    pub attributes: AzureKeyAttributes,
    pub tags: BTreeMap<String, String>,
    pub managed: bool,
}

/// One version of a key (extension: a key's versions are listed with it).
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AzureKeyVersionView {
    pub version: String,
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Timestamp>,
}

resource! {
    /// `GET /v1/cckm/azure/keys/{id}`.
    pub struct AzureKeyView {
        pub key_name: String,
        pub key_vault: String,
        pub key_vault_id: String,
        pub region: String,
        pub cloud_name: String,
        pub version: String,
        pub synced_at: Timestamp,
        pub gone: bool,
        pub labels: BTreeMap<String, String>,
        pub azure_param: AzureParam,
        pub versions: Vec<AzureKeyVersionView>,
    }
}

list_query! {
    /// Query of `GET /v1/cckm/azure/keys`. Values stay strings so the server can name a malformed one.
    pub struct AzureKeyQuery {
        /// Vault name or id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub key_vault: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub key_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub gone: Option<String>,
    }
}

/// `POST /v1/cckm/azure/keys/{id}/backups` and its PATCH.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyBackupRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

resource! {
    /// A cloud key backup: metadata only, the blob never leaves keyfleet through the API.
    pub struct KeyBackupView {
        pub name: String,
        pub description: String,
        pub key_id: String,
        pub vault_id: String,
        pub key_name: String,
        pub key_version: String,
        pub size_bytes: i64,
        pub created_by: String,
    }
}

/// `POST /v1/cckm/azure/keys/{id}/backups/{backup_id}/restore`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestoreBackupRequest {
    /// The vault (id or name) to restore into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_id: Option<String>,
}

/// `POST /v1/cckm/azure/synchronization-jobs`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateAzureSyncJob {
    /// Vault names or ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vaults: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize_all: Option<bool>,
    /// Back up every synchronized key (one cloud key backup each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub take_cloud_key_backup: Option<bool>,
}

job_resource! {
    /// An Azure key synchronization job; `detailed_status` is keyed by vault name.
    pub struct AzureSyncJobView {
        pub key_vaults: Vec<String>,
        pub synchronize_all: bool,
        pub take_cloud_key_backup: bool,
    }
}

bulkjob_create! {
    /// `POST /v1/cckm/azure/bulkjobs`.
    pub struct CreateAzureBulkJob {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub operation: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub delete_key_backups_param: Option<DeleteKeyBackupsParam>,
        /// The conditions of `delete_key_backups_param` given at the top level (seed-004's parameter table lists
        /// them there): the same meaning as inside it; one given in both places must have the same value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub backups: Option<OneOrMany>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub key_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keys: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub vault_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub created_after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub created_before: Option<String>,
    }
}

impl CreateAzureBulkJob {
    /// The top-level conditions, as a `DeleteKeyBackupsParam`; `None` when none is given.
    pub fn top_level_param(&self) -> Option<DeleteKeyBackupsParam> {
        let p = DeleteKeyBackupsParam {
            backups: self.backups.clone(),
            key_id: self.key_id.clone(),
            keys: self.keys.clone(),
            vault_id: self.vault_id.clone(),
            created_after: self.created_after.clone(),
            created_before: self.created_before.clone(),
        };
        (p != DeleteKeyBackupsParam::default()).then_some(p)
    }
}

/// Which cloud key backups `delete-key-backups` deletes. `key_id`, `keys` and `vault_id` exclude each other;
/// every condition given must hold. Unknown fields are refused: a misspelt condition must not widen a delete.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeleteKeyBackupsParam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_id: Option<String>,
    /// RFC 3339; backups created at or after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_after: Option<String>,
    /// RFC 3339; backups created before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_before: Option<String>,
}

/// A list of strings, where a single string is accepted too.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backups_accepts_one_string_or_a_list() {
        let one: DeleteKeyBackupsParam = serde_json::from_str(r#"{"backups": "b1"}"#).expect("one");
        assert_eq!(one.backups.map(OneOrMany::into_vec), Some(vec!["b1".to_string()]));
        let many: DeleteKeyBackupsParam = serde_json::from_str(r#"{"backups": ["b1", "b2"]}"#).expect("many");
        assert_eq!(many.backups.map(OneOrMany::into_vec), Some(vec!["b1".to_string(), "b2".to_string()]));
        assert!(serde_json::from_str::<DeleteKeyBackupsParam>(r#"{"vault": "x"}"#).is_err());
    }
}
