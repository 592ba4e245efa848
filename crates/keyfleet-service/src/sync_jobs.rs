//! Key synchronization jobs of either cloud: get, list and cancel. Each cloud's module creates its jobs and
//! names what a job synchronizes (KMS containers, vaults); the rest is written once here.

use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::jobs::overall_status;
use crate::{Caller, Result, ServiceError, Services};

/// A synchronization job and the names of the containers it synchronizes, as its view shows them.
pub type SyncJobEntry = (SyncJobRecord, Vec<String>);

impl Services {
    /// `GET .../synchronization-jobs/{id}`.
    pub async fn get_sync_job(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<SyncJobEntry> {
        let job = self.sync_job_of(caller, cloud, id).await?;
        self.sync_job_entry(job).await
    }

    /// `GET .../synchronization-jobs`, optionally of one `overall_status`.
    pub async fn list_sync_jobs(
        &self,
        caller: &Caller,
        cloud: Cloud,
        status: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<SyncJobEntry>, u64)> {
        caller.require_cckm_user()?;
        let status = overall_status(status)?;
        let (jobs, total) = self.store.list_sync_jobs(cloud.name(), status, page).await?;
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            out.push(self.sync_job_entry(j).await?);
        }
        Ok((out, total))
    }

    /// `POST .../synchronization-jobs/{id}/cancel`: like a bulk job, a CCKM User may cancel only a job they
    /// created; CCKM Admins any.
    pub async fn cancel_sync_job(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<SyncJobEntry> {
        let job = self.sync_job_of(caller, cloud, id).await?;
        if !caller.is_cckm_admin() && job.created_by != caller.user_id {
            return Err(ServiceError::Forbidden(format!(
                "user {} may not cancel synchronization job {}: only its creator or a CCKM Admin may",
                caller.username, job.id
            )));
        }
        let job = self
            .store
            .cancel_sync_job(job.id, now())
            .await?
            .ok_or_else(|| ServiceError::not_found("synchronization job", id))?;
        self.sync_job_entry(job).await
    }

    async fn sync_job_of(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<SyncJobRecord> {
        caller.require_cckm_user()?;
        let sid: SyncJobId = id.parse().map_err(|_| ServiceError::not_found("synchronization job", id))?;
        self.store
            .get_sync_job(sid)
            .await?
            .filter(|j| cloud.is(&j.cloud))
            .ok_or_else(|| ServiceError::not_found("synchronization job", id))
    }

    pub(crate) async fn sync_job_entry(&self, job: SyncJobRecord) -> Result<SyncJobEntry> {
        let names = match Cloud::parse(&job.cloud) {
            Some(Cloud::Aws) => self.sync_kms_names(&job).await?,
            Some(Cloud::Azure) => self.sync_vault_names(&job).await?,
            None => Vec::new(),
        };
        Ok((job, names))
    }
}
