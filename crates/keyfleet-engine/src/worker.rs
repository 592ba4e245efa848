//! Scheduling: a dispatcher starts one driver per rate-limit partition that has work; each driver keeps a
//! few items of its partition in flight. Partitions therefore progress in parallel (ten account-regions
//! finish about ten times faster than one), and a slow or throttled partition never holds workers that
//! another partition could use. Also: the lease heartbeat and the reaper.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tracing::Instrument;

use futures::FutureExt;
use keyfleet_core::*;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use keyfleet_store::{Lease, Refusal};

use crate::Engine;
use crate::cloud::{CLOUDS, ItemResult, Target, cloud};
use crate::record::Finished;
use crate::stops::{Refused, Unsent};

/// How often [`Engine::confirm_lease`] asks the store before it gives up on an item's lease.
const LEASE_ASKS: usize = 3;

/// Most items one claim takes when the partition's last claim held only items that call no cloud
/// ([`Target::calls_cloud`]): they need no cloud slot, so a claim per free slot would only add claims.
const LOCAL_CLAIM: usize = 256;

/// Claims of one partition in flight at once. Each claim takes only cloud slots that are free, so more claims
/// never put an item behind another one's call; they let the slots freed while one claim is on its way to
/// the store be filled by the next instead of waiting for it.
const CLAIMS_IN_FLIGHT: usize = 2;

/// A claimed item with what it needs to run.
struct Ready {
    item: ClaimedItem,
    /// What [`Engine::prepare`] read for it; `Err` when the read failed (the attempt is retried).
    target: Result<Target, String>,
    lease: ItemLease,
    /// The cloud slot taken for it before it was claimed; `None` for items claimed in a large batch because
    /// they call no cloud ([`LOCAL_CLAIM`]): they take a slot when their turn comes.
    slot: Option<OwnedSemaphorePermit>,
}

/// An item's cloud slot while it runs. Freeing it wakes the partition's driver, which may then claim again:
/// an item frees its slot before its result is recorded, and the driver must not wait for the record.
struct CloudSlot {
    _permit: OwnedSemaphorePermit,
    freed: Arc<Notify>,
}

impl Drop for CloudSlot {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

/// What this node knows of its lease on one item: it holds the item at least until [`ItemLease::until`] by
/// its own clock. A claim at `now` leases the item until `now + lease_ttl`, and until that passes nobody
/// takes it away (the heartbeat extends it; the reaper takes only expired leases; cancel and failure
/// thresholds only skip pending items), so the claim's lease end is known without asking the store.
pub(crate) struct ItemLease {
    until_micros: AtomicI64,
}

impl ItemLease {
    fn new(until: chrono::DateTime<chrono::Utc>) -> Self {
        ItemLease { until_micros: AtomicI64::new(time::to_micros(until)) }
    }

    fn until(&self) -> chrono::DateTime<chrono::Utc> {
        time::from_micros(self.until_micros.load(Ordering::Relaxed))
    }

    /// The store confirmed the lease runs at least until `until`.
    fn extend(&self, until: chrono::DateTime<chrono::Utc>) {
        self.until_micros.fetch_max(time::to_micros(until), Ordering::Relaxed);
    }
}

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
                                    // A driver that hands its partition back may leave a retry due in a few
                                    // milliseconds: list again then, not at the next poll (a second later).
                                    let engine = self.clone();
                                    let driver = async move {
                                        driver.await;
                                        engine.wake.notify_one();
                                    };
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

    /// Keeps up to `partition_concurrency` items of one partition at their cloud calls until none is due.
    /// Items are claimed in batches, as many as there are free cloud slots, each claim taking its slots
    /// before it asks the store (claiming further ahead made a node paused past its leases resend an item
    /// another node had already done: the cluster SIGSTOP test failed 2 runs in 8); up to
    /// [`CLAIMS_IN_FLIGHT`] claims are on their way at once, and what a batch needs is read for the whole
    /// batch when it is claimed ([`Engine::prepare`]). Right before its call each item asks whether it may
    /// still be sent ([`crate::stops`]). Each item runs as its own task: an item must never wait for this loop
    /// to poll it (it may hold the store's writer), and a successful item frees its cloud slot before its
    /// result is recorded, so the partition's next call never waits for a commit. A partition whose items call no cloud
    /// (Azure `delete-key-backups`) is claimed [`LOCAL_CLAIM`] items at a time instead.
    async fn drive_partition(self: Arc<Self>, partition: String, stop: watch::Receiver<bool>) {
        let concurrency = self.config.partition_concurrency.max(1);
        let cloud_slots = Arc::new(Semaphore::new(concurrency));
        let slot_freed = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        let mut ready: VecDeque<Ready> = VecDeque::new();
        let mut claims: JoinSet<(usize, Vec<Ready>)> = JoinSet::new();
        // The last claim found fewer items than it asked for: claim again only once an item has finished.
        let mut drained = false;
        // The last claim held only items that call no cloud: claim the next one in a large batch.
        let mut local = false;
        let mut owned = true;
        let mut lease_taken: Option<chrono::DateTime<chrono::Utc>> = None;
        loop {
            let open = owned && !*stop.borrow();
            if !open && !ready.is_empty() {
                // Stopping, or another node drives the partition now: what was claimed but not started goes
                // back unsent, at once instead of when its lease runs out.
                let unsent: Vec<(JobId, i64, i64)> =
                    ready.drain(..).map(|r| (r.item.job_id, r.item.seq, r.item.attempts)).collect();
                let engine = self.clone();
                tasks.spawn(async move { engine.hand_back(&unsent).await });
            }
            // Items claimed with their slot start at once; what is left waits for a slot.
            for mut next in std::mem::take(&mut ready) {
                match next.slot.take() {
                    Some(slot) => self.start_item(&mut tasks, next, slot, &slot_freed),
                    None => ready.push_back(next),
                }
            }
            let free = cloud_slots.available_permits();
            let may_claim = if local {
                claims.is_empty()
            } else {
                // Half the slots at least (or all when none is at a call): a claim and its reads serve several
                // items.
                claims.len() < CLAIMS_IN_FLIGHT && (free >= concurrency.div_ceil(2) || free == concurrency)
            };
            if open && !drained && ready.is_empty() && free > 0 && may_claim {
                // Still ours? A node that was paused past its lease finds another node driving the partition
                // and stops claiming; its in-flight items are fenced by their own leases. Asked again once a
                // third of the lease time has passed: until then the lease taken last is certainly still held.
                let now = self.now();
                if lease_taken.is_none_or(|t| {
                    now >= t + chrono::Duration::from_std(self.config.lease_ttl / 3).unwrap_or_default()
                }) {
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
                    lease_taken = Some(now);
                }
                let claim = if local {
                    self.clone().claim(partition.clone(), LOCAL_CLAIM, None)
                } else {
                    let slots = cloud_slots.clone().try_acquire_many_owned(free as u32).ok();
                    self.clone().claim(partition.clone(), free, slots)
                };
                claims.spawn(claim);
            }
            if claims.is_empty() && ready.is_empty() && tasks.is_empty() && (drained || !open) {
                // Nothing in flight and nothing due: hand the partition back; the dispatcher restarts a driver
                // (here or on another node) when there is work again.
                if owned && let Err(e) = self.store.release_partition(&partition, &self.config.node_id).await {
                    tracing::error!(partition, error = %e, "releasing a partition lease failed");
                }
                return;
            }
            tokio::select! {
                biased; // a fixed polling order: simulated runs replay exactly
                Some(claimed) = claims.join_next(), if !claims.is_empty() => match claimed {
                    Ok((asked, batch)) => {
                        drained = batch.len() < asked;
                        local = !batch.is_empty()
                            && batch.iter().all(|r| r.target.as_ref().is_ok_and(|t| !t.calls_cloud()));
                        ready.extend(batch);
                    }
                    Err(e) => {
                        tracing::error!(partition, error = %e, "claiming items failed");
                        drained = true;
                    }
                },
                slot = cloud_slots.clone().acquire_owned(), if !ready.is_empty() => {
                    if let (Ok(slot), Some(next)) = (slot, ready.pop_front()) {
                        self.start_item(&mut tasks, next, slot, &slot_freed);
                    }
                }
                // An item freed its cloud slot, its result maybe still on its way to the store: a claim may go.
                _ = slot_freed.notified(), if !drained && !tasks.is_empty() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => drained = false,
            }
        }
    }

    /// Starts one item's attempt as its own task, holding its cloud slot.
    fn start_item(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        next: Ready,
        slot: OwnedSemaphorePermit,
        freed: &Arc<Notify>,
    ) {
        let slot = CloudSlot { _permit: slot, freed: freed.clone() };
        // Every log line of the item (its cloud calls included) names the job and the request that created it.
        let span = tracing::info_span!(
            "item",
            bulkjob.id = %next.item.job_id,
            request.id = next.item.params.request_id.as_deref().unwrap_or_default(),
        );
        tasks.spawn(self.clone().process(next, slot).instrument(span));
    }

    /// Claims up to `n` due items of the partition and reads what they need. Returns `n` and the items; each
    /// item takes one of `slots` (taken for the claim), the rest are given back.
    async fn claim(
        self: Arc<Self>,
        partition: String,
        n: usize,
        mut slots: Option<OwnedSemaphorePermit>,
    ) -> (usize, Vec<Ready>) {
        let lease = self.lease();
        let until = lease.until;
        let items = match self.store.claim_items(&partition, lease, n as u32).await {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(partition, error = %e, "claiming items failed");
                return (n, Vec::new());
            }
        };
        let prepared = self.prepare(&items).await;
        let mut slot = || match slots.as_mut() {
            Some(s) if s.num_permits() > 1 => s.split(1),
            _ => slots.take(),
        };
        let ready = items
            .into_iter()
            .zip(prepared)
            .map(|(item, target)| Ready { item, target, lease: ItemLease::new(until), slot: slot() })
            .collect();
        (n, ready)
    }

    /// What a claim's items need, read for all of them at once: whether each job was cancelled (or stopped by
    /// a failure threshold: one read per job, which [`crate::stops`] keeps), and each cloud's targets
    /// ([`Cloud::prepare`]: the AWS keys and their containers, connections and clients; the Azure backups). An
    /// `Err` target is a read that failed.
    ///
    /// [`Cloud::prepare`]: crate::cloud::Cloud::prepare
    async fn prepare(&self, items: &[ClaimedItem]) -> Vec<Result<Target, String>> {
        // The two reads are independent: they go to the store side by side.
        let stops = async {
            let mut aborted: HashMap<JobId, Result<(), String>> = HashMap::new();
            for item in items {
                if let std::collections::hash_map::Entry::Vacant(job) = aborted.entry(item.job_id) {
                    let read = self.store.job_aborted(item.job_id).await;
                    job.insert(read.map(|a| self.stops.learned(item.job_id, a)).map_err(|e| e.to_string()));
                }
            }
            aborted
        };
        let targets = async {
            let mut targets: Vec<Option<Result<Target, String>>> = items.iter().map(|_| None).collect();
            for c in CLOUDS {
                let mine: Vec<usize> =
                    (0..items.len()).filter(|&k| cloud(items[k].operation.cloud()).id() == c.id()).collect();
                if mine.is_empty() {
                    continue;
                }
                let batch: Vec<&ClaimedItem> = mine.iter().map(|&k| &items[k]).collect();
                match c.prepare(self, &batch).await {
                    Ok(found) => mine.into_iter().zip(found).for_each(|(k, t)| targets[k] = Some(Ok(t))),
                    Err(e) => mine.into_iter().for_each(|k| targets[k] = Some(Err(e.to_string()))),
                }
            }
            targets
        };
        let (aborted, targets) = futures::join!(stops, targets);
        items
            .iter()
            .zip(targets)
            .map(|(item, target)| match (&aborted[&item.job_id], target) {
                (Err(e), _) => Err(e.clone()),
                (Ok(()), Some(target)) => target,
                (Ok(()), None) => Err("no cloud prepared this item".into()),
            })
            .collect()
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

    /// Is the item still this node's, for a state-changing call now? Answered from the node's own knowledge
    /// ([`ItemLease`]) while more than a quarter of the lease time is left of it: that quarter covers clock
    /// skew between nodes and the time from this check until the call reaches the cloud. Otherwise the store
    /// is asked whether the lease runs at least another half of the lease time, and the knowledge moves on.
    ///
    /// A store's answer is judged by the clock when it arrives, not when it was asked: a node paused while the
    /// answer was on its way (SIGSTOP, a stalled VM) would otherwise send on a "yes" given before its lease ran
    /// out, after another node had taken the item and made the change. An answer that comes too late to
    /// leave a quarter of the lease is asked again, at most [`LEASE_ASKS`] times.
    pub(crate) async fn confirm_lease(&self, item: &ClaimedItem, lease: &ItemLease) -> bool {
        let ttl = chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
        for asked in 0..=LEASE_ASKS {
            if self.now() + ttl / 4 < lease.until() {
                return true;
            }
            if asked == LEASE_ASKS {
                break;
            }
            let horizon = self.now() + ttl / 2;
            match self.store.holds_item(item.job_id, item.seq, item.attempts, &self.config.node_id, horizon).await {
                Ok(true) => lease.extend(horizon),
                Ok(false) => return false,
                Err(e) => {
                    tracing::error!(bulkjob.id = %item.job_id, error = %e, "checking an item lease failed");
                    return false;
                }
            }
        }
        tracing::warn!(bulkjob.id = %item.job_id, "the store confirmed the item's lease too late each time; not sent");
        false
    }

    /// The latest instant a state-changing call of an item may leave this node: while more than a quarter of
    /// the lease is known to be left ([`Engine::confirm_lease`]'s margin), on the runtime's monotonic clock.
    pub(crate) fn send_deadline(&self, lease: &ItemLease) -> tokio::time::Instant {
        let ttl = chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default();
        let left = (lease.until() - ttl / 4 - self.now()).to_std().unwrap_or_default();
        tokio::time::Instant::now() + left
    }

    /// A failed read or run of an item: retried a second later, or failed once the attempts are spent.
    fn internal_error(&self, item: &ClaimedItem, message: String) -> ItemResult {
        let outcome = if item.attempts >= self.config.retry.max_attempts {
            ItemOutcome::Failed { code: "InternalError".into(), message, state_before: None }
        } else {
            ItemOutcome::Retry {
                code: "InternalError".into(),
                message,
                not_before: self.now() + chrono::Duration::seconds(1),
            }
        };
        outcome.into()
    }

    async fn process(self: Arc<Self>, ready: Ready, cloud_slot: CloudSlot) {
        let _permit = self.slots.acquire().await;
        let started = std::time::Instant::now();
        let Ready { item, target, lease, .. } = ready;
        let result = match target {
            Err(e) => {
                tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, error = %e, "item could not be read");
                self.internal_error(&item, e)
            }
            Ok(target) => {
                // A stop of the job, or a refusal of the credentials, since the claim: nothing is sent.
                match self.stops.verdict(self.store.as_ref(), item.job_id, target.connection()).await {
                    Ok(None) => {}
                    Ok(Some(why)) => return self.not_sent(&item, why).await,
                    Err(e) => {
                        // Not known whether the job stopped: the item goes back and is due again at once.
                        tracing::error!(bulkjob.id = %item.job_id, error = %e, "reading whether the job stopped failed");
                        self.hand_back(&[(item.job_id, item.seq, item.attempts)]).await;
                        self.notify_jobs();
                        return;
                    }
                }
                // A panic while running an item becomes a recorded failure instead of a dead driver.
                let cloud = cloud(item.operation.cloud());
                let run = std::panic::AssertUnwindSafe(cloud.run_item(&self, &item, target, &lease));
                match run.catch_unwind().await {
                    Ok(Ok(result)) => result,
                    Ok(Err(e)) => {
                        tracing::error!(bulkjob.id = %item.job_id, key.id = %item.key_id, error = %e, "item could not run");
                        self.internal_error(&item, e.to_string())
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
                }
            }
        };
        // The partition's next item may call the cloud while this one is recorded, unless this one may stop
        // something: once its job has failures, any ended item may cross a failure threshold (a percentage is
        // judged on every ended item), and refused credentials stop their connection. The next item must know
        // that before it is sent.
        if matches!(result.outcome, ItemOutcome::Failed { .. }) {
            self.stops.failed(item.job_id);
        }
        let may_stop = self.stops.may_stop(item.job_id);
        let cloud_slot = if may_stop {
            Some(cloud_slot)
        } else {
            drop(cloud_slot);
            None
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
            attempt: item.attempts,
            outcome: result.outcome,
            refreshed_key: result.refreshed_key,
            deleted_backup: result.deleted_backup,
            cloud_calls: result.cloud_calls,
            policy_before: result.policy_before,
        };
        match self.recorder.record(self.store.as_ref(), &self.config.node_id, || self.now(), finished, may_stop).await {
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
        if may_stop {
            self.stops.forget(item.job_id);
        }
        if let (Some((connection, name)), Some((code, message))) = (refused, failure) {
            let why = format!("not attempted: AWS refused the credentials of connection {name}: {message}");
            let refused = Refused { code, message: why };
            self.stops.refuse(item.job_id, connection, refused.clone());
            self.fail_refused(item.job_id, connection, &refused).await;
        }
        drop(cloud_slot);
    }

    /// Hands an item back unsent ([`crate::stops`]); after a refusal of its credentials it is then failed with
    /// the job's other pending items of that connection, as the first refusal failed them.
    async fn not_sent(&self, item: &ClaimedItem, why: Unsent) {
        self.hand_back(&[(item.job_id, item.seq, item.attempts)]).await;
        if let Unsent::Refused(connection, refused) = why {
            self.fail_refused(item.job_id, connection, &refused).await;
        }
    }

    /// Returns claimed items that were never sent to pending ([`WorkQueue::return_unsent`]); one whose return
    /// fails stays claimed until its lease runs out.
    ///
    /// [`WorkQueue::return_unsent`]: keyfleet_store::WorkQueue::return_unsent
    async fn hand_back(&self, items: &[(JobId, i64, i64)]) {
        let mut by_job: std::collections::BTreeMap<JobId, Vec<(i64, i64)>> = std::collections::BTreeMap::new();
        items.iter().for_each(|&(job, seq, attempt)| by_job.entry(job).or_default().push((seq, attempt)));
        for (job, seqs) in by_job {
            if let Err(e) = self.store.return_unsent(job, &seqs, &self.config.node_id, self.now()).await {
                tracing::error!(bulkjob.id = %job, items = seqs.len(), error = %e, "handing back unsent items failed");
            }
        }
    }

    /// Fails the job's pending items of a connection whose credentials AWS refused, without calls.
    async fn fail_refused(&self, job: JobId, connection: ConnectionId, refused: &Refused) {
        let refusal = Refusal { connection, code: &refused.code, message: &refused.message };
        match self.store.fail_pending_for_connection(job, &refusal, self.now()).await {
            Ok(n) if n > 0 => tracing::warn!(
                bulkjob.id = %job, connection = %connection, items = n,
                "credentials refused: the connection's remaining items were failed without calls"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(bulkjob.id = %job, error = %e, "failing the connection's items failed"),
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
