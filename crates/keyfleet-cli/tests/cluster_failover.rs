//! Three `keyfleet serve` nodes on one PostgreSQL database run a 5,000-key job against the fake AWS KMS with
//! AWS's default quotas. One node is killed with SIGKILL mid-job; another is paused with SIGSTOP past its
//! leases and then resumed. The job completes, every item ends exactly once, no key is changed after it
//! reached its target state, and throttled calls stay under 1% (one node at a time drives each partition).
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use keyfleet_fakes::{FakeKms, FakeKmsConfig, Faults};
use serde_json::{Value, json};
use support::{Server, postgres_database};

mod support;

const ACCOUNTS: usize = 10;
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const KEYS_PER_PARTITION: usize = 250;
const LEASE_SECS: &str = "3";

fn access_key(i: usize) -> String {
    format!("AKIACLUSTERTEST{i:05}")
}

fn account(i: usize) -> String {
    format!("2000000000{i:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_survive_a_kill_and_a_pause() {
    // PostgreSQL only (SQLite is one node per file); fails, never skips, without a server.
    let database_url = postgres_database().await;
    let mut config = FakeKmsConfig::default().with_faults(Faults::aws_quotas());
    for i in 0..ACCOUNTS {
        config = config.with_account(access_key(i), account(i));
    }
    let fake = FakeKms::new(config).spawn().await.unwrap();
    let mut created = Vec::new();
    for i in 0..ACCOUNTS {
        for region in REGIONS {
            for id in fake.fake.create_keys(&account(i), region, KEYS_PER_PARTITION) {
                created.push((account(i), region, id));
            }
        }
    }
    let total = created.len();

    let dir = tempfile::tempdir().unwrap();
    let master = keyfleet_master_key();
    let flags = ["--master-key", master.as_str(), "--lease-ttl-secs", LEASE_SECS];
    let node = |n: usize| dir.path().join(format!("node{n}"));
    let n1 = Server::start(&node(1), Some(&database_url), &flags).await;
    let mut names = Vec::new();
    for i in 0..ACCOUNTS {
        let conn = format!("conn-{i}");
        n1.call(
            "POST",
            "/api/v1/connectionmgmt/services/aws/connections",
            json!({"name": conn, "access_key_id": access_key(i), "secret_access_key": "x", "endpoint_url": fake.url()}),
        )
        .await;
        let name = format!("acct-{i}");
        n1.call(
            "POST",
            "/api/v1/cckm/aws/kms",
            json!({"name": name, "account_id": account(i), "connection": conn, "regions": REGIONS}),
        )
        .await;
        names.push(name);
    }
    let sync = n1.call("POST", "/api/v1/cckm/aws/synchronization-jobs", json!({"synchronize_all": true})).await;
    let sync = n1
        .wait_done(
            &format!("/api/v1/cckm/aws/synchronization-jobs/{}", sync["id"].as_str().unwrap()),
            Duration::from_secs(180),
        )
        .await;
    assert_eq!(sync["overall_status"], "completed", "{sync}");
    let n2 = Server::start(&node(2), Some(&database_url), &flags).await;
    let n3 = Server::start(&node(3), Some(&database_url), &flags).await;

    // Any node serves any call: create on node 2, read on node 3.
    // Over the default cap of 1,000 items: the request says how many it means.
    let body = json!({"operation": "schedulekeydeletion", "days": 7, "selector": {"kms": names}, "max_items": total});
    let job_path = n2.create_aws_job(body, total).await;
    assert_eq!(n3.call("GET", &job_path, Value::Null).await["progress"]["total"], total);

    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(n1.call("GET", &job_path, Value::Null).await["progress"]["pending"].as_i64().unwrap() > 0, "job too short");
    let killed_at = Instant::now();
    n2.kill().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(n3.pid, "STOP");
    let stopped_at = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(8)).await; // well past the 3 s leases
    assert!(n1.call("GET", &job_path, Value::Null).await["progress"]["pending"].as_i64().unwrap() > 0, "job too short");
    signal(n3.pid, "CONT");
    let resumed_at = chrono::Utc::now();

    let done = n1.wait_done(&job_path, Duration::from_secs(300)).await;
    let elapsed = killed_at.elapsed();
    assert_eq!(done["overall_status"], "completed", "{}", done["progress"]);
    assert_eq!(done["progress"]["succeeded"], total, "{}", done["progress"]);

    let mut seen = HashSet::new();
    for skip in (0..total).step_by(1000) {
        let page = n3.call("GET", &format!("{job_path}/items?skip={skip}&limit=1000"), Value::Null).await;
        for item in page["resources"].as_array().unwrap() {
            assert_eq!(item["status"], "succeeded", "{item}");
            assert!(seen.insert(item["key_id"].as_str().unwrap().to_string()), "item listed twice: {item}");
        }
    }
    assert_eq!(seen.len(), total);

    let mut applied: HashMap<String, u64> = HashMap::new();
    let (mut calls, mut throttled) = (0u64, 0u64);
    let all_calls = fake.fake.calls();
    for c in all_calls.iter().filter(|c| c.operation == "ScheduleKeyDeletion") {
        calls += 1;
        let key = c.key_id.clone().unwrap();
        if applied.contains_key(&key) {
            let history: Vec<String> = all_calls
                .iter()
                .filter(|h| h.key_id.as_deref() == Some(key.as_str()))
                .map(|h| format!("{} {} {:?}", h.at, h.operation, h.error))
                .collect();
            panic!(
                "ScheduleKeyDeletion on {key} after it was scheduled: {c:?}\nnode 3 paused {stopped_at} … \
                 {resumed_at}; the key's calls:\n{}",
                history.join("\n")
            );
        }
        match c.error.as_deref() {
            None => {
                applied.insert(key, c.seq);
            }
            Some("ThrottlingException") => throttled += 1,
            Some(other) => panic!("unexpected {other}: {c:?}"),
        }
    }
    assert_eq!(applied.len(), total);
    for (account, region, id) in &created {
        assert_eq!(fake.fake.key_state(account, region, id).as_deref(), Some("PendingDeletion"));
    }
    let all = fake.fake.stats().totals;
    assert!(all.throttled * 100 < all.calls, "throttled {} of {} calls", all.throttled, all.calls);
    eprintln!(
        "cluster test: {total} keys, {calls} ScheduleKeyDeletion calls ({throttled} throttled), {} calls in all \
         ({} throttled); finished {:.1} s after the kill",
        all.calls,
        all.throttled,
        elapsed.as_secs_f64()
    );
    n1.kill().await;
    n3.kill().await;
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

/// 32 random bytes, base64: every node must be given the same.
fn keyfleet_master_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
