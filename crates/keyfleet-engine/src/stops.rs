//! Why a claimed item must not be sent after all. A partition's driver claims items ahead of their cloud
//! calls (`worker.rs`), and the store's stops (a cancel, a failure threshold, refused credentials) reach only
//! items that are still pending. So right before its call each item asks [`Stops::verdict`], from what this
//! node knows: whether its job was cancelled or stopped (read at most [`FRESH`] ago, and read again after any
//! failure of the job on this node), and whether AWS refused its connection's credentials in this job. An
//! item that must not be sent is handed back unsent (`WorkQueue::return_unsent`), and the store's stop
//! applies to it exactly as to a pending item.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use keyfleet_core::{ConnectionId, JobId};
use tokio::time::Instant;

use crate::store::EngineStore;

/// How old a read of a job's abort flag may be when an item decides on its call. Bounds how late a cancel
/// from any node reaches items already claimed here, at one read per job per period however many items
/// run.
const FRESH: Duration = Duration::from_millis(50);
/// Beyond this many jobs known, reads older than [`FORGET`] are dropped.
const MAX_KNOWN: usize = 1024;
const FORGET: Duration = Duration::from_secs(10);

/// The credentials AWS refused for one connection in one job: what the job's other items of it are failed
/// with (`WorkQueue::fail_pending_for_connection`).
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    pub code: String,
    pub message: String,
}

/// Why an item is handed back unsent.
pub(crate) enum Unsent {
    /// Its job was cancelled or stopped by a failure threshold.
    Stopped,
    /// AWS refused the credentials of its connection in this job.
    Refused(ConnectionId, Refused),
}

#[derive(Default)]
pub(crate) struct Stops {
    aborted: Mutex<HashMap<JobId, (Instant, bool)>>,
    refused: Mutex<HashMap<(JobId, ConnectionId), Refused>>,
    /// Jobs with an item that failed on this node: only they can cross a failure threshold, so only their
    /// items wait for their result to be recorded before the next item is sent.
    failing: Mutex<HashSet<JobId>>,
}

impl Stops {
    /// The job's abort flag as read just now (by a claim).
    pub fn learned(&self, job: JobId, aborted: bool) {
        let mut known = self.aborted.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_KNOWN {
            known.retain(|_, (read, _)| read.elapsed() < FORGET);
        }
        known.insert(job, (Instant::now(), aborted));
    }

    /// The job's last read is no longer good enough: an item of it ended while the job has failures, which
    /// may have crossed a failure threshold.
    pub fn forget(&self, job: JobId) {
        self.aborted.lock().unwrap_or_else(|e| e.into_inner()).remove(&job);
    }

    /// An item of `job` failed here.
    pub fn failed(&self, job: JobId) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.len() >= MAX_KNOWN {
            failing.clear(); // forgetting only frees the next item's slot earlier
        }
        failing.insert(job);
    }

    /// Could the job's next ended item stop it (a failure threshold needs failures)?
    pub fn may_stop(&self, job: JobId) -> bool {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).contains(&job)
    }

    /// AWS refused `connection`'s credentials for an item of `job`.
    pub fn refuse(&self, job: JobId, connection: ConnectionId, refused: Refused) {
        let mut known = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_KNOWN {
            known.clear(); // an item that is sent after all fails with the refusal itself
        }
        known.insert((job, connection), refused);
    }

    /// May an item of `job`, reaching its key through `connection`, be sent now? `Err` when the store could
    /// not say (the item is handed back and tried again).
    pub async fn verdict(
        &self,
        store: &dyn EngineStore,
        job: JobId,
        connection: Option<ConnectionId>,
    ) -> Result<Option<Unsent>, keyfleet_store::StoreError> {
        if let Some(c) = connection
            && let Some(r) = self.refused.lock().unwrap_or_else(|e| e.into_inner()).get(&(job, c))
        {
            return Ok(Some(Unsent::Refused(c, r.clone())));
        }
        let known = self.aborted.lock().unwrap_or_else(|e| e.into_inner()).get(&job).copied();
        let aborted = match known {
            Some((read, aborted)) if read.elapsed() < FRESH => aborted,
            _ => {
                let aborted = store.job_aborted(job).await?;
                self.learned(job, aborted);
                aborted
            }
        };
        Ok(aborted.then_some(Unsent::Stopped))
    }
}
