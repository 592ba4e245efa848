//! Bulk jobs of either cloud: get, list, cancel, delete and the items of a job. Each cloud's module creates its
//! jobs and decides who may read one ([`Services::readable_job`]); everything else is written once here.

use std::collections::HashMap;
use std::sync::Mutex;

use keyfleet_api_types::bulkjob::{BulkJobListQuery, ItemListQuery};
use keyfleet_api_types::common::ListParams;
use keyfleet_core::rules::planned_action;
use keyfleet_core::time::now;
use keyfleet_core::*;

use keyfleet_store::ItemLine;

use crate::azure::check_azure_job_readable;
use crate::safety::ItemEntry;
use crate::{Caller, Result, ServiceError, Services, paging};

/// Jobs with more items show only failures in `detailed_status` (and no `keys`); `.../items` pages through all.
pub const DETAILED_LIMIT: i64 = 1000;

/// Report rows read from the store at a time: a report of any size is streamed in pages of this many.
pub const REPORT_PAGE: i64 = 1000;

/// Keys shown per error code by `.../errors`.
pub const ERROR_SAMPLES: i64 = 5;

/// One line of a job's report: the item, its target, and what the job does (or did) to it.
#[derive(Debug, Clone)]
pub struct ReportLine {
    pub row: ReportRow,
    /// A planned item's intended action (as `.../items` shows it); the job's operation otherwise.
    pub action: String,
}

/// A job with the items its view shows.
#[derive(Debug, Clone)]
pub struct JobWithItems {
    pub job: JobRecord,
    /// The job's keys in order; empty for jobs over `DETAILED_LIMIT` items.
    pub keys: Vec<KeyId>,
    /// All items, or for large jobs the first failed ones.
    pub items: Vec<ItemLine>,
}

impl Services {
    /// `GET .../bulkjob(s)/{id}`.
    pub async fn get_bulkjob(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobWithItems> {
        let job = self.readable_job(caller, cloud, id).await?;
        self.with_items(job).await
    }

    /// `GET .../bulkjob(s)`: the jobs of one cloud; the `cloud` filter also accepts the name the view shows. A
    /// CCKM User sees the jobs they created.
    pub async fn list_bulkjobs(
        &self,
        caller: &Caller,
        cloud: Cloud,
        q: BulkJobListQuery,
    ) -> Result<(Vec<JobWithItems>, u64, Page)> {
        caller.require_cckm_user()?;
        let page = paging::page(
            &ListParams { skip: q.skip, limit: q.limit, sort: q.sort.clone() },
            keyfleet_store::sort_fields::JOBS,
        )?;
        let mut filter = JobFilter { cloud: Some(cloud.name().into()), ..Default::default() };
        if let Some(id) = q.id.as_deref().filter(|s| !s.is_empty()) {
            filter.id = Some(id.parse().map_err(|_| ServiceError::invalid("id", format!("{id:?} is not a job id")))?);
        }
        filter.status = overall_status(q.overall_status.as_deref())?;
        if let Some(c) = q.cloud.as_deref().filter(|s| !s.is_empty()) {
            let named = |k: Cloud| c.eq_ignore_ascii_case(k.name()) || c.eq_ignore_ascii_case(k.display());
            if !named(cloud) {
                if Cloud::ALL.into_iter().any(named) {
                    // Another cloud's jobs are never in this list: a true empty answer.
                    return Ok((Vec::new(), 0, page));
                }
                let allowed: Vec<String> =
                    Cloud::ALL.into_iter().flat_map(|k| [k.name().to_string(), k.display().to_string()]).collect();
                return Err(ServiceError::invalid(
                    "cloud",
                    format!("unknown cloud {c:?}; one of {}", allowed.join(", ")),
                ));
            }
        }
        if let Some(o) = q.operation.as_deref().filter(|s| !s.is_empty()) {
            filter.operation =
                Some(Operation::parse(o).filter(|op| cloud.operations().contains(op)).ok_or_else(|| {
                    let allowed: Vec<&str> = cloud.operations().iter().map(|op| op.as_str()).collect();
                    ServiceError::invalid(
                        "operation",
                        format!("unknown operation {o:?}; one of {}", allowed.join(", ")),
                    )
                })?);
        }
        if !caller.is_cckm_admin() {
            filter.created_by = Some(caller.user_id);
        }
        let (jobs, total) = self.store.list_jobs(&filter, &page).await?;
        Ok((self.with_items_of(jobs).await?, total, page))
    }

    /// `POST .../bulkjob(s)/{id}/cancel`.
    pub async fn cancel_bulkjob(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobWithItems> {
        let current = self.readable_job(caller, cloud, id).await?;
        let job =
            self.store.cancel_job(current.id, now()).await?.ok_or_else(|| ServiceError::not_found("bulk job", id))?;
        tracing::info!(bulkjob.id = %job.id, %cloud, user.name = %caller.username, "bulk job cancel requested");
        self.with_items(job).await
    }

    /// `DELETE .../bulkjobs/{id}`: only a finished job (completed, failed or cancelled).
    pub async fn delete_bulkjob(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<()> {
        let job = self.readable_job(caller, cloud, id).await?;
        match self.store.delete_job(job.id).await? {
            None => Err(ServiceError::not_found("bulk job", id)),
            Some(false) => Err(ServiceError::Conflict(format!(
                "bulk job {id} is still in progress; cancel it and delete it once it has ended"
            ))),
            Some(true) => {
                tracing::info!(bulkjob.id = %job.id, %cloud, user.name = %caller.username, "bulk job deleted");
                Ok(())
            }
        }
    }

    /// `GET .../bulkjob(s)/{id}/items` (extension): a page of a job's items, optionally of one status; planned
    /// items with their target's current state and intended action.
    pub async fn list_bulkjob_items(
        &self,
        caller: &Caller,
        cloud: Cloud,
        id: &str,
        q: ItemListQuery,
    ) -> Result<(Vec<ItemEntry>, u64, Page)> {
        let job = self.readable_job(caller, cloud, id).await?;
        let page = paging::page(&ListParams { skip: q.skip, limit: q.limit, sort: None }, &[])?;
        let status = q
            .status
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| {
                ItemStatus::parse(s).ok_or_else(|| {
                    ServiceError::invalid(
                        "status",
                        format!("unknown status {s:?}; one of planned, pending, running, succeeded, failed, skipped"),
                    )
                })
            })
            .transpose()?;
        let (items, total) = self.store.list_items(job.id, status, &page).await?;
        Ok((self.planned_items(job.operation, items).await?, total, page))
    }

    /// `GET .../bulkjob(s)/{id}/report` (extension): the job, once `caller` may read it; its lines then come
    /// from [`Services::report_lines`], a page at a time.
    pub async fn report_job(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobRecord> {
        self.readable_job(caller, cloud, id).await
    }

    /// Up to [`REPORT_PAGE`] lines of `job`'s report after item `after_seq` (-1: from the start); fewer means
    /// the last page.
    pub async fn report_lines(&self, job: &JobRecord, after_seq: i64) -> Result<Vec<ReportLine>> {
        let cloud = Cloud::of(job.operation);
        let rows = self.store.report_rows(job.id, cloud, after_seq, REPORT_PAGE).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let action = if row.item.status == ItemStatus::Planned {
                    planned_action(job.operation, &row.item, row.current_state.as_deref())
                } else {
                    job.operation.as_str().to_string()
                };
                ReportLine { row, action }
            })
            .collect())
    }

    /// `GET .../bulkjob(s)/{id}/errors` (extension): the job's failed items grouped by error code, with up to
    /// [`ERROR_SAMPLES`] keys each.
    pub async fn bulkjob_errors(
        &self,
        caller: &Caller,
        cloud: Cloud,
        id: &str,
    ) -> Result<(JobRecord, Vec<ErrorGroup>)> {
        let job = self.readable_job(caller, cloud, id).await?;
        let groups = self.store.error_groups(job.id, ERROR_SAMPLES).await?;
        Ok((job, groups))
    }

    /// The job, if it is one of `cloud`'s and `caller` may see it: CCKM Admins see every job; for a CCKM User
    /// the cloud decides.
    pub(crate) async fn readable_job(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobRecord> {
        caller.require_cckm_user()?;
        let jid: JobId = id.parse().map_err(|_| ServiceError::not_found("bulk job", id))?;
        let job = self
            .store
            .get_job(jid)
            .await?
            .filter(|j| cloud.is(&j.cloud))
            .ok_or_else(|| ServiceError::not_found("bulk job", id))?;
        if caller.is_cckm_admin() {
            return Ok(job);
        }
        match cloud {
            Cloud::Aws => self.check_aws_job_readable(caller, &job).await?,
            Cloud::Azure => check_azure_job_readable(caller, &job)?,
        }
        Ok(job)
    }

    /// The job and the items its view shows: all of them, or for a large job the first failures.
    pub(crate) async fn with_items(&self, job: JobRecord) -> Result<JobWithItems> {
        let mut one = self.with_items_of(vec![job]).await?;
        one.pop().ok_or_else(|| ServiceError::Internal("a job went missing while its items were read".into()))
    }

    /// [`Services::with_items`] of a page of jobs: the items of all small ones in one read (none for a job
    /// without items, those of an ended job from [`EndedJobLines`] once read), of each large one its first
    /// failures.
    async fn with_items_of(&self, jobs: Vec<JobRecord>) -> Result<Vec<JobWithItems>> {
        let mut known: HashMap<JobId, Vec<ItemLine>> = HashMap::new();
        let mut small = Vec::new();
        for j in jobs.iter().filter(|j| (1..=DETAILED_LIMIT).contains(&j.total)) {
            match self.ended_lines.get(j) {
                Some(lines) => {
                    known.insert(j.id, lines);
                }
                None => small.push(j.id),
            }
        }
        for line in self.store.item_lines(&small, None).await? {
            known.entry(line.job_id).or_default().push(line);
        }
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            if job.total > DETAILED_LIMIT {
                let items = match self.ended_lines.get(&job) {
                    Some(lines) => lines,
                    None => self.store.item_lines(&[job.id], Some(DETAILED_LIMIT as u64)).await?,
                };
                self.ended_lines.put(&job, &items);
                out.push(JobWithItems { job, keys: Vec::new(), items });
                continue;
            }
            let items = known.remove(&job.id).unwrap_or_default();
            self.ended_lines.put(&job, &items);
            let keys = items.iter().map(|i| i.key_id).collect();
            out.push(JobWithItems { job, keys, items });
        }
        Ok(out)
    }
}

/// The item lines of ended jobs, as their views show them. They never change again: a job ends only once
/// every item has ended (`rules::end_status`), and nothing writes an ended item (every item write is fenced
/// by the item's status). The job's row is still read for every view (its `abort` flag may still be set, an
/// ended Azure job may be deleted), so this holds on every node of a cluster. Bounded by lines held; past
/// [`EndedJobLines::MAX_LINES`] it starts over.
#[derive(Default)]
pub(crate) struct EndedJobLines {
    jobs: Mutex<(HashMap<JobId, Vec<ItemLine>>, usize)>,
}

impl EndedJobLines {
    const MAX_LINES: usize = 50_000;

    fn jobs(&self) -> std::sync::MutexGuard<'_, (HashMap<JobId, Vec<ItemLine>>, usize)> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, job: &JobRecord) -> Option<Vec<ItemLine>> {
        if !job.status.is_terminal() {
            return None;
        }
        self.jobs().0.get(&job.id).cloned()
    }

    /// Remembers `lines` of `job` if it has ended (read after its row said so).
    fn put(&self, job: &JobRecord, lines: &[ItemLine]) {
        // A job without items needs no entry; an entry counts at least one line, so that the bound also
        // bounds the number of entries.
        let cost = lines.len().max(1);
        if !job.status.is_terminal() || job.total == 0 || cost > Self::MAX_LINES {
            return;
        }
        let mut jobs = self.jobs();
        let (map, held) = &mut *jobs;
        if map.contains_key(&job.id) {
            return;
        }
        if *held + cost > Self::MAX_LINES {
            map.clear();
            *held = 0;
        }
        *held += cost;
        map.insert(job.id, lines.to_vec());
    }
}

/// The `overall_status` filter of job lists (bulk and sync jobs, both clouds); empty means none.
pub(crate) fn overall_status(s: Option<&str>) -> Result<Option<JobStatus>> {
    s.filter(|s| !s.is_empty())
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ServiceError::invalid(
                    "overall_status",
                    format!("unknown status {s:?}; one of planned, in_progress, completed, failed, cancelled"),
                )
            })
        })
        .transpose()
}

/// The `operation` of a create request: required, and one of `cloud`'s; `unknown` words the 400 otherwise.
pub(crate) fn parse_operation(
    cloud: Cloud,
    text: Option<&str>,
    unknown: impl FnOnce(&str) -> String,
) -> Result<Operation> {
    let text = text.filter(|s| !s.is_empty()).ok_or_else(|| ServiceError::invalid("operation", "is required"))?;
    Operation::parse(text)
        .filter(|op| cloud.operations().contains(op))
        .ok_or_else(|| ServiceError::invalid("operation", unknown(text)))
}

/// Every item of a job small enough to list them all.
pub(crate) fn all_items() -> Page {
    Page { skip: 0, limit: DETAILED_LIMIT as u64, sort: vec![] }
}

/// 403: `caller` may not read the job.
pub(crate) fn not_readable(caller: &Caller, job: &JobRecord) -> ServiceError {
    ServiceError::Forbidden(format!("user {} may not read job {}", caller.username, job.id))
}
