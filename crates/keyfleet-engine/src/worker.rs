//! Scheduling: a dispatcher starts one driver per rate-limit partition that has work; each driver keeps a
//! few items of its partition in flight. Partitions therefore progress in parallel (ten account-regions
//! finish about ten times faster than one), and a slow or throttled partition never holds workers that
//! another partition could use. Also: the lease heartbeat and the reaper.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use futures::FutureExt;
use keyfleet_core::*;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use keyfleet_store::{Lease, Refusal};

use crate::Engine;
use crate::cloud::cloud;
use crate::record::Finished;

impl Engine {
    pub(crate) async fn dispatch_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut drivers: HashMap<String, JoinHandle<()>> = HashMap::new();
        while !*stop.borrow() {
            drivers.retain(|_, h| !h.is_finished());
            let mut sleep = self.config.poll_interval;
            match self.store.pending_partitions().await {
                Ok(parts) => {
                    let t = self.now();
                    for (partition, due) in parts {
                        if drivers.contains_key(&partition) {
                            continue;
                        }
                        if due <= t {
                            // One node at a time drives a partition, so the cloud's quota holds cluster-wide.
                            match self.store.acquire_partition(&partition, self.partition_lease()).await {
                                Ok(true) => {
                                    let driver = self.clone().drive_partition(partition.clone(), stop.clone());
                                    drivers.insert(partition, tokio::spawn(driver));
                                }
                                Ok(false) => {} // another node drives it
                                Err(e) => tracing::error!(partition, error = %e, "taking a partition lease failed"),
                            }
                        } else if let Ok(wait) = (due - t).to_std() {
                            sleep = sleep.min(wait);
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "listing partitions with work failed"),
            }
            tokio::select! {
                biased; // a fixed polling order: simulated runs replay exactly
                _ = self.wake.notified() => {}
                _ = self.store.job_announced() => {}
                _ = tokio::time::sleep(sleep.max(Duration::from_millis(5))) => {}
                _ = stop.changed() => {}
            }
        }
        // Let every driver record its in-flight items.
        for (_, h) in drivers {
            let _ = h.await;
        }
    }

    /// Keeps up to `partition_concurrency` items of one partition in flight until none is due. Each item runs
    /// as its own task: an item must never wait for this loop to poll it (it may hold the store's writer).
    async fn drive_partition(self: Arc<Self>, partition: String, stop: watch::Receiver<bool>) {
        let mut running = JoinSet::new();
        let mut owned = true;
        loop {
            let free = self.config.partition_concurrency.saturating_sub(running.len());
            if free > 0 && owned && !*stop.borrow() {
                // Still ours? A node that was paused past its lease finds another node driving the partition
                // and stops claiming; its in-flight items are fenced by their own leases.
                owned = match self.store.acquire_partition(&partition, self.partition_lease()).await {
                    Ok(owned) => owned,
                    Err(e) => {
                        tracing::error!(partition, error = %e, "renewing a partition lease failed");
                        false
                    }
                };
                if !owned {
                    tracing::warn!(partition, "partition lease lost to another node; finishing in-flight items");
                    continue;
                }
                match self.store.claim_items(&partition, self.lease(), free as u32).await {
                    Ok(items) => {
                        for item in items {
                            // Every log line of the item (its cloud calls included) names the job and the
                            // request that created it.
                            let span = tracing::info_span!(
                                "item",
                                bulkjob.id = %item.job_id,
                                request.id = item.params.request_id.as_deref().unwrap_or_default(),
                            );
                            running.spawn(self.clone().process(item).instrument(span));
                        }
                    }
                    Err(e) => tracing::error!(partition, error = %e, "claiming items failed"),
                }
            }
            if running.join_next().await.is_none() {
                // Nothing in flight and nothing due: hand the partition back; the dispatcher restarts a driver
                // (here or on another node) when there is work again.
                if owned && let Err(e) = self.store.release_partition(&partition, &self.config.node_id).await {
                    tracing::error!(partition, error = %e, "releasing a partition lease failed");
                }
                return;
            }
        }
    }

    /// A partition lease for this node. Leases that expired before its `now` may be taken over; a single node
    /// (SQLite) may take any: a lease not its own was left by its previous run.
    fn partition_lease(&self) -> Lease<'_> {
        let lease = self.lease();
        if self.config.reclaim_all_on_start {
            Lease { now: lease.now + chrono::Duration::days(36_500), ..lease }
        } else {
            lease
        }
    }

    async fn process(self: Arc<Self>, item: ClaimedItem) {
        let _permit = self.slots.acquire().await;
        let started = std::time::Instant::now();
        // A panic while running an item becomes a recorded failure instead of a dead driver.
        let cloud = cloud(item.operation.cloud());
        let run = std::panic::AssertUnwindSafe(cloud.run_item(&self, &item)).catch_unwind().await;
        let result = match run {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, error = %e, "item could not run");
                let outcome = if item.attempts >= self.config.retry.max_attempts {
                    ItemOutcome::Failed { code: "InternalError".into(), message: e.to_string(), state_before: None }
                } else {
                    ItemOutcome::Retry {
                        code: "InternalError".into(),
                        message: e.to_string(),
                        not_before: self.now() + chrono::Duration::seconds(1),
                    }
                };
                outcome.into()
            }
            Err(_) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, "item panicked");
                ItemOutcome::Failed {
                    code: "InternalError".into(),
                    message: "keyfleet failed while processing this key".into(),
                    state_before: None,
                }
                .into()
            }
        };
        let outcome = match &result.outcome {
            ItemOutcome::Succeeded { .. } => "succeeded",
            ItemOutcome::Failed { .. } => "failed",
            ItemOutcome::Retry { .. } => "retry",
            ItemOutcome::Skipped { .. } => "skipped",
        };
        let op = item.operation;
        self.metrics.items.inc([op.cloud(), op.as_str(), outcome]);
        if outcome == "retry" {
            self.metrics.cloud_retries.inc([op.cloud(), op.cloud_action()]);
        }
        let refused = result.refused_connection;
        let failure = match &result.outcome {
            ItemOutcome::Failed { code, message, .. } => Some((code.clone(), message.clone())),
            _ => None,
        };
        let finished = Finished {
            job: item.job_id,
            seq: item.seq,
            outcome: result.outcome,
            refreshed_key: result.refreshed_key,
            deleted_backup: result.deleted_backup,
            cloud_calls: result.cloud_calls,
            policy_before: result.policy_before,
        };
        match self.recorder.record(self.store.as_ref(), &self.config.node_id, || self.now(), finished).await {
            Ok(true) => tracing::debug!(
                bulkjob.id = %item.job_id, key.id = %item.key_id, duration_ms = started.elapsed().as_millis() as u64,
                "item attempt recorded"
            ),
            Ok(false) => tracing::warn!(
                bulkjob.id = %item.job_id, key.id = %item.key_id,
                "lease lost before the result was recorded; the item will be reconciled"
            ),
            Err(e) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, error = %e, "recording item result failed")
            }
        }
        if let (Some((connection, name)), Some((code, message))) = (&refused, &failure) {
            let why = format!("not attempted: AWS refused the credentials of connection {name}: {message}");
            let refusal = Refusal { connection: *connection, code, message: &why };
            match self.store.fail_pending_for_connection(item.job_id, &refusal, self.now()).await {
                Ok(n) if n > 0 => tracing::warn!(
                    bulkjob.id = %item.job_id, connection = %name, items = n,
                    "credentials refused: the connection's remaining items were failed without calls"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(bulkjob.id = %item.job_id, error = %e, "failing the connection's items failed")
                }
            }
        }
    }

    /// Counts one cloud call: its outcome (`ok` or the error's kind), its latency, and a throttle.
    pub(crate) fn count_call<T>(
        &self,
        cloud: &str,
        action: &str,
        result: &Result<T, keyfleet_clouds::CloudError>,
        took: Duration,
    ) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => error_kind_label(e.kind),
        };
        self.metrics.cloud_calls.inc([cloud, action, outcome]);
        self.metrics.cloud_call_seconds.observe([cloud, action], took);
        if matches!(result, Err(e) if e.kind == keyfleet_clouds::ErrorKind::Throttled) {
            self.metrics.cloud_throttles.inc([cloud, action]);
        }
    }

    /// Runs one cloud call and counts it ([`Engine::count_call`]).
    pub(crate) async fn timed<T>(
        &self,
        cloud: &str,
        action: &str,
        call: impl std::future::Future<Output = Result<T, keyfleet_clouds::CloudError>>,
    ) -> Result<T, keyfleet_clouds::CloudError> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.count_call(cloud, action, &result, started.elapsed());
        result
    }

    pub(crate) async fn heartbeat_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = self.config.lease_ttl / 3;
        while !*stop.borrow() {
            tokio::select! {
                biased; // a fixed polling order: simulated runs replay exactly
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            let at = self.now();
            let until = self.lease().until;
            let items = self.store.renew_leases(&self.config.node_id, until).await;
            if let Err(e) = &items {
                tracing::error!(error = %e, "renewing leases failed");
            }
            let partitions = self.store.renew_partitions(&self.config.node_id, until).await;
            if let Err(e) = &partitions {
                tracing::error!(error = %e, "renewing partition leases failed");
            }
            if let (Ok(items), Ok(partitions)) = (items, partitions) {
                self.renewed(at, items, partitions);
            }
        }
    }

    pub(crate) async fn reaper_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = (self.config.lease_ttl / 2).max(Duration::from_millis(100));
        while !*stop.borrow() {
            tokio::select! {
                biased; // a fixed polling order: simulated runs replay exactly
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
            match self.store.release_expired_leases(self.now()).await {
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

/// The `outcome` label of a failed cloud call.
fn error_kind_label(kind: keyfleet_clouds::ErrorKind) -> &'static str {
    use keyfleet_clouds::ErrorKind::*;
    match kind {
        Throttled => "throttled",
        Transient => "transient",
        Unauthorized => "unauthorized",
        NotFound => "not_found",
        InvalidState => "invalid_state",
        Rejected => "rejected",
    }
}
