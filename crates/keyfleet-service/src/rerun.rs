//! After a bulk job (issue 10, section 5), for every cloud: `retry-failed` runs its failed and not-attempted
//! items again as a new job; `revert` plans a new job that puts back what it changed. Both are created with
//! their audit record in one store transaction ([`JobStore::create_derived_job`]).
//!
//! [`JobStore::create_derived_job`]: keyfleet_store::JobStore::create_derived_job

use keyfleet_api_types::bulkjob::JobSafety;
use keyfleet_core::rules::revert_operation;
use keyfleet_core::*;
use keyfleet_store::Derived;

use crate::jobs::JobWithItems;
use crate::{Caller, Result, ServiceError, Services};

impl Services {
    /// `POST .../bulkjob(s)/{id}/retry-failed`: a new job of the caller, with the finished job's operation and
    /// options, over exactly its failed and skipped items; planned instead of started with `dry_run`.
    pub async fn retry_failed_bulkjob(
        &self,
        caller: &Caller,
        cloud: Cloud,
        id: &str,
        dry_run: bool,
    ) -> Result<JobWithItems> {
        // Who may confirm or cancel a job may retry or revert it.
        let old = finished(self.readable_job(caller, cloud, id).await?, id, "retried")?;
        let params = JobParams { retry_of: Some(old.id), ..old.params.clone() };
        let job = self.new_job(caller, old.operation, params, &same_limits(&old, dry_run))?;
        let nothing =
            || ServiceError::Conflict(format!("bulk job {id} has no failed or skipped items: nothing to retry"));
        let created = self.create_derived(job, old.id, Derived::Retry, nothing).await?;
        tracing::info!(
            bulkjob.id = %created.job.id, retry_of = %old.id, %cloud, keys = created.job.total,
            user.name = %caller.username, "bulk job retry created"
        );
        Ok(created)
    }

    /// `POST .../bulkjob(s)/{id}/revert`: a planned job that returns every key the finished job changed to
    /// its state (and policy) from before; confirmed like any plan.
    pub async fn revert_bulkjob(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobWithItems> {
        let old = self.readable_job(caller, cloud, id).await?;
        let operation = revert_operation(old.operation)
            .map_err(|why| ServiceError::Conflict(format!("bulk job {id} cannot be reverted: {why}")))?;
        let old = finished(old, id, "reverted")?;
        let params = JobParams { revert_of: Some(old.id), ..Default::default() };
        let job = self.new_job(caller, operation, params, &same_limits(&old, true))?;
        let nothing = || {
            ServiceError::Conflict(format!(
                "bulk job {id} changed no key: nothing to revert (items that failed or found their key already in \
                 the target state are not reverted)"
            ))
        };
        let created = self.create_derived(job, old.id, Derived::Revert, nothing).await?;
        tracing::info!(
            bulkjob.id = %created.job.id, revert_of = %old.id, %cloud, keys = created.job.total,
            user.name = %caller.username, "bulk job revert planned"
        );
        Ok(created)
    }

    /// Stores `job` over the items of `from` that `how` takes, `nothing` when there are none; summarizes it
    /// when it is a plan, or wakes the workers.
    async fn create_derived(
        &self,
        mut job: JobRecord,
        from: JobId,
        how: Derived,
        nothing: impl FnOnce() -> ServiceError,
    ) -> Result<JobWithItems> {
        let n = self.store.create_derived_job(&job, from, how).await?;
        if n == 0 {
            return Err(nothing());
        }
        job.total = n;
        self.count_created(&job);
        if job.status == JobStatus::Planned {
            self.record_plan(&mut job).await?;
        } else {
            self.engine.notify_jobs();
        }
        let job = self.store.get_job(job.id).await?.unwrap_or(job);
        self.with_items(job).await
    }
}

/// `job` once it has ended; 409 otherwise (it cannot be `verb` yet).
fn finished(job: JobRecord, id: &str, verb: &str) -> Result<JobRecord> {
    if !job.status.is_terminal() {
        return Err(ServiceError::Conflict(format!(
            "bulk job {id} is {}: only a finished job (completed, failed or cancelled) can be {verb}",
            job.status.as_str()
        )));
    }
    Ok(job)
}

/// The failure thresholds of `old`, for a job that follows it (planned with `dry_run`).
fn same_limits(old: &JobRecord, dry_run: bool) -> JobSafety {
    let limit = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok());
    JobSafety {
        dry_run,
        max_items: None,
        max_failures: limit(old.params.max_failures),
        max_failure_percent: limit(old.params.max_failure_percent),
    }
}
