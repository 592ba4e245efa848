//! The loops: item workers, lease heartbeat, lease reaper.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use keyfleet_core::time::now;
use keyfleet_core::*;
use tokio::sync::watch;

use crate::Engine;

impl Engine {
    pub(crate) async fn worker_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            let lease_until =
                now() + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
            let claimed = match self
                .store
                .claim_items(&self.config.node_id, now(), lease_until, 1)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claiming items failed");
                    Vec::new()
                }
            };
            if claimed.is_empty() {
                let idle = self.idle_wait().await;
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for item in claimed {
                self.process(&item).await;
            }
        }
    }

    /// How long an idle worker may sleep: until the next retry is due, at most `poll_interval`.
    async fn idle_wait(&self) -> Duration {
        match self.store.next_due().await {
            Ok(Some(due)) => (due - now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.config.poll_interval),
            _ => self.config.poll_interval,
        }
        .max(Duration::from_millis(5))
    }

    async fn process(&self, item: &ClaimedItem) {
        let started = std::time::Instant::now();
        // A panic while running an item becomes a recorded failure instead of a dead worker.
        let run = std::panic::AssertUnwindSafe(self.run_aws_item(item))
            .catch_unwind()
            .await;
        let outcome = match run {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, error = %e, "item could not run");
                ItemOutcome::Retry {
                    code: "InternalError".into(),
                    message: e.to_string(),
                    not_before: now() + chrono::Duration::seconds(1),
                }
            }
            Err(_) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, "item panicked");
                ItemOutcome::Failed {
                    code: "InternalError".into(),
                    message: "keyfleet failed while processing this key".into(),
                    state_before: None,
                }
            }
        };
        // An internal error must not loop forever either.
        let outcome = match outcome {
            ItemOutcome::Retry { code, message, .. }
                if item.attempts >= self.config.retry.max_attempts =>
            {
                ItemOutcome::Failed {
                    code,
                    message,
                    state_before: None,
                }
            }
            o => o,
        };
        match self
            .store
            .finish_item(item.job_id, item.seq, &self.config.node_id, &outcome, now())
            .await
        {
            Ok(true) => tracing::debug!(
                bulkjob.id = %item.job_id, key.id = %item.key_id, duration_ms = started.elapsed().as_millis() as u64,
                outcome = ?outcome, "item attempt recorded"
            ),
            Ok(false) => tracing::warn!(
                bulkjob.id = %item.job_id, key.id = %item.key_id, "lease lost before the result was recorded; the item will be reconciled"
            ),
            Err(e) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, error = %e, "recording item result failed")
            }
        }
    }

    pub(crate) async fn heartbeat_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.config.lease_ttl / 3;
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            let until =
                now() + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
            if let Err(e) = self.store.renew_leases(&self.config.node_id, until).await {
                tracing::error!(error = %e, "renewing leases failed");
            }
        }
    }

    pub(crate) async fn reaper_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = (self.config.lease_ttl / 2).max(Duration::from_millis(100));
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            match self.store.release_expired_leases(now()).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(items = n, "returned items with expired leases to pending");
                    self.notify_jobs();
                }
                Err(e) => tracing::error!(error = %e, "releasing expired leases failed"),
            }
        }
    }
}
