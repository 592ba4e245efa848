//! Cloud key backups: Key Vault backups of Azure keys that keyfleet takes and keeps (blob encrypted at rest),
//! and restores into a vault on request.

use keyfleet_api_types::azure::{KeyBackupRequest, RestoreBackupRequest};
use keyfleet_api_types::common::ListParams;
use keyfleet_clouds::ErrorKind;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_engine::EngineError;
use keyfleet_engine::azure::backup_name;

use crate::{Caller, Result, ServiceError, Services, paging};

/// The ACL action a restore needs on the backup's vault and on the target vault.
const RESTORE_ACTION: &str = "keycreate";

/// Free text of a backup: a name must be present, neither may hold control characters.
fn check_text(field: &str, v: &str, required: bool, max: usize) -> Result<()> {
    if required && v.trim().is_empty() {
        return Err(ServiceError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            format!("must be at most {max} characters, without control characters"),
        ));
    }
    Ok(())
}

/// A Key Vault failure on behalf of a request: the cloud's answer, named, as a 4xx/502 rather than a 500.
fn cloud_failure(what: &str, e: EngineError) -> ServiceError {
    match e {
        EngineError::Cloud(c) => match c.kind {
            ErrorKind::NotFound => {
                ServiceError::Conflict(format!("{what}: Key Vault answered {}: {}", c.code, c.message))
            }
            ErrorKind::Rejected | ErrorKind::InvalidState => {
                ServiceError::Conflict(format!("{what}: Key Vault refused: {}: {}", c.code, c.message))
            }
            _ => ServiceError::Cloud(format!("{what}: {}: {}", c.code, c.message)),
        },
        EngineError::Missing(why) => ServiceError::Conflict(format!("{what}: {why}")),
        other => ServiceError::Internal(other.to_string()),
    }
}

impl Services {
    /// `POST /v1/cckm/azure/keys/{id}/backups`: calls Key Vault's backup-key and keeps the blob.
    pub async fn create_key_backup(
        &self,
        caller: &Caller,
        key_id: &str,
        req: KeyBackupRequest,
    ) -> Result<KeyBackupRecord> {
        let (key, vault) = self.get_azure_key(caller, key_id).await?;
        self.require_on_vault(caller, &vault, "keyupdate").await?;
        let name = req.name.unwrap_or_else(|| backup_name(&key.material.name, now()));
        check_text("name", &name, true, 256)?;
        let description = req.description.unwrap_or_default();
        check_text("description", &description, false, 1024)?;
        if key.gone {
            return Err(ServiceError::Conflict(format!(
                "key {} no longer exists in vault {} (gone since the last synchronization)",
                key.material.name, vault.name
            )));
        }
        let what = format!("backing up key {} of vault {}", key.material.name, vault.name);
        self.engine
            .take_key_backup(&vault, &key, name, description, caller.user_id)
            .await
            .map_err(|e| cloud_failure(&what, e))
    }

    /// The backup, if it belongs to the key and `caller` may read it.
    pub async fn get_key_backup(&self, caller: &Caller, key_id: &str, backup_id: &str) -> Result<KeyBackupRecord> {
        let (key, _) = self.get_azure_key(caller, key_id).await?;
        let bid: BackupId = backup_id.parse().map_err(|_| ServiceError::not_found("backup", backup_id))?;
        self.store
            .get_key_backup(bid)
            .await?
            .filter(|b| b.key_id == key.id)
            .ok_or_else(|| ServiceError::not_found("backup", backup_id))
    }

    /// `GET /v1/cckm/azure/keys/{id}/backups`.
    pub async fn list_key_backups(
        &self,
        caller: &Caller,
        key_id: &str,
        params: ListParams,
    ) -> Result<(Vec<KeyBackupRecord>, u64, Page)> {
        let (key, _) = self.get_azure_key(caller, key_id).await?;
        let page = paging::page(&params, keyfleet_store::sort_fields::NAMED)?;
        let filter = KeyBackupFilter { key_id: Some(key.id), ..Default::default() };
        let (backups, total) = self.store.list_key_backups(&filter, &page).await?;
        Ok((backups, total, page))
    }

    /// `PATCH .../backups/{backup_id}`: name and description.
    pub async fn update_key_backup(
        &self,
        caller: &Caller,
        key_id: &str,
        backup_id: &str,
        req: KeyBackupRequest,
    ) -> Result<KeyBackupRecord> {
        let mut b = self.get_key_backup(caller, key_id, backup_id).await?;
        let vault = self.backup_vault(&b).await?;
        self.require_on_vault(caller, &vault, "keyupdate").await?;
        if let Some(name) = req.name {
            check_text("name", &name, true, 256)?;
            b.name = name;
        }
        if let Some(d) = req.description {
            check_text("description", &d, false, 1024)?;
            b.description = d;
        }
        b.updated_at = now();
        self.store.update_key_backup(&b).await?;
        Ok(b)
    }

    /// `DELETE .../backups/{backup_id}`.
    pub async fn delete_key_backup(&self, caller: &Caller, key_id: &str, backup_id: &str) -> Result<()> {
        let b = self.get_key_backup(caller, key_id, backup_id).await?;
        let vault = self.backup_vault(&b).await?;
        self.require_on_vault(caller, &vault, "keydelete").await?;
        self.store.delete_key_backup(b.id).await?;
        tracing::info!(backup.id = %b.id, azure.key = %b.key_name, user.name = %caller.username, "cloud key backup deleted");
        Ok(())
    }

    /// `POST .../backups/{backup_id}/restore` `{key_vault_id}` (default: the backup's own vault): Key Vault's
    /// restore-key. Key Vault never overwrites: a vault holding a key of that name (even a deleted one)
    /// answers 409, passed on as a conflict that says so.
    ///
    /// A restore copies the backup's key material out of its vault, so it needs `keycreate` on the backup's
    /// own vault as well as on the target: otherwise a user with no rights on vault A could restore A's keys
    /// into a vault they control. (CCKM defines no separate restore action.)
    pub async fn restore_key_backup(
        &self,
        caller: &Caller,
        key_id: &str,
        backup_id: &str,
        req: RestoreBackupRequest,
    ) -> Result<(AzureKeyRecord, VaultRecord)> {
        let b = self.get_key_backup(caller, key_id, backup_id).await?;
        let source = self.backup_vault(&b).await?;
        self.require_on_vault(caller, &source, RESTORE_ACTION).await?;
        let target = match req.key_vault_id.filter(|s| !s.is_empty()) {
            Some(v) => self
                .find_vault(&v)
                .await?
                .ok_or_else(|| ServiceError::invalid("key_vault_id", format!("no vault {v:?}")))?,
            None => source,
        };
        self.require_on_vault(caller, &target, RESTORE_ACTION).await?;
        let sealed =
            self.store.key_backup_blob(b.id).await?.ok_or_else(|| ServiceError::not_found("backup", backup_id))?;
        let blob = self.master.decrypt(&sealed, &b.id.blob_aad())?;
        let material = match self.engine.restore_azure_key(&target, &blob).await {
            Ok(m) => m,
            Err(EngineError::Cloud(c)) if c.code == "Conflict" || c.code == "KeyAlreadyExists" => {
                return Err(ServiceError::Conflict(format!(
                    "vault {} already has a key named {} (perhaps deleted but not purged); Key Vault does not \
                     overwrite keys on restore: {}",
                    target.name, b.key_name, c.message
                )));
            }
            Err(e) => return Err(cloud_failure(&format!("restoring backup {} into vault {}", b.id, target.name), e)),
        };
        let key = self.store.upsert_azure_key(target.id, &material, now()).await?;
        tracing::info!(
            backup.id = %b.id, azure.vault = %target.name, azure.key = %material.name, user.name = %caller.username,
            "cloud key backup restored"
        );
        Ok((key, target))
    }

    async fn backup_vault(&self, b: &KeyBackupRecord) -> Result<VaultRecord> {
        self.store
            .get_vault(b.vault_id)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("vault {} of backup {} is missing", b.vault_id, b.id)))
    }
}
