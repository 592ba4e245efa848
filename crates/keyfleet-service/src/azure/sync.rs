//! Azure key synchronization jobs: which vaults to read into the inventory, and whether to back up every key
//! found. Get, list and cancel are shared with AWS (`crate::sync_jobs`).

use keyfleet_api_types::azure::CreateAzureSyncJob;
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::{Caller, Result, ServiceError, Services};

impl Services {
    /// `POST /v1/cckm/azure/synchronization-jobs`: `{key_vaults: [...]}` or `{synchronize_all: true}`,
    /// optionally `take_cloud_key_backup`.
    pub async fn create_azure_sync_job(
        &self,
        caller: &Caller,
        req: CreateAzureSyncJob,
    ) -> Result<(SyncJobRecord, Vec<String>)> {
        caller.require_cckm_user()?;
        let all = req.synchronize_all.unwrap_or(false);
        let refs = req.key_vaults.unwrap_or_default();
        let vaults = match (all, refs.is_empty()) {
            (true, false) => {
                return Err(ServiceError::invalid("synchronize_all", "cannot be combined with key_vaults"));
            }
            (false, true) => {
                return Err(ServiceError::invalid(
                    "key_vaults",
                    "name the vaults to synchronize, or set synchronize_all",
                ));
            }
            (true, true) => {
                caller.require_cckm_admin()?;
                let page = Page { skip: 0, limit: i64::MAX as u64, sort: vec![] };
                self.store.list_vaults(&VaultFilter::default(), &page).await?.0
            }
            (false, false) => {
                let mut v: Vec<VaultRecord> = Vec::new();
                for r in &refs {
                    let vault = self
                        .find_vault(r)
                        .await?
                        .ok_or_else(|| ServiceError::invalid("key_vaults", format!("no vault {r:?}")))?;
                    self.require_on_vault(caller, &vault, "keysynchronize").await?;
                    if !v.iter().any(|x| x.id == vault.id) {
                        v.push(vault);
                    }
                }
                v
            }
        };
        let job = SyncJobRecord {
            vaults: if all { vec![] } else { vaults.iter().map(|v| v.id).collect() },
            take_cloud_key_backup: req.take_cloud_key_backup.unwrap_or(false),
            ..SyncJobRecord::started(Cloud::Azure, all, caller.user_id, now())
        };
        self.store.create_sync_job(&job).await?;
        self.engine.notify_sync();
        tracing::info!(
            sync.id = %job.id, vaults = vaults.len(), take_cloud_key_backup = job.take_cloud_key_backup,
            user.name = %caller.username, "Azure synchronization job created"
        );
        Ok((job, vaults.into_iter().map(|v| v.name).collect()))
    }

    /// The names of the vaults a job synchronizes (their ids, for vaults removed since).
    pub(crate) async fn sync_vault_names(&self, job: &SyncJobRecord) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for id in &job.vaults {
            names.push(self.store.get_vault(*id).await?.map(|v| v.name).unwrap_or_else(|| id.to_string()));
        }
        Ok(names)
    }
}
