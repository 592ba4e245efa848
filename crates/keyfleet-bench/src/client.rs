//! Small clients for keyfleet's API (as an operator calls it) and for the fake's control routes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use keyfleet_fakes::CallRecord;
use serde_json::{Value, json};

use crate::procs::ADMIN_PASSWORD;

/// The secret every benchmark connection stores (the fake does not check secrets).
pub const SECRET: &str = "bench-secret-access-key";

/// keyfleet's API as `admin`. Tokens live 300 s; this logs in again after 240 s.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    token: Mutex<(String, Instant)>,
}

impl Api {
    pub async fn login(base: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            // Creating a job of 1,000,000 items is one transaction: give it time.
            .timeout(Duration::from_secs(900))
            .build()?;
        let token = Self::fresh_token(&http, base).await?;
        Ok(Api { http, base: base.to_owned(), token: Mutex::new((token, Instant::now())) })
    }

    async fn fresh_token(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
        let resp = http
            .post(format!("{base}/api/v1/auth/tokens"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .context("login")?;
        let status = resp.status();
        let body: Value = resp.json().await.context("login answer")?;
        if !status.is_success() {
            bail!("login failed: {status} {body}");
        }
        body["jwt"].as_str().map(str::to_owned).context("login answer has no jwt")
    }

    /// A token valid for at least another minute.
    pub async fn token(&self) -> anyhow::Result<String> {
        {
            let t = self.token.lock().unwrap_or_else(|e| e.into_inner());
            if t.1.elapsed() < Duration::from_secs(240) {
                return Ok(t.0.clone());
            }
        }
        let fresh = Self::fresh_token(&self.http, &self.base).await?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = (fresh.clone(), Instant::now());
        Ok(fresh)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let req = self.http.get(format!("{}{path}", self.base)).bearer_auth(self.token().await?);
        Self::answer("GET", path, req).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let req = self.http.post(format!("{}{path}", self.base)).bearer_auth(self.token().await?).json(&body);
        Self::answer("POST", path, req).await
    }

    async fn answer(method: &str, path: &str, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.with_context(|| format!("{method} {path}"))?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {text}");
        }
        if text.is_empty() { Ok(Value::Null) } else { serde_json::from_str(&text).context("answer is not JSON") }
    }

    /// A connection to `endpoint` with `access_key` and a KMS container `name` for `account` in `regions`.
    pub async fn add_kms(
        &self,
        name: &str,
        endpoint: &str,
        access_key: &str,
        account: &str,
        regions: &[&str],
    ) -> anyhow::Result<Value> {
        let conn = format!("{name}-conn");
        self.post(
            "/api/v1/connectionmgmt/services/aws/connections",
            json!({"name": conn, "access_key_id": access_key, "secret_access_key": SECRET, "endpoint_url": endpoint}),
        )
        .await?;
        self.post(
            "/api/v1/cckm/aws/kms",
            json!({"name": name, "account_id": account, "connection": conn, "regions": regions}),
        )
        .await
    }

    /// Synchronizes containers and waits (at most `timeout`) for the sync job to end.
    pub async fn sync(&self, kms: &[&str], timeout: Duration) -> anyhow::Result<Value> {
        let job = self.post("/api/v1/cckm/aws/synchronization-jobs", json!({"kms": kms})).await?;
        let id = job["id"].as_str().context("sync job id")?;
        let done = self.wait(&format!("/api/v1/cckm/aws/synchronization-jobs/{id}"), timeout, |_| {}).await?;
        if done["overall_status"] != "completed" {
            bail!("sync did not complete: {done}");
        }
        Ok(done)
    }

    /// Polls a job every 200 ms until `overall_status` is no longer `in_progress`, calling `each` on every
    /// poll; fails after `timeout`.
    pub async fn wait(&self, path: &str, timeout: Duration, mut each: impl FnMut(&Value)) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self.get(path).await?;
            each(&job);
            if job["overall_status"] != "in_progress" {
                return Ok(job);
            }
            if Instant::now() > deadline {
                bail!("{path} still in progress after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Wall time of a finished job by its own clock: `completed_at - createdAt`, seconds.
pub fn job_seconds(job: &Value) -> anyhow::Result<f64> {
    let at = |field: &str| -> anyhow::Result<DateTime<Utc>> {
        let s = job[field].as_str().with_context(|| format!("job has no {field}: {job}"))?;
        Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
    };
    Ok((at("completed_at")? - at("createdAt")?).num_microseconds().unwrap_or(0) as f64 / 1e6)
}

/// The fake AWS KMS's control routes.
pub struct Fake {
    pub http: reqwest::Client,
    pub url: String,
}

impl Fake {
    pub fn new(url: &str) -> anyhow::Result<Fake> {
        Ok(Fake { http: reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?, url: url.to_owned() })
    }

    /// Creates `count` enabled keys in one account and region; returns their KeyIds.
    pub async fn create_keys(&self, account: &str, region: &str, count: usize) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(count);
        // Large requests in slices, so that no single answer is huge.
        while ids.len() < count {
            let n = (count - ids.len()).min(100_000);
            let body: Value = self
                .http
                .post(format!("{}/_fake/keys", self.url))
                .json(&json!({"account": account, "region": region, "count": n}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let got = body["key_ids"].as_array().context("key_ids")?;
            ids.extend(got.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
        Ok(ids)
    }

    /// Every call the fake logged after `since`.
    pub async fn calls_since(&self, since: u64) -> anyhow::Result<Vec<CallRecord>> {
        Ok(self
            .http
            .get(format!("{}/_fake/calls?since={since}", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The sequence number of the last logged call (0 when none). `hint` is a guess of it (e.g. the number
    /// of calls sent so far): the log is read from just below it, never the whole log when the guess is
    /// close.
    pub async fn last_seq(&self, hint: u64) -> anyhow::Result<u64> {
        let mut since = hint;
        loop {
            if let Some(c) = self.calls_since(since).await?.last() {
                return Ok(c.seq);
            }
            if since == 0 {
                return Ok(0);
            }
            since = since.saturating_sub(since / 16 + 1_000);
        }
    }
}

/// Counts of a slice of the call log.
#[derive(Debug, Default, Clone)]
pub struct CallCounts {
    pub total: u64,
    pub by_op: std::collections::BTreeMap<String, u64>,
}

impl CallCounts {
    pub fn of(calls: &[CallRecord]) -> CallCounts {
        let mut c = CallCounts::default();
        for call in calls {
            c.total += 1;
            *c.by_op.entry(call.operation.clone()).or_default() += 1;
        }
        c
    }

    /// `DescribeKey 1, DisableKey 10000` style summary.
    pub fn summary(&self) -> String {
        self.by_op.iter().map(|(op, n)| format!("{op} {n}")).collect::<Vec<_>>().join(", ")
    }
}
