//! The real binary's request log: one line per request with request id (the client's `X-Request-Id` kept),
//! user, client address, route, status and latency.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

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
    child.start_kill().unwrap();
}
