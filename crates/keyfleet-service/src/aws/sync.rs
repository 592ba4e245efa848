//! AWS key synchronization jobs: what to read from AWS into the inventory. Get, list and cancel are shared with
//! Azure (`crate::sync_jobs`).

use keyfleet_api_types::aws::CreateAwsSyncJob;
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::aws::check_region;
use crate::{Caller, Result, ServiceError, Services};

impl Services {
    /// `POST /v1/cckm/aws/synchronization-jobs`: `{kms: [...], regions: [...]}` or `{synchronize_all: true}`.
    pub async fn create_aws_sync_job(
        &self,
        caller: &Caller,
        req: CreateAwsSyncJob,
    ) -> Result<(SyncJobRecord, Vec<String>)> {
        caller.require_cckm_user()?;
        let all = req.synchronize_all.unwrap_or(false);
        let kms_refs = req.kms.unwrap_or_default();
        let regions = req.regions.unwrap_or_default();
        for r in &regions {
            check_region("regions", r)?;
        }
        let containers = match (all, kms_refs.is_empty()) {
            (true, false) => {
                return Err(ServiceError::invalid("synchronize_all", "cannot be combined with kms"));
            }
            (false, true) => {
                return Err(ServiceError::invalid(
                    "kms",
                    "name the KMS containers to synchronize, or set synchronize_all",
                ));
            }
            (true, true) => {
                caller.require_cckm_admin()?;
                let page = Page { skip: 0, limit: i64::MAX as u64, sort: vec![] };
                self.store.list_kms(&page).await?.0
            }
            (false, false) => {
                let mut v = Vec::new();
                for k in &kms_refs {
                    let kms = self
                        .find_kms(k)
                        .await?
                        .ok_or_else(|| ServiceError::invalid("kms", format!("no KMS container {k:?}")))?;
                    if !self.holds(caller, AclResource::AwsKms(kms.id), "keysynchronize").await? {
                        return Err(ServiceError::Forbidden(format!(
                            "user {} lacks keysynchronize on KMS container {}",
                            caller.username, kms.name
                        )));
                    }
                    v.push(kms);
                }
                v
            }
        };
        if !regions.is_empty() && !containers.iter().any(|k| k.regions.iter().any(|r| regions.contains(r))) {
            return Err(ServiceError::invalid("regions", "none of these regions belongs to the chosen KMS containers"));
        }
        let job = SyncJobRecord {
            kms: if all { vec![] } else { containers.iter().map(|k| k.id).collect() },
            regions,
            ..SyncJobRecord::started(Cloud::Aws, all, caller.user_id, now())
        };
        self.store.create_sync_job(&job).await?;
        self.engine.notify_sync();
        let names = containers.into_iter().map(|k| k.name).collect();
        Ok((job, names))
    }

    /// The names of the KMS containers a job synchronizes (their ids, for containers deleted since).
    pub(crate) async fn sync_kms_names(&self, job: &SyncJobRecord) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for id in &job.kms {
            names.push(self.store.get_kms(*id).await?.map(|k| k.name).unwrap_or_else(|| id.to_string()));
        }
        Ok(names)
    }
}
