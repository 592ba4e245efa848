//! Engine overhead: a `disablekey` job over many keys against the fake with pacing off, beside the fake's own
//! maximum request rate measured with a direct load generator in the same run. The ratio says how much of
//! what the cloud side can serve keyfleet actually uses.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID};
use serde_json::json;

use crate::Env;
use crate::client::{Api, CallCounts, Fake, job_seconds};
use crate::load::{Budget, LoadResult, RawKms, closed_loop, sdk_client};
use crate::procs::{Proc, fresh_dir};
use crate::report::{Section, Table, int, num, ratio, verdict};

const REGION: &str = "us-east-1";
/// The load generator's keys live in another region, so that keyfleet's sync does not see them.
const LOAD_REGION: &str = "us-west-2";

struct Sizes {
    keys: usize,
    load_keys: usize,
    load_secs: u64,
    concurrencies: &'static [usize],
}

/// The fake's best rate for one operation over a few concurrencies, and the fake's CPU per request.
struct FakeMax {
    best: LoadResult,
    all: Vec<(usize, f64)>,
    fake_cpu_per_req_us: f64,
}

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let sizes = if env.quick {
        Sizes { keys: 2_000, load_keys: 1_000, load_secs: 2, concurrencies: &[8, 64] }
    } else {
        Sizes { keys: 10_000, load_keys: 2_000, load_secs: 4, concurrencies: &[8, 32, 128] }
    };
    let dir = fresh_dir(&env.work_dir, "overhead")?;
    let fake_proc = Proc::fake(&env.keyfleet, &dir.join("fake.log"), &[]).await?;
    let fake = Fake::new(&fake_proc.url)?;
    let load_keys = Arc::new(fake.create_keys(BUILTIN_ACCOUNT_ID, LOAD_REGION, sizes.load_keys).await?);
    fake.create_keys(BUILTIN_ACCOUNT_ID, REGION, sizes.keys).await?;

    // 1. The fake's maximum rate, driven directly (raw JSON 1.1 POSTs: the lightest possible client).
    eprintln!("  fake max rate: raw HTTP, {} s per run", sizes.load_secs);
    let raw = Arc::new(RawKms::new(&format!("{}/", fake_proc.url), BUILTIN_ACCESS_KEY_ID, LOAD_REGION)?);
    let budget = Budget { duration: Duration::from_secs(sizes.load_secs), max_requests: 5_000_000 };
    let mut maxima = Vec::new();
    // Calls sent to the fake so far: a close guess of its call log's length.
    let mut sent = 0u64;
    for op in ["DescribeKey", "DisableKey"] {
        let mut best: Option<LoadResult> = None;
        let mut all = Vec::new();
        let mut cpu_per_req = 0.0;
        for &n in sizes.concurrencies {
            let (raw, keys) = (raw.clone(), load_keys.clone());
            let cpu0 = fake_proc.sample()?.cpu_secs;
            let r = closed_loop(n, budget, move |i| {
                let (raw, keys) = (raw.clone(), keys.clone());
                async move { raw.call(op, &keys[i as usize % keys.len()]).await }
            })
            .await;
            let cpu = fake_proc.sample()?.cpu_secs - cpu0;
            sent += r.ok + r.errors;
            eprintln!(
                "    {op} N={n}: {:.0} req/s ({} errors), fake CPU {:.0} µs/req",
                r.rate(),
                r.errors,
                cpu * 1e6 / r.ok.max(1) as f64
            );
            all.push((n, r.rate()));
            if best.as_ref().is_none_or(|b| r.rate() > b.rate()) {
                cpu_per_req = cpu * 1e6 / r.ok.max(1) as f64;
                best = Some(r);
            }
        }
        let best = best.unwrap_or_default();
        maxima.push((op, FakeMax { best, all, fake_cpu_per_req_us: cpu_per_req }));
    }
    // The same through aws-sdk-kms (what keyfleet uses): SigV4 signing and the SDK's pipeline included.
    let sdk_n = *sizes.concurrencies.last().unwrap_or(&64);
    let sdk = Arc::new(sdk_client(&fake_proc.url, BUILTIN_ACCESS_KEY_ID, LOAD_REGION));
    let keys = load_keys.clone();
    let sdk_result = closed_loop(sdk_n, budget, move |i| {
        let (sdk, keys) = (sdk.clone(), keys.clone());
        async move { sdk.disable_key().key_id(&keys[i as usize % keys.len()]).send().await.is_ok() }
    })
    .await;
    eprintln!("    DisableKey via aws-sdk-kms N={sdk_n}: {:.0} req/s", sdk_result.rate());
    sent += sdk_result.ok + sdk_result.errors;

    // 2. keyfleet: sync the keys, then one selector job over all of them, pacing off. The last run is a
    //    diagnostic: the same on a data directory in memory (tmpfs), where fsync costs nothing.
    let shm = Path::new("/dev/shm");
    let mut runs = vec![
        KeyfleetRun { name: "default settings", extra: vec![], data: dir.join("data") },
        KeyfleetRun {
            name: "--partition-concurrency 64",
            extra: vec!["--partition-concurrency".into(), "64".into()],
            data: dir.join("data"),
        },
    ];
    if shm.is_dir() {
        runs.push(KeyfleetRun {
            name: "default settings, data directory on tmpfs (diagnostic: no fsync cost)",
            extra: vec![],
            data: fresh_dir(shm, "keyfleet-bench-overhead")?,
        });
    }
    let mut results = Vec::new();
    let mut sync_secs = 0.0;
    let mut synced: Vec<PathBuf> = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        let mut args = vec!["--quota-scale".to_owned(), "0".to_owned()];
        args.extend(r.extra.iter().cloned());
        let server = Proc::keyfleet(&env.keyfleet, &r.data, &dir.join(format!("keyfleet-{i}.log")), &args).await?;
        let api = Api::login(&server.url).await?;
        if !synced.contains(&r.data) {
            api.add_kms("bench", &fake_proc.url, BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, &[REGION]).await?;
            let t = Instant::now();
            api.sync(&["bench"], Duration::from_secs(900)).await?;
            if synced.is_empty() {
                sync_secs = t.elapsed().as_secs_f64();
                eprintln!("  sync of {} keys took {sync_secs:.1} s", sizes.keys);
            }
            let listed = api.get("/api/v1/cckm/aws/keys?kms=bench&limit=1").await?;
            anyhow::ensure!(
                listed["total"] == sizes.keys,
                "sync found {} keys, expected {}",
                listed["total"],
                sizes.keys
            );
            synced.push(r.data.clone());
        }
        // Every key is enabled before the first run and disabled after it: alternate the operation.
        let op = if i % 2 == 0 { "disablekey" } else { "enablekey" };
        let mark = fake.last_seq(sent).await?;
        let (kf0, fk0) = (server.sample()?.cpu_secs, fake_proc.sample()?.cpu_secs);
        let job = api
            .post(
                "/api/v1/cckm/aws/bulkjob",
                json!({"operation": op, "selector": {"kms": ["bench"]}, "max_items": sizes.keys}),
            )
            .await?;
        let id = job["id"].as_str().unwrap_or_default().to_owned();
        let done = api.wait(&format!("/api/v1/cckm/aws/bulkjob/{id}"), Duration::from_secs(1800), |_| {}).await?;
        let (kf1, fk1) = (server.sample()?.cpu_secs, fake_proc.sample()?.cpu_secs);
        let secs = job_seconds(&done)?;
        let calls = CallCounts::of(&fake.calls_since(mark).await?);
        sent = mark + calls.total;
        let p = &done["progress"];
        let (ok, failed) = (p["succeeded"].as_u64().unwrap_or(0), p["failed"].as_u64().unwrap_or(0));
        eprintln!(
            "  keyfleet {} ({op}): {ok} ok, {failed} failed in {secs:.1} s = {:.0} items/s; calls: {}; keyfleet CPU {:.0} %",
            r.name,
            ok as f64 / secs,
            calls.summary(),
            (kf1 - kf0) / secs * 100.0
        );
        anyhow::ensure!(
            ok as usize == sizes.keys && failed == 0,
            "job did not succeed on every key: {}",
            done["progress"]
        );
        results.push(JobRun { name: r.name, op, items: ok, secs, calls, keyfleet_cpu: kf1 - kf0, fake_cpu: fk1 - fk0 });
        server.stop(Duration::from_secs(30)).await?;
    }
    if shm.is_dir() {
        let _ = std::fs::remove_dir_all(shm.join("keyfleet-bench-overhead"));
    }
    fake_proc.stop(Duration::from_secs(5)).await?;

    // 3. The table.
    let rate_of = |op: &str| maxima.iter().find(|(o, _)| *o == op).map(|(_, m)| m.best.rate()).unwrap_or(f64::NAN);
    let describe_max = rate_of("DescribeKey");
    let disable_max = rate_of("DisableKey");
    let mut t = Table::new(&["figure", "keyfleet", "baseline (same run)", "ratio", "target"]);
    for (op, m) in &maxima {
        let spread = m.all.iter().map(|(n, r)| format!("N={n}: {}", num(*r))).collect::<Vec<_>>().join(", ");
        t.row(vec![
            format!("fake's max {op} rate, raw HTTP load generator"),
            "–".into(),
            format!(
                "**{} req/s** (best of {spread}; p99 {} ms; fake CPU {} µs/req)",
                num(m.best.rate()),
                num(m.best.p99_ms()),
                num(m.fake_cpu_per_req_us)
            ),
            "–".into(),
            "–".into(),
        ]);
    }
    t.row(vec![
        format!("DisableKey via aws-sdk-kms, N={sdk_n}, SDK retries off"),
        "–".into(),
        format!("{} req/s", num(sdk_result.rate())),
        format!("{} of raw", ratio(sdk_result.rate() / disable_max)),
        "–".into(),
    ]);
    for r in &results {
        let items_per_s = r.items as f64 / r.secs;
        let per_item = r.calls.total as f64 / r.items as f64;
        // What the fake could do per item, given the calls an item costs: 1 / sum(calls per item / max rate).
        let op_rate = |op: &str| if op == "DescribeKey" { describe_max } else { disable_max };
        let fake_items_per_s =
            1.0 / r.calls.by_op.iter().map(|(op, n)| *n as f64 / r.items as f64 / op_rate(op)).sum::<f64>();
        t.row(vec![
            format!("keyfleet `{}` job, {} keys, `--quota-scale 0`, {}", r.op, int(r.items), r.name),
            format!("**{} items/s** ({} s)", num(items_per_s), num(r.secs)),
            format!("fake max {} req/s", num(disable_max)),
            format!("**{}**", ratio(items_per_s / disable_max)),
            format!("≥ 0.80: {}", verdict(items_per_s / disable_max >= 0.8)),
        ]);
        t.row(vec![
            "  requests per item (the fake's call log)".into(),
            format!("{} ({})", num(per_item), r.calls.summary()),
            "–".into(),
            "–".into(),
            "–".into(),
        ]);
        t.row(vec![
            "  fair efficiency: items/s ÷ (fake max req/s ÷ requests per item)".into(),
            format!("{} items/s", num(items_per_s)),
            format!("{} items/s", num(fake_items_per_s)),
            format!("**{}**", ratio(items_per_s / fake_items_per_s)),
            "–".into(),
        ]);
        t.row(vec![
            "  beside the rate aws-sdk-kms alone reaches (keyfleet's client)".into(),
            format!("{} items/s", num(items_per_s)),
            format!("{} req/s", num(sdk_result.rate())),
            ratio(items_per_s / sdk_result.rate() * per_item),
            "–".into(),
        ]);
        t.row(vec![
            "  CPU per item: keyfleet process vs fake process".into(),
            format!(
                "{} µs ({} % of one CPU)",
                num(r.keyfleet_cpu * 1e6 / r.items as f64),
                num(r.keyfleet_cpu / r.secs * 100.0)
            ),
            format!("{} µs", num(r.fake_cpu * 1e6 / r.items as f64)),
            format!("{}×", ratio(r.keyfleet_cpu / r.fake_cpu)),
            "–".into(),
        ]);
    }
    Ok(Section {
        title: "1. Engine overhead: bulk job vs the fake's own maximum rate".into(),
        table: t,
        notes: vec![
            format!(
                "Setup: {} keys created in the fake, synced into keyfleet over the API in {} s ({} keys/s; the sync \
                 reads each key with DescribeKey, GetKeyPolicy and ListResourceTags).",
                int(sizes.keys as u64),
                num(sync_secs),
                num(sizes.keys as f64 / sync_secs)
            ),
            "The job is `{\"operation\": ..., \"selector\": {\"kms\": [\"bench\"]}}` on one container, one account, one \
             region (one rate-limit partition); items/s = items ÷ (`completed_at` − `createdAt`). The second run \
             re-enables the same keys (`enablekey`, same cost per item) on a restarted server with a wider partition."
                .into(),
            "keyfleet serve and the fake run as separate processes of the release binary; the load generator and \
             the poller run in this process. All three share the machine's CPUs."
                .into(),
        ],
    })
}

struct KeyfleetRun {
    name: &'static str,
    extra: Vec<String>,
    data: PathBuf,
}

struct JobRun {
    name: &'static str,
    op: &'static str,
    items: u64,
    secs: f64,
    calls: CallCounts,
    keyfleet_cpu: f64,
    fake_cpu: f64,
}
