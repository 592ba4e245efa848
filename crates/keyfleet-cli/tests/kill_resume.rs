//! Crash safety of the real binary: `keyfleet serve` is killed with SIGKILL twenty times at random moments
//! during a 2,000-key job against the fake AWS KMS with quotas on, and restarted each time. In the end every
//! item has exactly one terminal status, the job is terminal, and the fake saw no state-changing call on a key
//! after that key had reached its target state.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::time::Duration;

mod support;

use keyfleet_fakes::{FakeKms, FakeKmsConfig};
use rand::Rng;
use serde_json::{Value, json};
use support::{Server, test_database};

const ACCOUNTS: [(&str, &str); 4] = [
    ("AKIAKILLTEST00000001", "100000000001"),
    ("AKIAKILLTEST00000002", "100000000002"),
    ("AKIAKILLTEST00000003", "100000000003"),
    ("AKIAKILLTEST00000004", "100000000004"),
];
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
const KEYS_PER_PARTITION: usize = 250;
/// AWS's quotas times this, in the fake and in keyfleet alike: long enough a job for twenty kills.
const QUOTA_SCALE: f64 = 2.0;

fn fake_config() -> FakeKmsConfig {
    let mut config = FakeKmsConfig::default();
    for (akid, account) in ACCOUNTS {
        config = config.with_account(akid, account);
    }
    config.with_faults(keyfleet_fakes::Faults {
        quotas: Some(keyfleet_fakes::QuotaConfig { scale: QUOTA_SCALE, overrides: Vec::new() }),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_during_a_2000_key_job_lose_and_repeat_nothing() {
    let fake = FakeKms::new(fake_config()).spawn().await.unwrap();
    let mut created = Vec::new();
    for (_, account) in ACCOUNTS {
        for region in REGIONS {
            for id in fake.fake.create_keys(account, region, KEYS_PER_PARTITION) {
                created.push((account, region, id));
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let database_url = test_database().await;
    let mut server = Server::start(
        &data,
        database_url.as_deref(),
        &["--quota-scale", &QUOTA_SCALE.to_string(), "--lease-ttl-secs", "5"],
    )
    .await;
    let names = server.add_aws_accounts(&fake.url(), &ACCOUNTS, &REGIONS).await;
    server.sync_all(Duration::from_secs(120)).await;
    let total = KEYS_PER_PARTITION * ACCOUNTS.len() * REGIONS.len();

    let body = json!({"operation": "disablekey", "selector": {"kms": names}, "max_items": total});
    let job_path = server.create_aws_job(body, total).await;

    let mut rng = rand::rng();
    let mut kills = 0;
    while kills < 20 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..900))).await;
        let progress = server.call("GET", &job_path, Value::Null).await["progress"].clone();
        assert!(progress["pending"].as_i64().unwrap() > 0, "the job finished after only {kills} kills: make it longer");
        server.kill().await;
        kills += 1;
        server = Server::start(
            &data,
            database_url.as_deref(),
            &["--quota-scale", &QUOTA_SCALE.to_string(), "--lease-ttl-secs", "5"],
        )
        .await;
    }
    let done = server.wait_done(&job_path, Duration::from_secs(300)).await;
    assert_eq!(done["overall_status"], "completed", "{}", done["progress"]);
    assert_eq!(done["progress"]["succeeded"], total, "{}", done["progress"]);

    // Every item exactly once, terminal.
    let mut seen = HashSet::new();
    for item in server.job_items(&job_path, total).await {
        assert_eq!(item["status"], "succeeded", "{item}");
        assert!(seen.insert(item["key_id"].as_str().unwrap().to_string()), "item listed twice: {item}");
    }
    assert_eq!(seen.len(), total);

    // No state-changing call reached a key after it was Disabled.
    let mut disabled_at: HashMap<String, u64> = HashMap::new();
    let calls = fake.fake.calls();
    let mut throttled = 0;
    let mut disable_calls = 0;
    for c in calls.iter().filter(|c| c.operation == "DisableKey") {
        disable_calls += 1;
        let key = c.key_id.clone().unwrap();
        if let Some(first) = disabled_at.get(&key) {
            panic!("DisableKey #{} on {key} after it was disabled by call #{first}: {c:?}", c.seq);
        }
        match c.error.as_deref() {
            None => {
                disabled_at.insert(key, c.seq);
            }
            Some("ThrottlingException") => throttled += 1,
            Some(other) => panic!("unexpected error {other}: {c:?}"),
        }
    }
    assert_eq!(disabled_at.len(), total, "every key disabled exactly once");
    for (account, region, id) in &created {
        assert_eq!(fake.fake.key_state(account, region, id).as_deref(), Some("Disabled"), "{account}/{region}/{id}");
    }
    eprintln!("kill test: {kills} SIGKILLs, {disable_calls} DisableKey calls for {total} keys, {throttled} throttled");
    server.kill().await;
}
