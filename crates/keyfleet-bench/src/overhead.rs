//! Engine throughput (issue 13, target 1): items/s of a `disablekey` selector job over 200,000 keys in one
//! rate-limit partition, against the fake AWS KMS without quotas (`--quota-scale 0`), on a SQLite file
//! (durable commits) and on PostgreSQL — each beside aws-sdk-kms alone sending the same calls per key at the
//! same concurrency, measured in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID};
use serde_json::json;

use crate::Env;
use crate::client::{Api, CallCounts, Fake, job_seconds};
use crate::db::{Database, PgServer};
use crate::load::{Budget, RawKms, closed_loop, sdk_client};
use crate::procs::{Proc, fresh_dir};
use crate::report::{Section, Table, int, num, ratio, verdict};

/// keyfleet's keys: a region of their own per store, so that every run starts from Enabled keys.
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// The baseline's keys.
const LOAD_REGION: &str = "us-west-2";
/// keyfleet's default `--partition-concurrency` (passed explicitly): at most this many items of the job's one
/// partition have a cloud call in flight; the baseline runs this many loops.
const CONCURRENCY: usize = 8;
/// The targets: keyfleet items/s ÷ the baseline's keys/s.
const TARGET_SQLITE: f64 = 0.5;
const TARGET_POSTGRES: f64 = 0.4;

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let keys = if env.quick { 20_000 } else { 200_000 };
    let dir = fresh_dir(&env.work_dir, "overhead")?;
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &[]).await?;
    let fake = Fake::new(&fake_proc.url)?;
    let load_keys = Arc::new(fake.create_keys(BUILTIN_ACCOUNT_ID, LOAD_REGION, keys).await?);
    // For context: what the fake serves to the lightest client (raw JSON 1.1 POSTs) at the same concurrency.
    let raw = Arc::new(RawKms::new(&format!("{}/", fake_proc.url), BUILTIN_ACCESS_KEY_ID, LOAD_REGION)?);
    let budget = Budget { duration: Duration::from_secs(if env.quick { 2 } else { 4 }), max_requests: 5_000_000 };
    let lk = load_keys.clone();
    let fake_max = closed_loop(CONCURRENCY, budget, move |i| {
        let (raw, keys) = (raw.clone(), lk.clone());
        async move { raw.call("DescribeKey", &keys[i as usize % keys.len()]).await }
    })
    .await;
    eprintln!("  the fake alone, raw DescribeKey, N={CONCURRENCY}: {:.0} req/s", fake_max.rate());

    let mut notes = Vec::new();
    let mut stores = vec![(Database::Sqlite, TARGET_SQLITE)];
    let pg = match PgServer::find(env.database_url.as_deref()) {
        Ok(pg) => {
            let db = pg.database(&format!("kf_bench_overhead_{}", std::process::id())).await?;
            stores.push((Database::Postgres(db), TARGET_POSTGRES));
            Some(pg)
        }
        Err(e) => {
            notes.push(format!("PostgreSQL not measured: {e:#}"));
            None
        }
    };

    // Calls sent to the fake so far: a close guess of its call log's length.
    let mut sent = 0u64;
    let mut runs = Vec::new();
    for (n, ((db, target), region)) in stores.iter().zip(REGIONS).enumerate() {
        let ids = fake.create_keys(BUILTIN_ACCOUNT_ID, region, keys).await?;
        let run = keyfleet_job(env, &dir, n, db, &fake_proc, &fake, region, ids, sent).await?;
        sent += run.calls.total;
        let base = sdk_baseline(&fake_proc.url, load_keys.clone(), &run.calls, run.items).await?;
        eprintln!(
            "  aws-sdk-kms alone, N={CONCURRENCY}, same calls per key: {:.0} keys/s ({} calls, {} failed)",
            base.keys_per_s, base.calls, base.errors
        );
        anyhow::ensure!(base.errors == 0, "the baseline's calls failed: {} of {}", base.errors, base.calls);
        sent += base.calls;
        runs.push((db.label(), *target, run, base));
    }
    for (db, _) in &stores {
        if let Database::Postgres(pg) = db {
            pg.drop_now().await?;
        }
    }
    if let Some(pg) = pg {
        pg.stop();
    }
    fake_proc.stop(Duration::from_secs(5)).await?;

    let mut t = Table::new(&["store", "keyfleet", "baseline (same run)", "ratio", "target"]);
    t.row(vec![
        "context: the fake alone".into(),
        "–".into(),
        format!(
            "raw HTTP DescribeKey, {CONCURRENCY} loops: {} req/s (p99 {} ms)",
            num(fake_max.rate()),
            num(fake_max.p99_ms())
        ),
        "–".into(),
        "–".into(),
    ]);
    for (label, target, r, base) in &runs {
        let items_per_s = r.items as f64 / r.secs;
        let ratio_ = items_per_s / base.keys_per_s;
        t.row(vec![
            format!("{label}: `disablekey` selector job, {} keys, one partition", int(r.items)),
            format!("**{} items/s** ({} s)", num(items_per_s), num(r.secs)),
            format!("aws-sdk-kms alone, {CONCURRENCY} loops, same calls per key: **{} keys/s**", num(base.keys_per_s)),
            format!("**{}**", ratio(ratio_)),
            format!("≥ {target}: {}", verdict(ratio_ >= *target)),
        ]);
        t.row(vec![
            "  calls per item (the fake's call log)".into(),
            format!("{} ({})", num(r.calls.total as f64 / r.items as f64), r.calls.summary()),
            format!(
                "{} calls for {} keys ({} of the fake's raw rate)",
                int(base.calls),
                int(base.keys),
                ratio(base.keys_per_s * base.calls as f64 / base.keys as f64 / fake_max.rate())
            ),
            "–".into(),
            "–".into(),
        ]);
        t.row(vec![
            "  CPU per item: keyfleet process (fake process)".into(),
            format!(
                "{} µs, {} % of one CPU ({} µs)",
                num(r.keyfleet_cpu * 1e6 / r.items as f64),
                num(r.keyfleet_cpu / r.secs * 100.0),
                num(r.fake_cpu * 1e6 / r.items as f64)
            ),
            "–".into(),
            "–".into(),
            "–".into(),
        ]);
    }
    notes.splice(
        0..0,
        [
            format!(
                "Each run: a fresh keyfleet (its own data directory and database) with `--quota-scale 0 \
                 --partition-concurrency {CONCURRENCY}` (the default concurrency), a KMS container over one region \
                 of the fake (quotas off) whose {} keys were written into the inventory through the store while the \
                 server was stopped (as a sync would), then `{{\"operation\": \"disablekey\", \"selector\": \
                 {{\"kms\": [\"bench\"]}}}}` over the API; items/s = items ÷ (`completed_at` − `createdAt`).",
                int(keys as u64)
            ),
            format!(
                "Baseline, right after each job: aws-sdk-kms alone (retries off, as keyfleet configures it) in \
                 {CONCURRENCY} closed loops over {} other keys of the fake, each loop sending one key's calls after \
                 another, the calls per key spread exactly as the job's call log had them per item.",
                int(keys as u64)
            ),
            "keyfleet serve, the fake and (on PostgreSQL) the database server run as separate processes; the \
             baseline runs in the benchmark's process. All share the machine's CPUs."
                .into(),
        ],
    );
    let title = format!("1. Engine throughput: a {}-key job vs aws-sdk-kms alone", int(keys as u64));
    Ok(Section { title, table: t, notes })
}

struct JobRun {
    items: u64,
    secs: f64,
    calls: CallCounts,
    keyfleet_cpu: f64,
    fake_cpu: f64,
}

/// Sets up a keyfleet on `db` with `ids` (keys of the fake in `region`) in its inventory and runs one
/// `disablekey` selector job over them. `sent` is about how many calls the fake logged so far.
#[allow(clippy::too_many_arguments)]
async fn keyfleet_job(
    env: &Env,
    dir: &Path,
    n: usize,
    db: &Database,
    fake_proc: &Proc,
    fake: &Fake,
    region: &str,
    ids: Vec<String>,
    sent: u64,
) -> anyhow::Result<JobRun> {
    let data = dir.join(format!("data-{n}"));
    let mut args = vec!["--quota-scale".to_owned(), "0".into(), "--partition-concurrency".into()];
    args.push(CONCURRENCY.to_string());
    args.extend(db.server_args());
    let keys = ids.len();
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join(format!("keyfleet-{n}-setup.log")), &args).await?;
    let api = Api::login(&server.url).await?;
    api.add_kms("bench", &fake_proc.url, BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, &[region]).await?;
    server.stop(Duration::from_secs(30)).await?;
    let t = Instant::now();
    db.write_inventory(&data, "bench", &[(region, ids)]).await?;
    eprintln!("  {keys} keys written into the inventory in {:.1} s", t.elapsed().as_secs_f64());

    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join(format!("keyfleet-{n}.log")), &args).await?;
    let api = Api::login(&server.url).await?;
    let mark = fake.last_seq(sent).await?;
    let perf = Perf::start(server.pid, &dir.join(format!("perf-{n}.data")));
    let (kf0, fk0) = (server.sample()?.cpu_secs, fake_proc.sample()?.cpu_secs);
    let job = api
        .post(
            "/api/v1/cckm/aws/bulkjob",
            json!({"operation": "disablekey", "selector": {"kms": ["bench"]}, "max_items": keys}),
        )
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let done = api.wait(&format!("/api/v1/cckm/aws/bulkjob/{id}"), Duration::from_secs(3600), |_| {}).await?;
    let (kf1, fk1) = (server.sample()?.cpu_secs, fake_proc.sample()?.cpu_secs);
    if let Some(perf) = perf {
        perf.stop();
    }
    let secs = job_seconds(&done)?;
    let calls = CallCounts::of(&fake.calls_since(mark).await?);
    let p = &done["progress"];
    let (ok, failed) = (p["succeeded"].as_u64().unwrap_or(0), p["failed"].as_u64().unwrap_or(0));
    eprintln!(
        "  keyfleet on {}: {ok} ok, {failed} failed in {secs:.1} s = {:.0} items/s; calls: {}; keyfleet CPU {:.0} %",
        db.label(),
        ok as f64 / secs,
        calls.summary(),
        (kf1 - kf0) / secs * 100.0
    );
    anyhow::ensure!(ok as usize == keys && failed == 0, "job did not succeed on every key: {}", done["progress"]);
    server.stop(Duration::from_secs(60)).await?;
    Ok(JobRun { items: ok, secs, calls, keyfleet_cpu: kf1 - kf0, fake_cpu: fk1 - fk0 })
}

/// What aws-sdk-kms alone achieved.
struct Baseline {
    keys_per_s: f64,
    keys: u64,
    calls: u64,
    errors: u64,
}

/// aws-sdk-kms alone: [`CONCURRENCY`] closed loops over `keys`, each sending one key's calls in a row, key i
/// getting its share of `mix` (the job's calls over `items` items) so that the whole run sends the same calls
/// per key as the job did per item.
async fn sdk_baseline(url: &str, keys: Arc<Vec<String>>, mix: &CallCounts, items: u64) -> anyhow::Result<Baseline> {
    for op in mix.by_op.keys() {
        anyhow::ensure!(
            matches!(op.as_str(), "DescribeKey" | "DisableKey" | "EnableKey"),
            "the baseline cannot send {op}"
        );
    }
    let ops: Arc<Vec<(String, u64)>> = Arc::new(mix.by_op.iter().map(|(op, n)| (op.clone(), *n)).collect());
    let sdk = Arc::new(sdk_client(url, BUILTIN_ACCESS_KEY_ID, LOAD_REGION));
    let budget = Budget { duration: Duration::from_secs(1800), max_requests: keys.len() as u64 };
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = calls.clone();
    let r = closed_loop(CONCURRENCY, budget, move |i| {
        let (sdk, keys, ops, counter) = (sdk.clone(), keys.clone(), ops.clone(), counter.clone());
        async move {
            let key = &keys[i as usize % keys.len()];
            let mut ok = true;
            for (op, count) in ops.iter() {
                // Key i's share of `count` calls over `items` keys: its calls sum exactly to `count`.
                let n = ((i + 1) * count).div_euclid(items.max(1)) - (i * count).div_euclid(items.max(1));
                for _ in 0..n {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    ok &= match op.as_str() {
                        "DescribeKey" => sdk.describe_key().key_id(key).send().await.is_ok(),
                        "DisableKey" => sdk.disable_key().key_id(key).send().await.is_ok(),
                        _ => sdk.enable_key().key_id(key).send().await.is_ok(),
                    };
                }
            }
            ok
        }
    })
    .await;
    Ok(Baseline {
        keys_per_s: r.rate(),
        keys: r.ok + r.errors,
        calls: calls.load(std::sync::atomic::Ordering::Relaxed),
        errors: r.errors,
    })
}

/// `perf record -g` of a process while the job runs, when `KEYFLEET_BENCH_PERF` is set (for profiling; the
/// figures of such a run are not to be recorded).
struct Perf(std::process::Child);

impl Perf {
    fn start(pid: u32, out: &Path) -> Option<Perf> {
        std::env::var_os("KEYFLEET_BENCH_PERF")?;
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
            .arg(out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        eprintln!("  perf recording pid {pid} into {}", out.display());
        Some(Perf(child))
    }

    fn stop(mut self) {
        let _ = std::process::Command::new("kill").arg("-INT").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}
