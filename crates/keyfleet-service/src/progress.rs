//! Live progress of a bulk job, either cloud: what the events stream (`GET .../bulkjob(s)/{id}/events`) and the
//! console send. A snapshot is the job row (its counters are kept there, so no scan of the items) and a count of
//! its running items (an index lookup bounded by the engine's concurrency).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use keyfleet_api_types::bulkjob::{ProgressCounts, ProgressEvent};
use keyfleet_core::*;

use crate::{Caller, Result, Services};

/// How far back the rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(10);
/// The shortest span a rate is computed over: a rate of a few hundred milliseconds is noise.
const RATE_MIN_SPAN: Duration = Duration::from_secs(1);

/// A job as it is now, with how many of its items are running.
#[derive(Debug, Clone)]
pub struct ProgressSnapshot {
    pub job: JobRecord,
    pub running: i64,
}

impl Services {
    /// The job a caller may watch: exactly the jobs they may read (`GET .../bulkjob(s)/{id}`), checked when a
    /// stream starts.
    pub async fn watch_bulkjob(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobRecord> {
        self.readable_job(caller, cloud, id).await
    }

    /// The job's counts now; `None` once it has been deleted.
    pub async fn bulkjob_progress(&self, job: JobId) -> Result<Option<ProgressSnapshot>> {
        let Some(job) = self.store.get_job(job).await? else { return Ok(None) };
        let running = if job.status == JobStatus::InProgress {
            let one = Page { skip: 0, limit: 1, sort: Vec::new() };
            self.store.list_items(job.id, Some(ItemStatus::Running), &one).await?.1 as i64
        } else {
            0
        };
        Ok(Some(ProgressSnapshot { job, running }))
    }
}

/// Turns a stream's snapshots into events: counts, percent, and the rate and time left measured over the
/// snapshots of the last [`RATE_WINDOW`].
#[derive(Debug, Default)]
pub struct ProgressTracker {
    samples: VecDeque<(Instant, i64)>,
}

impl ProgressTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The event for a snapshot taken at `at`.
    pub fn event(&mut self, s: &ProgressSnapshot, at: Instant) -> ProgressEvent {
        let job = &s.job;
        let done = job.finished();
        let open = (job.total - done).max(0);
        let counts = match job.status {
            JobStatus::Planned => ProgressCounts { planned: open, ..ProgressCounts::default() },
            _ => ProgressCounts {
                planned: 0,
                running: s.running.min(open),
                pending: open - s.running.min(open),
                succeeded: job.succeeded,
                failed: job.failed,
                skipped: job.skipped,
            },
        };
        let percent = if job.total == 0 { 100.0 } else { (done as f64 * 1000.0 / job.total as f64).floor() / 10.0 };
        let rate = (job.status == JobStatus::InProgress).then(|| self.rate(at, done)).flatten();
        let eta_secs = rate.filter(|r| *r > 0.0).map(|r| (open as f64 / r * 10.0).round() / 10.0);
        ProgressEvent {
            id: format!("{}.{}.{}.{}.{}", job.status.as_str(), job.succeeded, job.failed, job.skipped, counts.running),
            bulkjob_id: job.id.to_string(),
            overall_status: job.status.as_str().into(),
            total: job.total,
            done,
            counts,
            percent,
            rate_per_sec: rate.map(|r| (r * 10.0).round() / 10.0),
            eta_secs,
        }
    }

    /// Items ended per second between the oldest sample of the window and this one.
    fn rate(&mut self, at: Instant, done: i64) -> Option<f64> {
        self.samples.push_back((at, done));
        while self.samples.len() > 2 && self.samples.get(1).is_some_and(|(t, _)| at.duration_since(*t) >= RATE_WINDOW) {
            self.samples.pop_front();
        }
        let (t0, d0) = *self.samples.front()?;
        let span = at.duration_since(t0);
        (span >= RATE_MIN_SPAN).then(|| (done - d0).max(0) as f64 / span.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn snapshot(status: JobStatus, total: i64, succeeded: i64, failed: i64, running: i64) -> ProgressSnapshot {
        let job = JobRecord {
            id: JobId::new(),
            cloud: "aws".into(),
            operation: Operation::DisableKey,
            params: JobParams::default(),
            status,
            abort: false,
            created_by: UserId::new(),
            total,
            succeeded,
            failed,
            skipped: 0,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            completed_at: None,
            plan: None,
            plan_expires_at: None,
            stop_reason: None,
        };
        ProgressSnapshot { job, running }
    }

    #[test]
    fn counts_split_the_open_items_into_running_and_pending() {
        let e = ProgressTracker::new().event(&snapshot(JobStatus::InProgress, 100, 30, 5, 8), Instant::now());
        assert_eq!((e.done, e.percent), (35, 35.0));
        assert_eq!(
            e.counts,
            ProgressCounts { pending: 57, running: 8, succeeded: 30, failed: 5, ..Default::default() }
        );
        assert_eq!(e.rate_per_sec, None, "no rate from one sample");
        let planned = ProgressTracker::new().event(&snapshot(JobStatus::Planned, 7, 0, 0, 0), Instant::now());
        assert_eq!(planned.counts, ProgressCounts { planned: 7, ..Default::default() });
    }

    #[test]
    fn the_rate_is_measured_over_the_window_and_gives_the_time_left() {
        let mut t = ProgressTracker::new();
        let t0 = Instant::now();
        t.event(&snapshot(JobStatus::InProgress, 1000, 0, 0, 4), t0);
        t.event(&snapshot(JobStatus::InProgress, 1000, 50, 0, 4), t0 + Duration::from_millis(500));
        let e = t.event(&snapshot(JobStatus::InProgress, 1000, 200, 0, 4), t0 + Duration::from_secs(2));
        assert_eq!(e.rate_per_sec, Some(100.0));
        assert_eq!(e.eta_secs, Some(8.0));
        // Twenty seconds on, only the last ten count: 300 items in 10 s.
        t.event(&snapshot(JobStatus::InProgress, 1000, 400, 0, 4), t0 + Duration::from_secs(12));
        let e = t.event(&snapshot(JobStatus::InProgress, 1000, 700, 0, 4), t0 + Duration::from_secs(22));
        assert_eq!(e.rate_per_sec, Some(30.0));
    }

    #[test]
    fn the_id_changes_with_the_counts_and_only_then() {
        let mut t = ProgressTracker::new();
        let now = Instant::now();
        let a = t.event(&snapshot(JobStatus::InProgress, 10, 1, 0, 2), now);
        let b = t.event(&snapshot(JobStatus::InProgress, 10, 1, 0, 2), now);
        let c = t.event(&snapshot(JobStatus::InProgress, 10, 2, 0, 2), now);
        let d = t.event(&snapshot(JobStatus::Completed, 10, 2, 0, 0), now);
        assert_eq!(a.id, b.id);
        assert_ne!(b.id, c.id);
        assert_ne!(c.id, d.id);
        assert_eq!(d.overall_status, "completed");
    }
}
