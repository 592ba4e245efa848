//! Key synchronization jobs of either cloud: get, list and cancel. Each cloud's module creates its jobs and
//! names what a job synchronizes (KMS containers, vaults); the rest is written once here.

use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::jobs::overall_status;
use crate::{Caller, Result, ServiceError, Services};

/// The filters of a synchronization-job list, as given (each validated by the list).
#[derive(Debug, Clone, Default)]
pub struct SyncJobFilter {
    pub id: Option<String>,
    pub kms: Option<String>,
    pub overall_status: Option<String>,
}

/// A synchronization job and the names of the containers it synchronizes, as its view shows them.
pub type SyncJobEntry = (SyncJobRecord, Vec<String>);

impl Services {
    /// `GET .../synchronization-jobs/{id}`.
    pub async fn get_sync_job(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<SyncJobEntry> {
        let job = self.sync_job_of(caller, cloud, id).await?;
        self.sync_job_entry(job).await
    }

    /// `GET .../synchronization-jobs`, filtered by CCKM's `id`, `overall_status` and (AWS) `kms`.
    pub async fn list_sync_jobs(
        &self,
        caller: &Caller,
        cloud: Cloud,
        filter: SyncJobFilter,
        page: &Page,
    ) -> Result<(Vec<SyncJobEntry>, u64)> {
        caller.require_cckm_user()?;
        let status = overall_status(filter.overall_status.as_deref())?;
        let id = match filter.id.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(t) => Some(
                t.parse::<SyncJobId>()
                    .map_err(|_| ServiceError::invalid("id", format!("{t:?} is not a synchronization job id")))?,
            ),
        };
        let kms = match filter.kms.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(_) if cloud != Cloud::Aws => {
                return Err(ServiceError::invalid("kms", "is a filter of AWS synchronization jobs only"));
            }
            Some(k) => Some(
                self.find_kms(k)
                    .await?
                    .ok_or_else(|| ServiceError::invalid("kms", format!("no KMS container {k:?}")))?
                    .id,
            ),
        };
        let (jobs, total) = if id.is_none() && kms.is_none() {
            self.store.list_sync_jobs(cloud.name(), status, page).await?
        } else {
            // Sync jobs are few: filter the cloud's jobs here rather than widen the store's query.
            let everything = Page { skip: 0, limit: i64::MAX as u64, sort: page.sort.clone() };
            let all = self.store.list_sync_jobs(cloud.name(), status, &everything).await?.0;
            let matching: Vec<SyncJobRecord> = all
                .into_iter()
                .filter(|j| id.is_none_or(|id| j.id == id))
                .filter(|j| kms.is_none_or(|k| j.kms.contains(&k)))
                .collect();
            let total = matching.len() as u64;
            let skip = usize::try_from(page.skip).unwrap_or(usize::MAX);
            let limit = usize::try_from(page.limit).unwrap_or(usize::MAX);
            (matching.into_iter().skip(skip).take(limit).collect(), total)
        };
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
