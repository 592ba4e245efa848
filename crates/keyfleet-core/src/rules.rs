//! How bulk-job items and jobs progress, whatever stores them: what an outcome writes to its item, which
//! counter of the job it moves, and when (and how) a job ends. Pure functions; the stores call them.

use chrono::{DateTime, Utc};

use crate::model::{ItemOutcome, ItemRecord, ItemStatus, JobParams, JobStatus, Operation};

/// The reason of items skipped because their job was cancelled (`Skipped: cancelled`).
pub const CANCELLED: &str = "cancelled";

/// An item's detail after a failure: `Failed: {code}: {message}`.
pub fn failed_detail(code: &str, message: &str) -> String {
    format!("Failed: {code}: {message}")
}

/// An item's detail after it was skipped: `Skipped: {reason}`.
pub fn skipped_detail(reason: &str) -> String {
    format!("Skipped: {reason}")
}

/// Key Vault's rule for key names, which keyfleet's Key Vault client and the fake Key Vault both apply.
pub const AZURE_KEY_NAME_RULE: &str = "1-127 characters of 0-9, a-z, A-Z and -";

/// Does `name` follow [`AZURE_KEY_NAME_RULE`]?
pub fn is_azure_key_name(name: &str) -> bool {
    (1..=127).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The job counters an item's end moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Succeeded,
    Failed,
    Skipped,
}

impl Counter {
    /// The counter's name, as `JobRecord` (and the `jobs` table) spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Succeeded => "succeeded",
            Counter::Failed => "failed",
            Counter::Skipped => "skipped",
        }
    }
}

/// What recording one attempt's outcome writes to its item. `None` fields leave the item's value as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemChange {
    pub status: ItemStatus,
    /// The job counter the item's end moves; `None` when the item is not finished (a retry).
    pub counter: Option<Counter>,
    /// The new detail (a retry clears it).
    pub detail: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub state_before: Option<String>,
    pub state_after: Option<String>,
    /// When a retry may run; `None` for an outcome that ends the item.
    pub not_before: Option<DateTime<Utc>>,
}

impl ItemChange {
    pub fn of(outcome: &ItemOutcome) -> Self {
        let base = |status, counter| ItemChange {
            status,
            counter,
            detail: None,
            error_code: None,
            error_message: None,
            state_before: None,
            state_after: None,
            not_before: None,
        };
        match outcome {
            ItemOutcome::Succeeded { detail, state_before, state_after } => ItemChange {
                detail: Some(detail.clone()),
                state_before: state_before.clone(),
                state_after: state_after.clone(),
                ..base(ItemStatus::Succeeded, Some(Counter::Succeeded))
            },
            ItemOutcome::Failed { code, message, state_before } => ItemChange {
                detail: Some(failed_detail(code, message)),
                error_code: Some(code.clone()),
                error_message: Some(message.clone()),
                state_before: state_before.clone(),
                ..base(ItemStatus::Failed, Some(Counter::Failed))
            },
            ItemOutcome::Retry { code, message, not_before } => ItemChange {
                error_code: Some(code.clone()),
                error_message: Some(message.clone()),
                not_before: Some(*not_before),
                ..base(ItemStatus::Pending, None)
            },
            ItemOutcome::Skipped { reason } => {
                ItemChange { detail: Some(skipped_detail(reason)), ..base(ItemStatus::Skipped, Some(Counter::Skipped)) }
            }
        }
    }
}

/// A job's item counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

impl Progress {
    /// Items that ended, whichever way.
    pub fn ended(&self) -> i64 {
        self.succeeded + self.failed + self.skipped
    }

    /// Every item ended.
    pub fn is_done(&self) -> bool {
        self.ended() >= self.total
    }

    /// How a running job ends once every item ended, `None` while some have not: `cancelled` when it was
    /// aborted, `failed` when every item failed, `completed` otherwise.
    pub fn end_status(&self, abort: bool) -> Option<JobStatus> {
        if !self.is_done() {
            None
        } else if abort {
            Some(JobStatus::Cancelled)
        } else if self.failed == self.total {
            Some(JobStatus::Failed)
        } else {
            Some(JobStatus::Completed)
        }
    }
}

/// Whether a key in `state` is already where `op` puts it: the item needs no state-changing call. Policy
/// templates and backup deletions always act.
pub fn done_in_state(op: Operation, state: &str) -> bool {
    match op {
        Operation::EnableKey => state == "Enabled",
        Operation::DisableKey => state == "Disabled",
        Operation::ScheduleKeyDeletion => state == "PendingDeletion",
        Operation::CancelKeyDeletion => matches!(state, "Enabled" | "Disabled"),
        Operation::ApplyPolicyTemplate | Operation::DeleteKeyBackups => false,
    }
}

/// What a planned item will do to a target in `state` (`None`: the target is gone): the operation, or
/// `none (already <state>)` for a no-op.
pub fn intended_action(op: Operation, state: Option<&str>) -> String {
    match state {
        None => "none (gone)".to_string(),
        Some(s) if done_in_state(op, s) => format!("none (already {s})"),
        Some(_) => op.as_str().to_string(),
    }
}

/// What a planned item will do to a target in `state`: a revert item's own restore ([`restore_steps`]), or
/// the job's operation ([`intended_action`]).
pub fn planned_action(op: Operation, item: &ItemRecord, state: Option<&str>) -> String {
    let (Some(now), Some(target)) = (state, item.restore_state.as_deref()) else {
        return match state {
            Some(_) if item.restores_policy => "restore key policy".to_string(),
            _ => intended_action(op, state),
        };
    };
    let policy = if item.restores_policy { "restore key policy, " } else { "" };
    match restore_steps(now, target) {
        Ok(steps) if steps.is_empty() && policy.is_empty() => format!("none (already {now})"),
        Ok(steps) => {
            let calls: Vec<&str> = steps.iter().map(|o| o.as_str()).collect();
            format!("{policy}{}", calls.join(", ")).trim_end_matches(", ").to_string()
        }
        Err(why) => format!("fails ({why})"),
    }
}

/// Whether a planned item whose target is in `state` will need no state-changing call: a revert item when its
/// key is already in the state it restores, any other item as [`done_in_state`] says. (An item that restores a
/// policy always acts.)
pub fn planned_no_op(op: Operation, state: &str, restore_state: Option<&str>) -> bool {
    match restore_state {
        Some(target) => restore_steps(state, target).is_ok_and(|steps| steps.is_empty()),
        None => done_in_state(op, state),
    }
}

/// The operation of a job that reverts a job of `op`: the one that undoes its items (each revert item still
/// returns its key to that key's own recorded state). An error says why `op` cannot be reverted.
pub fn revert_operation(op: Operation) -> Result<Operation, &'static str> {
    match op {
        Operation::EnableKey => Ok(Operation::DisableKey),
        Operation::DisableKey => Ok(Operation::EnableKey),
        Operation::ScheduleKeyDeletion => Ok(Operation::CancelKeyDeletion),
        Operation::ApplyPolicyTemplate => Ok(Operation::ApplyPolicyTemplate),
        Operation::CancelKeyDeletion => {
            Err("reverting a cancelkeydeletion job would schedule the keys' deletion again, with a window keyfleet \
             did not record; create a schedulekeydeletion job if that is meant")
        }
        Operation::DeleteKeyBackups => {
            Err("Azure backup deletion cannot be reverted: the deleted backups no longer exist anywhere")
        }
    }
}

/// The calls that take an AWS key from `state` back to `target` (`Enabled` or `Disabled`), in order; none when
/// it is already there. AWS leaves a key whose deletion is cancelled `Disabled`, hence two calls back to
/// `Enabled`.
pub fn restore_steps(state: &str, target: &str) -> Result<Vec<Operation>, String> {
    match (state, target) {
        (s, t) if s == t => Ok(Vec::new()),
        ("PendingDeletion", "Disabled") => Ok(vec![Operation::CancelKeyDeletion]),
        ("PendingDeletion", "Enabled") => Ok(vec![Operation::CancelKeyDeletion, Operation::EnableKey]),
        ("Disabled", "Enabled") => Ok(vec![Operation::EnableKey]),
        ("Enabled", "Disabled") => Ok(vec![Operation::DisableKey]),
        _ => Err(format!("a key in state {state} cannot be returned to {target}")),
    }
}

/// The least number of finished items before `max_failure_percent` is looked at: below it, a few early
/// failures would be a large share.
pub const FAILURE_PERCENT_MIN_ITEMS: i64 = 100;

/// When a job stops because too many of its items failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureLimits {
    /// Stop once more items than this failed.
    pub max_failures: Option<i64>,
    /// Stop once more than this percentage of the finished items failed, from
    /// [`FAILURE_PERCENT_MIN_ITEMS`] finished items on.
    pub max_failure_percent: Option<i64>,
}

impl FailureLimits {
    pub fn of(params: &JobParams) -> Self {
        FailureLimits { max_failures: params.max_failures, max_failure_percent: params.max_failure_percent }
    }

    /// Why the job must stop now, `None` while it may go on: the stop reason it records.
    pub fn crossed(&self, p: &Progress) -> Option<String> {
        if let Some(max) = self.max_failures
            && p.failed > max
        {
            return Some(format!("{} items failed, more than max_failures {max}", p.failed));
        }
        let ended = p.ended();
        if let Some(max) = self.max_failure_percent
            && ended >= FAILURE_PERCENT_MIN_ITEMS
            && p.failed * 100 > max * ended
        {
            let percent = (p.failed as f64 * 1000.0 / ended as f64).floor() / 10.0;
            return Some(format!(
                "{} of {ended} finished items failed ({percent}%), more than max_failure_percent {max}",
                p.failed
            ));
        }
        None
    }
}

/// The detail of an item skipped because its job crossed a failure threshold.
pub fn threshold_skipped_detail(reason: &str) -> String {
    format!("Failed: not attempted: failure threshold reached ({reason})")
}

/// How a job ends once every item ended ([`Progress::end_status`]); a job that was stopped by a failure
/// threshold (and not cancelled) ends `failed` whatever its other items did.
pub fn end_status(p: &Progress, abort: bool, stopped: bool) -> Option<JobStatus> {
    p.end_status(abort).map(|s| if stopped && s == JobStatus::Completed { JobStatus::Failed } else { s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_key_names() {
        assert!(is_azure_key_name("Prod-key-1"));
        assert!(is_azure_key_name(&"k".repeat(127)));
        assert!(!is_azure_key_name(""));
        assert!(!is_azure_key_name(&"k".repeat(128)));
        assert!(!is_azure_key_name("a_b"));
        assert!(!is_azure_key_name("keys/x"));
    }

    fn progress(total: i64, succeeded: i64, failed: i64, skipped: i64) -> Progress {
        Progress { total, succeeded, failed, skipped }
    }

    #[test]
    fn details_spell_the_outcome() {
        assert_eq!(failed_detail("NotFoundException", "no such key"), "Failed: NotFoundException: no such key");
        assert_eq!(skipped_detail(CANCELLED), "Skipped: cancelled");
    }

    #[test]
    fn each_outcome_writes_its_status_detail_and_counter() {
        let ok = ItemChange::of(&ItemOutcome::Succeeded {
            detail: "Success".into(),
            state_before: Some("Enabled".into()),
            state_after: Some("Disabled".into()),
        });
        assert_eq!(
            (ok.status, ok.counter, ok.detail.as_deref()),
            (ItemStatus::Succeeded, Some(Counter::Succeeded), Some("Success"))
        );
        assert_eq!((ok.state_before.as_deref(), ok.state_after.as_deref()), (Some("Enabled"), Some("Disabled")));
        assert_eq!((ok.error_code, ok.not_before), (None, None));

        let failed = ItemChange::of(&ItemOutcome::Failed {
            code: "KMSInvalidStateException".into(),
            message: "pending deletion".into(),
            state_before: None,
        });
        assert_eq!(failed.status, ItemStatus::Failed);
        assert_eq!(failed.counter, Some(Counter::Failed));
        assert_eq!(failed.detail.as_deref(), Some("Failed: KMSInvalidStateException: pending deletion"));
        assert_eq!(failed.error_code.as_deref(), Some("KMSInvalidStateException"));
        assert_eq!(failed.error_message.as_deref(), Some("pending deletion"));

        let at = crate::time::from_micros(1_700_000_000_000_000);
        let retry =
            ItemChange::of(&ItemOutcome::Retry { code: "Throttling".into(), message: "slow".into(), not_before: at });
        assert_eq!((retry.status, retry.counter, retry.detail), (ItemStatus::Pending, None, None));
        assert_eq!((retry.error_code.as_deref(), retry.not_before), (Some("Throttling"), Some(at)));

        let skipped = ItemChange::of(&ItemOutcome::Skipped { reason: "already disabled".into() });
        assert_eq!(skipped.status, ItemStatus::Skipped);
        assert_eq!(skipped.counter, Some(Counter::Skipped));
        assert_eq!(skipped.detail.as_deref(), Some("Skipped: already disabled"));
    }

    #[test]
    fn counters_are_named_as_the_job_fields() {
        assert_eq!(
            [Counter::Succeeded, Counter::Failed, Counter::Skipped].map(Counter::as_str),
            ["succeeded", "failed", "skipped"]
        );
    }

    #[test]
    fn a_job_ends_when_every_item_ended() {
        assert_eq!(progress(3, 1, 1, 0).end_status(false), None);
        assert_eq!(progress(3, 1, 1, 0).end_status(true), None);
        assert_eq!(progress(3, 1, 1, 1).end_status(false), Some(JobStatus::Completed));
        assert_eq!(progress(3, 0, 3, 0).end_status(false), Some(JobStatus::Failed));
        assert_eq!(progress(3, 0, 2, 1).end_status(false), Some(JobStatus::Completed));
        // Aborted wins over failed.
        assert_eq!(progress(3, 0, 3, 0).end_status(true), Some(JobStatus::Cancelled));
        assert_eq!(progress(3, 1, 0, 2).end_status(true), Some(JobStatus::Cancelled));
        assert_eq!(progress(0, 0, 0, 0).end_status(false), Some(JobStatus::Failed));
        assert_eq!(progress(4, 1, 1, 1).ended(), 3);
        assert!(!progress(4, 1, 1, 1).is_done());
    }

    #[test]
    fn failure_limits_stop_past_the_count_or_the_share() {
        let count = FailureLimits { max_failures: Some(2), max_failure_percent: None };
        assert_eq!(count.crossed(&progress(10, 5, 2, 0)), None, "two failures are allowed");
        assert_eq!(count.crossed(&progress(10, 5, 3, 0)).as_deref(), Some("3 items failed, more than max_failures 2"));
        let zero = FailureLimits { max_failures: Some(0), max_failure_percent: None };
        assert!(zero.crossed(&progress(10, 0, 1, 0)).is_some(), "max_failures 0 stops at the first failure");

        let share = FailureLimits { max_failures: None, max_failure_percent: Some(50) };
        assert_eq!(share.crossed(&progress(1000, 0, 99, 0)), None, "not before 100 items finished");
        assert_eq!(share.crossed(&progress(1000, 50, 50, 0)), None, "exactly 50% is not more than 50%");
        assert_eq!(
            share.crossed(&progress(1000, 49, 51, 0)).as_deref(),
            Some("51 of 100 finished items failed (51%), more than max_failure_percent 50")
        );
        assert_eq!(share.crossed(&progress(1000, 100, 99, 1)), None);
        assert_eq!(FailureLimits::default().crossed(&progress(1000, 0, 1000, 0)), None);
        let params = JobParams { max_failures: Some(1), max_failure_percent: Some(10), ..Default::default() };
        assert_eq!(FailureLimits::of(&params), FailureLimits { max_failures: Some(1), max_failure_percent: Some(10) });
        assert_eq!(threshold_skipped_detail("x"), "Failed: not attempted: failure threshold reached (x)");
    }

    #[test]
    fn a_stopped_job_ends_failed_unless_cancelled() {
        assert_eq!(end_status(&progress(3, 2, 1, 0), false, true), Some(JobStatus::Failed));
        assert_eq!(end_status(&progress(3, 2, 1, 0), false, false), Some(JobStatus::Completed));
        assert_eq!(end_status(&progress(3, 2, 1, 0), true, true), Some(JobStatus::Cancelled));
        assert_eq!(end_status(&progress(3, 2, 0, 0), false, true), None);
    }

    #[test]
    fn a_revert_item_takes_the_calls_back_to_its_recorded_state() {
        use Operation::*;
        assert_eq!(restore_steps("Disabled", "Disabled"), Ok(vec![]));
        assert_eq!(restore_steps("Disabled", "Enabled"), Ok(vec![EnableKey]));
        assert_eq!(restore_steps("Enabled", "Disabled"), Ok(vec![DisableKey]));
        assert_eq!(restore_steps("PendingDeletion", "Disabled"), Ok(vec![CancelKeyDeletion]));
        assert_eq!(restore_steps("PendingDeletion", "Enabled"), Ok(vec![CancelKeyDeletion, EnableKey]));
        assert!(restore_steps("Enabled", "PendingDeletion").is_err());
        assert_eq!(revert_operation(DisableKey), Ok(EnableKey));
        assert_eq!(revert_operation(ScheduleKeyDeletion), Ok(CancelKeyDeletion));
        assert!(revert_operation(DeleteKeyBackups).is_err_and(|why| why.contains("cannot be reverted")));
        assert!(revert_operation(CancelKeyDeletion).is_err());
        assert!(planned_no_op(CancelKeyDeletion, "Disabled", Some("Disabled")));
        assert!(!planned_no_op(CancelKeyDeletion, "Disabled", Some("Enabled")), "needs an EnableKey");
        assert!(planned_no_op(CancelKeyDeletion, "Disabled", None));

        let at = crate::time::from_micros(0);
        let item = |restore_state: Option<&str>, restores_policy| ItemRecord {
            job_id: crate::JobId::new(),
            seq: 0,
            key_id: crate::KeyId::new(),
            status: ItemStatus::Planned,
            attempts: 0,
            detail: None,
            last_error_code: None,
            last_error_message: None,
            state_before: None,
            state_after: None,
            restore_state: restore_state.map(String::from),
            restores_policy,
            updated_at: at,
        };
        let to_enabled = item(Some("Enabled"), false);
        assert_eq!(
            planned_action(CancelKeyDeletion, &to_enabled, Some("PendingDeletion")),
            "cancelkeydeletion, enablekey"
        );
        assert_eq!(planned_action(CancelKeyDeletion, &to_enabled, Some("Enabled")), "none (already Enabled)");
        assert_eq!(planned_action(ApplyPolicyTemplate, &item(None, true), Some("Enabled")), "restore key policy");
        assert_eq!(planned_action(DisableKey, &item(None, false), Some("Enabled")), "disablekey");
        assert_eq!(planned_action(EnableKey, &to_enabled, None), "none (gone)");
    }

    #[test]
    fn a_plan_names_each_items_action() {
        assert_eq!(intended_action(Operation::DisableKey, Some("Enabled")), "disablekey");
        assert_eq!(intended_action(Operation::DisableKey, Some("Disabled")), "none (already Disabled)");
        assert_eq!(intended_action(Operation::CancelKeyDeletion, Some("Enabled")), "none (already Enabled)");
        assert_eq!(intended_action(Operation::ApplyPolicyTemplate, Some("Enabled")), "applypolicytemplate");
        assert_eq!(intended_action(Operation::DeleteKeyBackups, None), "none (gone)");
    }
}
