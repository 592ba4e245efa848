//! Fault injection: AWS's quotas and per-key throttling, injected 5xx, latency and dropped
//! connections, seen by the official Rust SDK (retries off) over real HTTP, or in-process
//! where the wire does not matter. Counts are checked with bounds that hold on a loaded
//! machine: no assertion depends on a call finishing within some time.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Region, retry::RetryConfig};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use axum::http::StatusCode;
use keyfleet_fakes::{
    BUILTIN_ACCESS_KEY_ID, CallRecord, FakeKms, FakeKmsConfig, FakeKmsStats, Faults, QuotaConfig, RunningFake,
};
use serde_json::{Value, json};
use support::{ACCOUNT, Kms, REGION};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

fn client(running: &RunningFake) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(running.url())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(BUILTIN_ACCESS_KEY_ID, "x", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

async fn spawn(faults: Faults) -> RunningFake {
    FakeKms::new(FakeKmsConfig::default().with_faults(faults)).spawn().await.unwrap()
}

fn state(fake: &FakeKms, key_id: &str) -> String {
    fake.key_state(ACCOUNT, REGION, key_id).unwrap()
}

fn calls_of<'a>(calls: &'a [CallRecord], operation: &str) -> Vec<&'a CallRecord> {
    calls.iter().filter(|c| c.operation == operation).collect()
}

/// The dispatch failure of a call that got no answer; panics on an answer.
fn assert_no_answer<E: std::fmt::Debug, R: std::fmt::Debug>(err: &SdkError<E, R>) {
    match err {
        SdkError::DispatchFailure(failure) => {
            assert!(!failure.is_timeout() && !failure.is_user(), "a connection error, not {failure:?}");
        }
        other => panic!("expected a dispatch (connection) failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_burst_over_the_quota_is_throttled_like_aws() {
    let running = spawn(Faults::aws_quotas()).await;
    let keys = running.fake.create_keys(ACCOUNT, REGION, 21);
    let kms = client(&running);

    // 20 DisableKey at once against AWS's 5/s.
    let mut burst = JoinSet::new();
    for key in keys[..20].iter().cloned() {
        let kms = kms.clone();
        burst.spawn(async move { (key.clone(), kms.disable_key().key_id(key).send().await) });
    }
    let (mut disabled, mut throttled) = (Vec::new(), Vec::new());
    while let Some(joined) = burst.join_next().await {
        match joined.unwrap() {
            (key, Ok(_)) => disabled.push(key),
            (key, Err(err)) => {
                assert_eq!(err.code(), Some("ThrottlingException"), "{err:?}");
                let service = err.as_service_error().expect("a throttle is an answer from the service");
                assert!(service.message().unwrap().contains("exceeded the rate"));
                assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
                throttled.push(key);
            }
        }
    }
    // The window is empty at first, so the first 5 pass; all 20 arriving within two seconds
    // lets at most 10 through.
    assert!((5..=10).contains(&disabled.len()), "{} of 20 passed a 5/s quota", disabled.len());
    assert_eq!(disabled.len() + throttled.len(), 20);
    for key in &disabled {
        assert_eq!(state(&running.fake, key), "Disabled");
    }
    for key in &throttled {
        assert_eq!(state(&running.fake, key), "Enabled", "a throttled call changes nothing");
    }

    let calls = running.fake.calls();
    let log = calls_of(&calls, "DisableKey");
    assert_eq!(log.len(), 20, "throttled calls are logged too");
    for call in log {
        let was_throttled = throttled.contains(call.key_id.as_ref().unwrap());
        assert_eq!(call.error.as_deref(), was_throttled.then_some("ThrottlingException"));
        assert_eq!(call.applied, !was_throttled);
    }
    let stats = running.fake.stats().get(ACCOUNT, REGION, "DisableKey");
    assert_eq!((stats.calls, stats.ok, stats.throttled), (20, disabled.len() as u64, throttled.len() as u64));

    // Other operations have their own window.
    kms.describe_key().key_id(&keys[0]).send().await.unwrap();
    // A second later the window has room again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    kms.disable_key().key_id(&throttled[0]).send().await.unwrap();
    kms.disable_key().key_id(&keys[20]).send().await.unwrap();
}

#[tokio::test]
async fn a_throttle_is_aws_s_error_on_the_wire() {
    let faults = Faults { quotas: Some(QuotaConfig::default().with_override("DisableKey", 0.0)), ..Faults::default() };
    let kms = Kms::with_config(FakeKmsConfig::default().with_faults(faults));
    let key = kms.create_key().await;
    let answer = kms.call("DisableKey", json!({ "KeyId": key })).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.error_code().as_deref(), Some("ThrottlingException"));
    assert_eq!(
        answer.message(),
        "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
    );
    assert!(answer.header("x-amzn-requestid").is_some());
    // As on AWS, throttling comes before validation.
    let (code, _) = kms.err("DisableKey", json!({})).await;
    assert_eq!(code, "ThrottlingException");
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &key).as_deref(), Some("Enabled"));
}

#[tokio::test]
async fn quotas_scale_and_are_kept_per_account_region_and_operation() {
    // DisableKey: 5/s x 0.2 = 1/s.
    let faults = Faults { quotas: Some(QuotaConfig::scaled(0.2)), ..Faults::default() };
    let kms = Kms::with_config(FakeKmsConfig::default().with_faults(faults));
    let keys = kms.fake.create_keys(ACCOUNT, REGION, 5);
    let mut passed = 0;
    for key in &keys {
        if kms.call("DisableKey", json!({ "KeyId": key })).await.status == StatusCode::OK {
            passed += 1;
        }
    }
    assert!((1..=2).contains(&passed), "{passed} of 5 back-to-back calls passed a 1/s quota");

    let enable = kms.call("EnableKey", json!({ "KeyId": keys[0] })).await;
    assert_eq!(enable.status, StatusCode::OK, "EnableKey has its own window");
    let other_region = kms.as_caller(BUILTIN_ACCESS_KEY_ID, "eu-west-1");
    let key = kms.fake.create_keys(ACCOUNT, "eu-west-1", 1).remove(0);
    other_region.ok("DisableKey", json!({ "KeyId": key })).await;
    let other_account = kms.as_caller("AKIAOTHER", REGION);
    let account = kms.fake.account_for_access_key("AKIAOTHER");
    let key = kms.fake.create_keys(&account, REGION, 1).remove(0);
    other_account.ok("DisableKey", json!({ "KeyId": key })).await;

    // An override replaces the scaled default; rate 0 throttles everything.
    let faults = Faults { quotas: Some(QuotaConfig::scaled(0.2).with_override("ListKeys", 0.0)), ..Faults::default() };
    kms.fake.set_faults(faults);
    assert_eq!(kms.err("ListKeys", json!({})).await.0, "ThrottlingException");
    kms.ok("DescribeKey", json!({ "KeyId": keys[0] })).await;
}

#[tokio::test]
async fn rapid_changes_to_one_key_are_throttled_under_the_quota() {
    let faults = Faults { per_key_min_interval: Some(Duration::from_secs(60)), ..Faults::default() };
    let kms = Kms::with_config(FakeKmsConfig::default().with_faults(faults));
    let keys = kms.fake.create_keys(ACCOUNT, REGION, 3);
    kms.ok("DisableKey", json!({ "KeyId": keys[0] })).await;
    for (operation, input) in [
        ("EnableKey", json!({ "KeyId": keys[0] })),
        ("TagResource", json!({ "KeyId": keys[0], "Tags": [{ "TagKey": "a", "TagValue": "b" }] })),
        ("ScheduleKeyDeletion", json!({ "KeyId": keys[0], "PendingWindowInDays": 7 })),
    ] {
        assert_eq!(kms.err(operation, input).await.0, "ThrottlingException", "{operation}");
    }
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &keys[0]).as_deref(), Some("Disabled"));
    kms.ok("DescribeKey", json!({ "KeyId": keys[0] })).await;
    kms.ok("GetKeyPolicy", json!({ "KeyId": keys[0] })).await;
    kms.ok("DisableKey", json!({ "KeyId": keys[1] })).await;

    // A call that failed changed nothing, so it does not start the interval.
    let (code, _) = kms.err("ScheduleKeyDeletion", json!({ "KeyId": keys[2], "PendingWindowInDays": 40 })).await;
    assert_eq!(code, "ValidationException");
    kms.ok("ScheduleKeyDeletion", json!({ "KeyId": keys[2], "PendingWindowInDays": 7 })).await;

    let throttled = kms.fake.calls().into_iter().filter(|c| c.error.as_deref() == Some("ThrottlingException"));
    for call in throttled {
        assert_eq!(call.key_id.as_deref(), Some(keys[0].as_str()), "the throttled call names its key");
        assert!(!call.applied);
    }

    // Once the interval has passed the key can change again.
    kms.fake.set_faults(Faults { per_key_min_interval: Some(Duration::from_millis(100)), ..Faults::default() });
    tokio::time::sleep(Duration::from_millis(150)).await;
    kms.ok("EnableKey", json!({ "KeyId": keys[0] })).await;
}

#[tokio::test]
async fn injected_5xx_fail_every_call_without_applying_it() {
    let running = spawn(Faults { error_5xx: 1.0, seed: Some(5), ..Faults::default() }).await;
    let keys = running.fake.create_keys(ACCOUNT, REGION, 20);
    let kms = client(&running);
    let mut codes = Vec::new();
    for key in &keys {
        let err = kms.disable_key().key_id(key).send().await.unwrap_err();
        let code = err.code().unwrap().to_owned();
        let status = err.raw_response().unwrap().status().as_u16();
        match code.as_str() {
            "KMSInternalException" => assert_eq!(status, 500),
            "ServiceUnavailableException" => assert_eq!(status, 503),
            other => panic!("unexpected {other}"),
        }
        codes.push(code);
    }
    assert!(
        codes.iter().any(|c| c == "KMSInternalException") && codes.iter().any(|c| c == "ServiceUnavailableException")
    );
    for key in &keys {
        assert_eq!(state(&running.fake, key), "Enabled");
    }
    let calls = running.fake.calls();
    let logged: Vec<&str> = calls.iter().map(|c| c.error.as_deref().unwrap()).collect();
    assert_eq!(logged, codes);
    assert!(calls.iter().all(|c| !c.applied && c.key_id.is_some()));
    assert_eq!(running.fake.stats().totals.errors, 20);
}

#[tokio::test]
async fn a_dropped_connection_is_a_connection_error_and_changes_nothing() {
    let running = spawn(Faults { drop_connection: 1.0, ..Faults::default() }).await;
    let key = running.fake.create_keys(ACCOUNT, REGION, 1).remove(0);
    let kms = client(&running);
    let err = kms.disable_key().key_id(&key).send().await.unwrap_err();
    assert_no_answer(&err);
    assert_eq!(state(&running.fake, &key), "Enabled");

    // A plain HTTP client reads nothing at all: no status line, no headers.
    let body = json!({ "KeyId": key }).to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nX-Amz-Target: TrentService.DisableKey\r\n\
         Content-Type: application/x-amz-json-1.1\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n{body}",
        running.addr,
        support::authorization(BUILTIN_ACCESS_KEY_ID, REGION),
        body.len()
    );
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // A reset is as good as an orderly close; either way not a byte of an answer.
    let _ = stream.read_to_end(&mut received).await;
    assert!(received.is_empty(), "got {:?}", String::from_utf8_lossy(&received));

    let calls = running.fake.calls();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(call.error.as_deref(), Some("ConnectionDropped"));
        assert!(!call.applied);
        assert_eq!(call.key_id.as_deref(), Some(key.as_str()));
    }
    assert_eq!(running.fake.stats().totals.dropped, 2);
}

#[tokio::test]
async fn drop_after_apply_changes_the_key_but_answers_nothing() {
    let running = spawn(Faults { drop_after_apply: 1.0, ..Faults::default() }).await;
    let key = running.fake.create_keys(ACCOUNT, REGION, 1).remove(0);
    let kms = client(&running);
    let err = kms.disable_key().key_id(&key).send().await.unwrap_err();
    assert_no_answer(&err);
    assert_eq!(state(&running.fake, &key), "Disabled", "the change happened although the client saw an error");

    // A failed call changed nothing: it is answered.
    let err = kms.cancel_key_deletion().key_id(&key).send().await.unwrap_err();
    assert_eq!(err.code(), Some("KMSInvalidStateException"));

    let calls = running.fake.calls();
    assert_eq!(calls[0].operation, "DisableKey");
    assert_eq!(calls[0].error.as_deref(), Some("DroppedAfterApply"));
    assert!(calls[0].applied);
    assert_eq!(calls[0].key_id.as_deref(), Some(key.as_str()));
    assert_eq!(calls[1].error.as_deref(), Some("KMSInvalidStateException"));
    assert!(!calls[1].applied);
    let stats = running.fake.stats();
    assert_eq!((stats.totals.dropped, stats.totals.errors), (1, 1));
}

#[tokio::test]
async fn in_process_a_dropped_answer_has_a_failing_body() {
    let kms =
        Kms::with_config(FakeKmsConfig::default().with_faults(Faults { drop_connection: 1.0, ..Faults::default() }));
    assert!(kms.call_or_drop("ListKeys", json!({})).await.is_none());
    kms.fake.set_faults(Faults::default());
    assert!(kms.call_or_drop("ListKeys", json!({})).await.is_some());
}

/// The call log's error of each of `n` ListKeys calls.
async fn fault_sequence(kms: &Kms, n: usize) -> Vec<Option<String>> {
    let since = kms.fake.calls().last().map_or(0, |c| c.seq);
    for _ in 0..n {
        kms.call_or_drop("ListKeys", json!({})).await;
    }
    kms.fake.calls_since(since).into_iter().map(|c| c.error).collect()
}

#[tokio::test]
async fn a_seed_repeats_the_same_faults() {
    let faults =
        Faults { error_5xx: 0.3, drop_connection: 0.2, drop_after_apply: 0.2, seed: Some(99), ..Faults::default() };
    let first = Kms::with_config(FakeKmsConfig::default().with_faults(faults.clone()));
    let second = Kms::with_config(FakeKmsConfig::default().with_faults(faults.clone()));
    let sequence = fault_sequence(&first, 60).await;
    assert_eq!(fault_sequence(&second, 60).await, sequence);
    for outcome in [None, Some("ConnectionDropped"), Some("DroppedAfterApply"), Some("KMSInternalException")] {
        assert!(sequence.iter().any(|e| e.as_deref() == outcome), "{outcome:?} never happened in {sequence:?}");
    }

    // Setting the faults again restarts the sequence; another seed gives another one.
    first.fake.set_faults(faults.clone());
    assert_eq!(fault_sequence(&first, 60).await, sequence);
    first.fake.set_faults(Faults { seed: Some(100), ..faults });
    assert_ne!(fault_sequence(&first, 60).await, sequence);
}

#[tokio::test]
async fn latency_delays_calls() {
    let faults = Faults { latency: 1.0, latency_ms: 150, latency_jitter_ms: 50, ..Faults::default() };
    let kms = Kms::with_config(FakeKmsConfig::default().with_faults(faults));
    let started = std::time::Instant::now();
    kms.ok("ListKeys", json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn control_routes_round_trip_faults_and_count_calls() {
    let kms = Kms::new();
    let (status, body) = kms.get_json("/_fake/faults").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_value::<Faults>(body).unwrap(), Faults::default());

    let wanted = json!({
        "quotas": { "scale": 0.5, "overrides": { "DisableKey": 2.0 } },
        "per_key_min_interval_ms": 250,
        "error_5xx": 0.0,
        "latency": 0.5,
        "latency_ms": 10,
        "latency_jitter_ms": 5,
        "drop_connection": 0.0,
        "drop_after_apply": 0.0,
        "seed": 3
    });
    let (status, body) = kms.put_json("/_fake/faults", wanted.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, wanted);
    assert_eq!(kms.get_json("/_fake/faults").await.1, wanted);
    let faults = kms.fake.faults();
    assert_eq!(faults.quotas.as_ref().unwrap().rate("DisableKey"), 2.0);
    assert_eq!(faults.quotas.as_ref().unwrap().rate("EnableKey"), 2.5);
    assert_eq!(faults.per_key_min_interval, Some(Duration::from_millis(250)));

    for bad in [
        json!({ "error_5xx": 1.5 }),
        json!({ "drop_connection": -0.5 }),
        json!({ "quotas": { "scale": -1 } }),
        json!({ "quotas": { "overrides": { "DisableKey": -2 } } }),
        json!({ "error_rate": 0.5 }),
        json!([]),
    ] {
        let (status, body) = kms.put_json("/_fake/faults", bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad} -> {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    assert_eq!(kms.get_json("/_fake/faults").await.1, wanted, "refused faults change nothing");

    let (status, _) = kms.put_json("/_fake/faults", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kms.fake.faults(), Faults::default());

    kms.ok("ListKeys", json!({})).await;
    kms.ok("ListKeys", json!({})).await;
    kms.err("DescribeKey", json!({})).await;
    kms.fake.set_faults(Faults { quotas: Some(QuotaConfig::scaled(0.0)), ..Faults::default() });
    kms.err("ListKeys", json!({})).await;

    let (status, body) = kms.get_json("/_fake/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["totals"], json!({ "calls": 4, "ok": 2, "throttled": 1, "errors": 1, "dropped": 0 }));
    assert_eq!(
        body["operations"][1],
        json!({ "account": ACCOUNT, "region": REGION, "operation": "ListKeys",
                "calls": 3, "ok": 2, "throttled": 1, "errors": 0, "dropped": 0 })
    );
    let stats: FakeKmsStats = serde_json::from_value(body).unwrap();
    assert_eq!(stats, kms.fake.stats());
    assert_eq!(stats.get(ACCOUNT, REGION, "DescribeKey").errors, 1);
    assert_eq!(stats.get(ACCOUNT, REGION, "EnableKey").calls, 0);
}

#[tokio::test]
async fn faults_never_touch_the_control_routes() {
    // Every KMS call would wait a minute, then be dropped.
    let faults = Faults {
        quotas: Some(QuotaConfig::scaled(0.0)),
        error_5xx: 1.0,
        latency: 1.0,
        latency_ms: 60_000,
        drop_connection: 1.0,
        drop_after_apply: 1.0,
        ..Faults::default()
    };
    let running = spawn(faults.clone()).await;
    let http = reqwest::Client::new();
    let url = running.url();
    let control = async {
        let seeded: Value = http
            .post(format!("{url}/_fake/keys"))
            .json(&json!({ "count": 2 }))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seeded["key_ids"].as_array().unwrap().len(), 2);
        for path in ["/_fake/keys", "/_fake/calls", "/_fake/stats", "/_fake/faults"] {
            let response = http.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.json::<Value>().await.unwrap();
        }
        let response = http.put(format!("{url}/_fake/faults")).json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 200);
    };
    tokio::time::timeout(Duration::from_secs(30), control).await.expect("control routes answer without delay");
    assert!(running.fake.calls().is_empty(), "control routes are not KMS calls");
    assert_eq!(running.fake.faults(), Faults::default());
}
