//! Key synchronization at scale: keyfleet reads 100,000 keys (4 accounts × 2 regions) from the fake AWS KMS
//! enforcing AWS's default quotas, then again with 0-50 ms of jitter and 5 % server errors on every call,
//! beside aws-sdk-kms alone making the same three reads per key (quotas off: the client's own speed) and the
//! least time AWS's quotas allow, in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::Env;
use crate::client::{Api, Fake, job_seconds};
use crate::load::{Budget, closed_loop, sdk_client};
use crate::procs::{Proc, fresh_dir};
/// The quota benchmark's four accounts and two regions.
use crate::quota::{ACCOUNTS, REGIONS, add_accounts};
use crate::report::{Section, Table, int, num, ratio, verdict};

/// The slowest of the three per-key reads' default quotas (GetKeyPolicy, requests/s per account and region).
const SLOWEST_READ_QUOTA: f64 = 1000.0;
/// Requests in flight for the SDK baseline.
const SDK_CONCURRENCY: usize = 64;

async fn set_faults(fake: &Fake, faults: Value) -> anyhow::Result<()> {
    fake.http.put(format!("{}/_fake/faults", fake.url)).json(&faults).send().await?.error_for_status()?;
    Ok(())
}

/// How many keys keyfleet's inventory holds (the key list's `total`).
async fn inventory_total(api: &Api) -> anyhow::Result<u64> {
    let list = api.get("/api/v1/cckm/aws/keys?limit=1").await?;
    list["total"].as_u64().context("key list has no total")
}

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let per_partition = if env.quick { 1_250 } else { 12_500 };
    let partitions = ACCOUNTS.len() * REGIONS.len();
    let total = (per_partition * partitions) as u64;
    let dir = fresh_dir(&env.work_dir, "sync")?;
    let mut fake_args = vec!["--quotas".to_owned()];
    for (akid, account) in ACCOUNTS {
        fake_args.push("--account".into());
        fake_args.push(format!("{akid}={account}"));
    }
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &fake_args).await?;
    let fake = Fake::new(&fake_proc.url)?;
    let mut keys: Vec<(usize, String)> = Vec::new();
    for (a, (_, account)) in ACCOUNTS.iter().enumerate() {
        for (r, region) in REGIONS.iter().enumerate() {
            let ids = fake.create_keys(account, region, per_partition).await?;
            keys.extend(ids.into_iter().map(|id| (a * REGIONS.len() + r, id)));
        }
    }
    eprintln!("  {} keys created in the fake", int(total));

    // 1. keyfleet, AWS's quotas; then a second sync (every key updated, none added) with the faults on.
    let server = Proc::keyfleet(&env.keyfleet, &dir.join("data"), &dir.join("keyfleet.log"), &[]).await?;
    let api = Api::login(&server.url).await?;
    let names = add_accounts(&api, &fake_proc.url).await?;
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut rows = Vec::new();
    for (label, faults) in [
        ("AWS's default quotas", json!({"quotas": {}})),
        (
            "AWS's default quotas, 0–50 ms jitter, 5 % 500/503 on every call",
            json!({"quotas": {}, "latency": 1.0, "latency_jitter_ms": 50, "error_5xx": 0.05}),
        ),
    ] {
        set_faults(&fake, faults).await?;
        let before = fake.last_seq(0).await?;
        let outcome = api.sync(&name_refs, Duration::from_secs(1200)).await;
        set_faults(&fake, json!({"quotas": {}})).await?;
        let (secs, status, detail) = match &outcome {
            Ok(done) => (job_seconds(done)?, "completed".to_owned(), String::new()),
            Err(e) => (f64::NAN, "**failed**".to_owned(), format!("{e:#}").chars().take(200).collect()),
        };
        let stats: Value =
            fake.http.get(format!("{}/_fake/stats", fake.url)).send().await?.error_for_status()?.json().await?;
        let calls = fake.last_seq(before).await? - before;
        let held = inventory_total(&api).await?;
        eprintln!("  keyfleet sync ({label}): {status} in {secs:.1} s, {calls} calls, {held} keys; {detail}");
        rows.push((label, secs, status, held, calls, stats["totals"].clone(), detail));
    }
    server.stop(Duration::from_secs(30)).await?;

    // 2. aws-sdk-kms alone, the same three reads per key, quotas off.
    set_faults(&fake, json!({})).await?;
    let url = fake_proc.url.as_str();
    let clients: Vec<aws_sdk_kms::Client> =
        ACCOUNTS.iter().flat_map(|(akid, _)| REGIONS.iter().map(move |region| sdk_client(url, akid, region))).collect();
    let (clients, keys) = (Arc::new(clients), Arc::new(keys));
    let budget = Budget { duration: Duration::from_secs(600), max_requests: total };
    let started = Instant::now();
    let sdk = closed_loop(SDK_CONCURRENCY, budget, move |i| {
        let (clients, keys) = (clients.clone(), keys.clone());
        async move {
            let (p, id) = &keys[i as usize];
            let c = &clients[*p];
            c.describe_key().key_id(id).send().await.is_ok()
                && c.get_key_policy().key_id(id).send().await.is_ok()
                && c.list_resource_tags().key_id(id).send().await.is_ok()
        }
    })
    .await;
    let sdk_secs = started.elapsed().as_secs_f64();
    eprintln!("  aws-sdk-kms: {} keys read ({} errors) in {sdk_secs:.1} s", sdk.ok, sdk.errors);
    fake_proc.stop(Duration::from_secs(5)).await?;

    let floor = per_partition as f64 / SLOWEST_READ_QUOTA;
    let mut t =
        Table::new(&["contender", "wall time", "keys/s", "keys in the inventory", "calls", "vs SDK alone", "target"]);
    for (label, secs, status, held, calls, totals, _) in &rows {
        t.row(vec![
            format!("keyfleet sync, {label}"),
            format!("**{} s** ({status})", num(*secs)),
            num(total as f64 / secs),
            format!("{} of {}", int(*held), int(total)),
            format!(
                "{} ({} throttled, {} 5xx)",
                int(*calls),
                int(totals["throttled"].as_u64().unwrap_or(0)),
                int(totals["errors"].as_u64().unwrap_or(0))
            ),
            format!("{}×", ratio(secs / sdk_secs)),
            format!("< 60 s, every key: {}", verdict(*secs < 60.0 && *held == total)),
        ]);
    }
    t.row(vec![
        format!(
            "aws-sdk-kms alone, DescribeKey + GetKeyPolicy + ListResourceTags per key, N={SDK_CONCURRENCY}, quotas off"
        ),
        format!("**{} s**", num(sdk_secs)),
        num(sdk.ok as f64 / sdk_secs),
        format!("{} read, {} failed", int(sdk.ok), int(sdk.errors)),
        int(sdk.ok * 3),
        "1.00×".into(),
        "–".into(),
    ]);
    t.row(vec![
        "least time AWS's quotas allow (GetKeyPolicy 1,000/s per account-region, regions in parallel)".into(),
        format!("{} s", num(floor)),
        num(total as f64 / floor),
        "–".into(),
        "–".into(),
        format!("{}×", ratio(floor / sdk_secs)),
        "–".into(),
    ]);
    let mut notes = vec![
        format!(
            "{} keys in the fake AWS KMS over {} accounts × {} regions ({} per account-region), synchronized \
             through the API (`POST /api/v1/cckm/aws/synchronization-jobs` over the 4 containers); wall time = \
             `completed_at` − `createdAt` of the sync job. keyfleet reads each key with DescribeKey, GetKeyPolicy \
             and ListResourceTags, paced per account, region and action at AWS's default quotas, and writes each \
             account-region in one transaction. The second sync finds every key already stored (all updated).",
            int(total),
            ACCOUNTS.len(),
            REGIONS.len(),
            int(per_partition as u64)
        ),
        "The SDK baseline is the same reads without keyfleet: aws-sdk-kms (keyfleet's client, retries off) from \
         this process, quotas off in the fake (unpaced, it would be throttled)."
            .into(),
    ];
    for (label, _, _, _, _, _, detail) in &rows {
        if !detail.is_empty() {
            notes.push(format!("The sync with {label} failed: {detail}"));
        }
    }
    Ok(Section {
        title: format!("6. Key synchronization: {} AWS keys over {} account-regions", int(total), partitions),
        table: t,
        notes,
    })
}
