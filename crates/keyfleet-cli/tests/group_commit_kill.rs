//! Group commit under SIGKILL: `keyfleet serve` runs a 6,000-key `disablekey` job against the fake AWS KMS
//! with quotas off — so items finish as fast as the engine goes and their results are written many per
//! transaction — and is killed with SIGKILL at five points of the job (after 10 %, 25 %, 45 %, 65 % and
//! 85 % of the items), restarted each time. Then no item is lost and none is repeated: every item succeeded
//! once, each key got exactly one `DisableKey`, an item's attempts agree with the calls the fake saw for its
//! key (a first attempt sends `DisableKey` alone; a later one reads the key first and sends no `DisableKey`
//! when an interrupted attempt already had), and the kills did interrupt attempts whose results were not yet
//! committed. Runs on SQLite, and on PostgreSQL with `KEYFLEET_TEST_BACKEND=postgres` (scripts/test).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

mod support;

use keyfleet_fakes::{FakeKms, FakeKmsConfig};
use serde_json::{Value, json};
use support::{Server, test_database};

const ACCOUNTS: [(&str, &str); 1] = [("AKIAGROUPCOMMIT00001", "200000000001")];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const KEYS_PER_REGION: usize = 3_000;
/// Kill when this share of the items has ended.
const KILL_AT: [f64; 5] = [0.10, 0.25, 0.45, 0.65, 0.85];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_during_group_commits_lose_and_repeat_no_item() {
    let config = FakeKmsConfig::default().with_account(ACCOUNTS[0].0, ACCOUNTS[0].1);
    let fake = FakeKms::new(config).spawn().await.unwrap();
    let account = ACCOUNTS[0].1;
    let mut keys = Vec::new();
    for region in REGIONS {
        keys.extend(fake.fake.create_keys(account, region, KEYS_PER_REGION).into_iter().map(|id| (region, id)));
    }
    let total = keys.len();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database_url = test_database().await;
    // Short leases: on PostgreSQL the killed node's items wait for their leases to expire.
    let flags = ["--quota-scale", "0", "--lease-ttl-secs", "2"];
    let mut server = Server::start(&data, database_url.as_deref(), &flags).await;
    let names = server.add_aws_accounts(&fake.url(), &ACCOUNTS, &REGIONS).await;
    server.sync_all(Duration::from_secs(300)).await;
    let synced = fake.fake.calls().last().map_or(0, |c| c.seq);

    let body = json!({"operation": "disablekey", "selector": {"kms": names}, "max_items": total});
    let job_path = server.create_aws_job(body, total).await;

    for (kill, share) in KILL_AT.iter().enumerate() {
        loop {
            let p = server.call("GET", &job_path, Value::Null).await["progress"].clone();
            let ended = ["succeeded", "failed", "skipped"].iter().map(|f| p[f].as_u64().unwrap()).sum::<u64>();
            assert!(ended < total as u64, "the job ended before kill {kill}: make it longer");
            if ended as f64 >= share * total as f64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill().await;
        server = Server::start(&data, database_url.as_deref(), &flags).await;
    }
    let done = server.wait_done(&job_path, Duration::from_secs(300)).await;
    assert_eq!(done["overall_status"], "completed", "{}", done["progress"]);
    assert_eq!(done["progress"]["succeeded"], total, "{}", done["progress"]);

    // The fake's calls during the job, per key: (DescribeKey, DisableKey).
    let mut calls: HashMap<String, (u32, u32)> = HashMap::new();
    for c in fake.fake.calls_since(synced) {
        assert_eq!(c.error, None, "no call of this job may fail: {c:?}");
        let entry = calls.entry(c.key_id.clone().unwrap()).or_default();
        match c.operation.as_str() {
            "DescribeKey" => entry.0 += 1,
            "DisableKey" => entry.1 += 1,
            other => panic!("unexpected call {other}: {c:?}"),
        }
    }

    // keyfleet's key id → the cloud's KeyId.
    let mut cloud_ids = HashMap::new();
    for skip in (0..total).step_by(1000) {
        let page = server.call("GET", &format!("/api/v1/cckm/aws/keys?skip={skip}&limit=1000"), Value::Null).await;
        for k in page["resources"].as_array().unwrap() {
            cloud_ids
                .insert(k["id"].as_str().unwrap().to_string(), k["aws_param"]["KeyID"].as_str().unwrap().to_string());
        }
    }
    let items = server.job_items(&job_path, total).await;
    assert_eq!(items.len(), total);
    let mut by_key: HashMap<String, Value> = HashMap::new();
    let mut reconciled = 0;
    for item in items {
        assert_eq!(item["status"], "succeeded", "{item}");
        assert_eq!(item["state_after"], "Disabled", "{item}");
        let key = item["key_id"].as_str().unwrap().to_string();
        let attempts = item["attempts"].as_u64().unwrap();
        assert!((1..=KILL_AT.len() as u64 + 1).contains(&attempts), "{item}");
        assert!(by_key.insert(key.clone(), item.clone()).is_none(), "item listed twice: {item}");
        let (describes, disables) = calls.get(&cloud_ids[&key]).copied().unwrap_or_default();
        assert_eq!(disables, 1, "exactly one DisableKey per key (none lost, none repeated): {item}");
        if attempts == 1 {
            // A first attempt goes straight to the effect.
            assert_eq!((describes, item["state_before"].as_str()), (0, Some("Enabled")), "{item}");
        } else {
            // A later attempt reads the key first, once per attempt at most.
            assert!((1..attempts as u32).contains(&describes), "{describes} DescribeKey: {item}");
            reconciled += 1;
        }
    }
    assert_eq!(by_key.len(), total);
    assert!(reconciled > 0, "the kills interrupted no attempt: nothing was tested");
    for (region, id) in &keys {
        assert_eq!(fake.fake.key_state(account, region, id).as_deref(), Some("Disabled"), "{region}/{id}");
    }
    eprintln!("group commit kill test: {} kills, {reconciled} of {total} items reconciled after a kill", KILL_AT.len());
    server.kill().await;
}
