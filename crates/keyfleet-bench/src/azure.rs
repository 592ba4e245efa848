//! Azure Key Vault at its quota: keyfleet synchronizes 10 vaults (Key Vault's limit, 4,000 requests per vault
//! per 10 s, enforced by the fake, with 0-50 ms of jitter and 5 % 500/503 on every call) and runs a
//! `delete-key-backups` job over 100,000 stored backups of those vaults; beside a raw HTTPS client's rate
//! against the same fake and the summed quota, in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyfleet_core::{BackupId, KeyBackupRecord, UserId};
use keyfleet_store::{AzureWorkStore, SqliteStore};
use serde_json::{Value, json};

use crate::Env;
use crate::client::{Api, job_seconds};
use crate::load::{Budget, closed_loop};
use crate::procs::{Proc, fresh_dir};
use crate::report::{Section, Table, int, num, pct, ratio, verdict};

const VAULTS: usize = 10;
/// Key Vault's limit per vault (software keys): requests per 10 s.
const VAULT_LIMIT_PER_10S: u64 = 4_000;
const TENANT: &str = keyfleet_fakes::BUILTIN_TENANT_ID;

fn vault_name(i: usize) -> String {
    format!("bench-vault-{i:02}")
}

pub async fn run(env: &Env) -> anyhow::Result<Section> {
    let keys_per_vault = if env.quick { 1_000 } else { 10_000 };
    let total = (keys_per_vault * VAULTS) as u64;
    let quota_sum = (VAULT_LIMIT_PER_10S / 10) as f64 * VAULTS as f64;
    let dir = fresh_dir(&env.work_dir, "azure")?;
    let ca = dir.join("fake-ca.pem");
    let names: Vec<String> = (1..=VAULTS).map(vault_name).collect();
    let args = vec![
        "--vault".to_owned(),
        names.join(","),
        "--seed-keys".into(),
        keys_per_vault.to_string(),
        "--ca-out".into(),
        ca.display().to_string(),
    ];
    let fake = Proc::fake_azure(&env.keyfleet, &dir.join("fake.log"), &args).await?;
    let control = reqwest::Client::builder().danger_accept_invalid_certs(true).build()?;
    let throttle = |config: Value| {
        let (control, url) = (control.clone(), fake.url.clone());
        async move {
            control.put(format!("{url}/_fake/throttle")).json(&config).send().await?.error_for_status()?;
            anyhow::Ok(())
        }
    };
    let calls_so_far = || {
        let (control, url) = (control.clone(), fake.url.clone());
        async move {
            let stats: Value = control.get(format!("{url}/_fake/stats")).send().await?.json().await?;
            stats["calls"].as_u64().context("fake stats: calls")
        }
    };

    // 1. keyfleet synchronizes every vault (reads every key and its versions) at Key Vault's quota, faults on.
    let trust = ["--trust-ca-file".to_owned(), ca.display().to_string()];
    let data = dir.join("data");
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet.log"), &trust).await?;
    let api = Api::login(&server.url).await?;
    api.post(
        "/api/v1/connectionmgmt/services/azure/connections",
        json!({"name": "az", "client_id": keyfleet_fakes::BUILTIN_CLIENT_ID, "tenant_id": TENANT,
               "client_secret": keyfleet_fakes::BUILTIN_CLIENT_SECRET, "active_directory_endpoint": fake.url,
               "vault_endpoint_url": format!("{}/vaults/{{vault}}", fake.url)}),
    )
    .await?;
    let vaults: Vec<Value> = names.iter().map(|n| json!({"name": n, "location": "westeurope"})).collect();
    api.post(
        "/api/v1/cckm/azure/add-vaults",
        json!({"connection": "az", "subscription_id": "00000000-0000-0000-0000-0000000000b1", "vaults": vaults}),
    )
    .await?;
    throttle(json!({"vault_limit_per_10s": VAULT_LIMIT_PER_10S, "latency_jitter_ms": 50, "error_5xx": 0.05})).await?;
    let before = calls_so_far().await?;
    let job = api.post("/api/v1/cckm/azure/synchronization-jobs", json!({"key_vaults": names})).await?;
    let id = job["id"].as_str().context("sync job id")?.to_owned();
    let done =
        api.wait(&format!("/api/v1/cckm/azure/synchronization-jobs/{id}"), Duration::from_secs(1800), |_| {}).await?;
    throttle(json!({})).await?;
    let sync_secs = job_seconds(&done)?;
    let calls: Vec<keyfleet_fakes::VaultCallRecord> =
        control.get(format!("{}/_fake/calls?since={before}", fake.url)).send().await?.json().await?;
    let throttled = calls.iter().filter(|c| c.status == 429).count() as u64;
    let failed_5xx = calls.iter().filter(|c| matches!(c.status, 500 | 503)).count() as u64;
    let admitted = calls.len() as u64 - throttled;
    let densest = densest_10s(&calls);
    let list = api.get("/api/v1/cckm/azure/keys?limit=1").await?;
    let held = list["total"].as_u64().unwrap_or(0);
    eprintln!(
        "  keyfleet sync: {} in {sync_secs:.1} s, {} calls ({throttled} throttled, {failed_5xx} 5xx), {held} keys",
        done["overall_status"],
        calls.len()
    );
    server.stop(Duration::from_secs(30)).await?;

    // 2. 100,000 backups of those keys (10 per key in the quick size too: keys × 10 ÷ 10), written straight into
    // the store while the server is stopped, then one delete-key-backups job per vault, all at once.
    let per_key = (100_000 / total.max(1)).max(1);
    let written = write_backups(&data.join("keyfleet.db"), per_key).await?;
    // Large jobs need a cap (the server's safety rule): exactly the backups of one vault.
    let per_vault = written / VAULTS as u64;
    let server = Proc::keyfleet(&env.keyfleet, &data, &dir.join("keyfleet-2.log"), &trust).await?;
    let api = Api::login(&server.url).await?;
    let before_delete = calls_so_far().await?;
    let vault_list = api.get("/api/v1/cckm/azure/vaults?limit=100").await?;
    let vault_ids: Vec<String> = vault_list["resources"]
        .as_array()
        .context("vaults")?
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    let started = std::time::Instant::now();
    let mut jobs = Vec::new();
    for v in &vault_ids {
        let job = api
            .post(
                "/api/v1/cckm/azure/bulkjobs",
                json!({"operation": "delete-key-backups", "delete_key_backups_param": {"vault_id": v},
                       "max_items": per_vault}),
            )
            .await?;
        jobs.push(job["id"].as_str().context("job id")?.to_owned());
    }
    let mut deleted = 0;
    let mut failed = 0;
    for id in &jobs {
        let done = api.wait(&format!("/api/v1/cckm/azure/bulkjobs/{id}"), Duration::from_secs(1800), |_| {}).await?;
        deleted += done["progress"]["succeeded"].as_u64().unwrap_or(0);
        failed += done["progress"]["failed"].as_u64().unwrap_or(0);
    }
    let delete_secs = started.elapsed().as_secs_f64();
    let vault_calls_in_delete = calls_so_far().await? - before_delete;
    eprintln!(
        "  delete-key-backups: {deleted} deleted, {failed} failed in {delete_secs:.1} s; Key Vault calls {vault_calls_in_delete}"
    );
    server.stop(Duration::from_secs(30)).await?;

    // 3. Baseline: a raw HTTPS client (reqwest, rustls) reading keys from the same fake, limits off.
    let raw = raw_client_rate(&fake.url, &ca, &names, keys_per_vault).await?;
    fake.stop(Duration::from_secs(5)).await?;

    let sync_rate = admitted as f64 / sync_secs;
    let delete_rate = deleted as f64 / delete_secs;
    let mut t = Table::new(&["figure", "keyfleet", "baseline (same run)", "ratio", "target"]);
    t.row(vec![
        format!("Key Vault's summed quota, {VAULTS} vaults"),
        "–".into(),
        format!("**{} req/s** ({} per vault per 10 s)", num(quota_sum), int(VAULT_LIMIT_PER_10S)),
        "–".into(),
        "–".into(),
    ]);
    t.row(vec![
        "raw HTTPS client (reqwest + rustls, N=64, GET key), limits off: what this machine serves".into(),
        "–".into(),
        format!("{} req/s ({} errors)", num(raw.rate()), int(raw.errors)),
        format!("{} of the quota sum", ratio(raw.rate() / quota_sum)),
        "–".into(),
    ]);
    t.row(vec![
        format!(
            "keyfleet sync of {} keys (GetKeys pages, GetKey, GetKeyVersions), 0–50 ms jitter, 5 % 500/503",
            int(total)
        ),
        format!(
            "**{} req/s** admitted ({} s, {} calls, {} throttled = {}, {} 5xx; {} of {} keys; {})",
            num(sync_rate),
            num(sync_secs),
            int(calls.len() as u64),
            int(throttled),
            pct(throttled as f64 / calls.len().max(1) as f64),
            int(failed_5xx),
            int(held),
            int(total),
            done["overall_status"].as_str().unwrap_or("?")
        ),
        format!("quota sum {} req/s", num(quota_sum)),
        format!("**{}**", ratio(sync_rate / quota_sum)),
        format!("≥ 0.9: {}", verdict(sync_rate / quota_sum >= 0.9)),
    ]);
    t.row(vec![
        "  the same sync, busiest 10 s of each vault ÷ its 4,000".into(),
        format!("{} (mean over vaults; max {})", ratio(densest.0), ratio(densest.1)),
        "1.00".into(),
        ratio(densest.0),
        "≤ 1 (never over)".into(),
    ]);
    t.row(vec![
        format!("keyfleet `delete-key-backups`, {} backups, one job per vault", int(written)),
        format!(
            "**{} items/s** ({} s, {} deleted, {} failed, {} Key Vault calls)",
            num(delete_rate),
            num(delete_secs),
            int(deleted),
            int(failed),
            int(vault_calls_in_delete)
        ),
        format!("quota sum {} req/s", num(quota_sum)),
        format!("**{}**", ratio(delete_rate / quota_sum)),
        format!("≥ 0.9: {}", verdict(delete_rate / quota_sum >= 0.9)),
    ]);
    Ok(Section {
        title: format!("7. Azure Key Vault: {VAULTS} vaults at Key Vault's quota"),
        table: t,
        notes: vec![
            format!(
                "The fake Key Vault (`keyfleet fake-azure`, its own process, HTTPS) admits at most {} requests per \
                 vault in any 10 s (`--vault-limit-per-10s`, a sliding window), the rest answer 429 with \
                 `Retry-After`; during the sync every request is delayed 0–50 ms and 5 % answer 500/503 after being \
                 counted. keyfleet paces each vault at 400/s (× its 0.98 headroom) with a one-second send-time window \
                 of 400 calls (stricter than the 10 s one). Rates count the requests the fake admitted (not 429) ÷ \
                 the sync job's wall time.",
                int(VAULT_LIMIT_PER_10S)
            ),
            "`delete-key-backups` deletes keyfleet's own stored copies (docs/API.md): it sends **no** Key Vault call \
             (the fake's call count during the jobs is shown), so nothing in it is paced and Key Vault's quota does \
             not bound it; its items/s is the engine's own speed (one item per backup, recorded with the deletion in \
             one transaction). The ratio to the summed quota is the issue's yardstick, not a quota being used."
                .into(),
            format!(
                "The backups ({per_key} per key) were written straight into the SQLite file with \
                 `AzureWorkStore::insert_key_backup` while the server was stopped (dummy sealed blobs: the job never \
                 opens them)."
            ),
        ],
    })
}

/// Mean and max over vaults of the most requests admitted in any 10 s, ÷ the vault limit.
fn densest_10s(calls: &[keyfleet_fakes::VaultCallRecord]) -> (f64, f64) {
    let mut by_vault: std::collections::BTreeMap<&str, Vec<i64>> = Default::default();
    for c in calls.iter().filter(|c| c.status != 429) {
        by_vault.entry(c.vault.as_str()).or_default().push(c.at.timestamp_micros());
    }
    let shares: Vec<f64> = by_vault
        .values_mut()
        .map(|t| {
            t.sort_unstable();
            let (mut best, mut lo) = (0, 0);
            for hi in 0..t.len() {
                while t[hi] - t[lo] >= 10_000_000 {
                    lo += 1;
                }
                best = best.max(hi - lo + 1);
            }
            best as f64 / VAULT_LIMIT_PER_10S as f64
        })
        .collect();
    let max = shares.iter().copied().fold(0.0, f64::max);
    (shares.iter().sum::<f64>() / shares.len().max(1) as f64, max)
}

async fn write_backups(db: &Path, per_key: u64) -> anyhow::Result<u64> {
    let store = SqliteStore::open(db).await?;
    let now = chrono::Utc::now();
    let user = UserId::new();
    let mut written = 0;
    for vault in store.all_vaults().await? {
        let mut skip = 0;
        loop {
            let keys = store.live_azure_keys(vault.id, skip, 1000).await?;
            if keys.is_empty() {
                break;
            }
            skip += keys.len() as u64;
            for key in keys {
                for n in 0..per_key {
                    let record = KeyBackupRecord {
                        id: BackupId::new(),
                        key_id: key.id,
                        vault_id: vault.id,
                        key_name: key.material.name.clone(),
                        key_version: key.material.version.clone(),
                        name: format!("{}-bench-{n}", key.material.name),
                        description: "bench".into(),
                        size_bytes: 16,
                        created_by: user,
                        created_at: now,
                        updated_at: now,
                    };
                    store.insert_key_backup(&record, b"bench-sealed-blob").await?;
                    written += 1;
                }
            }
        }
    }
    Ok(written)
}

async fn raw_client_rate(
    url: &str,
    ca: &Path,
    vaults: &[String],
    keys_per_vault: usize,
) -> anyhow::Result<crate::load::LoadResult> {
    let cert = reqwest::Certificate::from_pem(&std::fs::read(ca)?)?;
    let http = reqwest::Client::builder().add_root_certificate(cert).pool_max_idle_per_host(256).build()?;
    let token: Value = http
        .post(format!("{url}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", keyfleet_fakes::BUILTIN_CLIENT_ID),
            ("client_secret", keyfleet_fakes::BUILTIN_CLIENT_SECRET),
            ("scope", "https://vault.azure.net/.default"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bearer = Arc::new(format!("Bearer {}", token["access_token"].as_str().context("access_token")?));
    let (http, url, vaults) = (Arc::new(http), Arc::new(url.to_owned()), Arc::new(vaults.to_vec()));
    let budget = Budget { duration: Duration::from_secs(10), max_requests: u64::MAX };
    Ok(closed_loop(64, budget, move |i| {
        let (http, url, vaults, bearer) = (http.clone(), url.clone(), vaults.clone(), bearer.clone());
        async move {
            let vault = &vaults[i as usize % vaults.len()];
            let key = format!("key-{:04}", (i as usize / vaults.len()) % keys_per_vault + 1);
            let resp = http
                .get(format!("{url}/vaults/{vault}/keys/{key}?api-version=7.5"))
                .header("authorization", bearer.as_str())
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await)
}
