//! The `/_fake/...` control routes, the Rust helpers tests use, and serving over real TCP.
#![allow(clippy::unwrap_used)]

mod support;

use axum::http::StatusCode;
use keyfleet_fakes::{CallRecord, FakeKms};
use serde_json::json;
use support::{ACCOUNT, Kms, REGION};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[tokio::test]
async fn seeding_keys_over_http_defaults_to_the_builtin_account() {
    let kms = Kms::new();
    let (status, body) = kms.post_json("/_fake/keys", json!({ "count": 3 })).await;
    assert_eq!(status, StatusCode::OK);
    let seeded: Vec<String> = serde_json::from_value(body["key_ids"].clone()).unwrap();
    assert_eq!(seeded.len(), 3);
    let listed = kms.ok("ListKeys", json!({})).await;
    let listed: Vec<&str> = listed["Keys"].as_array().unwrap().iter().map(|k| k["KeyId"].as_str().unwrap()).collect();
    assert_eq!(listed, seeded);

    let (status, body) =
        kms.post_json("/_fake/keys", json!({ "account": "444455556666", "region": "eu-west-1", "count": 2 })).await;
    assert_eq!(status, StatusCode::OK);
    let other: Vec<String> = serde_json::from_value(body["key_ids"].clone()).unwrap();
    assert_eq!(kms.fake.key_state("444455556666", "eu-west-1", &other[0]).as_deref(), Some("Enabled"));
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &other[0]), None);
}

#[tokio::test]
async fn listing_keys_shows_state_policy_and_tags() {
    let kms = Kms::new();
    let key_id = kms.create_key().await;
    kms.ok("TagResource", json!({ "KeyId": key_id, "Tags": [{ "TagKey": "env", "TagValue": "dev" }] })).await;
    kms.ok("DisableKey", json!({ "KeyId": key_id })).await;

    let (status, body) = kms.get_json("/_fake/keys?account=111122223333&region=us-east-1").await;
    assert_eq!(status, StatusCode::OK);
    let keys = body.as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["KeyId"], key_id.as_str());
    assert_eq!(keys[0]["KeyState"], "Disabled");
    assert!(keys[0]["Policy"].as_str().unwrap().contains("Enable IAM User Permissions"));
    assert_eq!(keys[0]["Tags"], json!([{ "TagKey": "env", "TagValue": "dev" }]));

    let (_, defaults) = kms.get_json("/_fake/keys").await;
    assert_eq!(defaults, body);
    let (status, empty) = kms.get_json("/_fake/keys?region=ap-south-1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty, json!([]));
}

#[tokio::test]
async fn call_log_over_http_with_since() {
    let kms = Kms::new();
    kms.create_key().await;
    kms.ok("ListKeys", json!({})).await;
    kms.err("DescribeKey", json!({})).await;

    let (status, body) = kms.get_json("/_fake/calls").await;
    assert_eq!(status, StatusCode::OK);
    let calls: Vec<CallRecord> = serde_json::from_value(body).unwrap();
    assert_eq!(calls, kms.fake.calls());
    assert_eq!(calls.len(), 3);

    let (_, body) = kms.get_json("/_fake/calls?since=1").await;
    let later: Vec<CallRecord> = serde_json::from_value(body).unwrap();
    let seqs: Vec<u64> = later.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [2, 3]);
    assert_eq!(later[1].error.as_deref(), Some("ValidationException"));
    let (_, body) = kms.get_json("/_fake/calls?since=3").await;
    assert_eq!(body, json!([]));
    let (_, body) = kms.get_json("/_fake/calls?since=99").await;
    assert_eq!(body, json!([]));
}

#[tokio::test]
async fn control_routes_reject_bad_input_with_a_json_error() {
    let kms = Kms::new();
    for (status, body) in [
        kms.get_json("/_fake/calls?since=soon").await,
        kms.get_json("/_fake/keys?account=abc").await,
        kms.post_json("/_fake/keys", json!({ "count": -1 })).await,
        kms.post_json("/_fake/keys", json!({ "count": 1, "acount": "x" })).await,
        kms.post_json("/_fake/keys", json!({ "count": 1, "region": "US East" })).await,
    ] {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

#[tokio::test]
async fn helpers_inspect_and_remove_keys() {
    let kms = Kms::new();
    let keys = kms.fake.create_keys(ACCOUNT, REGION, 2);
    kms.ok("CreateAlias", json!({ "AliasName": "alias/doomed", "TargetKeyId": keys[0] })).await;
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, "alias/doomed").as_deref(), Some("Enabled"));
    assert!(kms.fake.key_policy(ACCOUNT, REGION, &keys[0]).is_some());
    assert_eq!(kms.fake.key_tags(ACCOUNT, REGION, &keys[0]), Some(vec![]));

    assert!(kms.fake.delete_key_now(ACCOUNT, REGION, &keys[0]));
    assert!(!kms.fake.delete_key_now(ACCOUNT, REGION, &keys[0]));
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &keys[0]), None);
    assert_eq!(kms.fake.key_policy(ACCOUNT, REGION, &keys[0]), None);
    assert_eq!(kms.fake.key_tags(ACCOUNT, REGION, &keys[0]), None);
    let (code, _) = kms.err("DescribeKey", json!({ "KeyId": keys[0] })).await;
    assert_eq!(code, "NotFoundException");
    assert_eq!(kms.ok("ListAliases", json!({})).await["Aliases"], json!([]), "the key's aliases went with it");
    assert_eq!(kms.fake.key_state(ACCOUNT, REGION, &keys[1]).as_deref(), Some("Enabled"));
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(response)
}

#[tokio::test]
async fn spawn_serves_on_a_free_port_until_dropped() {
    let running = FakeKms::default().spawn().await.unwrap();
    assert!(running.addr.ip().is_loopback());
    assert_ne!(running.addr.port(), 0);
    assert_eq!(running.url(), format!("http://{}", running.addr));

    running.fake.create_keys(ACCOUNT, REGION, 1);
    let response = http_get(running.addr, "/_fake/keys").await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"KeyState\":\"Enabled\""), "{response}");

    let addr = running.addr;
    drop(running);
    // Give the aborted task a moment to release the listener.
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "the listener closes once the RunningFake drops");
}
