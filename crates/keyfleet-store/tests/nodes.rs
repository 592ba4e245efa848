//! Several nodes on one database at once: on PostgreSQL each node has its own connection pool and the
//! workers run in parallel, so these tests exercise `FOR UPDATE SKIP LOCKED`, lease fencing and the lock
//! order of cancel / fail / finish. (On SQLite, single-node, they check the same outcomes through one writer.)

#[macro_use]
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::{AwsRegionKeys, Lease, Refusal, Store};
use tokio::sync::Barrier;

on_both_backends!(
    two_nodes_claiming_one_partition_never_get_the_same_item,
    cancel_and_refused_credentials_racing_with_workers_leave_consistent_jobs,
    reapers_on_two_nodes_release_each_expired_item_once,
    sync_jobs_claimed_by_many_nodes_at_once_go_to_one_each,
);

/// Claims and finishes items of `partition` until none is left to claim; returns what it claimed.
async fn work(
    store: Arc<dyn Store>,
    owner: String,
    partition: String,
    batch: u32,
    start: Arc<Barrier>,
) -> Vec<(JobId, i64)> {
    start.wait().await;
    let mut mine = Vec::new();
    loop {
        let t = now();
        let claimed = store.claim_items(&partition, Lease::new(&owner, t, later(t, 60)), batch).await.expect("claim");
        if claimed.is_empty() {
            return mine;
        }
        for c in claimed {
            assert_eq!(c.attempts, 1, "{owner} got ({}, {}) a second time", c.job_id, c.seq);
            assert!(store.finish_item(c.job_id, c.seq, &owner, &success(), now()).await.expect("finish"), "fenced out");
            mine.push((c.job_id, c.seq));
        }
    }
}

async fn two_nodes_claiming_one_partition_never_get_the_same_item(db: &TestDb) {
    const ITEMS: usize = 600;
    const WORKERS_PER_NODE: usize = 4;
    let nodes = [db.node().await, db.node().await];
    let j = job(ITEMS as i64);
    nodes[0].create_job(&j, &items(ITEMS)).await.expect("create");

    let start = Arc::new(Barrier::new(2 * WORKERS_PER_NODE));
    let mut workers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WORKERS_PER_NODE {
            let owner = format!("node{n}-worker{w}");
            workers.push(tokio::spawn(work(node.clone(), owner, P.to_string(), 3, start.clone())));
        }
    }
    let mut claimed_by: HashMap<(JobId, i64), usize> = HashMap::new();
    let mut per_worker = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        let mine = w.await.expect("worker panicked");
        per_worker.push(mine.len());
        for item in mine {
            if let Some(other) = claimed_by.insert(item, i) {
                panic!("item {item:?} was claimed by worker {other} and worker {i}");
            }
        }
    }
    assert_eq!(claimed_by.len(), ITEMS, "every item claimed exactly once (per worker: {per_worker:?})");
    let done = nodes[1].get_job(j.id).await.expect("get").expect("exists");
    assert_eq!((done.status, done.succeeded, done.finished()), (JobStatus::Completed, ITEMS as i64, ITEMS as i64));
    let items = nodes[1].job_items(j.id).await.expect("items");
    assert!(items.iter().all(|i| i.status == ItemStatus::Succeeded && i.attempts == 1));
    assert!(nodes[0].pending_partitions().await.expect("partitions").is_empty());
}

/// Each round: a selector job over keys of two connections; workers on both nodes run it while one node
/// fails the refused connection's pending items and the other cancels the job, all at the same moment, with
/// heartbeats renewing the workers' leases throughout.
/// Whatever order the database picks, the job ends terminal with every item accounted for once.
async fn cancel_and_refused_credentials_racing_with_workers_leave_consistent_jobs(db: &TestDb) {
    const KEYS_PER_CONNECTION: usize = 40;
    const ROUNDS: usize = 8;
    let nodes = [db.node().await, db.node().await];
    let s = db.store();
    let mut refused = None;
    for (name, account) in [("refused", "111111111111"), ("fine", "222222222222")] {
        let c = connection(name);
        s.insert_aws_connection(&c).await.expect("connection");
        let k = kms(name, account, c.id, &["us-east-1"]);
        s.insert_kms(&k).await.expect("kms");
        let keys: Vec<_> =
            (0..KEYS_PER_CONNECTION).map(|i| material(&format!("{name}-{i}"), "Enabled", &[], &[])).collect();
        s.sync_aws_region(&AwsRegionKeys { kms_id: k.id, region: "us-east-1", keys: &keys }, now())
            .await
            .expect("sync");
        refused.get_or_insert(c.id);
    }
    let refused = refused.expect("refused connection");

    for round in 0..ROUNDS {
        let j = job(0);
        let total = s.create_job_from_selector(&j, &KeySelector::default()).await.expect("create");
        assert_eq!(total, 2 * KEYS_PER_CONNECTION as i64);
        let start = Arc::new(Barrier::new(6));
        let mut tasks = Vec::new();
        for (n, node) in nodes.iter().enumerate() {
            for partition in ["111111111111/us-east-1", "222222222222/us-east-1"] {
                let owner = format!("round{round}-node{n}-{partition}");
                tasks.push(tokio::spawn(work(node.clone(), owner, partition.into(), 2, start.clone())));
            }
        }
        // Heartbeats of every worker keep running meanwhile.
        let beating = Arc::new(AtomicBool::new(true));
        let heartbeats: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let (node, beating) = (node.clone(), beating.clone());
                tokio::spawn(async move {
                    while beating.load(Ordering::Relaxed) {
                        for partition in ["111111111111/us-east-1", "222222222222/us-east-1"] {
                            let owner = format!("round{round}-node{n}-{partition}");
                            node.renew_leases(&owner, later(now(), 60)).await.expect("renew_leases");
                        }
                    }
                })
            })
            .collect();
        let (failer, canceller) = (nodes[0].clone(), nodes[1].clone());
        let (b1, b2) = (start.clone(), start.clone());
        let fail = tokio::spawn(async move {
            b1.wait().await;
            failer
                .fail_pending_for_connection(
                    j.id,
                    &Refusal { connection: refused, code: "UnrecognizedClientException", message: "no" },
                    now(),
                )
                .await
        });
        let cancel = tokio::spawn(async move {
            b2.wait().await;
            canceller.cancel_job(j.id, now()).await
        });
        fail.await.expect("fail task").expect("fail_pending_for_connection");
        cancel.await.expect("cancel task").expect("cancel_job").expect("job exists");
        for t in tasks {
            t.await.expect("worker panicked");
        }
        beating.store(false, Ordering::Relaxed);
        for h in heartbeats {
            h.await.expect("heartbeat panicked");
        }

        let done = s.get_job(j.id).await.expect("get").expect("exists");
        let items = s.job_items(j.id).await.expect("items");
        let count = |st: ItemStatus| items.iter().filter(|i| i.status == st).count() as i64;
        assert_eq!(
            (count(ItemStatus::Pending), count(ItemStatus::Running)),
            (0, 0),
            "round {round}: nothing left behind: {done:?}"
        );
        assert_eq!(
            (done.succeeded, done.failed, done.skipped),
            (count(ItemStatus::Succeeded), count(ItemStatus::Failed), count(ItemStatus::Skipped)),
            "round {round}: the counters agree with the items"
        );
        assert_eq!(done.finished(), total, "round {round}");
        assert!(done.abort && done.status.is_terminal() && done.completed_at.is_some(), "round {round}: {done:?}");
    }
}

async fn reapers_on_two_nodes_release_each_expired_item_once(db: &TestDb) {
    const ITEMS: usize = 300;
    let nodes = [db.node().await, db.node().await];
    let j = job(ITEMS as i64);
    nodes[0].create_job(&j, &items(ITEMS)).await.expect("create");
    let t0 = now();
    let mut claimed = 0;
    while claimed < ITEMS {
        claimed += nodes[0].claim_items(P, Lease::new("dead-node", t0, later(t0, 1)), 50).await.expect("claim").len();
    }
    let start = Arc::new(Barrier::new(4));
    let reapers: Vec<_> = (0..4)
        .map(|i| {
            let (node, start) = (nodes[i % 2].clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                node.release_expired_leases(later(t0, 2)).await.expect("release")
            })
        })
        .collect();
    let mut released = 0;
    for r in reapers {
        released += r.await.expect("reaper panicked");
    }
    // A row another reaper holds is skipped, not waited for: the passes may split the work any way, but
    // once they are done every item is back, once.
    released += nodes[1].release_expired_leases(later(t0, 2)).await.expect("release");
    assert_eq!(released, ITEMS as u64);
    let items = nodes[1].job_items(j.id).await.expect("items");
    assert!(items.iter().all(|i| i.status == ItemStatus::Pending && i.attempts == 1));
    // The dead node's late writes are fenced out; the next claim counts a second attempt.
    assert!(!nodes[0].finish_item(j.id, 0, "dead-node", &success(), now()).await.expect("fenced"));
    let again = nodes[1].claim_items(P, Lease::new("alive", later(t0, 2), later(t0, 60)), 1).await.expect("claim");
    assert_eq!((again[0].seq, again[0].attempts), (0, 2));
}

async fn sync_jobs_claimed_by_many_nodes_at_once_go_to_one_each(db: &TestDb) {
    const JOBS: usize = 12;
    const CLAIMERS: usize = 8;
    let nodes = [db.node().await, db.node().await];
    let t0 = now();
    let mut ids = HashSet::new();
    for i in 0..JOBS {
        let at = later(t0, i as i64);
        let j = SyncJobRecord {
            id: SyncJobId::new(),
            cloud: CLOUD_AWS.into(),
            vaults: vec![],
            take_cloud_key_backup: false,
            kms: vec![KmsId::new()],
            regions: vec![],
            synchronize_all: true,
            status: JobStatus::InProgress,
            abort: false,
            detailed_status: Default::default(),
            created_by: UserId::new(),
            created_at: at,
            updated_at: at,
            completed_at: None,
        };
        nodes[0].create_sync_job(&j).await.expect("create");
        ids.insert(j.id);
    }
    let start = Arc::new(Barrier::new(CLAIMERS));
    let claimers: Vec<_> = (0..CLAIMERS)
        .map(|i| {
            let (node, start) = (nodes[i % 2].clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut mine = Vec::new();
                while let Some(j) =
                    node.claim_sync_job(Lease::new(&format!("claimer{i}"), t0, later(t0, 60))).await.expect("claim")
                {
                    mine.push(j.id);
                }
                mine
            })
        })
        .collect();
    let mut claimed = HashSet::new();
    for c in claimers {
        for id in c.await.expect("claimer panicked") {
            assert!(claimed.insert(id), "sync job {id} claimed twice");
        }
    }
    assert_eq!(claimed, ids);
}
