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
