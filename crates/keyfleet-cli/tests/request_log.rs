//! The real binary's request log: one line per request with request id (the client's `X-Request-Id` kept),
//! user, client address, route, status and latency; the engine's lines for a job's items carry the request id
//! of the request that created the job.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, FakeKms, FakeKmsConfig};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_logs_its_id_user_client_route_status_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "info", "--log-format", "json", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("KEYFLEET_ADMIN_PASSWORD", "request-log-test-password")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(60), stdout.read_line(&mut line)).await.unwrap().unwrap();
    let url = line.split_whitespace().nth(3).unwrap().to_string();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(l)) = stderr.next_line().await {
            let _ = tx.send(l);
        }
    });

    let http = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let login = json!({"username": "admin", "password": "request-log-test-password"});
    let t: Value =
        http.post(format!("{url}/api/v1/auth/tokens")).json(&login).send().await.unwrap().json().await.unwrap();
    let resp = http
        .get(format!("{url}/api/v1/usermgmt/users/local|00000000-0000-4000-8000-000000000000"))
        .bearer_auth(t["jwt"].as_str().unwrap())
        .header("X-Request-Id", "request-log-test-7")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "request-log-test-7");

    let logged = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let l = rx.recv().await.expect("the server's log");
            if l.contains("request-log-test-7") && l.contains("\"message\":\"request\"") {
                return serde_json::from_str::<Value>(&l).unwrap();
            }
        }
    })
    .await
    .expect("a request line for the request");
    let (fields, span) = (&logged["fields"], &logged["span"]);
    assert_eq!(span["request.id"], "request-log-test-7", "{logged}");
    assert_eq!(span["client.address"], "127.0.0.1", "{logged}");
    assert_eq!(fields["user.name"], "admin", "{logged}");
    assert_eq!(fields["http.route"], "/api/v1/usermgmt/users/{id}", "{logged}");
    assert_eq!(fields["http.status"], 404, "{logged}");
    assert!(fields["duration_ms"].is_u64(), "{logged}");

    // A bulk job created with an X-Request-Id: the engine's log lines for its items carry it, although they
    // are written long after the request answered.
    let fake = FakeKms::new(FakeKmsConfig::default()).spawn().await.unwrap();
    let keys = fake.fake.create_keys(BUILTIN_ACCOUNT_ID, "us-east-1", 2);
    let jwt = t["jwt"].as_str().unwrap();
    let post = |path: &str, body: Value, id: &str| {
        http.post(format!("{url}/api/v1{path}")).bearer_auth(jwt).header("X-Request-Id", id).json(&body).send()
    };
    let conn = json!({"name": "c", "access_key_id": BUILTIN_ACCESS_KEY_ID, "secret_access_key": "x",
                      "endpoint_url": fake.url()});
    assert!(post("/connectionmgmt/services/aws/connections", conn, "setup").await.unwrap().status().is_success());
    let kms = json!({"name": "acct", "account_id": BUILTIN_ACCOUNT_ID, "connection": "c", "regions": ["us-east-1"]});
    assert!(post("/cckm/aws/kms", kms, "setup").await.unwrap().status().is_success());
    let sync: Value =
        post("/cckm/aws/synchronization-jobs", json!({"kms": ["acct"]}), "setup").await.unwrap().json().await.unwrap();
    let sync_path = format!("{url}/api/v1/cckm/aws/synchronization-jobs/{}", sync["id"].as_str().unwrap());
    for _ in 0..100 {
        let s: Value = http.get(&sync_path).bearer_auth(jwt).send().await.unwrap().json().await.unwrap();
        if s["overall_status"] != "in_progress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One key is gone from AWS: its item fails, and that is logged at info.
    assert!(fake.fake.delete_key_now(BUILTIN_ACCOUNT_ID, "us-east-1", &keys[0]));
    let job = json!({"operation": "disablekey", "selector": {"kms": ["acct"]}});
    assert_eq!(post("/cckm/aws/bulkjob", job, "request-log-job-9").await.unwrap().status(), 201);
    let logged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let l = rx.recv().await.expect("the server's log");
            if l.contains("item attempt failed") {
                return serde_json::from_str::<Value>(&l).unwrap();
            }
        }
    })
    .await
    .expect("a log line for the failed item");
    assert_eq!(logged["span"]["request.id"], "request-log-job-9", "{logged}");
    assert!(logged["span"]["bulkjob.id"].is_string(), "{logged}");
    child.start_kill().unwrap();
}
