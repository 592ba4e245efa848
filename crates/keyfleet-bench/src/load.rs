//! Closed-loop load generators: N tasks, each sending its next request as soon as the previous one
//! answered, until a deadline or a request budget runs out (whichever comes first).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::report::quantile;

/// What one load run achieved.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub ok: u64,
    pub errors: u64,
    pub secs: f64,
    /// Sorted latencies of successful requests, microseconds.
    pub latencies_us: Vec<u64>,
    /// CPU seconds the load generator (this process) used during the run.
    pub own_cpu_secs: f64,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }
    pub fn p50_ms(&self) -> f64 {
        quantile(&self.latencies_us, 0.50) as f64 / 1000.0
    }
    pub fn p99_ms(&self) -> f64 {
        quantile(&self.latencies_us, 0.99) as f64 / 1000.0
    }
}

/// A bound on a run: at most `duration` and at most `max_requests` requests in all.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub duration: Duration,
    pub max_requests: u64,
}

/// Runs `concurrency` loops of `request(i)` (i = 0, 1, 2... over all loops) within `budget`.
/// `request` answers whether the request succeeded.
pub async fn closed_loop<F, Fut>(concurrency: usize, budget: Budget, request: F) -> LoadResult
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let request = Arc::new(request);
    let issued = Arc::new(AtomicU64::new(0));
    let cpu_before = crate::procs::own_cpu_secs();
    let started = Instant::now();
    let deadline = started + budget.duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let request = request.clone();
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::new());
            loop {
                let i = issued.fetch_add(1, Ordering::Relaxed);
                if i >= budget.max_requests || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                if request(i).await {
                    ok += 1;
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            (ok, errors, lat)
        }));
    }
    let mut result = LoadResult::default();
    for t in tasks {
        if let Ok((ok, errors, lat)) = t.await {
            result.ok += ok;
            result.errors += errors;
            result.latencies_us.extend(lat);
        }
    }
    result.secs = started.elapsed().as_secs_f64();
    result.own_cpu_secs = crate::procs::own_cpu_secs() - cpu_before;
    result.latencies_us.sort_unstable();
    result
}

/// The SigV4-shaped header the fake reads the caller from (it does not check signatures, as moto does not).
pub fn sigv4_header(access_key: &str, region: &str) -> String {
    let date = chrono::Utc::now().format("%Y%m%d");
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{date}/{region}/kms/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={}",
        "0".repeat(64)
    )
}

/// One raw KMS JSON 1.1 call: what an SDK sends, minus the signing work.
pub struct RawKms {
    pub http: reqwest::Client,
    pub url: String,
    pub auth: String,
}

impl RawKms {
    pub fn new(url: &str, access_key: &str, region: &str) -> anyhow::Result<RawKms> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(512).build()?;
        Ok(RawKms { http, url: url.to_owned(), auth: sigv4_header(access_key, region) })
    }

    /// True on HTTP 200.
    pub async fn call(&self, operation: &str, key_id: &str) -> bool {
        let body = format!("{{\"KeyId\":\"{key_id}\"}}");
        let resp = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("TrentService.{operation}"))
            .header("x-amz-date", chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
            .header("authorization", &self.auth)
            .body(body)
            .send()
            .await;
        match resp {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        }
    }
}

/// An aws-sdk-kms client for the fake, with the SDK's own retries off (as keyfleet configures it).
pub fn sdk_client(endpoint: &str, access_key: &str, region: &str) -> aws_sdk_kms::Client {
    let creds = aws_credential_types::Credentials::new(access_key, crate::client::SECRET, None, None, "bench");
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(region.to_owned()))
        .credentials_provider(creds)
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}
