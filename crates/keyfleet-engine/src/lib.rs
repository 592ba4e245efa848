#![doc = include_str!("../README.md")]

pub mod aws;
pub mod azure;
pub mod clock;
mod cloud;
pub mod pacing;
mod record;
mod resolve;
pub mod retry;
mod stops;
pub mod store;
mod sync;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use keyfleet_clouds::{AwsKmsConnector, KeyVaultConnector};
use keyfleet_core::crypto::{CryptoError, MasterKey};
use keyfleet_core::metrics::Metrics;
use keyfleet_store::StoreError;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

pub use aws::POLICY_TEMPLATE_TAG;
use clock::{Clock, SystemClock};
use pacing::Pacer;
use resolve::{ClientCache, Resolver};
use retry::RetryPolicy;
use store::EngineStore;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Something the item refers to is no longer there.
    #[error("{0}")]
    Missing(String),
    /// A cloud call failed for good (after the retries the policy allows).
    #[error(transparent)]
    Cloud(#[from] keyfleet_clouds::CloudError),
}

/// How the engine runs. Defaults suit one node with AWS's default quotas.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This node's name in leases; must differ between nodes and between runs.
    pub node_id: String,
    /// Items in flight at once on this node, over all partitions.
    pub workers: usize,
    /// Items of one rate-limit partition in flight at once (pacing still decides when each call goes).
    pub partition_concurrency: usize,
    /// Minimum time between two state-changing calls on the same key (AWS throttles rapid changes to
    /// one key even under the quota).
    pub per_key_interval: Duration,
    /// An item still failing with retryable errors this long after its first attempt fails for good.
    pub item_deadline: Duration,
    /// How long a claim stays valid without a heartbeat.
    pub lease_ttl: Duration,
    /// Longest an idle worker sleeps before looking for work again (wake-ups normally come sooner).
    pub poll_interval: Duration,
    pub retry: RetryPolicy,
    /// Multiplies AWS's default request quotas; 0 turns pacing off.
    pub quota_scale: f64,
    /// This is the only node (SQLite): return every lease at start (leases left by a previous run of this
    /// node are dead, and waiting for them to expire would only delay the resume), and send a partition's
    /// first call without a cluster's wait for the node it may have moved from (`pacing.rs`).
    pub reclaim_all_on_start: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            node_id: format!("node-{}", uuid::Uuid::new_v4()),
            workers: 64,
            partition_concurrency: 8,
            per_key_interval: Duration::from_millis(250),
            item_deadline: Duration::from_secs(3600),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            quota_scale: 1.0,
            reclaim_all_on_start: true,
        }
    }
}

/// The background executor of bulk jobs and sync jobs.
pub struct Engine {
    store: Arc<dyn EngineStore>,
    clock: Arc<dyn Clock>,
    /// Draws the retry backoff's jitter; seeded in simulations so a run can be replayed.
    jitter: std::sync::Mutex<StdRng>,
    resolver: Resolver,
    /// Encrypts the backup blobs Azure syncs take.
    master: MasterKey,
    pacer: Pacer,
    config: EngineConfig,
    spacer: pacing::KeySpacer,
    /// Bounds the items in flight on this node (`workers`).
    slots: tokio::sync::Semaphore,
    /// Writes finished attempts in batches (group commit).
    recorder: record::Recorder,
    /// What this node knows of stopped jobs and refused credentials, for items claimed ahead of their calls.
    stops: stops::Stops,
    wake: Notify,
    sync_wake: Notify,
    metrics: Arc<Metrics>,
    heartbeat: HeartbeatState,
}

/// What the last lease renewals did, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// When this node last renewed its leases without an error (its start, before the first renewal).
    pub last_renewed: chrono::DateTime<chrono::Utc>,
    /// Item leases the last renewal extended.
    pub item_leases: u64,
    /// Partition leases the last renewal extended.
    pub partition_leases: u64,
}

#[derive(Debug, Default)]
struct HeartbeatState {
    last_renewed_micros: AtomicI64,
    item_leases: AtomicU64,
    partition_leases: AtomicU64,
}

impl Engine {
    /// An engine over any [`EngineStore`] (the server passes its whole store); the builder's defaults are the
    /// system clock and a jitter seeded from the OS, and it takes a [`Clock`] and a jitter seed (tests).
    pub fn builder(
        store: Arc<dyn EngineStore>,
        master: MasterKey,
        connector: Arc<dyn AwsKmsConnector>,
        azure: Arc<dyn KeyVaultConnector>,
        config: EngineConfig,
    ) -> EngineBuilder {
        let resolver = Resolver {
            store,
            master,
            connector,
            azure,
            clients: ClientCache::new(),
            vault_clients: ClientCache::new(),
            kms_connections: Default::default(),
        };
        EngineBuilder { resolver, config, clock: Arc::new(SystemClock), jitter_seed: None, metrics: None }
    }

    /// Now, by the engine's clock.
    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// `now` plus `d`.
    pub(crate) fn after(&self, d: Duration) -> chrono::DateTime<chrono::Utc> {
        self.now() + chrono::Duration::from_std(d).unwrap_or_default()
    }

    /// A lease for this node from now for the configured lease time.
    pub(crate) fn lease(&self) -> keyfleet_store::Lease<'_> {
        keyfleet_store::Lease::new(&self.config.node_id, self.now(), self.after(self.config.lease_ttl))
    }

    /// A uniform draw in [0, 1] for the retry backoff's jitter.
    pub(crate) fn jitter(&self) -> f64 {
        rand::Rng::random(&mut *self.jitter.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The registry this engine (and the services and HTTP edge around it) record into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The last lease renewal's time and counts.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            last_renewed: keyfleet_core::time::from_micros(self.heartbeat.last_renewed_micros.load(Ordering::Relaxed)),
            item_leases: self.heartbeat.item_leases.load(Ordering::Relaxed),
            partition_leases: self.heartbeat.partition_leases.load(Ordering::Relaxed),
        }
    }

    /// Records a renewal of every lease this node holds that succeeded `at`.
    pub(crate) fn renewed(&self, at: chrono::DateTime<chrono::Utc>, items: u64, partitions: u64) {
        self.heartbeat.last_renewed_micros.store(keyfleet_core::time::to_micros(at), Ordering::Relaxed);
        self.heartbeat.item_leases.store(items, Ordering::Relaxed);
        self.heartbeat.partition_leases.store(partitions, Ordering::Relaxed);
    }

    /// The pacing buckets this node has used: each partition's current rate and ceiling (requests/s).
    pub fn pacing_rates(&self) -> Vec<(pacing::Partition, f64, f64)> {
        self.pacer.snapshot()
    }

    /// New bulk-job items are waiting.
    pub fn notify_jobs(&self) {
        self.wake.notify_waiters();
    }

    /// A new sync job is waiting.
    pub fn notify_sync(&self) {
        self.sync_wake.notify_waiters();
    }

    /// Starts workers, the heartbeat, the reaper and the sync loop; they stop when the handle is shut down.
    pub async fn start(self: &Arc<Self>) -> Result<EngineHandle, EngineError> {
        if self.config.reclaim_all_on_start {
            let far = self.now() + chrono::Duration::days(365 * 100);
            let n = self.store.release_expired_leases(far).await?;
            if n > 0 {
                tracing::info!(items = n, "resuming items interrupted by the previous run");
            }
        }
        self.renewed(self.now(), 0, 0);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(self.clone().dispatch_loop(stop_rx.clone()).instrument(tracing::info_span!("dispatcher")));
        tasks.spawn(self.clone().heartbeat_loop(stop_rx.clone()));
        tasks.spawn(self.clone().reaper_loop(stop_rx.clone()));
        tasks.spawn(self.clone().sync_loop(stop_rx));
        Ok(EngineHandle { stop: stop_tx, tasks })
    }
}

/// Builds an [`Engine`]: see [`Engine::builder`].
pub struct EngineBuilder {
    resolver: Resolver,
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    jitter_seed: Option<u64>,
    metrics: Option<Arc<Metrics>>,
}

impl EngineBuilder {
    /// Where the engine reads wall time (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the retry backoff's jitter (default: from the OS), so a simulated run replays exactly.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// The registry to record into (default: a new one).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn build(self) -> Arc<Engine> {
        let EngineBuilder { resolver, config, clock, jitter_seed, metrics } = self;
        let jitter = match jitter_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Arc::new(Engine {
            store: resolver.store.clone(),
            master: resolver.master.clone(),
            resolver,
            pacer: if config.reclaim_all_on_start {
                Pacer::new(config.quota_scale).single_node()
            } else {
                Pacer::new(config.quota_scale)
            },
            spacer: pacing::KeySpacer::new(config.per_key_interval),
            slots: tokio::sync::Semaphore::new(config.workers.max(1)),
            recorder: record::Recorder::default(),
            stops: stops::Stops::default(),
            clock,
            jitter: std::sync::Mutex::new(jitter),
            config,
            wake: Notify::new(),
            sync_wake: Notify::new(),
            metrics: metrics.unwrap_or_default(),
            heartbeat: HeartbeatState::default(),
        })
    }
}

/// Owns the engine's tasks.
pub struct EngineHandle {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl EngineHandle {
    /// Asks every task to stop after its current item and waits for them. In-flight items are recorded.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
