//! Key synchronization: read every key of a job's targets (AWS account/regions, Azure vaults) into the
//! inventory. A job covers several targets at once (each is its own quota partition) and records each
//! target's result in `detailed_status` as it finishes, so an interrupted job resumes with the targets
//! without a result. What a target is and how it is read is the cloud's (`aws/sync.rs`, `azure/sync.rs`);
//! every call is paced and retried (`retry.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use futures::future::BoxFuture;
use keyfleet_core::*;
use tokio::sync::watch;

use crate::cloud::{SyncStep, cloud};
use crate::{Engine, EngineError};

/// Targets of one sync job read at the same time (each is its own quota: an account-region, a vault).
const TARGET_CONCURRENCY: usize = 16;

impl Engine {
    pub(crate) async fn sync_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            match self.store.claim_sync_job(self.lease()).await {
                Ok(Some(job)) => {
                    let id = job.id;
                    if let Err(e) = self.run_sync_job(job).await {
                        tracing::error!(sync.id = %id, error = %e, "sync job failed");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        biased; // a fixed polling order: simulated runs replay exactly
                        _ = self.sync_wake.notified() => {}
                        _ = tokio::time::sleep(self.config.poll_interval) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming sync job failed");
                    tokio::time::sleep(self.config.poll_interval).await;
                }
            }
        }
    }

    async fn run_sync_job(&self, job: SyncJobRecord) -> Result<(), EngineError> {
        let owner = self.config.node_id.clone();
        let snapshot = job.clone();
        let steps = cloud(&job.cloud).sync_steps(self, &snapshot).await?;
        // Each target records its result as it finishes, inside its own future: the stream of targets must
        // keep being polled while one of them writes (a target may hold the store's writer meanwhile). The
        // lock orders the writes, so every write carries every result so far.
        let record = tokio::sync::Mutex::new(job);
        let (lost, aborted) = (AtomicBool::new(false), AtomicBool::new(false));
        let mut left: Vec<BoxFuture<'_, Result<(), EngineError>>> = Vec::new();
        for SyncStep { label, run } in steps {
            // Targets done before an interruption are not read again.
            if snapshot.detailed_status.contains_key(&label) {
                continue;
            }
            let (record, lost, aborted, owner) = (&record, &lost, &aborted, &owner);
            left.push(Box::pin(async move {
                let text = run.await?;
                let mut job = record.lock().await;
                if lost.load(Ordering::Relaxed) || aborted.load(Ordering::Relaxed) {
                    return Ok(());
                }
                job.detailed_status.insert(label, text);
                job.updated_at = self.now();
                let lease = self.after(self.config.lease_ttl);
                if !self.store.update_sync_job(&job, owner, lease).await? {
                    lost.store(true, Ordering::Relaxed); // another node carries on
                } else if self.store.get_sync_job(job.id).await?.is_some_and(|j| j.abort) {
                    aborted.store(true, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
        let mut running = futures::stream::iter(left).buffer_unordered(TARGET_CONCURRENCY);
        while let Some(done) = running.next().await {
            done?;
            // Lost or cancelled: the targets still running are dropped unwritten (each writes in one
            // transaction).
            if lost.load(Ordering::Relaxed) || aborted.load(Ordering::Relaxed) {
                break;
            }
        }
        drop(running);
        if lost.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut job = record.into_inner();
        job.abort |= aborted.load(Ordering::Relaxed);
        let any_failed = job.detailed_status.values().any(|v| v != "Success");
        let all_failed = !job.detailed_status.is_empty() && job.detailed_status.values().all(|v| v != "Success");
        job.status = if job.abort {
            JobStatus::Cancelled
        } else if all_failed {
            JobStatus::Failed
        } else {
            JobStatus::Completed
        };
        if any_failed && !all_failed {
            tracing::warn!(sync.id = %job.id, "some regions failed to synchronize");
        }
        job.updated_at = self.now();
        job.completed_at = Some(job.updated_at);
        self.store.update_sync_job(&job, &owner, job.updated_at).await?;
        Ok(())
    }
}

/// Keys a sync target writes per transaction while its reads go on.
const WRITTEN_PER_PART: usize = 1_000;

/// Stores a target's keys while they are still being read: every [`WRITTEN_PER_PART`] keys read go to
/// `write(part, false)` (new and known keys only), and the rest, once the reads end, to `write(rest, true)`,
/// which also marks gone what the target no longer holds. Reading does not wait for the writes (a slow write
/// only holds the reads once two parts wait). A read that fails stops the target: what was written stays
/// (it is what the cloud holds), and nothing is marked gone. `None` reads (a key that vanished meanwhile) are
/// skipped. Returns (added, updated, gone).
pub(crate) async fn store_while_reading<M, E, W, Fut>(
    reads: impl futures::Stream<Item = Result<Option<M>, keyfleet_clouds::CloudError>>,
    write: W,
) -> Result<(u64, u64, u64), E>
where
    E: From<keyfleet_clouds::CloudError> + From<EngineError>,
    W: Fn(Vec<M>, bool) -> Fut,
    Fut: std::future::Future<Output = Result<(u64, u64, u64), EngineError>>,
{
    let (parts_tx, mut parts) = futures::channel::mpsc::channel::<Vec<M>>(1);
    let read = async move {
        let mut parts_tx = parts_tx;
        let mut part = Vec::with_capacity(WRITTEN_PER_PART);
        futures::pin_mut!(reads);
        while let Some(read) = reads.next().await {
            part.extend(read?);
            if part.len() == WRITTEN_PER_PART {
                let full = std::mem::replace(&mut part, Vec::with_capacity(WRITTEN_PER_PART));
                if futures::SinkExt::send(&mut parts_tx, full).await.is_err() {
                    break; // a write failed: its error is the target's
                }
            }
        }
        Ok::<_, keyfleet_clouds::CloudError>(part)
    };
    let write = &write;
    // Owns the receiving end: a write that fails drops it, and the reads stop at their next part.
    let written = async move {
        let (mut added, mut updated) = (0, 0);
        while let Some(part) = parts.next().await {
            let (a, u, _) = write(part, false).await?;
            (added, updated) = (added + a, updated + u);
        }
        Ok::<_, EngineError>((added, updated))
    };
    let (rest, written) = futures::join!(read, written);
    let (added, updated) = written?;
    let (a, u, gone) = write(rest?, true).await?;
    Ok((added + a, updated + u, gone))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use keyfleet_clouds::{CloudError, ErrorKind};

    use super::*;

    /// `n` reads (every tenth a key that vanished); the read at `fail_at` fails.
    fn reads(n: usize, fail_at: Option<usize>) -> impl futures::Stream<Item = Result<Option<usize>, CloudError>> {
        futures::stream::iter((0..n).map(move |k| match k {
            _ if Some(k) == fail_at => Err(CloudError::new(ErrorKind::Transient, "InternalError", "boom")),
            _ if k % 10 == 9 => Ok(None),
            _ => Ok(Some(k)),
        }))
    }

    #[tokio::test]
    async fn keys_are_stored_in_parts_and_only_the_last_write_ends_the_listing() {
        let writes = Mutex::new(Vec::new());
        let write = |part: Vec<usize>, complete: bool| {
            writes.lock().expect("writes").push((part.len(), complete));
            async move { Ok((part.len() as u64, 1, u64::from(complete))) }
        };
        let counts = store_while_reading::<_, EngineError, _, _>(reads(2_500, None), write).await.expect("stored");
        assert_eq!(*writes.lock().expect("writes"), vec![(1_000, false), (1_000, false), (250, true)]);
        assert_eq!(counts, (2_250, 3, 1));
    }

    #[tokio::test]
    async fn a_failed_read_keeps_what_was_stored_and_ends_nothing() {
        let writes = Mutex::new(Vec::new());
        let write = |part: Vec<usize>, complete: bool| {
            writes.lock().expect("writes").push((part.len(), complete));
            async move { Ok((0, 0, 0)) }
        };
        let failed = store_while_reading::<_, EngineError, _, _>(reads(2_500, Some(1_500)), write).await;
        assert!(matches!(failed, Err(EngineError::Cloud(e)) if e.code == "InternalError"));
        assert_eq!(*writes.lock().expect("writes"), vec![(1_000, false)], "no write marks anything gone");
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_reads() {
        let write = |_: Vec<usize>, _: bool| async { Err(EngineError::Missing("the store went away".into())) };
        let failed = store_while_reading::<_, EngineError, _, _>(reads(100_000, None), write).await;
        assert!(matches!(failed, Err(EngineError::Missing(_))));
    }
}
