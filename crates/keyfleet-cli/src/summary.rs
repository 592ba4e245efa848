//! Reading a job's `detailed_status`: counts, progress lines, the final summary and the exit code.
//!
//! Pure functions so that what `watch` prints and how it exits are tested without a server.

use std::collections::BTreeMap;

use keyfleet_api_types::JobResource;
use keyfleet_api_types::aws::SyncJobView;
use keyfleet_api_types::bulkjob::BulkJobView;

/// The status of a job that is still running; every other status is terminal.
pub const IN_PROGRESS: &str = "in_progress";

/// What one `detailed_status` entry says about its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exactly `"Success"`.
    Succeeded,
    /// Starts with `"Failed"` (`"Failed: KMSInvalidStateException: ..."`). Any text the client does not
    /// recognise counts here too: it is not a success, and the exit code must not claim one.
    Failed,
    /// Starts with `"Skipped"` (`"Skipped: cancelled"`).
    Skipped,
}

impl Outcome {
    pub fn of(text: &str) -> Outcome {
        if text == "Success" {
            Outcome::Succeeded
        } else if text.starts_with("Skipped") {
            Outcome::Skipped
        } else {
            Outcome::Failed
        }
    }
}

/// A job as `watch` sees it, whatever its kind.
#[derive(Debug, Clone, Copy)]
pub struct JobState<'a> {
    pub id: &'a str,
    pub overall_status: &'a str,
    /// Items in the job (`keys.len()` for a bulk job).
    pub total: u64,
    /// What to call the items in the summary.
    pub noun: &'static str,
    pub detailed_status: &'a BTreeMap<String, String>,
}

impl<'a> JobState<'a> {
    fn of(job: &'a impl JobResource, total: usize, noun: &'static str) -> Self {
        let (id, overall_status, detailed_status) = (job.id(), job.overall_status(), job.detailed_status());
        JobState { id, overall_status, total: total as u64, noun, detailed_status }
    }
}

impl<'a> From<&'a BulkJobView> for JobState<'a> {
    fn from(job: &'a BulkJobView) -> Self {
        // `keys` is empty for jobs over 1,000 items; `progress` (an extension) counts them all.
        let total = job.progress.as_ref().map_or(job.keys.len(), |p| usize::try_from(p.total).unwrap_or_default());
        // Azure's bulk jobs (delete-key-backups) act on backups.
        JobState::of(job, total, if job.delete_key_backups_param.is_some() { "backups" } else { "keys" })
    }
}

impl<'a> From<&'a keyfleet_api_types::azure::AzureSyncJobView> for JobState<'a> {
    fn from(job: &'a keyfleet_api_types::azure::AzureSyncJobView) -> Self {
        JobState::of(job, job.key_vaults.len(), "vaults")
    }
}

impl<'a> From<&'a SyncJobView> for JobState<'a> {
    fn from(job: &'a SyncJobView) -> Self {
        // A sync job does not say up front how many account/region pairs it covers.
        JobState::of(job, job.detailed_status.len(), "regions")
    }
}

/// Counts of a job's items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub total: u64,
    pub done: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Tally {
    pub fn of(job: &JobState<'_>) -> Tally {
        let mut t = Tally { total: job.total, ..Tally::default() };
        for text in job.detailed_status.values() {
            t.done += 1;
            match Outcome::of(text) {
                Outcome::Succeeded => t.succeeded += 1,
                Outcome::Failed => t.failed += 1,
                Outcome::Skipped => t.skipped += 1,
            }
        }
        // Never report more done than there are items, whatever the server sent.
        t.total = t.total.max(t.done);
        t
    }

    /// The counts of a progress event (`.../events`).
    pub fn of_event(e: &keyfleet_api_types::bulkjob::ProgressEvent) -> Tally {
        let n = |v: i64| u64::try_from(v).unwrap_or_default();
        let c = &e.counts;
        let done = n(c.succeeded) + n(c.failed) + n(c.skipped);
        Tally {
            total: n(e.total).max(done),
            done,
            succeeded: n(c.succeeded),
            failed: n(c.failed),
            skipped: n(c.skipped),
        }
    }

    /// Items without a result yet.
    pub fn pending(&self) -> u64 {
        self.total.saturating_sub(self.done)
    }
}

/// Whether a job will not change any more.
pub fn is_terminal(overall_status: &str) -> bool {
    overall_status != IN_PROGRESS
}

/// The progress bar's message: `8 succeeded, 1 failed, 1 skipped`.
pub fn progress_message(t: &Tally) -> String {
    format!("{} succeeded, {} failed, {} skipped", t.succeeded, t.failed, t.skipped)
}

/// One line of plain progress (stdout not a terminal): `in_progress: 10/100 done (8 succeeded, ...)`.
pub fn progress_line(overall_status: &str, t: &Tally) -> String {
    format!("{overall_status}: {}/{} done ({})", t.done, t.total, progress_message(t))
}

/// The final line: `job ID completed: 10 keys, 8 succeeded, 1 failed, 1 skipped`.
pub fn summary_line(job: &JobState<'_>) -> String {
    let t = Tally::of(job);
    let mut line = format!("job {} {}: {} {}, {}", job.id, job.overall_status, t.total, job.noun, progress_message(&t));
    if t.pending() > 0 {
        line.push_str(&format!(", {} without result", t.pending()));
    }
    line
}

/// `ITEM: text` for every entry that is not a success, in item order.
pub fn problem_lines(job: &JobState<'_>) -> Vec<String> {
    job.detailed_status
        .iter()
        .filter(|(_, text)| Outcome::of(text) != Outcome::Succeeded)
        .map(|(item, text)| format!("{item}: {text}"))
        .collect()
}

/// 0 when the job completed and no item failed; 4 (`exit::JOB_NOT_CLEAN`) when an item failed or the job failed or was cancelled.
pub fn exit_code(job: &JobState<'_>) -> u8 {
    if job.overall_status == "completed" && Tally::of(job).failed == 0 { 0 } else { crate::exit::JOB_NOT_CLEAN }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn state<'a>(status: &'a str, total: u64, detailed: &'a BTreeMap<String, String>) -> JobState<'a> {
        JobState { id: "job-1", overall_status: status, total, noun: "keys", detailed_status: detailed }
    }

    #[test]
    fn outcomes_follow_the_text_prefix() {
        assert_eq!(Outcome::of("Success"), Outcome::Succeeded);
        assert_eq!(Outcome::of("Failed: KMSInvalidStateException: key is pending deletion"), Outcome::Failed);
        assert_eq!(Outcome::of("Skipped: cancelled"), Outcome::Skipped);
        assert_eq!(Outcome::of("success"), Outcome::Failed);
        assert_eq!(Outcome::of("Something new"), Outcome::Failed);
    }

    #[test]
    fn completed_without_failures_exits_zero() {
        let d = statuses(&[("k1", "Success"), ("k2", "Success")]);
        let job = state("completed", 2, &d);
        assert_eq!(summary_line(&job), "job job-1 completed: 2 keys, 2 succeeded, 0 failed, 0 skipped");
        assert!(problem_lines(&job).is_empty());
        assert_eq!(exit_code(&job), 0);
    }

    #[test]
    fn any_failure_exits_one_and_is_listed() {
        let d = statuses(&[
            ("k1", "Success"),
            ("k2", "Failed: NotFoundException: no such key"),
            ("k3", "Skipped: cancelled"),
        ]);
        let job = state("completed", 3, &d);
        assert_eq!(summary_line(&job), "job job-1 completed: 3 keys, 1 succeeded, 1 failed, 1 skipped");
        assert_eq!(
            problem_lines(&job),
            vec!["k2: Failed: NotFoundException: no such key".to_owned(), "k3: Skipped: cancelled".to_owned()]
        );
        assert_eq!(exit_code(&job), 4);
    }

    #[test]
    fn failed_or_cancelled_jobs_exit_one_even_without_failed_items() {
        let d = statuses(&[("k1", "Success"), ("k2", "Skipped: cancelled")]);
        assert_eq!(exit_code(&state("cancelled", 3, &d)), 4);
        assert_eq!(exit_code(&state("failed", 2, &d)), 4);
        assert_eq!(
            summary_line(&state("cancelled", 3, &d)),
            "job job-1 cancelled: 3 keys, 1 succeeded, 0 failed, 1 skipped, 1 without result"
        );
        // A skipped item in a completed job is no failure.
        assert_eq!(exit_code(&state("completed", 2, &d)), 0);
    }

    #[test]
    fn progress_counts_and_terminal_states() {
        let d = statuses(&[("k1", "Success"), ("k2", "Failed: AccessDeniedException: no")]);
        let job = state(IN_PROGRESS, 10, &d);
        let t = Tally::of(&job);
        assert_eq!((t.total, t.done, t.pending()), (10, 2, 8));
        assert_eq!(progress_line(job.overall_status, &t), "in_progress: 2/10 done (1 succeeded, 1 failed, 0 skipped)");
        assert!(!is_terminal(IN_PROGRESS));
        assert!(is_terminal("completed"));
        // More entries than keys: the total grows instead of showing 3/2.
        let d = statuses(&[("a", "Success"), ("b", "Success"), ("c", "Success")]);
        assert_eq!(Tally::of(&state("completed", 2, &d)).total, 3);
    }
}
