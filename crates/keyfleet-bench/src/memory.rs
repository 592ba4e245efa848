//! Memory: peak RSS of the `keyfleet serve` process idle and while it runs a job over a very large inventory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID};
use serde_json::json;

use crate::Env;
use crate::client::{Api, Fake};
use crate::db::{CHUNK, Database};
use crate::procs::{Proc, ProcSample, fresh_dir};
use crate::report::{Section, Table, int, mib, num, ratio, verdict};

const REGIONS: [&str; 4] = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"];

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let (total_keys, sample_secs) = if env.quick { (100_000, 15) } else { (1_000_000, 60) };
    let sample_secs = env.memory_secs.unwrap_or(sample_secs);
    let per_region = total_keys / REGIONS.len();
    let dir = fresh_dir(&env.work_dir, "memory")?;
    let data = dir.join("data");
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &[]).await?;
    let fake = Fake::new(&fake_proc.url)?;
    eprintln!("  creating {total_keys} keys in the fake");
    let mut fake_keys = Vec::new();
    for region in REGIONS {
        fake_keys.push((region, fake.create_keys(BUILTIN_ACCOUNT_ID, region, per_region).await?));
    }

    // 1. Idle, empty database: before any request, then after a login (argon2 needs 19 MiB per hash).
    let args = vec!["--quota-scale".to_owned(), "0".to_owned()];
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-0.log"), &args).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let untouched = server.sample()?;
    let api = Api::login(&server.url).await?;
    api.add_kms("mem", &fake_proc.url, BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, &REGIONS).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_empty = server.sample()?;
    server.stop(Duration::from_secs(30)).await?;

    // 2. The keys straight into the inventory, as a sync would write them.
    eprintln!("  writing {total_keys} keys into the inventory through the store");
    let t = Instant::now();
    Database::Sqlite.write_inventory(&data, "mem", &fake_keys).await?;
    let inventory_secs = t.elapsed().as_secs_f64();
    drop(fake_keys);
    eprintln!("  ... {inventory_secs:.1} s");

    // 3. Idle with the inventory, then the job.
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-1.log"), &args).await?;
    let api = Api::login(&server.url).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_full = server.sample()?;
    eprintln!("  idle: {} (empty), {} (with keys)", mib(idle_empty.hwm_kib), mib(idle_full.hwm_kib));
    // Creation (issue 13, target 2): the request's wall time, RSS sampled every 50 ms while it runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(max_rss_while(server.pid, sampling.clone()));
    let t = Instant::now();
    let job = api
        .post(
            "/api/v1/cckm/aws/bulkjob",
            json!({"operation": "disablekey", "selector": {"kms": ["mem"]}, "max_items": total_keys}),
        )
        .await?;
    let create_secs = t.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let (create_max_rss, create_samples) = sampler.await?;
    let after_create = server.sample()?;
    let id = job["id"].as_str().context("job id")?.to_owned();
    let path = format!("/api/v1/cckm/aws/bulkjob/{id}");
    eprintln!(
        "  job of {} items created in {create_secs:.1} s; sampling for {sample_secs} s",
        job["progress"]["total"]
    );

    let done_of = |job: &serde_json::Value| {
        let p = &job["progress"];
        p["succeeded"].as_u64().unwrap_or(0) + p["failed"].as_u64().unwrap_or(0) + p["skipped"].as_u64().unwrap_or(0)
    };
    let started = Instant::now();
    let first = api.get(&path).await?;
    let done0 = done_of(&first);
    let mut max_rss = after_create.rss_kib;
    let mut last = first;
    // (seconds, items done, RSS KiB) every tenth of the window: is memory flat while items go by?
    let mut series: Vec<(f64, u64, u64)> = Vec::new();
    let step = (sample_secs as f64 / 10.0).max(1.0);
    while started.elapsed() < Duration::from_secs(sample_secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = server.sample()?;
        max_rss = max_rss.max(s.rss_kib);
        last = api.get(&path).await?;
        let at = started.elapsed().as_secs_f64();
        if series.last().is_none_or(|(t, _, _)| at - t >= step) {
            series.push((at, done_of(&last) - done0, s.rss_kib));
        }
        if last["overall_status"] != "in_progress" {
            break;
        }
    }
    let window = started.elapsed().as_secs_f64();
    let during: ProcSample = server.sample()?;
    let done1 = done_of(&last);
    let failed = last["progress"]["failed"].as_u64().unwrap_or(0);
    let items_per_s = (done1 - done0) as f64 / window;
    eprintln!(
        "  {} items done in {window:.0} s ({items_per_s:.0}/s), {failed} failed; RSS now {}, peak {}",
        done1 - done0,
        mib(during.rss_kib),
        mib(during.hwm_kib)
    );
    let t = Instant::now();
    api.post(&format!("{path}/cancel"), json!({})).await?;
    let cancel_secs = t.elapsed().as_secs_f64();
    let end = server.sample()?;
    let report = download_report(&api, &server, &path).await?;
    eprintln!(
        "  report: {} lines in {} s, RSS {} before, at most {} during",
        int(report.lines),
        num(report.secs),
        mib(end.rss_kib),
        mib(report.max_rss_kib)
    );
    server.stop(Duration::from_secs(60)).await?;
    fake_proc.stop(Duration::from_secs(5)).await?;

    let mut t = Table::new(&[
        "state of `keyfleet serve`",
        "peak RSS (VmHWM)",
        "RSS now (VmRSS)",
        "baseline",
        "ratio",
        "target",
    ]);
    t.row(vec![
        "idle, empty database, 5 s after start, no request yet".into(),
        mib(untouched.hwm_kib),
        mib(untouched.rss_kib),
        "–".into(),
        "–".into(),
        format!("< 50 MiB: {}", verdict(untouched.hwm_kib < 50 * 1024)),
    ]);
    t.row(vec![
        "idle, empty database, after a login and creating a connection and a container".into(),
        format!("**{}**", mib(idle_empty.hwm_kib)),
        mib(idle_empty.rss_kib),
        "–".into(),
        "–".into(),
        format!("< 50 MiB: {}", verdict(idle_empty.hwm_kib < 50 * 1024)),
    ]);
    t.row(vec![
        format!("idle, {} keys in the inventory, 5 s after start", int(total_keys as u64)),
        format!("**{}**", mib(idle_full.hwm_kib)),
        mib(idle_full.rss_kib),
        "idle, empty".into(),
        format!("{}×", ratio(idle_full.hwm_kib as f64 / idle_empty.hwm_kib as f64)),
        format!("< 50 MiB: {}", verdict(idle_full.hwm_kib < 50 * 1024)),
    ]);
    t.row(vec![
        format!(
            "creating the {}-item selector job over the API: **{} s** (target < 20 s: {}), RSS sampled every 50 ms \
             ({create_samples} samples)",
            int(total_keys as u64),
            num(create_secs),
            verdict(create_secs < 20.0)
        ),
        mib(after_create.hwm_kib),
        format!("max sampled **{}**", mib(create_max_rss)),
        "idle, same data".into(),
        format!("{}×", ratio(create_max_rss as f64 / idle_full.rss_kib as f64)),
        format!("< 200 MiB: {}", verdict(create_max_rss < 200 * 1024 && after_create.hwm_kib < 200 * 1024)),
    ]);
    t.row(vec![
        "right after creating the job".into(),
        mib(after_create.hwm_kib),
        mib(after_create.rss_kib),
        "idle, same data".into(),
        format!("{}×", ratio(after_create.hwm_kib as f64 / idle_full.hwm_kib as f64)),
        "–".into(),
    ]);
    t.row(vec![
        format!("running the job, {} s sampled every second", num(window)),
        format!("**{}**", mib(during.hwm_kib)),
        format!("{} (max sampled {})", mib(during.rss_kib), mib(max_rss)),
        "idle, same data".into(),
        format!("{}×", ratio(during.hwm_kib as f64 / idle_full.hwm_kib as f64)),
        format!("< 200 MiB: {}", verdict(during.hwm_kib < 200 * 1024)),
    ]);
    t.row(vec![
        "after cancelling the job".into(),
        mib(end.hwm_kib),
        mib(end.rss_kib),
        "–".into(),
        "–".into(),
        "–".into(),
    ]);
    t.row(vec![
        format!(
            "downloading the job's CSV report: {} lines, {} MiB, in {} s, sampled every 0.25 s",
            int(report.lines),
            num(report.bytes as f64 / (1024.0 * 1024.0)),
            num(report.secs)
        ),
        mib(report.after.hwm_kib),
        format!("{} (max sampled {})", mib(report.after.rss_kib), mib(report.max_rss_kib)),
        "before the download".into(),
        format!("{}×", ratio(report.max_rss_kib as f64 / end.rss_kib as f64)),
        format!(
            "flat (< +25 MiB): {}",
            verdict(report.max_rss_kib < end.rss_kib + 25 * 1024 && report.lines == total_keys as u64 + 1)
        ),
    ]);
    Ok(Section {
        title: format!("4. Memory: `keyfleet serve` idle and during a {}-key job", int(total_keys as u64)),
        table: t,
        notes: vec![
            format!(
                "Setup: {} keys in the fake (its own process) over {} regions of one account; written into the \
                 inventory with `AwsWorkStore::sync_aws_region` ({} keys per transaction) in {} s while the server \
                 was stopped; one KMS container with a connection to the fake, created through the API.",
                int(total_keys as u64),
                REGIONS.len(),
                int(CHUNK as u64),
                num(inventory_secs)
            ),
            format!(
                "The job: `{{\"operation\":\"disablekey\",\"selector\":{{\"kms\":[\"mem\"]}}}}` with `--quota-scale 0`, \
                 created in {} s (one transaction); while sampled it finished {} items, **{} items/s**, {} failed; \
                 cancelling the rest took {} s.",
                num(create_secs),
                int(done1 - done0),
                num(items_per_s),
                int(failed),
                num(cancel_secs)
            ),
            "A login hashes the password with argon2 (19 MiB of working memory per hash): that is the step from the \
             first row to the second, and it stays in the peak."
                .into(),
            format!(
                "RSS while the job ran (seconds: items done, RSS): {}.",
                series
                    .iter()
                    .map(|(t, n, rss)| format!("{:.0} s: {}, {}", t, int(*n), mib(*rss)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "RSS from /proc/<pid>/status of the `keyfleet serve` process (the real release binary): VmHWM is the \
             peak since the process started."
                .into(),
        ],
    })
}

/// The highest RSS (KiB) of process `pid`, sampled every 50 ms while `on` holds, and the number of samples.
async fn max_rss_while(pid: u32, on: Arc<AtomicBool>) -> (u64, u64) {
    let (mut max, mut n) = (0, 0);
    loop {
        if let Ok(s) = ProcSample::read(pid) {
            max = max.max(s.rss_kib);
            n += 1;
        }
        if !on.load(Ordering::Relaxed) {
            return (max, n);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What downloading a job's report cost the server.
struct ReportDownload {
    lines: u64,
    bytes: u64,
    secs: f64,
    /// The highest RSS sampled while the body streamed.
    max_rss_kib: u64,
    after: ProcSample,
}

/// Reads `GET {job}/report?format=csv` chunk by chunk (never holding it whole), sampling the server's RSS.
async fn download_report(api: &Api, server: &Proc, job: &str) -> anyhow::Result<ReportDownload> {
    let t = Instant::now();
    let mut resp = api
        .http
        .get(format!("{}{job}/report?format=csv", api.base))
        .bearer_auth(api.token().await?)
        .send()
        .await
        .context("GET report")?;
    anyhow::ensure!(resp.status().is_success(), "GET report: {}", resp.status());
    let (mut lines, mut bytes, mut max_rss_kib) = (0u64, 0u64, server.sample()?.rss_kib);
    let mut sampled = Instant::now();
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if sampled.elapsed() >= Duration::from_millis(250) {
            max_rss_kib = max_rss_kib.max(server.sample()?.rss_kib);
            sampled = Instant::now();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let after = server.sample()?;
    Ok(ReportDownload { lines, bytes, secs, max_rss_kib: max_rss_kib.max(after.rss_kib), after })
}
