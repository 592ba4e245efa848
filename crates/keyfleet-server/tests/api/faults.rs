//! Retries and pacing against injected faults in the fake: throttling, 5xx, dropped connections (before and
//! after the effect), refused credentials. Every key must end right, and no key may be changed twice.

use std::collections::HashMap;

use keyfleet_fakes::{Faults, QuotaConfig};
use serde_json::{Value, json};

use crate::support::*;

/// `n` keys in us-east-1 of container `acct`, synchronized: (AWS KeyIds, CCKM ids).
pub(crate) async fn setup(app: &TestApp, n: usize) -> (Vec<String>, Vec<String>) {
    let aws = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", n);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    (aws, app.key_ids("acct").await)
}

async fn items(app: &TestApp, job: &Value) -> Vec<Value> {
    let id = job["id"].as_str().unwrap();
    app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?limit=1000")).await.ok()["resources"]
        .as_array()
        .unwrap()
        .clone()
}

/// No DisableKey after the one that applied, per key; returns how many keys were disabled.
fn disabled_once(app: &TestApp) -> usize {
    let mut applied: HashMap<String, u64> = HashMap::new();
    for c in app.fake.fake.calls().iter().filter(|c| c.operation == "DisableKey") {
        let key = c.key_id.clone().unwrap();
        assert!(!applied.contains_key(&key), "DisableKey #{} on {key} after it had been applied", c.seq);
        if c.applied {
            applied.insert(key, c.seq);
        }
    }
    applied.len()
}

#[tokio::test]
async fn throttling_is_absorbed_by_backoff_and_pacing() {
    // keyfleet paces to AWS's 5 DisableKey/s, but the account's real quota is lower (someone else uses it).
    let app = TestApp::start_with(|a| a.quota_scale = Some(1.0)).await;
    let (aws, ids) = setup(&app, 20).await;
    app.fake.fake.set_faults(Faults {
        quotas: Some(QuotaConfig { scale: 1.0, overrides: vec![("DisableKey".into(), 2.0)] }),
        ..Default::default()
    });
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!(job["progress"]["succeeded"], 20, "{}", job["progress"]);
    let stats = app.fake.fake.stats();
    let throttled = stats.get(FAKE_ACCOUNT, "us-east-1", "DisableKey").throttled;
    assert!(throttled > 0, "the scenario throttles: {stats:?}");
    let retried =
        items(&app, &job).await.into_iter().filter(|i| i["attempts"].as_i64().unwrap() > 1).collect::<Vec<_>>();
    assert!(!retried.is_empty());
    assert!(retried.iter().all(|i| i["last_error_code"] == "ThrottlingException"), "{retried:?}");
    assert_eq!(disabled_once(&app), 20);
    for k in &aws {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).as_deref(), Some("Disabled"));
    }
}

/// Key synchronization retries 500/503 like jobs do: with 5 % of every call failing (and 0-5 ms of jitter), ten
/// syncs in a row, over two regions, each read every key with its policy (a failed GetKeyPolicy is retried, not
/// stored empty).
#[tokio::test]
async fn sync_retries_server_errors_and_reads_every_key() {
    let app = TestApp::start().await;
    let regions = ["us-east-1", "eu-west-1"];
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &regions).await;
    for round in 0..10u64 {
        for region in regions {
            app.fake.fake.create_keys(FAKE_ACCOUNT, region, 15);
        }
        let faults =
            Faults { error_5xx: 0.05, latency: 1.0, latency_jitter_ms: 5, seed: Some(round), ..Default::default() };
        app.fake.fake.set_faults(faults);
        let job = app.sync("acct").await;
        app.fake.fake.set_faults(Faults::default());
        let expected: serde_json::Map<String, Value> =
            regions.iter().map(|r| (format!("{FAKE_ACCOUNT}/{r}"), json!("Success"))).collect();
        assert_eq!(job["detailed_status"], Value::Object(expected), "round {round}: {job}");
        assert_eq!(job["overall_status"], "completed", "round {round}: {job}");
        let keys = app.get("/api/v1/cckm/aws/keys?kms=acct&limit=1000").await.ok();
        let keys = keys["resources"].as_array().unwrap();
        assert_eq!(keys.len() as u64, 30 * (round + 1), "round {round}");
        for k in keys {
            assert!(!k["aws_param"]["Policy"].as_str().unwrap_or_default().is_empty(), "round {round}: {k}");
        }
    }
    let stats = app.fake.fake.stats();
    assert!(stats.totals.errors > 10, "the fake failed only {} calls", stats.totals.errors);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    // Every attempt makes one or two calls, each failing with probability 0.19: 12 attempts make a key's
    // final failure a one-in-a-million event, so the test does not flake.
    let app = TestApp::start_with(|a| a.max_attempts = Some(12)).await;
    let (_, ids) = setup(&app, 30).await;
    app.fake.fake.set_faults(Faults { error_5xx: 0.1, drop_connection: 0.1, seed: Some(7), ..Default::default() });
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    let failed: Vec<Value> = items(&app, &job).await.into_iter().filter(|i| i["status"] != "succeeded").collect();
    assert!(failed.is_empty(), "{failed:?}");
    let codes: Vec<String> =
        items(&app, &job).await.iter().filter_map(|i| i["last_error_code"].as_str().map(str::to_string)).collect();
    assert!(!codes.is_empty(), "faults were met and retried");
    assert_eq!(disabled_once(&app), 30);
}

#[tokio::test]
async fn an_effect_whose_answer_was_lost_is_reconciled_not_repeated() {
    let app = TestApp::start_with(|a| a.max_attempts = Some(12)).await;
    let (_, ids) = setup(&app, 30).await;
    // A third of the DisableKeys are applied and then their connection is dropped: keyfleet cannot know they
    // worked. The retry must read the key and see it Disabled instead of sending DisableKey again.
    app.fake.fake.set_faults(Faults { drop_after_apply: 0.3, seed: Some(11), ..Default::default() });
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!(job["progress"]["succeeded"], 30, "{}", job["progress"]);
    let lost = app
        .fake
        .fake
        .calls()
        .iter()
        .filter(|c| c.error.as_deref() == Some(keyfleet_fakes::aws::DROPPED_AFTER_APPLY))
        .count();
    assert!(lost > 0, "the scenario loses answers");
    assert_eq!(disabled_once(&app), 30);
}

#[tokio::test]
async fn persistent_failures_stop_at_the_attempt_cap_with_the_cloud_code() {
    let app = TestApp::start_with(|a| a.max_attempts = Some(3)).await;
    let (_, ids) = setup(&app, 3).await;
    app.fake.fake.set_faults(Faults { error_5xx: 1.0, ..Default::default() });
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!(job["overall_status"], "failed", "{job}");
    for item in items(&app, &job).await {
        assert_eq!(item["attempts"], 3, "{item}");
        let detail = item["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("Failed: KMSInternalException: ")
                || detail.starts_with("Failed: ServiceUnavailableException: "),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn refused_credentials_stop_that_connections_items_with_one_reason() {
    let app = TestApp::start().await;
    let revoked = "AKIAREVOKEDKEY000001";
    let revoked_account = app.fake.fake.account_for_access_key(revoked);
    app.fake.fake.create_keys(&revoked_account, "us-east-1", 40);
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 10);
    app.add_kms("bad", &app.fake.url(), revoked, &revoked_account, &["us-east-1"]).await;
    app.add_kms("good", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("bad").await;
    app.sync("good").await;
    app.fake.fake.refuse_access_key(revoked);
    let before = app.fake.fake.calls().len();

    let job = app.run_bulkjob(json!({"operation": "disablekey", "selector": {"kms": ["bad", "good"]}})).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["succeeded"], 10, "{}", job["progress"]);
    assert_eq!(job["progress"]["failed"], 40, "{}", job["progress"]);
    let refused: Vec<Value> = items(&app, &job).await.into_iter().filter(|i| i["status"] == "failed").collect();
    for i in &refused {
        let detail = i["detail"].as_str().unwrap();
        assert!(detail.starts_with("Failed: UnrecognizedClientException: "), "{detail}");
    }
    let not_attempted = refused.iter().filter(|i| i["attempts"] == 0).count();
    assert!(not_attempted >= 30, "most items of the refused connection were never sent ({not_attempted} of 40)");
    let sent = app.fake.fake.calls()[before..].iter().filter(|c| c.access_key_id == revoked).count();
    assert!(sent <= 10, "only the items already in flight reached AWS: {sent}");
    assert!(
        refused.iter().any(|i| i["detail"]
            .as_str()
            .unwrap()
            .contains("not attempted: AWS refused the credentials of connection bad-conn")),
        "one clear reason"
    );
}
