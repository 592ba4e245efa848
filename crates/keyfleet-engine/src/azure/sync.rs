//! Azure key synchronization: every key of a vault (current version and version list) into the inventory,
//! and with `take_cloud_key_backup` a backup of each; one vault per sync step.

use futures::{SinkExt, StreamExt};
use keyfleet_core::*;

use super::vault::{Repeat, backup_name};
use crate::cloud::SyncStep;
use crate::{Engine, EngineError};

/// Keys read in parallel per vault (pacing still decides when each call goes): enough to keep a vault's
/// 400 calls/s busy over tens of ms of network latency.
const KEY_CONCURRENCY: usize = 32;
/// Key names the vault's listing may run ahead of the reads: a few pages (25 names each), so a page in flight
/// never leaves the reads without names.
const LISTED_AHEAD: usize = 200;

/// What a vault synchronization did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct VaultSync {
    pub added: u64,
    pub updated: u64,
    pub gone: u64,
    pub backups: u64,
    /// Keys whose backup failed, with the reason.
    pub failed_backups: Vec<(String, String)>,
}

impl Engine {
    /// One step per vault the job covers (every vault when it names none); its label is the vault's name.
    pub(crate) async fn azure_sync_steps<'a>(
        &'a self,
        job: &'a SyncJobRecord,
    ) -> Result<Vec<SyncStep<'a>>, EngineError> {
        let vaults = if job.synchronize_all || job.vaults.is_empty() {
            self.store.all_vaults().await?
        } else {
            let mut v = Vec::new();
            for id in &job.vaults {
                if let Some(vault) = self.store.get_vault(*id).await? {
                    v.push(vault);
                }
            }
            v
        };
        Ok(vaults
            .into_iter()
            .map(|vault| SyncStep {
                label: vault.name.clone(),
                run: Box::pin(async move { self.sync_azure_target(job, &vault).await }),
            })
            .collect())
    }

    async fn sync_azure_target(&self, job: &SyncJobRecord, vault: &VaultRecord) -> Result<String, EngineError> {
        let backup_by = job.take_cloud_key_backup.then_some(job.created_by);
        match self.sync_vault(vault, backup_by).await {
            Ok(r) => {
                tracing::info!(
                    sync.id = %job.id, azure.vault = %vault.name, added = r.added, updated = r.updated,
                    gone = r.gone, backups = r.backups, failed_backups = r.failed_backups.len(),
                    "vault synchronized"
                );
                Ok(match r.failed_backups.first() {
                    None => "Success".to_string(),
                    Some((key, why)) => format!(
                        "Failed: {} of {} key backups failed; first: key {key}: {why}",
                        r.failed_backups.len(),
                        r.failed_backups.len() as u64 + r.backups
                    ),
                })
            }
            Err(EngineError::Cloud(e)) => Ok(format!("Failed: {}: {}", e.code, e.message)),
            Err(EngineError::Missing(why)) => Ok(format!("Failed: {why}")),
            Err(e) => Err(e),
        }
    }

    /// Reads every key of a vault (current version and version list) into the inventory; with `backup_by`,
    /// then takes a backup of every key the vault holds.
    pub(crate) async fn sync_vault(
        &self,
        vault: &VaultRecord,
        backup_by: Option<UserId>,
    ) -> Result<VaultSync, EngineError> {
        let client = self.resolver.key_vault(vault).await?;
        let client = client.as_ref();
        let started = self.now();
        // Keys are read as their page of the listing arrives, and the listing runs ahead of the reads (up to
        // LISTED_AHEAD names). A page request waits its turn at the vault's pacer behind the reads; when the
        // next page was fetched only once the reads had run out of names, the quota stood idle while it
        // waited (0.84 of Key Vault's quota in bench/RESULTS.md §7, 0.89 since).
        let (names_tx, names_rx) = futures::channel::mpsc::channel(LISTED_AHEAD);
        let list = async move {
            let mut names_tx = names_tx;
            let names = self.key_names(vault, client);
            futures::pin_mut!(names);
            while let Some(name) = names.next().await {
                if names_tx.send(name).await.is_err() {
                    break; // the reads stopped
                }
            }
        };
        let reads = names_rx
            .map(|name| async move {
                match name {
                    Ok(name) => self.read_azure_key(vault, client, &name).await,
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(KEY_CONCURRENCY);
        let store = &self.store;
        let stored = crate::sync::store_while_reading::<_, EngineError, _, _>(reads, |keys, complete| async move {
            Ok(if complete {
                store.sync_azure_vault(vault.id, &keys, started).await?
            } else {
                let (added, updated) = store.sync_azure_vault_part(vault.id, &keys, started).await?;
                (added, updated, 0)
            })
        });
        let ((), stored) = futures::join!(list, stored);
        let (added, updated, gone) = stored?;
        let mut out = VaultSync { added, updated, gone, ..Default::default() };
        let Some(user) = backup_by else {
            return Ok(out);
        };
        let mut skip = 0;
        loop {
            let batch = self.store.live_azure_keys(vault.id, skip, 500).await?;
            if batch.is_empty() {
                break;
            }
            skip += batch.len() as u64;
            let results: Vec<(String, Result<KeyBackupRecord, EngineError>)> = futures::stream::iter(batch)
                .map(|key| async move {
                    let name = backup_name(&key.material.name, self.now());
                    let description = "taken by a key synchronization job".to_string();
                    let r = match self
                        .vault_call(vault, "BackupKey", Repeat::Safe, || client.backup_key(&key.material.name))
                        .await
                    {
                        Ok(blob) => self.store_backup(vault, &key, &blob, name, description, user).await,
                        Err(e) => Err(e.into()),
                    };
                    (key.material.name.clone(), r)
                })
                .buffer_unordered(KEY_CONCURRENCY)
                .collect()
                .await;
            for (key, r) in results {
                match r {
                    Ok(_) => out.backups += 1,
                    Err(EngineError::Cloud(e)) => out.failed_backups.push((key, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }
}
