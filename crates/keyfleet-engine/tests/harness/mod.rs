//! A deterministic simulation of the engine: one or two nodes over an in-memory store and an in-memory
//! cloud, on tokio's paused time, with faults drawn from a seed (nodes killed and replaced, nodes paused
//! past their leases, throttling, errors, hangs, replies lost after the cloud acted, jobs cancelled). Each
//! seed is one run; the checks at the end are the engine's promises. See the crate README.

pub mod cloud;
pub mod gate;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use keyfleet_core::crypto::MasterKey;
use keyfleet_core::*;
use keyfleet_engine::clock::TokioClock;
use keyfleet_engine::{Engine, EngineConfig, EngineHandle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use uuid::Uuid;

use cloud::{AwsConnector, FakeKey, Faults, VaultConnector, World};
use gate::{Gate, Moment};
use store::{Db, NodeStore};

/// What a finished run looked like, to compare two runs of one seed.
#[derive(Debug, PartialEq, Eq)]
pub struct Trace {
    pub calls: Vec<String>,
    pub items: Vec<String>,
}

const AWS_OPS: [Operation; 5] = [
    Operation::EnableKey,
    Operation::DisableKey,
    Operation::ScheduleKeyDeletion,
    Operation::CancelKeyDeletion,
    Operation::ApplyPolicyTemplate,
];

/// The AWS actions that change a key.
const CHANGES: [&str; 6] =
    ["EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy", "TagResource"];

/// Runs one seed on a fresh paused current-thread runtime.
pub fn run_seed(seed: u64) -> Result<Trace, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(simulate(seed))
}

fn id(rng: &mut StdRng) -> Uuid {
    Uuid::from_u128(rng.random())
}

struct Node {
    gate: Arc<Gate>,
    handle: Option<EngineHandle>,
}

struct Sim {
    seed: u64,
    db: Arc<Mutex<Db>>,
    world: cloud::Shared,
    master: MasterKey,
    clock: Arc<TokioClock>,
    config: EngineConfig,
    nodes: Vec<Node>,
}

impl Sim {
    async fn start_node(&mut self) {
        let n = self.nodes.len() + 1;
        let gate = Arc::new(Gate::default());
        let store = Arc::new(NodeStore { db: self.db.clone(), gate: gate.clone() });
        let aws = Arc::new(AwsConnector { world: self.world.clone(), gate: gate.clone() });
        let azure = Arc::new(VaultConnector { world: self.world.clone(), gate: gate.clone() });
        let config = EngineConfig { node_id: format!("node-{n}"), ..self.config.clone() };
        let engine = Engine::builder(store, self.master.clone(), aws, azure, config)
            .clock(self.clock.clone())
            .jitter_seed(self.seed.wrapping_mul(31).wrapping_add(n as u64))
            .build();
        let handle = engine.start().await.expect("engine starts");
        self.nodes.push(Node { gate, handle: Some(handle) });
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| !self.nodes[*i].gate.is_dead()).collect()
    }
}

/// One fault, at a simulated time.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Kill a node mid-run (its handle dropped, its calls never return) and start a new node (new node id)
    /// on the same store after a restart delay.
    Kill { restart_after: Duration },
    /// Stall a node's store calls, long enough (or not) for its leases to expire and be taken over.
    Pause(Duration),
    /// Stall a node when it next reaches a moment where it holds knowledge the pause can make stale: right
    /// after the store confirmed a lease (it wakes up with a "yes" that may no longer be true), or between a
    /// heartbeat's reading of the clock and its write (which then arrives with an old lease end).
    PauseAt(Moment, Duration),
    /// Cancel one of the jobs, as the API does.
    Cancel,
}

async fn simulate(seed: u64) -> Result<Trace, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let start: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let master = MasterKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
    let faults = Faults {
        throttle: rng.random_range(0.0..0.15),
        transient: rng.random_range(0.0..0.1),
        timeout: rng.random_range(0.0..0.05),
        lost_reply: rng.random_range(0.0..0.15),
    };
    let world = Arc::new(Mutex::new(World::new(seed, faults)));
    let mut db = Db::default();

    // Inventory: one or two accounts, each a connection and a KMS container with one or two regions.
    let mut containers = Vec::new();
    for a in 0..rng.random_range(1..=2) {
        let account = format!("10000000000{a}");
        let conn = ConnectionId(id(&mut rng));
        db.aws_connections.insert(
            conn,
            AwsConnectionRecord {
                id: conn,
                name: format!("conn-{a}"),
                description: String::new(),
                access_key_id: account.clone(),
                secret_enc: master.encrypt(b"secret", &conn.secret_aad()).unwrap(),
                aws_region: "r0".into(),
                assume_role_arn: None,
                assume_role_external_id: None,
                endpoint_url: None,
                cloud_name: "aws".into(),
                created_at: start,
                updated_at: start,
            },
        );
        let kms = KmsId(id(&mut rng));
        let regions: Vec<String> = (0..rng.random_range(1..=2)).map(|r| format!("r{r}")).collect();
        // Sometimes a slow quota for the changes: items then wait at the pacer until their lease must be
        // confirmed by the store (`holds_item`), where a pause after the answer bites.
        let quotas = match rng.random_bool(0.3) {
            true => CHANGES.iter().map(|a| (a.to_string(), 0.5)).collect(),
            false => Default::default(),
        };
        db.kms.insert(
            kms,
            KmsRecord {
                id: kms,
                name: format!("kms-{a}"),
                account_id: account.clone(),
                connection_id: conn,
                regions: regions.clone(),
                quotas,
                created_at: start,
                updated_at: start,
            },
        );
        containers.push((kms, account, regions));
    }
    let template = TemplateId(id(&mut rng));
    db.templates.insert(
        template,
        TemplateRecord {
            id: template,
            name: "t".into(),
            kms_id: None,
            account_id: String::new(),
            policy: serde_json::json!({"Version": "2012-10-17", "Statement": []}),
            key_admins: vec![],
            key_users: vec![],
            key_admins_roles: vec![],
            key_users_roles: vec![],
            is_verified: true,
            created_at: start,
            updated_at: start,
        },
    );

    // Keys, in the cloud and (as synchronized) in the inventory.
    let mut keys = Vec::new();
    for k in 0..rng.random_range(4..=30) {
        let (kms, account, regions) = &containers[rng.random_range(0..containers.len())];
        let region = regions[rng.random_range(0..regions.len())].clone();
        let state = ["Enabled", "Disabled", "PendingDeletion"][rng.random_range(0..3)].to_string();
        let key_id = format!("key-{k:03}");
        let fake = FakeKey {
            account: account.clone(),
            region: region.clone(),
            state: state.clone(),
            policy: "{}".into(),
            tags: vec![],
        };
        world.lock().unwrap().keys.insert(key_id.clone(), fake);
        let material = AwsKeyMaterial {
            key_id: key_id.clone(),
            arn: format!("arn:aws:kms:{region}:{account}:key/{key_id}"),
            account_id: account.clone(),
            enabled: state == "Enabled",
            key_state: state,
            policy: "{}".into(),
            ..Default::default()
        };
        let kid = KeyId(id(&mut rng));
        db.aws_keys.insert(
            kid,
            AwsKeyRecord {
                id: kid,
                kms_id: *kms,
                region: region.clone(),
                material,
                gone: false,
                synced_at: start,
                created_at: start,
                updated_at: start,
            },
        );
        keys.push((kid, key_id, partition_of(account, &region)));
    }

    // Jobs over disjoint keys (one target per key), each with an operation of its own.
    let user = UserId(id(&mut rng));
    let mut jobs = Vec::new();
    let n_jobs = rng.random_range(1..=3).min(keys.len());
    for (j, chunk) in keys.chunks(keys.len().div_ceil(n_jobs)).enumerate() {
        let op = AWS_OPS[rng.random_range(0..AWS_OPS.len())];
        let job = new_job(JobId(id(&mut rng)), op, Cloud::Aws, user, start, &mut rng, template, j);
        let items: Vec<NewItem> =
            chunk.iter().map(|(kid, _, p)| NewItem { key_id: *kid, partition: p.clone() }).collect();
        for (_, key_id, _) in chunk {
            world.lock().unwrap().targets.insert(key_id.clone(), (op, template.to_string()));
        }
        jobs.push(job.id);
        db.create_job(job, &items);
    }
    // Sometimes an Azure delete-key-backups job too.
    if rng.random_bool(0.5) {
        let items = azure_backups(&mut db, &mut rng, &master, start, user);
        let job =
            new_job(JobId(id(&mut rng)), Operation::DeleteKeyBackups, Cloud::Azure, user, start, &mut rng, template, 9);
        jobs.push(job.id);
        db.create_job(job, &items);
    }

    let single_node = rng.random_bool(0.5);
    let config = EngineConfig {
        node_id: String::new(),
        workers: rng.random_range(1..=8),
        partition_concurrency: rng.random_range(1..=4),
        per_key_interval: Duration::from_millis(250),
        item_deadline: Duration::from_secs(3600),
        lease_ttl: Duration::from_secs(rng.random_range(2..=10)),
        poll_interval: Duration::from_secs(1),
        retry: Default::default(),
        quota_scale: 1.0,
        reclaim_all_on_start: single_node,
    };
    let mut faults: Vec<(Duration, Fault)> = (0..rng.random_range(0..=4))
        .map(|_| {
            let at = Duration::from_millis(rng.random_range(0..40_000));
            let ttl = config.lease_ttl;
            let fault = match rng.random_range(0..4) {
                0 => Fault::Kill { restart_after: Duration::from_millis(rng.random_range(1_000..5_000)) },
                1 => Fault::Pause(ttl.mul_f64(rng.random_range(0.2..3.0))),
                2 => {
                    let moment = [Moment::LeaseConfirmed, Moment::HeartbeatSending][rng.random_range(0..2)];
                    Fault::PauseAt(moment, ttl.mul_f64(rng.random_range(0.5..3.0)))
                }
                _ => Fault::Cancel,
            };
            (at, fault)
        })
        .collect();
    faults.sort_by_key(|(at, _)| *at);
    if std::env::var_os("KEYFLEET_SIM_SEED").is_some() {
        // Replaying one seed: say what it does.
        eprintln!("seed {seed}: single node {single_node}, {config:?}\n  faults {faults:?}");
    }

    let t0 = Instant::now();
    let mut sim = Sim {
        seed,
        db: Arc::new(Mutex::new(db)),
        world: world.clone(),
        master,
        clock: Arc::new(TokioClock::starting_at(start)),
        config,
        nodes: Vec::new(),
    };
    for _ in 0..if single_node { 1 } else { 2 } {
        sim.start_node().await;
    }
    let mut restarts: Vec<Instant> = Vec::new();
    let mut faults = faults.into_iter().peekable();
    let limit = Duration::from_secs(6 * 3600);
    loop {
        // Wake at the next fault or restart, and at least every second to see whether the jobs ended.
        let next_event = faults.peek().map(|(at, _)| t0 + *at).into_iter().chain(restarts.iter().copied()).min();
        let second = Instant::now() + Duration::from_secs(1);
        tokio::time::sleep_until(next_event.map_or(second, |e| e.min(second))).await;
        let now = Instant::now();
        while let Some((at, fault)) = faults.next_if(|(at, _)| t0 + *at <= now) {
            let live = sim.live();
            let victim = match live.len() {
                0 => None, // every node is down, waiting for its restart
                n => Some(live[rng.random_range(0..n)]),
            };
            match (fault, victim) {
                (Fault::Kill { .. } | Fault::Pause(_) | Fault::PauseAt(..), None) => {}
                (Fault::Kill { restart_after }, Some(victim)) => {
                    drop(sim.nodes[victim].handle.take());
                    sim.nodes[victim].gate.kill();
                    restarts.push(now + restart_after);
                }
                (Fault::Pause(d), Some(victim)) => sim.nodes[victim].gate.pause_until(now + d),
                (Fault::PauseAt(moment, d), Some(victim)) => sim.nodes[victim].gate.pause_at(moment, d),
                (Fault::Cancel, _) => {
                    let job = jobs[rng.random_range(0..jobs.len())];
                    sim.db.lock().unwrap().cancel_job(job, start + chrono::Duration::from_std(at).unwrap());
                }
            }
        }
        let due: Vec<Instant> = restarts.iter().copied().filter(|t| *t <= now).collect();
        restarts.retain(|t| *t > now);
        for _ in due {
            sim.start_node().await;
        }
        let done = sim.db.lock().unwrap().jobs.values().all(|j| j.status.is_terminal());
        if done && faults.peek().is_none() && restarts.is_empty() {
            break;
        }
        if now - t0 > limit {
            return Err(format!("jobs still unfinished after {limit:?} of simulated time:\n{}", dump(&sim.db)));
        }
    }
    if std::env::var_os("KEYFLEET_SIM_SEED").is_some() {
        eprintln!(
            "  jobs ended after {:?} of simulated time, {} cloud calls",
            t0.elapsed(),
            world.lock().unwrap().calls.len()
        );
    }
    // Let stalled nodes wake up: a late call after the end must be caught too.
    tokio::time::sleep(sim.config.lease_ttl * 4).await;
    for node in &mut sim.nodes {
        if let Some(h) = node.handle.take() {
            h.shutdown().await;
        }
    }
    check(&sim.db.lock().unwrap(), &world.lock().unwrap(), t0)
}

#[allow(clippy::too_many_arguments)]
fn new_job(
    id: JobId,
    operation: Operation,
    cloud: Cloud,
    created_by: UserId,
    at: DateTime<Utc>,
    rng: &mut StdRng,
    template: TemplateId,
    n: usize,
) -> JobRecord {
    let params = JobParams {
        days: (operation == Operation::ScheduleKeyDeletion).then(|| rng.random_range(7..=30)),
        policy_template_id: (operation == Operation::ApplyPolicyTemplate).then_some(template),
        ..Default::default()
    };
    JobRecord {
        id,
        created_at: at + chrono::Duration::milliseconds(n as i64),
        ..JobRecord::started(cloud, operation, params, created_by, at)
    }
}

/// A vault with a few stored backups; the items of a job deleting them.
fn azure_backups(db: &mut Db, rng: &mut StdRng, master: &MasterKey, at: DateTime<Utc>, user: UserId) -> Vec<NewItem> {
    let conn = ConnectionId(id(rng));
    db.azure_connections.insert(
        conn,
        AzureConnectionRecord::public(
            conn,
            "azure".into(),
            ("client".into(), "tenant".into()),
            master.encrypt(b"secret", &conn.secret_aad()).unwrap(),
            at,
        ),
    );
    let vault = VaultId(id(rng));
    db.vaults.insert(
        vault,
        VaultRecord {
            id: vault,
            name: "vault".into(),
            azure_vault_id: String::new(),
            connection_id: conn,
            subscription_id: String::new(),
            location: String::new(),
            vault_type: String::new(),
            vault_uri: "https://vault.vault.azure.net".into(),
            properties: serde_json::Value::Null,
            tags: Default::default(),
            synced_at: None,
            created_at: at,
            updated_at: at,
        },
    );
    let mut items = Vec::new();
    for b in 0..rng.random_range(1..=8) {
        let backup = BackupId(id(rng));
        let record = KeyBackupRecord {
            id: backup,
            key_id: KeyId(id(rng)),
            vault_id: vault,
            key_name: format!("key-{b}"),
            key_version: "v1".into(),
            name: format!("backup-{b}"),
            description: String::new(),
            size_bytes: 3,
            created_by: user,
            created_at: at,
            updated_at: at,
        };
        // Some backups are already gone when the job runs (deleted one by one meanwhile).
        if rng.random_bool(0.8) {
            db.backups.insert(backup, (record, vec![1, 2, 3]));
        }
        items.push(NewItem { key_id: KeyId(backup.0), partition: azure_partition(vault) });
    }
    items
}

/// The engine's promises, checked on the final state.
fn check(db: &Db, world: &World, t0: Instant) -> Result<Trace, String> {
    let mut errors = Vec::new();
    // Every item ended exactly once, none lost; every job ended, and as its items say.
    for job in db.jobs.values() {
        let items: Vec<_> = db.items.iter().filter(|((_, j, _), _)| *j == job.id).collect();
        let count = |s: ItemStatus| items.iter().filter(|(_, i)| i.status == s).count() as i64;
        for ((_, _, seq), it) in &items {
            if it.terminal_writes != 1 || !it.status.is_terminal() {
                errors.push(format!(
                    "job {} item {seq}: {:?}, ended {} times (must be exactly once)",
                    job.operation, it.status, it.terminal_writes
                ));
            }
            if it.status == ItemStatus::Succeeded {
                let done = match job.operation {
                    Operation::DeleteKeyBackups => !db.backups.contains_key(&BackupId(it.key_id.0)),
                    _ => world.reached(&db.aws_keys[&it.key_id].material.key_id),
                };
                if !done {
                    errors.push(format!("job {} item {seq} succeeded but its target is not reached", job.operation));
                }
            }
        }
        let (s, f, k) = (count(ItemStatus::Succeeded), count(ItemStatus::Failed), count(ItemStatus::Skipped));
        let right = match job.status {
            JobStatus::Completed => f < job.total || job.total == 0,
            // (A cancel that comes after the end only sets `abort`.)
            JobStatus::Failed => f == job.total,
            JobStatus::Cancelled => job.abort,
            JobStatus::Planned | JobStatus::InProgress => false,
        };
        if (job.succeeded, job.failed, job.skipped) != (s, f, k) || !right || (!job.abort && k > 0) {
            errors.push(format!(
                "job {} ended {:?} (abort {}) with counters {}/{}/{} but items {s}/{f}/{k}",
                job.operation, job.status, job.abort, job.succeeded, job.failed, job.skipped
            ));
        }
    }
    // Nothing sent once a key reached its target.
    errors.extend(world.late_changes.iter().cloned());
    // Pacing: no more calls per partition in any one-second window than the quota.
    let mut by_partition: std::collections::BTreeMap<(String, String, &str), Vec<Instant>> = Default::default();
    for c in &world.calls {
        by_partition.entry((c.account.clone(), c.region.clone(), c.action)).or_default().push(c.at);
    }
    for ((account, region, action), times) in &by_partition {
        let quota = keyfleet_engine::pacing::default_rate(action).floor() as usize;
        if let Some(w) = times.windows(quota + 1).find(|w| w[quota] - w[0] < Duration::from_secs(1)) {
            let at: Vec<_> = w.iter().map(|t| *t - t0).collect();
            errors.push(format!(
                "pacing: {} {action} calls on {account}/{region} within {:?} (quota {quota}/s), at {at:?}",
                quota + 1,
                w[quota] - w[0],
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    Ok(Trace {
        calls: world.calls.iter().map(|c| format!("{:?} {} {} {}", c.at - t0, c.region, c.action, c.key)).collect(),
        items: db.items.values().map(|i| format!("{:?} {:?} {}", i.status, i.detail, i.attempts)).collect(),
    })
}

fn dump(db: &Mutex<Db>) -> String {
    let db = db.lock().unwrap();
    db.items
        .iter()
        .filter(|(_, i)| !i.status.is_terminal())
        .map(|((_, j, s), i)| format!("  {j} #{s}: {:?} owner {:?} attempts {}", i.status, i.lease_owner, i.attempts))
        .collect::<Vec<_>>()
        .join("\n")
}
