//! API: requests/s and latency of reading jobs with many jobs stored, beside `GET /healthz` of the same server
//! in the same run (the cost of HTTPS, routing and the load generator alone).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use keyfleet_core::{Cloud, JobParams, JobRecord, JobStatus, Operation};
use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID};
use keyfleet_store::{AuthStore, JobStore, SqliteStore};
use serde_json::json;

use crate::Env;
use crate::client::{Api, Fake};
use crate::load::{Budget, LoadResult, closed_loop};
use crate::procs::{Proc, fresh_dir};
use crate::report::{Section, Table, int, num, ratio};

/// Jobs created through the API (each over 100 keys, CCKM's limit): the newest ones, which the list shows.
const REAL_JOBS: usize = 10;
const KEYS_PER_JOB: usize = 100;
const CONCURRENCY: usize = 32;

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let (total_jobs, secs) = if env.quick { (10_000, 3) } else { (100_000, 10) };
    let dir = fresh_dir(&env.work_dir, "api")?;
    let data = dir.join("data");
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &[]).await?;
    let fake = Fake::new(&fake_proc.url)?;
    fake.create_keys(BUILTIN_ACCOUNT_ID, "us-east-1", KEYS_PER_JOB).await?;

    // 1. A server with the fake's keys, to create the admin user and the real jobs.
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-0.log"), &quota_off()).await?;
    let api = Api::login(&server.url).await?;
    api.add_kms("bench", &fake_proc.url, BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, &["us-east-1"]).await?;
    api.sync(&["bench"], Duration::from_secs(300)).await?;
    let keys = api.get(&format!("/api/v1/cckm/aws/keys?kms=bench&limit={KEYS_PER_JOB}")).await?;
    let key_ids: Vec<String> = keys["resources"]
        .as_array()
        .context("resources")?
        .iter()
        .filter_map(|k| k["id"].as_str().map(str::to_owned))
        .collect();
    server.stop(Duration::from_secs(30)).await?;

    // 2. The bulk of the jobs, straight into the database while the server is stopped.
    let synthetic = total_jobs - REAL_JOBS;
    eprintln!("  creating {synthetic} jobs through the store");
    let t = Instant::now();
    create_jobs(&data.join("keyfleet.db"), synthetic).await?;
    let store_secs = t.elapsed().as_secs_f64();
    eprintln!("  ... {store_secs:.1} s");

    // 3. The newest jobs through the API, each run to the end: realistic pages with 100 keys per job.
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-1.log"), &quota_off()).await?;
    let api = Api::login(&server.url).await?;
    let mut last_id = String::new();
    for i in 0..REAL_JOBS {
        let op = if i % 2 == 0 { "disablekey" } else { "enablekey" };
        let job = api.post("/api/v1/cckm/aws/bulkjob", json!({"operation": op, "keys": key_ids})).await?;
        last_id = job["id"].as_str().context("job id")?.to_owned();
        let done = api.wait(&format!("/api/v1/cckm/aws/bulkjob/{last_id}"), Duration::from_secs(300), |_| {}).await?;
        anyhow::ensure!(done["overall_status"] == "completed", "job did not complete: {}", done["progress"]);
    }
    let list = api.get("/api/v1/cckm/aws/bulkjob?limit=10").await?;
    anyhow::ensure!(list["total"] == total_jobs, "the list counts {} jobs, expected {total_jobs}", list["total"]);

    // 4. Load: the same load generator, the same concurrency and duration, three routes.
    let token = api.token().await?;
    let budget = Budget { duration: Duration::from_secs(secs), max_requests: 10_000_000 };
    let routes = [
        ("GET /healthz (baseline)", "/healthz".to_owned(), false),
        ("GET /api/v1/cckm/aws/bulkjob/{id} (100-key job)", format!("/api/v1/cckm/aws/bulkjob/{last_id}"), true),
        ("GET /api/v1/cckm/aws/bulkjob?limit=10", "/api/v1/cckm/aws/bulkjob?limit=10".to_owned(), true),
    ];
    let mut results: Vec<(&str, LoadResult, f64)> = Vec::new();
    for (name, path, auth) in routes {
        let http = api.http.clone();
        let url = Arc::new(format!("{}{path}", server.url));
        let bearer = Arc::new(if auth { format!("Bearer {token}") } else { String::new() });
        // Warm up connections (TLS handshakes) outside the measurement.
        futures::stream::iter(0..CONCURRENCY)
            .for_each_concurrent(CONCURRENCY, |_| {
                let req = http.get(url.as_str()).header("authorization", bearer.as_str());
                async move {
                    let _ = req.send().await;
                }
            })
            .await;
        let cpu0 = server.sample()?.cpu_secs;
        let r = closed_loop(CONCURRENCY, budget, move |_| {
            let req = http.get(url.as_str()).header("authorization", bearer.as_str());
            async move {
                match req.send().await {
                    Ok(resp) => resp.status().is_success() && resp.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        let server_cpu = server.sample()?.cpu_secs - cpu0;
        eprintln!(
            "  {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, server CPU {:.0} µs/req",
            r.rate(),
            r.p50_ms(),
            r.p99_ms(),
            r.errors,
            server_cpu * 1e6 / r.ok.max(1) as f64
        );
        results.push((name, r, server_cpu));
    }
    server.stop(Duration::from_secs(30)).await?;
    fake_proc.stop(Duration::from_secs(5)).await?;

    let mut t = Table::new(&[
        "route",
        "requests/s",
        "p50",
        "p99",
        "server CPU/req",
        "errors",
        "vs /healthz: req/s ratio",
        "p99 ratio",
    ]);
    let (base_rate, base_p99) = (results[0].1.rate(), results[0].1.p99_ms());
    for (name, r, cpu) in &results {
        t.row(vec![
            (*name).to_owned(),
            format!("**{}**", num(r.rate())),
            format!("{} ms", num(r.p50_ms())),
            format!("**{} ms**", num(r.p99_ms())),
            format!("{} µs", num(cpu * 1e6 / r.ok.max(1) as f64)),
            int(r.errors),
            ratio(r.rate() / base_rate),
            format!("{}×", ratio(r.p99_ms() / base_p99)),
        ]);
    }
    Ok(Section {
        title: format!("3. API: reading jobs with {} jobs stored", int(total_jobs as u64)),
        table: t,
        notes: vec![
            format!(
                "{CONCURRENCY} concurrent keep-alive HTTPS connections (reqwest, rustls), closed loop, {secs} s per \
                 route, after a warm-up request per connection; one server, one admin token (JWT checked and user \
                 and groups loaded from the store on every request)."
            ),
            format!(
                "{} jobs: {} written straight into the SQLite file with `JobStore::create_job` while the server was \
                 stopped ({} s, {} jobs/s; completed, no items), then {REAL_JOBS} jobs of {KEYS_PER_JOB} keys each \
                 created and run through the API, so the measured job and the listed page are real ones.",
                int(total_jobs as u64),
                int(synthetic as u64),
                num(store_secs),
                num(synthetic as f64 / store_secs)
            ),
            "The load generator runs on the same 2 CPUs as the server: absolute figures are low; read the ratios."
                .into(),
        ],
    })
}

fn quota_off() -> Vec<String> {
    vec!["--quota-scale".into(), "0".into()]
}

/// Writes `n` completed, empty AWS jobs created by `admin`, dated in the past (oldest first), in one
/// transaction per job (the store has no bulk insert), from a few concurrent tasks.
async fn create_jobs(db: &Path, n: usize) -> anyhow::Result<()> {
    let store = SqliteStore::open(db).await?;
    let admin = store.user_by_name("admin").await?.context("no admin user")?;
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move {
                let at = start + chrono::Duration::seconds(i as i64);
                let operation = if i % 2 == 0 { Operation::DisableKey } else { Operation::EnableKey };
                let job = JobRecord {
                    status: JobStatus::Completed,
                    completed_at: Some(at),
                    ..JobRecord::started(Cloud::Aws, operation, JobParams::default(), admin.id, at)
                };
                store.create_job(&job, &[]).await.map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    store.close().await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}
