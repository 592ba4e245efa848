//! The real `keyfleet` binary as a test server, and the database it runs on.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

pub const PASSWORD: &str = "binary-test-password";

pub struct Server {
    pub pid: u32,
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
    /// The admin's access token; renewed when it expires (long tests outlive its 300 s).
    token: std::sync::Mutex<String>,
}

impl Server {
    /// Starts `keyfleet serve` on a random port (unless `extra` has a `--listen`); `extra` are more flags.
    pub async fn start(data: &std::path::Path, database_url: Option<&str>, extra: &[&str]) -> Server {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"));
        cmd.args(["serve", "--log", "warn"]);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .env("KEYFLEET_ADMIN_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        tokio::time::timeout(Duration::from_secs(60), tokio::io::BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("the server starts within 60 s")
            .unwrap();
        // "keyfleet serving on https://127.0.0.1:PORT (data directory ...)"
        let url =
            line.split_whitespace().nth(3).unwrap_or_else(|| panic!("unexpected first line {line:?}")).to_string();
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let pid = child.id().unwrap_or_default();
        let s = Server { pid, child, url, http, token: Default::default() };
        s.login().await;
        s
    }

    /// `https://127.0.0.1:PORT`, the server's self-signed certificate.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn login(&self) {
        let (status, t) =
            self.send("POST", "/api/v1/auth/tokens", &json!({"username": "admin", "password": PASSWORD})).await;
        assert!(status.is_success(), "sign-in: {status} {t}");
        *self.token.lock().unwrap() = t["jwt"].as_str().unwrap().to_string();
    }

    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, v) = self.send(method, path, &body).await;
        let expired =
            status == reqwest::StatusCode::UNAUTHORIZED && v["message"].as_str().is_some_and(|m| m.contains("expired"));
        let (status, v) = if expired {
            self.login().await; // as a client would: sign in again, then repeat the call
            self.send(method, path, &body).await
        } else {
            (status, v)
        };
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    async fn send(&self, method: &str, path: &str, body: &Value) -> (reqwest::StatusCode, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let token = self.token.lock().unwrap().clone();
        let mut req = self.http.request(m, format!("{}{path}", self.url)).bearer_auth(token);
        if !body.is_null() {
            req = req.json(body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    pub async fn kill(mut self) {
        self.child.start_kill().unwrap(); // SIGKILL
        let _ = self.child.wait().await;
    }

    /// One connection (to the fake at `endpoint`) and one KMS container over `regions` per (access key id,
    /// account); returns the containers' names, `acct-0`, `acct-1`, ...
    pub async fn add_aws_accounts(&self, endpoint: &str, accounts: &[(&str, &str)], regions: &[&str]) -> Vec<String> {
        let mut names = Vec::new();
        for (i, (akid, account)) in accounts.iter().enumerate() {
            let conn = format!("conn-{i}");
            self.call(
                "POST",
                "/api/v1/connectionmgmt/services/aws/connections",
                json!({"name": conn, "access_key_id": akid, "secret_access_key": "x", "endpoint_url": endpoint}),
            )
            .await;
            let name = format!("acct-{i}");
            self.call(
                "POST",
                "/api/v1/cckm/aws/kms",
                json!({"name": name, "account_id": account, "connection": conn, "regions": regions}),
            )
            .await;
            names.push(name);
        }
        names
    }

    /// Creates an AWS bulk job from `body` and returns its path (`/api/v1/cckm/aws/bulkjob/{id}`), after
    /// checking it holds `total` items.
    pub async fn create_aws_job(&self, body: Value, total: usize) -> String {
        let job = self.call("POST", "/api/v1/cckm/aws/bulkjob", body).await;
        assert_eq!(job["progress"]["total"], total, "{job}");
        format!("/api/v1/cckm/aws/bulkjob/{}", job["id"].as_str().unwrap())
    }

    /// Synchronizes every container and waits (at most `limit`) for the sync to complete.
    pub async fn sync_all(&self, limit: Duration) {
        let sync = self.call("POST", "/api/v1/cckm/aws/synchronization-jobs", json!({"synchronize_all": true})).await;
        let path = format!("/api/v1/cckm/aws/synchronization-jobs/{}", sync["id"].as_str().unwrap());
        let sync = self.wait_done(&path, limit).await;
        assert_eq!(sync["overall_status"], "completed", "{sync}");
    }

    /// Every item of a job, read page by page.
    pub async fn job_items(&self, job_path: &str, total: usize) -> Vec<Value> {
        let mut items = Vec::new();
        for skip in (0..total).step_by(1000) {
            let page = self.call("GET", &format!("{job_path}/items?skip={skip}&limit=1000"), Value::Null).await;
            items.extend(page["resources"].as_array().unwrap().iter().cloned());
        }
        items
    }

    pub async fn wait_done(&self, path: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let v = self.call("GET", path, Value::Null).await;
            if v["overall_status"] != "in_progress" {
                return v;
            }
            assert!(tokio::time::Instant::now() < deadline, "not done in time: {}", v["progress"]);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// SQLite in the data directory, or with `KEYFLEET_TEST_BACKEND=postgres` a fresh PostgreSQL database.
pub async fn test_database() -> Option<String> {
    match std::env::var("KEYFLEET_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => None,
        Ok("postgres") => Some(postgres_database().await),
        Ok(other) => panic!("KEYFLEET_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}

/// A fresh database on the PostgreSQL server of `KEYFLEET_TEST_DATABASE_URL` (scripts/test starts one).
pub async fn postgres_database() -> String {
    use sqlx::{Connection, Executor};
    let admin = std::env::var("KEYFLEET_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "KEYFLEET_TEST_DATABASE_URL is not set: export KEYFLEET_TEST_DATABASE_URL=$(scripts/pg-test-cluster \
             start /tmp/kf-pg), or run scripts/test"
        )
    });
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("kf_bin_{}_{n}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to KEYFLEET_TEST_DATABASE_URL");
    conn.execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.unwrap();
    conn.close().await.unwrap();
    let base = admin.split('?').next().unwrap_or(&admin);
    format!("{}/{name}", base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base))
}
