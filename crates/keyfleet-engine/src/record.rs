//! Group commit of item results. Every finished attempt joins a queue; whoever takes the flush lock writes
//! everything queued so far, one transaction per job ([`WorkQueue::finish_items`]), and hands each attempt
//! its own answer. While one batch commits the next one gathers, so under load a commit (an fsync on
//! SQLite, a lock of the job row on PostgreSQL) serves many items; a leader that finds few results queued
//! waits [`LINGER`] for more first, unless one of them is urgent (its item keeps its cloud slot until it is
//! recorded).
//!
//! Crash safety is unchanged: a result is only ever lost before its commit, and an item whose result was
//! lost is still `running` under a lease that expires; its next attempt reconciles with the cloud first.
//!
//! [`WorkQueue::finish_items`]: keyfleet_store::WorkQueue::finish_items

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use keyfleet_core::{AwsKeyMaterial, BackupId, ItemOutcome, JobId, KeyId};
use keyfleet_store::{CloudCall, FinishedBatch, FinishedItem, ItemEffect};
use tokio::sync::oneshot;

use crate::store::EngineStore;

/// Most items written in one transaction: keeps each transaction (and the job row lock) short.
const MAX_BATCH: usize = 256;

/// A leader that finds fewer than [`GATHER`] results queued waits this long for more before it writes, unless
/// a queued result is urgent. An item frees its cloud slot before its result is recorded, so the wait delays
/// no call; it makes transactions fewer and larger (measured: 12-25 results per transaction instead of 5-8),
/// which leaves the store's one writer (SQLite) free for claims more often.
const LINGER: std::time::Duration = std::time::Duration::from_millis(2);
const GATHER: usize = 32;

/// One attempt waiting to be recorded.
pub(crate) struct Finished {
    pub job: JobId,
    pub seq: i64,
    /// The claim's attempt number: the result is written only onto that claim.
    pub attempt: i64,
    pub outcome: ItemOutcome,
    pub refreshed_key: Option<(KeyId, AwsKeyMaterial)>,
    pub deleted_backup: Option<BackupId>,
    pub cloud_calls: Vec<CloudCall>,
    pub policy_before: Option<String>,
}

impl Finished {
    fn effect(&self) -> ItemEffect<'_> {
        match (&self.refreshed_key, self.deleted_backup) {
            (Some((id, m)), _) => ItemEffect::RefreshAwsKey(*id, m),
            (None, Some(backup)) => ItemEffect::DeleteBackup(backup),
            (None, None) => ItemEffect::None,
        }
    }
}

/// Whether an attempt was recorded: `Ok(false)` when its lease was lost first.
pub(crate) type Recorded = Result<bool, String>;

struct Queued {
    finished: Finished,
    /// Something waits for this result (the item holds its cloud slot until it is recorded).
    urgent: bool,
    done: oneshot::Sender<Recorded>,
}

#[derive(Default)]
pub(crate) struct Recorder {
    queue: Mutex<Vec<Queued>>,
    flush: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// Records one attempt, fenced by `owner`'s lease, together with whatever else is queued. An `urgent`
    /// attempt is written without waiting for others to join it ([`LINGER`]).
    pub async fn record(
        &self,
        store: &dyn EngineStore,
        owner: &str,
        now: impl Fn() -> DateTime<Utc>,
        finished: Finished,
        urgent: bool,
    ) -> Recorded {
        let (done, mut answer) = oneshot::channel();
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(Queued { finished, urgent, done });
        loop {
            match answer.try_recv() {
                Ok(recorded) => return recorded,
                Err(oneshot::error::TryRecvError::Closed) => {
                    return Err("the batch holding this result was interrupted".into());
                }
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let _leader = self.flush.lock().await;
            if let Ok(recorded) = answer.try_recv() {
                return recorded; // written by the previous leader
            }
            let gather = {
                let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                queue.len() < GATHER && !queue.iter().any(|q| q.urgent)
            };
            if gather {
                tokio::time::sleep(LINGER).await;
            }
            let batch: Vec<Queued> = {
                let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            };
            write(store, owner, now(), batch).await;
        }
    }
}

/// Writes a batch: one transaction per job, in the order the attempts finished.
async fn write(store: &dyn EngineStore, owner: &str, at: DateTime<Utc>, mut batch: Vec<Queued>) {
    while let Some(job) = batch.first().map(|q| q.finished.job) {
        let (mine, rest): (Vec<Queued>, Vec<Queued>) = batch.into_iter().partition(|q| q.finished.job == job);
        batch = rest;
        let items: Vec<FinishedItem<'_>> = mine
            .iter()
            .map(|q| FinishedItem {
                seq: q.finished.seq,
                attempt: Some(q.finished.attempt),
                outcome: &q.finished.outcome,
                effect: q.finished.effect(),
                cloud_calls: &q.finished.cloud_calls,
                policy_before: q.finished.policy_before.as_deref(),
            })
            .collect();
        let recorded = store.finish_items(&FinishedBatch { job, owner, at, items: &items }).await;
        drop(items);
        for (i, q) in mine.into_iter().enumerate() {
            let answer = match &recorded {
                Ok(flags) => Ok(flags.get(i).copied().unwrap_or(false)),
                Err(e) => Err(e.to_string()),
            };
            let _ = q.done.send(answer); // the attempt may have stopped waiting (shutdown)
        }
    }
}
