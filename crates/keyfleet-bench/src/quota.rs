//! Quota adherence under jitter and faults: `disablekey` jobs over keys in several accounts and regions,
//! against the fake enforcing AWS's default quotas with 0-50 ms of uniform latency jitter and 5 % transient
//! server errors on every call, ten runs in a row, beside the boto3 scripts people write today on the same
//! fake, with the same faults, in the same run.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::Env;
use crate::client::{Api, Fake, job_seconds};
use crate::procs::{Proc, fresh_dir};
use crate::report::{Section, Table, int, num, pct, ratio, verdict};

/// (access key, account): four accounts.
pub(crate) const ACCOUNTS: [(&str, &str); 4] = [
    ("AKIABENCH00000000001", "100000000001"),
    ("AKIABENCH00000000002", "100000000002"),
    ("AKIABENCH00000000003", "100000000003"),
    ("AKIABENCH00000000004", "100000000004"),
];
pub(crate) const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];
/// AWS's default DisableKey quota per account and region, requests/s.
const DISABLE_QUOTA: f64 = 5.0;
/// Keys of the serial loop's sample, per partition (it is extrapolated to the full count).
const SERIAL_SAMPLE_PER_PARTITION: usize = 25;
/// The faults of every measured run: uniform latency jitter (ms) and the share of calls answering 500/503.
const JITTER_MS: u64 = 50;
const ERROR_RATE: f64 = 0.05;

/// One key as the Python baselines read it.
fn key_entry(key_id: &str, access_key: &str, region: &str) -> Value {
    json!({"key_id": key_id, "access_key": access_key, "region": region})
}

/// The fake's DisableKey counts (all accounts and regions) from `GET /_fake/stats`.
#[derive(Debug, Clone, Copy, Default)]
struct DisableStats {
    calls: u64,
    ok: u64,
    throttled: u64,
    /// Answered with an error other than throttling (the injected 500/503): admitted, counted by the quota.
    errors: u64,
    all_calls: u64,
    all_throttled: u64,
}

impl DisableStats {
    async fn read(fake: &Fake) -> anyhow::Result<DisableStats> {
        let stats: Value =
            fake.http.get(format!("{}/_fake/stats", fake.url)).send().await?.error_for_status()?.json().await?;
        let mut s = DisableStats {
            all_calls: stats["totals"]["calls"].as_u64().context("stats.totals.calls")?,
            all_throttled: stats["totals"]["throttled"].as_u64().unwrap_or(0),
            ..Default::default()
        };
        for op in stats["operations"].as_array().context("stats.operations")? {
            if op["operation"] == "DisableKey" {
                s.calls += op["calls"].as_u64().unwrap_or(0);
                s.ok += op["ok"].as_u64().unwrap_or(0);
                s.throttled += op["throttled"].as_u64().unwrap_or(0);
                s.errors += op["errors"].as_u64().unwrap_or(0);
            }
        }
        Ok(s)
    }

    fn since(self, before: DisableStats) -> DisableStats {
        DisableStats {
            calls: self.calls - before.calls,
            ok: self.ok - before.ok,
            throttled: self.throttled - before.throttled,
            errors: self.errors - before.errors,
            all_calls: self.all_calls - before.all_calls,
            all_throttled: self.all_throttled - before.all_throttled,
        }
    }
}

/// One row of the table.
struct Outcome {
    name: String,
    wall: f64,
    failed: u64,
    stats: DisableStats,
    /// Factor from the measured sample to all keys (1 when every key was done).
    extrapolate: f64,
}

/// The fake's faults: AWS's quotas always; with `faulty`, the jitter and server errors of a measured run too.
/// One KMS container per account (`acct1` … `acct4`) over both regions of the fake at `fake_url`; their names.
pub(crate) async fn add_accounts(api: &Api, fake_url: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for (i, (akid, account)) in ACCOUNTS.iter().enumerate() {
        let name = format!("acct{}", i + 1);
        api.add_kms(&name, fake_url, akid, account, &REGIONS).await?;
        names.push(name);
    }
    Ok(names)
}

async fn set_faults(fake: &Fake, faulty: bool) -> anyhow::Result<()> {
    let faults = if faulty {
        json!({"quotas": {}, "latency": 1.0, "latency_jitter_ms": JITTER_MS, "error_5xx": ERROR_RATE})
    } else {
        json!({"quotas": {}})
    };
    fake.http.put(format!("{}/_fake/faults", fake.url)).json(&faults).send().await?.error_for_status()?;
    Ok(())
}

/// One keyfleet run: its outcome and its quota use measured between its first and last call.
struct Run {
    outcome: Outcome,
    /// Admitted DisableKey calls per second between each account-region's first and last call, ÷ its quota
    /// (mean over the account-regions): the pace itself, without the job's start and end.
    steady: f64,
    spacing: Spacing,
}

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let per_partition = if env.quick { 50 } else { 250 };
    let runs = if env.quick { 3 } else { 10 };
    let partitions = ACCOUNTS.len() * REGIONS.len();
    let total = per_partition * partitions;
    let quota_sum = DISABLE_QUOTA * partitions as f64;
    let dir = fresh_dir(&env.work_dir, "quota")?;

    let mut fake_args = vec!["--quotas".to_owned()];
    for (akid, account) in ACCOUNTS {
        fake_args.push("--account".into());
        fake_args.push(format!("{akid}={account}"));
    }
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &fake_args).await?;
    let fake = Fake::new(&fake_proc.url)?;
    let faults: Value =
        fake.http.get(format!("{}/_fake/faults", fake.url)).send().await?.error_for_status()?.json().await?;
    anyhow::ensure!(faults["quotas"].is_object(), "the fake does not enforce quotas: {faults}");

    // Keys for each contender, created fresh so that every run starts from Enabled keys.
    let make_keys = |n: usize| {
        let fake = &fake;
        async move {
            // Interleaved across partitions (key i of every partition, then key i + 1): the order that is
            // best for a thread pool, which then spreads its calls over every account and region.
            let mut by_partition = Vec::new();
            for (akid, account) in ACCOUNTS {
                for region in REGIONS {
                    let ids = fake.create_keys(account, region, n).await?;
                    by_partition.push(ids.into_iter().map(|id| key_entry(&id, akid, region)).collect::<Vec<_>>());
                }
            }
            let mut out = Vec::new();
            for i in 0..n {
                for p in &by_partition {
                    out.push(p[i].clone());
                }
            }
            anyhow::Ok(out)
        }
    };

    // 1. keyfleet, default pacing, `runs` times: fresh keys, a sync (without faults: what is measured is the
    // job), then the job over the Enabled keys with the faults on.
    let server = Proc::keyfleet(&env.keyfleet, &dir.join("data"), &dir.join("keyfleet.log"), &[]).await?;
    let api = Api::login(&server.url).await?;
    let names = add_accounts(&api, &fake_proc.url).await?;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut kf_runs = Vec::new();
    for r in 1..=runs {
        make_keys(per_partition).await?;
        api.sync(&name_refs, Duration::from_secs(600)).await?;
        // A fresh second for the quota windows, as for every contender.
        tokio::time::sleep(Duration::from_secs(2)).await;
        set_faults(&fake, true).await?;
        let before = DisableStats::read(&fake).await?;
        let job = api
            .post(
                "/api/v1/cckm/aws/bulkjob",
                json!({"operation": "disablekey", "selector": {"kms": names, "key_state": "Enabled"},
                       "max_items": total}),
            )
            .await?;
        let id = job["id"].as_str().context("job id")?.to_owned();
        let done = api.wait(&format!("/api/v1/cckm/aws/bulkjob/{id}"), Duration::from_secs(900), |_| {}).await?;
        let stats = DisableStats::read(&fake).await?.since(before);
        set_faults(&fake, false).await?;
        let wall = job_seconds(&done)?;
        let calls = fake.calls_since(before.all_calls).await?;
        std::fs::write(dir.join(format!("keyfleet-calls-{r}.json")), serde_json::to_vec(&calls)?)?;
        let spacing = Spacing::of(&calls);
        let steady = steady_rate(&calls) / DISABLE_QUOTA;
        let p = &done["progress"];
        let (ok, failed) = (p["succeeded"].as_u64().unwrap_or(0), p["failed"].as_u64().unwrap_or(0));
        eprintln!("  keyfleet run {r}: {ok} ok, {failed} failed in {wall:.1} s; DisableKey {stats:?}; {spacing:?}");
        anyhow::ensure!(
            ok + failed == total as u64,
            "job ended with {} (status {})",
            done["progress"],
            done["overall_status"]
        );
        let outcome = Outcome { name: format!("keyfleet, run {r}"), wall, failed, stats, extrapolate: 1.0 };
        kf_runs.push(Run { outcome, steady, spacing });
    }
    server.stop(Duration::from_secs(30)).await?;

    // 2. boto3, a pool of 16 threads over every key, with the same faults.
    let keys = make_keys(per_partition).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_faults(&fake, true).await?;
    let pool = python_baseline(env, &fake, &dir, "boto3_pool.py", &keys, &[]).await?;
    set_faults(&fake, false).await?;
    let pool = Outcome { name: "boto3, `ThreadPoolExecutor(16)`, default retries (legacy, 5 attempts)".into(), ..pool };

    // 3. boto3, a serial loop, on a sample, with the same faults.
    let sample = make_keys(SERIAL_SAMPLE_PER_PARTITION.min(per_partition)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    set_faults(&fake, true).await?;
    let mut serial = python_baseline(env, &fake, &dir, "boto3_serial.py", &sample, &[]).await?;
    fake_proc.stop(Duration::from_secs(5)).await?;
    serial.extrapolate = total as f64 / sample.len() as f64;
    serial.name = format!(
        "boto3, serial loop, default retries — {} keys measured, extrapolated ×{}",
        sample.len(),
        num(serial.extrapolate)
    );

    let mut t = Table::new(&[
        "contender",
        "wall time",
        "DisableKey calls (succeeded / 5xx / throttled)",
        "throttled ÷ calls",
        "admitted DisableKey/s ÷ quota sum (succeeded only)",
        "steady pace ÷ quota",
        "failed keys",
        "wall time vs keyfleet (median)",
    ]);
    let mut walls: Vec<f64> = kf_runs.iter().map(|r| r.outcome.wall).collect();
    walls.sort_by(f64::total_cmp);
    let median_wall = walls[walls.len() / 2];
    let (mut met_throttle, mut met_rate, mut met_failed) = (0, 0, 0);
    let rows = kf_runs.iter().map(|r| (&r.outcome, Some(r))).chain([(&pool, None), (&serial, None)]);
    for (o, kf) in rows {
        let wall = o.wall * o.extrapolate;
        let throttle_share = o.stats.throttled as f64 / o.stats.calls.max(1) as f64;
        let admitted = (o.stats.calls - o.stats.throttled) as f64 / o.wall / quota_sum;
        let succeeded = o.stats.ok as f64 / o.wall / quota_sum;
        let failed = (o.failed as f64 * o.extrapolate).round() as u64;
        let rates = format!("{} ({})", ratio(admitted), ratio(succeeded));
        let calls = format!("{} / {} / {}", int(o.stats.ok), int(o.stats.errors), int(o.stats.throttled));
        let row = match kf {
            Some(run) => {
                met_throttle += usize::from(throttle_share < 0.01);
                met_rate += usize::from(admitted >= 0.95);
                met_failed += usize::from(failed == 0);
                vec![
                    o.name.clone(),
                    format!("**{} s**", num(wall)),
                    calls,
                    format!("**{}** (< 1 %: {})", pct(throttle_share), verdict(throttle_share < 0.01)),
                    format!("**{}** (≥ 0.95: {})", rates, verdict(admitted >= 0.95)),
                    ratio(run.steady),
                    format!("**{}** (0: {})", int(failed), verdict(failed == 0)),
                    format!("{}×", ratio(wall / median_wall)),
                ]
            }
            None => vec![
                o.name.clone(),
                format!("**{} s**{}", num(wall), if o.extrapolate > 1.0 { " (extrapolated)" } else { "" }),
                calls,
                pct(throttle_share),
                rates,
                "–".into(),
                format!("{}{}", int(failed), if o.extrapolate > 1.0 { " (extrapolated)" } else { "" }),
                format!("{}×", ratio(wall / median_wall)),
            ],
        };
        t.row(row);
    }
    let worst_gap = kf_runs.iter().map(|r| r.spacing.p5_gap_ms).fold(f64::INFINITY, f64::min);
    let tight: u64 = kf_runs.iter().map(|r| r.spacing.tight_windows).sum();
    let windows: u64 = kf_runs.iter().map(|r| r.spacing.windows).sum();
    Ok(Section {
        title: format!(
            "2. Quota adherence under jitter and faults: `disablekey` on {} keys over {} accounts × {} regions, AWS's default quotas, 0–{JITTER_MS} ms jitter and {} server errors on every call, {runs} runs",
            int(total as u64),
            ACCOUNTS.len(),
            REGIONS.len(),
            pct(ERROR_RATE)
        ),
        table: t,
        notes: vec![
            format!(
                "Runs meeting each target: throttled < 1 % in **{met_throttle} of {runs}**, admitted rate ≥ 0.95 of \
                 the quota sum in **{met_rate} of {runs}**, no failed key in **{met_failed} of {runs}**."
            ),
            format!(
                "The fake enforces AWS's default request quotas (`keyfleet fake-aws --quotas`): DisableKey 5/s per \
                 account and region in any one-second window, so the {partitions} account-regions allow {} \
                 DisableKey/s in all; a call over the quota answers `ThrottlingException`. During each measured \
                 job (and each baseline) every call is delayed by a uniform 0–{JITTER_MS} ms before the fake counts \
                 it, and {} of calls answer 500 `KMSInternalException` / 503 `ServiceUnavailableException` after \
                 being counted against the quota (`PUT /_fake/faults`). Calls are counted by the fake (`GET \
                 /_fake/stats`), retries included.",
                num(quota_sum),
                pct(ERROR_RATE)
            ),
            "Rate: DisableKey calls the quota admitted (succeeded + 5xx, as both use the quota) ÷ wall time ÷ \
             the quota sum; in brackets the succeeded ones alone (at most 0.95 with 5 % of calls failing). Steady \
             pace: per account-region, admitted calls ÷ the time between its first and last call, ÷ 5/s, averaged \
             (the job's start and its last retries excluded)."
                .into(),
            format!(
                "keyfleet: one selector job per run over the {} containers' Enabled keys (`--quota-scale 1`, the \
                 default), after a sync of the new keys (faults off); wall time = `completed_at` − `createdAt`. \
                 Spacing of its DisableKey calls as they arrived at the fake, per account-region: 5th percentile \
                 gap {} ms at worst over the runs; {} of {} runs of six consecutive calls arrived within one second.",
                ACCOUNTS.len(),
                num(worst_gap),
                int(tight),
                int(windows)
            ),
            "The boto3 scripts (`bench/baselines/`) get fresh Enabled keys each, interleaved across the account-regions \
             (the order that is best for a pool). One boto3 client per account and region; retry configuration spelt \
             out as botocore's default: legacy mode, 5 attempts."
                .into(),
        ],
    })
}

/// Admitted DisableKey calls per second between each account-region's first and last call, averaged over the
/// account-regions.
fn steady_rate(calls: &[keyfleet_fakes::CallRecord]) -> f64 {
    let mut by_partition: std::collections::BTreeMap<(String, String), Vec<i64>> = Default::default();
    for c in calls.iter().filter(|c| c.operation == "DisableKey" && c.error.as_deref() != Some("ThrottlingException")) {
        by_partition.entry((c.account.clone(), c.region.clone())).or_default().push(c.at.timestamp_micros());
    }
    let rates: Vec<f64> = by_partition
        .values()
        .filter(|t| t.len() > 1)
        .map(|t| {
            let (first, last) = (t.iter().min().copied().unwrap_or(0), t.iter().max().copied().unwrap_or(0));
            (t.len() - 1) as f64 / ((last - first) as f64 / 1e6)
        })
        .collect();
    rates.iter().sum::<f64>() / rates.len().max(1) as f64
}

/// Runs one Python baseline over `keys` and reads what it and the fake counted.
async fn python_baseline(
    env: &Env,
    fake: &Fake,
    dir: &Path,
    script: &str,
    keys: &[Value],
    extra: &[&str],
) -> anyhow::Result<Outcome> {
    let file = dir.join(format!("{script}.keys.json"));
    std::fs::write(&file, serde_json::to_vec(keys)?)?;
    let before = DisableStats::read(fake).await?;
    eprintln!("  {script}: {} keys", keys.len());
    let out = tokio::process::Command::new(&env.python)
        .arg(env.baselines.join(script))
        .arg(&fake.url)
        .arg(&file)
        .args(extra)
        // No __pycache__ beside the scripts in the work tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stderr(std::fs::File::create(dir.join(format!("{script}.log")))?)
        .kill_on_drop(true)
        .output();
    // The scripts stop submitting after 600 s themselves; this is the outer bound.
    let out = tokio::time::timeout(Duration::from_secs(900), out)
        .await
        .context("baseline did not finish within 900 s")?
        .with_context(|| {
            format!("running {} (is boto3 installed? bench/run sets up .venv-peers)", env.python.display())
        })?;
    if !out.status.success() {
        bail!("{script} failed ({}); see {}", out.status, dir.join(format!("{script}.log")).display());
    }
    let result: Value = serde_json::from_slice(&out.stdout).with_context(|| format!("{script} printed no JSON"))?;
    let stats = DisableStats::read(fake).await?.since(before);
    eprintln!("  {script}: {result}; DisableKey {stats:?}");
    Ok(Outcome {
        name: script.to_owned(),
        wall: result["wall_s"].as_f64().context("wall_s")?,
        failed: result["failed"].as_u64().unwrap_or(0) + result["not_attempted"].as_u64().unwrap_or(0),
        stats,
        extrapolate: 1.0,
    })
}

/// How evenly keyfleet's DisableKey calls arrived at the fake, per account-region: the gaps between
/// consecutive arrivals, and how often six consecutive arrivals fell within one second (the sixth is then
/// over a 5/s quota enforced over any one-second window).
#[derive(Debug, Default)]
struct Spacing {
    p5_gap_ms: f64,
    p50_gap_ms: f64,
    tight_windows: u64,
    windows: u64,
}

impl Spacing {
    fn of(calls: &[keyfleet_fakes::CallRecord]) -> Spacing {
        let mut by_partition: std::collections::BTreeMap<(String, String), Vec<i64>> = Default::default();
        for c in calls.iter().filter(|c| c.operation == "DisableKey") {
            by_partition.entry((c.account.clone(), c.region.clone())).or_default().push(c.at.timestamp_micros());
        }
        let mut gaps = Vec::new();
        let mut s = Spacing::default();
        for times in by_partition.values_mut() {
            times.sort_unstable();
            gaps.extend(times.windows(2).map(|w| (w[1] - w[0]) as u64));
            for w in times.windows(6) {
                s.windows += 1;
                if w[5] - w[0] < 1_000_000 {
                    s.tight_windows += 1;
                }
            }
        }
        gaps.sort_unstable();
        s.p5_gap_ms = crate::report::quantile(&gaps, 0.05) as f64 / 1000.0;
        s.p50_gap_ms = crate::report::quantile(&gaps, 0.50) as f64 / 1000.0;
        s
    }
}
