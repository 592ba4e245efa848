//! API: requests/s and latency of reading jobs with 100,000 jobs stored — one job, pages of the job list at
//! several depths, pages of a 1,000,000-item job's items — on SQLite and on PostgreSQL, each beside
//! `GET /healthz` of the same server in the same run (the cost of HTTPS, routing and the load generator alone).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use keyfleet_core::{Cloud, JobParams, JobRecord, JobStatus, KeyId, NewItem, Operation};
use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID};
use keyfleet_store::{PgStore, SqliteStore, Store};
use serde_json::json;

use crate::Env;
use crate::client::{Api, Fake};
use crate::load::{Budget, LoadResult, closed_loop};
use crate::procs::{Proc, fresh_dir};
use crate::report::{Section, Table, int, num, ratio};

/// Jobs created through the API (each over 100 keys, CCKM's limit): the newest ones, which the list shows.
const REAL_JOBS: usize = 10;
const KEYS_PER_JOB: usize = 100;
const CONCURRENCY: usize = 64;
/// The database the PostgreSQL half creates (and drops again) on the server it is given.
const PG_DATABASE: &str = "kf_bench_api";

/// Where a run's jobs are stored.
enum Backend {
    Sqlite,
    /// A database URL (on a server the benchmark was given, or on a throwaway cluster it started).
    Postgres {
        url: String,
    },
}

impl Backend {
    fn label(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }

    fn serve_args(&self) -> Vec<String> {
        let mut args = vec!["--quota-scale".into(), "0".into()];
        if let Backend::Postgres { url, .. } = self {
            args.extend(["--database-url".into(), url.clone()]);
        }
        args
    }

    async fn open(&self, data: &Path) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Backend::Sqlite => Arc::new(SqliteStore::open(&data.join("keyfleet.db")).await?),
            Backend::Postgres { url, .. } => Arc::new(PgStore::connect(url).await?),
        })
    }
}

/// One measured route of one backend.
struct Measured {
    backend: &'static str,
    name: String,
    result: LoadResult,
    server_cpu: f64,
}

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let (total_jobs, big_items, secs) = if env.quick { (10_000, 100_000, 3) } else { (100_000, 1_000_000, 10) };
    let dir = fresh_dir(&env.work_dir, "api")?;
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &[]).await?;
    let fake = Fake::new(&fake_proc.url)?;
    fake.create_keys(BUILTIN_ACCOUNT_ID, "us-east-1", KEYS_PER_JOB).await?;
    let size = Size { total_jobs, big_items, secs };

    let mut measured = Vec::new();
    let mut notes = Vec::new();
    let sqlite = Backend::Sqlite;
    let (rows, setup) = measure(env, &dir.join("sqlite"), &fake_proc.url, &sqlite, &size).await?;
    measured.extend(rows);
    notes.push(format!("SQLite: {setup}"));

    let pg = postgres(env).await?;
    let result =
        measure(env, &dir.join("postgres"), &fake_proc.url, &Backend::Postgres { url: pg.url.clone() }, &size).await;
    drop_database(&pg.server).await?;
    if let Some(cluster) = &pg.cluster {
        stop_cluster(cluster);
    }
    let (rows, setup) = result?;
    measured.extend(rows);
    let where_pg = match pg.cluster {
        Some(_) => "a throwaway cluster started by `scripts/pg-test-cluster` (fsync off)".to_string(),
        None => format!("the server of `--database-url` ({}; database `{PG_DATABASE}`)", redact(&pg.server)),
    };
    notes.push(format!("PostgreSQL on {where_pg}: {setup}"));
    fake_proc.stop(Duration::from_secs(5)).await?;

    let mut t = Table::new(&[
        "store",
        "route",
        "requests/s",
        "p50",
        "p99",
        "server CPU/req",
        "errors",
        "vs /healthz: req/s ratio",
        "p99 ratio",
    ]);
    for backend in ["SQLite", "PostgreSQL"] {
        let rows: Vec<&Measured> = measured.iter().filter(|m| m.backend == backend).collect();
        let Some(base) = rows.first() else { continue };
        let (base_rate, base_p99) = (base.result.rate(), base.result.p99_ms());
        for m in rows {
            let r = &m.result;
            t.row(vec![
                backend.to_owned(),
                m.name.clone(),
                format!("**{}**", num(r.rate())),
                format!("{} ms", num(r.p50_ms())),
                format!("**{} ms**", num(r.p99_ms())),
                format!("{} µs", num(m.server_cpu * 1e6 / r.ok.max(1) as f64)),
                int(r.errors),
                ratio(r.rate() / base_rate),
                format!("{}×", ratio(r.p99_ms() / base_p99)),
            ]);
        }
    }
    notes.insert(
        0,
        format!(
            "{CONCURRENCY} concurrent keep-alive HTTPS connections (reqwest, rustls), closed loop, {secs} s per route, \
             after a warm-up request per connection; one server per store, one admin token. Server CPU is the \
             `keyfleet serve` process's (PostgreSQL's own processes not included)."
        ),
    );
    notes.insert(
        1,
        format!(
            "{} jobs per store: {} written straight into the database with `JobStore::create_job` while the server \
             was stopped (completed, no items), one job of {} items (created as a plan through the store, then \
             cancelled through the API: every item `skipped`), and {REAL_JOBS} jobs of {KEYS_PER_JOB} keys each created \
             and run through the API, so the measured job and the first listed page are real ones. `skip` of the \
             last list page: {}; of the items' middle and last pages: {} and {}.",
            int(total_jobs as u64),
            int((total_jobs - REAL_JOBS - 1) as u64),
            int(big_items as u64),
            int(total_jobs as u64 - 10),
            int(big_items as u64 / 2),
            int(big_items as u64 - 10)
        ),
    );
    notes.push(
        "The load generator runs on the same 2 CPUs as the server: absolute figures are low; read the ratios.".into(),
    );
    Ok(Section { title: format!("3. API: reading jobs with {} jobs stored", int(total_jobs as u64)), table: t, notes })
}

struct Size {
    total_jobs: usize,
    big_items: usize,
    secs: u64,
}

/// Sets up one store (admin, the fake's keys, the jobs) and measures every route on it.
async fn measure(
    env: &Env,
    dir: &Path,
    fake_url: &str,
    backend: &Backend,
    size: &Size,
) -> anyhow::Result<(Vec<Measured>, String)> {
    let label = backend.label();
    eprintln!("  -- {label}");
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    let args = backend.serve_args();

    // 1. A server with the fake's keys, to create the admin user and the schema.
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-0.log"), &args).await?;
    let api = Api::login(&server.url).await?;
    api.add_kms("bench", fake_url, BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, &["us-east-1"]).await?;
    api.sync(&["bench"], Duration::from_secs(300)).await?;
    let keys = api.get(&format!("/api/v1/cckm/aws/keys?kms=bench&limit={KEYS_PER_JOB}")).await?;
    let key_ids: Vec<String> = keys["resources"]
        .as_array()
        .context("resources")?
        .iter()
        .filter_map(|k| k["id"].as_str().map(str::to_owned))
        .collect();
    server.stop(Duration::from_secs(30)).await?;

    // 2. The bulk of the jobs and the big one, straight into the database while the server is stopped.
    let synthetic = size.total_jobs - REAL_JOBS - 1;
    eprintln!("  creating {synthetic} jobs and one of {} items through the store", size.big_items);
    let t = Instant::now();
    let store = backend.open(&data).await?;
    create_jobs(store.as_ref(), synthetic).await?;
    let jobs_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let big = create_big_job(store.as_ref(), size.big_items).await?;
    let big_secs = t.elapsed().as_secs_f64();
    drop(store);
    eprintln!("  ... {jobs_secs:.1} s, {big_secs:.1} s");

    // 3. The newest jobs through the API, each run to the end: realistic pages with 100 keys per job.
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-1.log"), &args).await?;
    let api = Api::login(&server.url).await?;
    let t = Instant::now();
    let cancelled = api.post(&format!("/api/v1/cckm/aws/bulkjob/{big}/cancel"), json!({})).await?;
    anyhow::ensure!(cancelled["overall_status"] == "cancelled", "big job not cancelled: {}", cancelled["progress"]);
    let cancel_secs = t.elapsed().as_secs_f64();
    let mut last_id = String::new();
    for i in 0..REAL_JOBS {
        let op = if i % 2 == 0 { "disablekey" } else { "enablekey" };
        let job = api.post("/api/v1/cckm/aws/bulkjob", json!({"operation": op, "keys": key_ids})).await?;
        last_id = job["id"].as_str().context("job id")?.to_owned();
        let done = api.wait(&format!("/api/v1/cckm/aws/bulkjob/{last_id}"), Duration::from_secs(300), |_| {}).await?;
        anyhow::ensure!(done["overall_status"] == "completed", "job did not complete: {}", done["progress"]);
    }
    let list = api.get("/api/v1/cckm/aws/bulkjob?limit=10").await?;
    anyhow::ensure!(
        list["total"] == size.total_jobs,
        "the list counts {} jobs, expected {}",
        list["total"],
        size.total_jobs
    );
    let last_skip = size.total_jobs - 10;
    let last = api.get(&format!("/api/v1/cckm/aws/bulkjob?limit=10&skip={last_skip}")).await?;
    anyhow::ensure!(last["resources"].as_array().map(Vec::len) == Some(10), "the last page is not full: {last}");
    let items = format!("/api/v1/cckm/aws/bulkjob/{big}/items?limit=10");
    let tail = api.get(&format!("{items}&skip={}", size.big_items - 10)).await?;
    anyhow::ensure!(tail["total"] == size.big_items, "the big job lists {} items", tail["total"]);
    anyhow::ensure!(tail["resources"][9]["seq"] == size.big_items - 1, "the last item page ends elsewhere: {tail}");

    // 4. Load: the same load generator, concurrency and duration for every route.
    let token = api.token().await?;
    let budget = Budget { duration: Duration::from_secs(size.secs), max_requests: 10_000_000 };
    let list_route = |skip: usize| {
        (
            format!("GET .../bulkjob?limit=10&skip={}", int(skip as u64)),
            format!("/api/v1/cckm/aws/bulkjob?limit=10&skip={skip}"),
        )
    };
    let items_route = |what: &str, skip: usize| {
        (
            format!("GET .../bulkjob/{{id}}/items?limit=10, {what} page (skip {})", int(skip as u64)),
            format!("{items}&skip={skip}"),
        )
    };
    let routes = [
        ("GET /healthz (baseline)".to_owned(), "/healthz".to_owned()),
        ("GET .../bulkjob/{id} (100-key job)".to_owned(), format!("/api/v1/cckm/aws/bulkjob/{last_id}")),
        list_route(0),
        list_route(1_000),
        list_route(size.total_jobs / 2),
        list_route(last_skip),
        items_route("first", 0),
        items_route("middle", size.big_items / 2),
        items_route("last", size.big_items - 10),
    ];
    let mut results = Vec::new();
    for (name, path) in routes {
        let http = api.http.clone();
        let url = Arc::new(format!("{}{path}", server.url));
        let bearer = Arc::new(format!("Bearer {token}"));
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
            "  {label} {name}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, server CPU {:.0} µs/req",
            r.rate(),
            r.p50_ms(),
            r.p99_ms(),
            r.errors,
            server_cpu * 1e6 / r.ok.max(1) as f64
        );
        results.push(Measured { backend: label, name, result: r, server_cpu });
    }
    server.stop(Duration::from_secs(30)).await?;
    let setup = format!(
        "{} jobs written in {} s ({} jobs/s); the {}-item job in {} s, cancelled through the API in {} s.",
        int(synthetic as u64),
        num(jobs_secs),
        num(synthetic as f64 / jobs_secs),
        int(size.big_items as u64),
        num(big_secs),
        num(cancel_secs)
    );
    Ok((results, setup))
}

/// Writes `n` completed, empty AWS jobs created by `admin`, dated in the past (oldest first), in one
/// transaction per job (the store has no bulk insert), from a few concurrent tasks.
async fn create_jobs(store: &dyn Store, n: usize) -> anyhow::Result<()> {
    let admin = store.user_by_name("admin").await?.context("no admin user")?;
    let start = chrono::Utc::now() - chrono::Duration::days(30);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| async move {
            let at = start + chrono::Duration::seconds(i as i64);
            let operation = if i % 2 == 0 { Operation::DisableKey } else { Operation::EnableKey };
            let job = JobRecord {
                status: JobStatus::Completed,
                completed_at: Some(at),
                ..JobRecord::started(Cloud::Aws, operation, JobParams::default(), admin.id, at)
            };
            store.create_job(&job, &[]).await.map_err(anyhow::Error::from)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// Stores a planned job of `n` items (keys that need not exist: the plan is cancelled, never run), dated
/// before every other job; returns its id.
async fn create_big_job(store: &dyn Store, n: usize) -> anyhow::Result<String> {
    let admin = store.user_by_name("admin").await?.context("no admin user")?;
    let at = chrono::Utc::now() - chrono::Duration::days(60);
    let job = JobRecord {
        status: JobStatus::Planned,
        total: n as i64,
        ..JobRecord::started(Cloud::Aws, Operation::DisableKey, JobParams::default(), admin.id, at)
    };
    let partition = format!("{BUILTIN_ACCOUNT_ID}/us-east-1");
    let items: Vec<NewItem> = (0..n).map(|_| NewItem { key_id: KeyId::new(), partition: partition.clone() }).collect();
    store.create_job(&job, &items).await?;
    Ok(job.id.to_string())
}

/// The PostgreSQL database of a run: fresh, on `server`.
struct PgTarget {
    url: String,
    server: String,
    /// The folder of the throwaway cluster started for the run, to be stopped after it.
    cluster: Option<String>,
}

/// A fresh database on the server of `--database-url`, or on a throwaway cluster started with
/// `scripts/pg-test-cluster`.
async fn postgres(env: &Env) -> anyhow::Result<PgTarget> {
    let (server, cluster) = match &env.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let dir = "/tmp/keyfleet-bench-pg".to_string();
            let out = std::process::Command::new("scripts/pg-test-cluster")
                .args(["start", &dir])
                .output()
                .context("running scripts/pg-test-cluster (or pass --database-url)")?;
            anyhow::ensure!(
                out.status.success(),
                "scripts/pg-test-cluster start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (String::from_utf8(out.stdout)?.trim().to_owned(), Some(dir))
        }
    };
    drop_database(&server).await?;
    {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(&server).await.context("connecting to PostgreSQL")?;
        conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{PG_DATABASE}""#))).await?;
        conn.close().await?;
    }
    let (base, query) = server.split_once('?').map(|(b, q)| (b, format!("?{q}"))).unwrap_or((&server, String::new()));
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    Ok(PgTarget { url: format!("{base}/{PG_DATABASE}{query}"), server, cluster })
}

async fn drop_database(server: &str) -> anyhow::Result<()> {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(server).await.context("connecting to PostgreSQL")?;
    conn.execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)"#))).await?;
    conn.close().await?;
    Ok(())
}

fn stop_cluster(dir: &str) {
    let _ = std::process::Command::new("scripts/pg-test-cluster").args(["stop", dir]).status();
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}@{}", &url[..s + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
