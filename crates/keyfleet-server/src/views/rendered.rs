//! Ended bulk jobs as JSON, rendered once. A list page of ten 100-key jobs is ~80 KB of JSON; building the
//! views (a map of 100 key ids per job) and serializing them was most of the server's CPU per request, and
//! an ended job renders the same every time: its items never change again (`EndedJobLines` in the service
//! explains why), and everything else in its view comes from its row. So a rendering is reused while the
//! job's row, read for this request, equals the row it was rendered from: whatever changes in the row (a
//! cancel setting `abort`, a counter) renders afresh. Running jobs are never kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use keyfleet_core::{JobId, JobRecord};
use keyfleet_service::jobs::JobWithItems;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A job's view as JSON, written as is into the answer.
#[derive(Debug, Clone)]
pub struct Rendered(Arc<RawValue>);

impl Serialize for Rendered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Each ended job's rendering with the row it was rendered from, and the bytes held.
type Held = (HashMap<JobId, (JobRecord, Rendered)>, usize);

/// The renderings of ended jobs, bounded by their bytes; past [`RenderedJobs::MAX_BYTES`] it starts over.
#[derive(Default)]
pub struct RenderedJobs {
    jobs: Mutex<Held>,
}

impl RenderedJobs {
    const MAX_BYTES: usize = 16 << 20;

    /// The view of `j` ([`super::bulkjob`]): reused if `j` has ended and was rendered from this very row.
    pub fn bulkjob(&self, j: JobWithItems) -> Rendered {
        let ended = j.job.status.is_terminal();
        if ended {
            let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((row, rendered)) = jobs.0.get(&j.job.id)
                && *row == j.job
            {
                return rendered.clone();
            }
        }
        let row = ended.then(|| j.job.clone());
        let rendered = match serde_json::value::to_raw_value(&super::bulkjob(j)) {
            Ok(json) => Rendered(Arc::from(json)),
            // A view is plain data; this cannot fail. Should it, the job still answers, as JSON null.
            Err(_) => Rendered(Arc::from(RawValue::NULL.to_owned())),
        };
        if let Some(row) = row {
            let cost = rendered.0.get().len();
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            let (map, held) = &mut *jobs;
            if cost <= Self::MAX_BYTES {
                if *held + cost > Self::MAX_BYTES {
                    map.clear();
                    *held = 0;
                }
                *held += cost;
                if let Some((_, old)) = map.insert(row.id, (row, rendered.clone())) {
                    *held -= old.0.get().len();
                }
            }
        }
        rendered
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use keyfleet_core::*;
    use keyfleet_store::ItemLine;

    fn ended_job() -> JobWithItems {
        let now = keyfleet_core::time::now();
        let key = KeyId::new();
        let job = JobRecord {
            id: JobId::new(),
            cloud: CLOUD_AWS.into(),
            operation: Operation::DisableKey,
            params: JobParams::default(),
            status: JobStatus::Completed,
            abort: false,
            created_by: UserId::new(),
            total: 1,
            succeeded: 1,
            failed: 0,
            skipped: 0,
            created_at: now,
            updated_at: now,
            completed_at: Some(now),
            plan: None,
            plan_expires_at: None,
            stop_reason: None,
        };
        let line =
            ItemLine { job_id: job.id, key_id: key, status: ItemStatus::Succeeded, detail: Some("Success".into()) };
        JobWithItems { job, keys: vec![key], items: vec![line] }
    }

    #[test]
    fn an_ended_job_renders_as_its_view_and_afresh_once_its_row_changes() {
        let cache = RenderedJobs::default();
        let j = ended_job();
        let plain = serde_json::to_string(&super::super::bulkjob(j.clone())).unwrap();
        assert_eq!(serde_json::to_string(&cache.bulkjob(j.clone())).unwrap(), plain);
        assert_eq!(serde_json::to_string(&cache.bulkjob(j.clone())).unwrap(), plain, "reused: the same bytes");

        let mut cancelled = j.clone();
        cancelled.job.abort = true;
        let fresh = serde_json::to_string(&cache.bulkjob(cancelled.clone())).unwrap();
        assert_eq!(fresh, serde_json::to_string(&super::super::bulkjob(cancelled)).unwrap());
        assert!(fresh.contains(r#""abort":true"#), "{fresh}");

        let mut running = j;
        running.job.status = JobStatus::InProgress;
        running.job.completed_at = None;
        let shown = serde_json::to_string(&cache.bulkjob(running)).unwrap();
        assert!(shown.contains(r#""overall_status":"in_progress""#), "{shown}");
    }
}
