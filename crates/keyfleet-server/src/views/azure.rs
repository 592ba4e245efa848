//! Azure records → CCKM wire views.

use std::collections::BTreeMap;

use keyfleet_api_types::azure::*;
use keyfleet_core::*;
use keyfleet_service::azure::VaultEntry;
use keyfleet_service::sync_jobs::SyncJobEntry;

use super::{acl, uri};

pub fn connection(c: AzureConnectionRecord) -> AzureConnectionView {
    resource_view!(AzureConnectionView {
        c,
        uri: uri("connectionmgmt:connections", format!("{}-{}", c.name, c.id)),
        name: c.name,
        description: c.description,
        category: "cloud".into(),
        service: "azure".into(),
        cloud_name: c.cloud_name,
        client_id: c.client_id,
        tenant_id: c.tenant_id,
        active_directory_endpoint: c
            .active_directory_endpoint
            .unwrap_or_else(|| keyfleet_clouds::azure::PUBLIC_AUTHORITY.to_string()),
        vault_resource_url: c.vault_resource_url.unwrap_or_else(|| keyfleet_clouds::azure::VAULT_RESOURCE.to_string()),
        key_vault_dns_suffix: c.key_vault_dns_suffix.unwrap_or_else(|| "vault.azure.net".to_string()),
        vault_endpoint_url: c.vault_endpoint_url,
        products: vec!["cckm".into()],
    })
}

pub fn vault((v, acls, connection): VaultEntry) -> VaultView {
    resource_view!(VaultView {
        v,
        uri: uri("cckm:azure-vault", v.id),
        azure_name: v.name.clone(),
        name: v.name,
        azure_vault_id: v.azure_vault_id,
        cloud_name: AZURE_CLOUD_NAME.into(),
        connection,
        connection_id: v.connection_id.to_string(),
        subscription_id: v.subscription_id,
        location: v.location,
        vault_type: v.vault_type,
        properties: v.properties,
        tags: v.tags,
        synced_at: v.synced_at.map(Into::into),
        acls: acls.into_iter().map(acl).collect(),
    })
}

pub fn key((k, v): (AzureKeyRecord, VaultRecord)) -> AzureKeyView {
    let m = k.material;
    resource_view!(AzureKeyView {
        k,
        uri: uri("cckm:azure-key", k.id),
        key_name: m.name,
        key_vault: v.name,
        key_vault_id: v.id.to_string(),
        region: v.location,
        cloud_name: AZURE_CLOUD_NAME.into(),
        version: m.version,
        synced_at: k.synced_at.into(),
        gone: k.gone,
        labels: BTreeMap::new(),
        azure_param: AzureParam {
            kid: m.kid,
            kty: m.kty,
            key_ops: m.key_ops,
            key_size: m.key_size,
            crv: m.curve,
            attributes: AzureKeyAttributes {
                enabled: m.enabled,
                created: m.created.map(Into::into),
                updated: m.updated.map(Into::into),
                exp: m.exp.map(Into::into),
                nbf: m.nbf.map(Into::into),
                recovery_level: m.recovery_level,
                recoverable_days: m.recoverable_days,
            },
            tags: m.tags,
            managed: m.managed,
        },
        versions: m
            .versions
            .into_iter()
            .map(|v| AzureKeyVersionView {
                version: v.version,
                enabled: v.enabled,
                created: v.created.map(Into::into),
                updated: v.updated.map(Into::into),
            })
            .collect(),
    })
}

pub fn key_backup(b: KeyBackupRecord) -> KeyBackupView {
    resource_view!(KeyBackupView {
        b,
        uri: uri("cckm:azure-key-backup", b.id),
        name: b.name,
        description: b.description,
        key_id: b.key_id.to_string(),
        vault_id: b.vault_id.to_string(),
        key_name: b.key_name,
        key_version: b.key_version,
        size_bytes: b.size_bytes,
        created_by: b.created_by.wire(),
    })
}

pub fn sync_job((j, vaults): SyncJobEntry) -> AzureSyncJobView {
    job_view!(AzureSyncJobView {
        j,
        kind: "cckm:synchronize",
        detailed_status: j.detailed_status,
        cloud: AZURE_CLOUD_NAME.into(),
        key_vaults: vaults,
        synchronize_all: j.synchronize_all,
        take_cloud_key_backup: j.take_cloud_key_backup,
    })
}
