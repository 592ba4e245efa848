//! Azure Key Vault through the engine: every call is paced on its vault's bucket and retried by the one retry
//! policy. Used by Azure key synchronization (`sync.rs`) and by the API's backup and restore of one key.

use std::future::Future;

use futures::StreamExt;

use keyfleet_clouds::azure::{KeyBundle, KeyItem};
use keyfleet_clouds::{CloudError, ErrorKind, KeyVault};
use keyfleet_core::*;

use super::pacing::partition;
pub(crate) use crate::retry::Repeat;
use crate::{Engine, EngineError};

impl Engine {
    /// Runs one Key Vault call paced on the vault's bucket and retried by the one retry policy
    /// ([`Engine::call_retried`]). The action names the call in metrics and logs; the bucket is the vault's.
    pub(crate) async fn vault_call<T, F, Fut>(
        &self,
        vault: &VaultRecord,
        action: &'static str,
        repeat: Repeat,
        call: F,
    ) -> Result<T, CloudError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        self.call_retried(CLOUD_AZURE, action, &partition(vault), None, repeat, call).await
    }

    /// Key Vault's backup of a key (all its versions): the opaque blob, not yet encrypted.
    pub async fn backup_azure_key(&self, vault: &VaultRecord, key_name: &str) -> Result<Vec<u8>, EngineError> {
        let client = self.resolver.key_vault(vault).await?;
        let client = client.as_ref();
        Ok(self.vault_call(vault, "BackupKey", Repeat::Safe, || client.backup_key(key_name)).await?)
    }

    /// Restores a backup blob into `vault` and reads the restored key back. Key Vault refuses with 409
    /// `Conflict` when the vault has a key of that name (also a deleted one).
    pub async fn restore_azure_key(&self, vault: &VaultRecord, blob: &[u8]) -> Result<AzureKeyMaterial, EngineError> {
        let client = self.resolver.key_vault(vault).await?;
        let client = client.as_ref();
        let bundle = self.vault_call(vault, "RestoreKey", Repeat::OnlyIfRefused, || client.restore_key(blob)).await?;
        let versions = self.key_versions(vault, client, &bundle.name).await?;
        Ok(material(bundle, versions))
    }

    /// Takes a backup of one key and stores it encrypted; returns the stored record.
    pub async fn take_key_backup(
        &self,
        vault: &VaultRecord,
        key: &AzureKeyRecord,
        name: String,
        description: String,
        created_by: UserId,
    ) -> Result<KeyBackupRecord, EngineError> {
        let blob = self.backup_azure_key(vault, &key.material.name).await?;
        self.store_backup(vault, key, &blob, name, description, created_by).await
    }

    pub(crate) async fn store_backup(
        &self,
        vault: &VaultRecord,
        key: &AzureKeyRecord,
        blob: &[u8],
        name: String,
        description: String,
        created_by: UserId,
    ) -> Result<KeyBackupRecord, EngineError> {
        let at = self.now();
        let record = KeyBackupRecord {
            id: BackupId::new(),
            key_id: key.id,
            vault_id: vault.id,
            key_name: key.material.name.clone(),
            key_version: key.material.version.clone(),
            name,
            description,
            size_bytes: blob.len() as i64,
            created_by,
            created_at: at,
            updated_at: at,
        };
        let sealed = self.master.encrypt(blob, &record.id.blob_aad())?;
        self.store.insert_key_backup(&record, &sealed).await?;
        tracing::info!(
            backup.id = %record.id, azure.vault = %vault.name, azure.key = %record.key_name,
            size_bytes = record.size_bytes, "cloud key backup stored"
        );
        Ok(record)
    }

    /// Every key name of a vault, page by page (following `nextLink`); a page is fetched when the stream is
    /// polled past the previous one (a sync runs it ahead of the key reads: `sync.rs`). A failed page (after
    /// its retries) ends the stream with its error.
    pub(crate) fn key_names<'a>(
        &'a self,
        vault: &'a VaultRecord,
        client: &'a dyn KeyVault,
    ) -> impl futures::Stream<Item = Result<String, CloudError>> + 'a {
        // `None`: the listing ended (or failed); `Some(link)`: the next page to fetch (`Some(None)`: the first).
        futures::stream::unfold(Some(None::<String>), move |next| async move {
            let link = next?;
            match self.vault_call(vault, "GetKeys", Repeat::Safe, || client.list_keys(link.as_deref())).await {
                Ok(page) => {
                    let names: Vec<Result<String, CloudError>> =
                        page.items.into_iter().map(|k: KeyItem| Ok(k.name)).collect();
                    Some((futures::stream::iter(names), page.next_link.map(Some)))
                }
                Err(e) => Some((futures::stream::iter(vec![Err(e)]), None)),
            }
        })
        .flatten()
    }

    async fn key_versions(
        &self,
        vault: &VaultRecord,
        client: &dyn KeyVault,
        name: &str,
    ) -> Result<Vec<AzureKeyVersion>, CloudError> {
        let mut versions = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .vault_call(vault, "GetKeyVersions", Repeat::Safe, || client.list_key_versions(name, next.as_deref()))
                .await?;
            versions.extend(page.items.into_iter().map(|v| AzureKeyVersion {
                version: v.version.unwrap_or_default(),
                enabled: v.enabled,
                created: v.created,
                updated: v.updated,
                exp: v.exp,
                nbf: v.nbf,
            }));
            next = page.next_link;
            if next.is_none() {
                versions.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.version.cmp(&b.version)));
                return Ok(versions);
            }
        }
    }

    /// The current version and the version list of one key; None when it vanished meanwhile.
    pub(crate) async fn read_azure_key(
        &self,
        vault: &VaultRecord,
        client: &dyn KeyVault,
        name: &str,
    ) -> Result<Option<AzureKeyMaterial>, CloudError> {
        let bundle = match self.vault_call(vault, "GetKey", Repeat::Safe, || client.get_key(name)).await {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let versions = match self.key_versions(vault, client, name).await {
            Ok(v) => v,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(material(bundle, versions)))
    }
}

/// The default name of a backup: the key's name and the time, `<key>-20261124T101500Z`.
pub fn backup_name(key_name: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{key_name}-{}", at.format("%Y%m%dT%H%M%SZ"))
}

fn material(b: KeyBundle, versions: Vec<AzureKeyVersion>) -> AzureKeyMaterial {
    AzureKeyMaterial { versions, ..b }
}
