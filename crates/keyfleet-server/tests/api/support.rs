//! `TestApp`: a real keyfleet server over HTTPS on a random port with its own SQLite file, and the cloud
//! peers it talks to (the project's fake AWS KMS, moto).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use keyfleet_clouds::SdkConnector;
use keyfleet_fakes::{FakeKms, RunningFake};
use keyfleet_server::{Config, RunningServer, ServeArgs};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

pub const ADMIN_PASSWORD: &str = "admin-test-password";
pub const FAKE_ACCESS_KEY: &str = keyfleet_fakes::BUILTIN_ACCESS_KEY_ID;
pub const FAKE_ACCOUNT: &str = keyfleet_fakes::BUILTIN_ACCOUNT_ID;
pub const SECRET: &str = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";

pub struct TestApp {
    pub server: Option<RunningServer>,
    pub url: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub fake: RunningFake,
    pub admin: String,
    args: ServeArgs,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(self) -> Value {
        assert!(self.status.is_success(), "expected success, got {}: {}", self.status, self.body);
        self.body
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServeArgs)) -> TestApp {
        if let Ok(filter) = std::env::var("KEYFLEET_TEST_LOG") {
            keyfleet_server::init_logging(&filter, false);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args = ServeArgs {
            data_dir: Some(dir.path().join("data")),
            admin_password: Some(ADMIN_PASSWORD.into()),
            workers: Some(4),
            quota_scale: Some(0.0),
            log: Some("warn".into()),
            ..Default::default()
        };
        args.database_url = test_database().await;
        tweak(&mut args);
        let server = Self::start_server(args.clone()).await;
        let url = server.url();
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let fake = FakeKms::default().spawn().await.expect("fake");
        let mut app = TestApp { server: Some(server), url, http, dir, fake, admin: String::new(), args };
        app.admin = app.login("admin", ADMIN_PASSWORD).await;
        app
    }

    async fn start_server(args: ServeArgs) -> RunningServer {
        let config = Config::resolve(args).expect("config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        keyfleet_server::start(config, listener, Arc::new(SdkConnector::default())).await.expect("start")
    }

    /// Stops the server and starts a new one on the same data directory (and a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = Self::start_server(self.args.clone()).await;
        self.url = server.url();
        self.server = Some(server);
        self.admin = self.login("admin", ADMIN_PASSWORD).await;
    }

    /// The settings this app's server runs with (to start another server on the same database).
    pub fn args(&self) -> ServeArgs {
        self.args.clone()
    }

    /// Another handle on the server's database. On SQLite, use it only while the server is stopped.
    pub async fn store(&self) -> Arc<dyn keyfleet_store::Store> {
        match &self.args.database_url {
            Some(url) => {
                let s = keyfleet_store::PgStore::connect(url).await.expect("connect PostgreSQL");
                Arc::new(s)
            }
            None => Arc::new(keyfleet_store::SqliteStore::open(&self.db_path()).await.expect("open SQLite")),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.args.database_url.is_some()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data/keyfleet.db")
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    pub async fn login(&self, user: &str, password: &str) -> String {
        let r =
            self.call("POST", "/api/v1/auth/tokens", None, Some(json!({"username": user, "password": password}))).await;
        r.ok()["jwt"].as_str().expect("jwt").to_string()
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Reply { status, body }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, Some(&self.admin.clone()), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(&self.admin.clone()), Some(body)).await
    }

    /// Registers a connection to `endpoint` and a KMS container for `account` in `regions`.
    pub async fn add_kms(
        &self,
        name: &str,
        endpoint: &str,
        access_key: &str,
        account: &str,
        regions: &[&str],
    ) -> Value {
        let conn = format!("{name}-conn");
        self.post(
            "/api/v1/connectionmgmt/services/aws/connections",
            json!({"name": conn, "access_key_id": access_key, "secret_access_key": SECRET, "endpoint_url": endpoint}),
        )
        .await
        .ok();
        self.post(
            "/api/v1/cckm/aws/kms",
            json!({"name": name, "account_id": account, "connection": conn, "regions": regions}),
        )
        .await
        .ok()
    }

    /// Synchronizes a container and waits for the sync to finish.
    pub async fn sync(&self, kms: &str) -> Value {
        let job = self.post("/api/v1/cckm/aws/synchronization-jobs", json!({"kms": [kms]})).await.ok();
        let id = job["id"].as_str().expect("id").to_string();
        self.wait_until_done(&format!("/api/v1/cckm/aws/synchronization-jobs/{id}")).await
    }

    /// The CCKM ids of a container's keys, in the order the key list returns them.
    pub async fn key_ids(&self, kms: &str) -> Vec<String> {
        let list = self.get(&format!("/api/v1/cckm/aws/keys?kms={kms}&limit=1000")).await.ok();
        list["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|k| k["id"].as_str().expect("id").to_string())
            .collect()
    }

    /// Polls a job until `overall_status` is no longer `in_progress`.
    pub async fn wait_until_done(&self, path: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let job = self.get(path).await.ok();
            if job["overall_status"] != "in_progress" {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job did not finish in time: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn run_bulkjob(&self, body: Value) -> Value {
        let job = self.post("/api/v1/cckm/aws/bulkjob", body).await;
        assert_eq!(job.status, StatusCode::CREATED, "{}", job.body);
        let id = job.body["id"].as_str().expect("id").to_string();
        self.wait_until_done(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await
    }

    /// Creates a user, optionally in a group; returns (user_id, token).
    pub async fn user(&self, name: &str, group: Option<&str>) -> (String, String) {
        let password = format!("{name}-password");
        let u = self.post("/api/v1/usermgmt/users", json!({"username": name, "password": password})).await.ok();
        let id = u["user_id"].as_str().expect("user_id").to_string();
        if let Some(g) = group {
            self.post(&format!("/api/v1/usermgmt/groups/{g}/users/{id}"), json!({})).await.ok();
        }
        let token = self.login(name, &password).await;
        (id, token)
    }
}

/// An AWS SDK client for a backend (fake or moto), to set up keys and to check their real state.
pub fn kms_client(endpoint: &str, access_key: &str, region: &str) -> aws_sdk_kms::Client {
    let creds = aws_credential_types::Credentials::new(access_key, SECRET, None, None, "test");
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(region.to_string()))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const SETUP_HINT: &str = "run `scripts/test` (it creates .venv-peers with moto and boto3), or set \
                          KEYFLEET_TEST_PYTHON to a Python that can `import moto`";

/// A moto server of its own on a random port; stops when dropped.
pub struct Moto {
    pub url: String,
    _child: tokio::process::Child,
}

impl Moto {
    pub async fn start() -> Moto {
        let python = std::env::var_os("KEYFLEET_TEST_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join(".venv-peers/bin/python"));
        assert!(python.exists(), "no Python at {}: {SETUP_HINT}", python.display());
        let mut child = tokio::process::Command::new(&python)
            .arg(workspace_root().join("tests/peers/moto_server.py"))
            .env("MOTO_ACCOUNT_ID", MOTO_ACCOUNT)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}: {SETUP_HINT}", python.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(60), tokio::io::BufReader::new(stdout).read_line(&mut line))
            .await
            .expect("moto starts within 60 s")
            .expect("read moto's port");
        let port: u16 =
            line.trim().parse().unwrap_or_else(|_| panic!("moto did not print its port ({line:?}): {SETUP_HINT}"));
        Moto { url: format!("http://127.0.0.1:{port}"), _child: child }
    }
}

pub const MOTO_ACCOUNT: &str = "123456789012";

/// The backend under test: SQLite (default) or, with `KEYFLEET_TEST_BACKEND=postgres`, a fresh database on the
/// PostgreSQL server of `KEYFLEET_TEST_DATABASE_URL` (`scripts/test` runs the suite both ways).
pub async fn test_database() -> Option<String> {
    use sqlx::{Connection, Executor};
    match std::env::var("KEYFLEET_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => None,
        Ok("postgres") => {
            let admin = std::env::var("KEYFLEET_TEST_DATABASE_URL").unwrap_or_else(|_| {
                panic!(
                    "KEYFLEET_TEST_BACKEND=postgres needs KEYFLEET_TEST_DATABASE_URL: \
                     export KEYFLEET_TEST_DATABASE_URL=$(scripts/pg-test-cluster start /tmp/kf-pg)"
                )
            });
            let name = format!("kf_api_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to KEYFLEET_TEST_DATABASE_URL");
            conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.expect("create database");
            conn.close().await.expect("close");
            let (base, query) =
                admin.split_once('?').map(|(b, q)| (b, format!("?{q}"))).unwrap_or((&admin, String::new()));
            let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
            Some(format!("{base}/{name}{query}"))
        }
        Ok(other) => panic!("KEYFLEET_TEST_BACKEND={other}: expected sqlite or postgres"),
    }
}
