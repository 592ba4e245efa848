//! The Azure side end to end: the real server over HTTPS, the fake Key Vault and its Entra ID token endpoint
//! over HTTPS (trusted through `trust_ca_file`), connections, vaults, key sync with backups, cloud key backups
//! and `delete-key-backups` jobs with every selector of CCKM-COMPAT §4.

use std::collections::BTreeSet;
use std::time::Duration;

use keyfleet_fakes::azure::ThrottleConfig;
use keyfleet_fakes::{BUILTIN_TENANT_ID, FakeVault, FakeVaultConfig, RunningVault};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// A client secret distinctive enough to search the database file for.
pub const AZURE_SECRET: &str = "azure-client-secret-Zq8v~NOT-IN-THE-DATABASE~41";
pub const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000b1";

/// A keyfleet server that trusts a fake Key Vault, with a connection `az` to it.
pub struct AzureApp {
    pub app: TestApp,
    pub vault: RunningVault,
}

impl AzureApp {
    pub async fn start() -> AzureApp {
        Self::start_with(|_| {}).await
    }

    /// [`AzureApp::start`] with the server's settings changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut keyfleet_server::ServeArgs)) -> AzureApp {
        let config = FakeVaultConfig::default().with_client(BUILTIN_TENANT_ID, "keyfleet-app", AZURE_SECRET);
        let vault = FakeVault::new(config).spawn().await.expect("fake vault");
        let ca = tempfile::NamedTempFile::new().expect("ca file");
        std::fs::write(ca.path(), vault.ca_pem()).expect("write ca");
        let ca_path = ca.into_temp_path().keep().expect("keep ca file");
        let app = TestApp::start_with(|a| {
            a.trust_ca_file = Some(ca_path);
            tweak(a);
        })
        .await;
        let env = AzureApp { app, vault };
        env.app
            .post(
                "/api/v1/connectionmgmt/services/azure/connections",
                json!({
                    "name": "az",
                    "client_id": "keyfleet-app",
                    "tenant_id": BUILTIN_TENANT_ID,
                    "client_secret": AZURE_SECRET,
                    "active_directory_endpoint": env.vault.authority(),
                    "vault_endpoint_url": format!("{}/vaults/{{vault}}", env.vault.url()),
                }),
            )
            .await
            .ok();
        env
    }

    /// Adds vaults (created in the fake with `keys` keys each) and returns their keyfleet ids.
    pub async fn add_vaults(&self, names: &[&str], keys: usize) -> Vec<String> {
        for n in names {
            self.vault.fake.create_keys(n, keys);
        }
        let vaults: Vec<Value> = names.iter().map(|n| json!({"name": n, "location": "westeurope"})).collect();
        let r = self
            .app
            .post(
                "/api/v1/cckm/azure/add-vaults",
                json!({"connection": "az", "subscription_id": SUBSCRIPTION, "vaults": vaults}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["resources"].as_array().unwrap().iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
    }

    pub async fn sync(&self, vaults: &[&str], take_backup: bool) -> Value {
        let job = self
            .app
            .post(
                "/api/v1/cckm/azure/synchronization-jobs",
                json!({"key_vaults": vaults, "take_cloud_key_backup": take_backup}),
            )
            .await;
        assert_eq!(job.status, StatusCode::CREATED, "{}", job.body);
        let id = job.body["id"].as_str().unwrap().to_string();
        self.app.wait_until_done(&format!("/api/v1/cckm/azure/synchronization-jobs/{id}")).await
    }

    /// Key ids of a vault's keys, by key name.
    pub async fn keys(&self, vault: &str) -> Vec<(String, String)> {
        let list = self.app.get(&format!("/api/v1/cckm/azure/keys?key_vault={vault}&limit=1000")).await.ok();
        let mut out: Vec<(String, String)> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| (k["key_name"].as_str().unwrap().to_string(), k["id"].as_str().unwrap().to_string()))
            .collect();
        out.sort();
        out
    }

    pub async fn backup(&self, key_id: &str, name: &str) -> Value {
        let r = self.app.post(&format!("/api/v1/cckm/azure/keys/{key_id}/backups"), json!({"name": name})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    pub async fn backup_ids(&self, key_id: &str) -> BTreeSet<String> {
        let list = self.app.get(&format!("/api/v1/cckm/azure/keys/{key_id}/backups?limit=1000")).await.ok();
        list["resources"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_string()).collect()
    }

    pub async fn run_job(&self, param: Value) -> Value {
        let r = self
            .app
            .post(
                "/api/v1/cckm/azure/bulkjobs",
                json!({"operation": "delete-key-backups", "delete_key_backups_param": param}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let id = r.body["id"].as_str().unwrap().to_string();
        self.app.wait_until_done(&format!("/api/v1/cckm/azure/bulkjobs/{id}")).await
    }
}

#[tokio::test]
async fn sync_reads_keys_and_versions_and_takes_backups() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-one", "kv-two"], 3).await;
    env.vault.fake.create_key("kv-one", "key-0001"); // a second version
    let job = env.sync(&["kv-one", "kv-two"], true).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["detailed_status"], json!({"kv-one": "Success", "kv-two": "Success"}));
    assert_eq!(job["cloud"], "AzureCloud");
    assert_eq!(env.vault.fake.backup_count(), 6, "one backup per key");

    let keys = env.keys("kv-one").await;
    assert_eq!(keys.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["key-0001", "key-0002", "key-0003"]);
    let key = env.app.get(&format!("/api/v1/cckm/azure/keys/{}", keys[0].1)).await.ok();
    assert_eq!(key["versions"].as_array().unwrap().len(), 2, "{key}");
    assert_eq!(key["azure_param"]["kty"], "RSA");
    assert_eq!(key["azure_param"]["key_size"], 2048);
    assert_eq!(key["key_vault"], "kv-one");
    assert_eq!(key["gone"], false);
    for (_, id) in &keys {
        assert_eq!(env.backup_ids(id).await.len(), 1);
    }
    // One token for everything: cached, not fetched per call.
    assert_eq!(env.vault.fake.token_requests(), 1);
}

/// A throttling Key Vault slows the sync down but loses nothing: every 429 is retried.
#[tokio::test]
async fn throttling_is_absorbed_by_retries() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-busy"], 12).await;
    env.vault.fake.set_throttle(ThrottleConfig::every_nth(3, None));
    let job = env.sync(&["kv-busy"], true).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["detailed_status"]["kv-busy"], "Success");
    let throttled = env.vault.fake.calls().iter().filter(|c| c.status == 429).count();
    assert!(throttled >= 5, "the fake throttled only {throttled} calls");
    assert_eq!(env.keys("kv-busy").await.len(), 12);
    assert_eq!(env.vault.fake.backup_count(), 12);
}

/// Key Vault failing 5 % of its calls with 500/503 (and 0-5 ms of jitter): ten syncs in a row each read every
/// key and take every backup, the failed calls retried.
#[tokio::test]
async fn sync_retries_server_errors_and_reads_every_key() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-f1", "kv-f2"], 15).await;
    for round in 0..10u64 {
        env.vault.fake.set_throttle(ThrottleConfig {
            error_5xx: 0.05,
            latency_jitter_ms: 5,
            seed: Some(round),
            ..ThrottleConfig::default()
        });
        let job = env.sync(&["kv-f1", "kv-f2"], true).await;
        assert_eq!(job["detailed_status"], json!({"kv-f1": "Success", "kv-f2": "Success"}), "round {round}: {job}");
        assert_eq!(job["overall_status"], "completed", "round {round}: {job}");
        env.vault.fake.set_throttle(ThrottleConfig::default());
        assert_eq!(env.keys("kv-f1").await.len(), 15, "round {round}");
        assert_eq!(env.keys("kv-f2").await.len(), 15, "round {round}");
        assert_eq!(env.vault.fake.backup_count(), 30 * (round + 1), "round {round}: one backup per key");
    }
    let failed = env.vault.fake.calls().iter().filter(|c| matches!(c.status, 500 | 503)).count();
    assert!(failed > 10, "the fake failed only {failed} calls");
}

/// Two backups per key in two vaults, the second batch after `cut`. Returns (cut, keys by vault, old backup
/// ids, new backup ids), ids per key in key order.
async fn backups_before_and_after(env: &AzureApp) -> (String, Vec<(String, String)>, Vec<String>, Vec<String>) {
    let mut keys = env.keys("kv-a").await;
    keys.extend(env.keys("kv-b").await);
    let mut old = Vec::new();
    for (_, id) in &keys {
        old.push(env.backup(id, "old").await["id"].as_str().unwrap().to_string());
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut new = Vec::new();
    for (_, id) in &keys {
        new.push(env.backup(id, "new").await["id"].as_str().unwrap().to_string());
    }
    (cut, keys, old, new)
}

/// Every selector of `delete-key-backups`, with and without a time window: exactly the selected backups are
/// gone and every other backup remains.
#[tokio::test]
async fn delete_key_backups_by_every_selector() {
    let env = AzureApp::start().await;
    let vault_ids = env.add_vaults(&["kv-a", "kv-b"], 2).await;
    env.sync(&["kv-a", "kv-b"], false).await;

    type Pick = fn(&[(String, String)], &[String]) -> Value;
    // (name, selector without the window, which keys' backups it reaches (indexes into the 4 keys))
    let cases: Vec<(&str, Pick, Vec<usize>)> = vec![
        ("backups", |_, backups| json!({"backups": [backups[0].clone(), backups[3].clone()]}), vec![0, 3]),
        ("key_id", |keys, _| json!({"key_id": keys[1].1}), vec![1]),
        ("keys", |keys, _| json!({"keys": [keys[0].1.clone(), keys[2].1.clone()]}), vec![0, 2]),
        ("vault_id", |_, _| Value::Null, vec![2, 3]), // filled in below: kv-b
    ];
    for windowed in [false, true] {
        for (name, pick, reached) in &cases {
            let (cut, keys, old, new) = backups_before_and_after(&env).await;
            let all: Vec<String> = old.iter().chain(&new).cloned().collect();
            let mut param = if *name == "vault_id" { json!({"vault_id": vault_ids[1]}) } else { pick(&keys, &all) };
            if *name == "backups" {
                // Both batches of the picked keys, so the window decides between them.
                param = json!({"backups": [old[0], new[0], old[3], new[3]]});
            }
            if windowed {
                param["created_before"] = json!(cut);
            }
            let job = env.run_job(param.clone()).await;
            assert_eq!(job["overall_status"], "completed", "{name} {param}: {job}");
            let mut expect_gone: BTreeSet<String> = reached.iter().map(|&i| old[i].clone()).collect();
            if !windowed {
                expect_gone.extend(reached.iter().map(|&i| new[i].clone()));
            }
            let reported: BTreeSet<String> = job["detailed_status"].as_object().unwrap().keys().cloned().collect();
            assert_eq!(reported, expect_gone, "{name} {param}: detailed_status is keyed by backup id");
            assert!(job["detailed_status"].as_object().unwrap().values().all(|v| v == "Success"));
            for (i, (_, key)) in keys.iter().enumerate() {
                let remaining = env.backup_ids(key).await;
                for b in [&old[i], &new[i]] {
                    assert_eq!(
                        remaining.contains(b),
                        !expect_gone.contains(b),
                        "{name} windowed={windowed}: backup {b} of key {i}"
                    );
                }
            }
            // Clean the slate for the next case.
            for (_, key) in &keys {
                for b in env.backup_ids(key).await {
                    let r = env
                        .app
                        .call(
                            "DELETE",
                            &format!("/api/v1/cckm/azure/keys/{key}/backups/{b}"),
                            Some(&env.app.admin),
                            None,
                        )
                        .await;
                    assert_eq!(r.status, StatusCode::NO_CONTENT);
                }
            }
        }
    }

    // created_after alone: the newer batch only, in every vault.
    let (cut, keys, old, new) = backups_before_and_after(&env).await;
    let job = env.run_job(json!({"created_after": cut})).await;
    assert_eq!(job["progress"]["succeeded"], 4, "{job}");
    for (i, (_, key)) in keys.iter().enumerate() {
        assert_eq!(env.backup_ids(key).await, BTreeSet::from([old[i].clone()]));
    }
    let _ = new;

    // A window nothing falls into: a job with nothing to do, completed at once.
    let job = env.run_job(json!({"vault_id": "kv-a", "created_before": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(job["overall_status"], "completed");
    assert_eq!(job["progress"]["total"], 0);
}

#[tokio::test]
async fn delete_key_backups_rules() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-r"], 1).await;
    env.sync(&["kv-r"], true).await;
    let (_, key) = env.keys("kv-r").await.remove(0);
    let backup = env.backup_ids(&key).await.into_iter().next().unwrap();
    let create = |body: Value| {
        let app = &env.app;
        async move { app.post("/api/v1/cckm/azure/bulkjobs", body).await }
    };
    let param = |p: Value| json!({"operation": "delete-key-backups", "delete_key_backups_param": p});
    let cases: Vec<(Value, &str)> = vec![
        (json!({"delete_key_backups_param": {"key_id": key}}), "operation: is required"),
        (json!({"operation": "disablekey", "delete_key_backups_param": {"key_id": key}}), "operation:"),
        (json!({"operation": "delete-key-backups"}), "delete_key_backups_param: is required"),
        (param(json!({})), "selects nothing"),
        (param(json!({"key_id": key, "vault_id": "kv-r"})), "key_id and vault_id"),
        (param(json!({"key_id": key, "keys": [key]})), "key_id and keys"),
        (param(json!({"keys": [key], "vault_id": "kv-r"})), "keys and vault_id"),
        (param(json!({"backups": []})), "delete_key_backups_param.backups"),
        (param(json!({"backups": ["00000000-0000-4000-8000-000000000000"]})), "unknown backups"),
        (param(json!({"backups": "not-an-id"})), "delete_key_backups_param.backups"),
        (param(json!({"backups": [backup, backup]})), "listed twice"),
        (param(json!({"key_id": "00000000-0000-4000-8000-000000000000"})), "unknown Azure keys"),
        (param(json!({"vault_id": "no-such-vault"})), "delete_key_backups_param.vault_id"),
        (param(json!({"vault_id": "kv-r", "created_after": "yesterday"})), "delete_key_backups_param.created_after"),
        (
            param(
                json!({"vault_id": "kv-r", "created_after": "2030-01-01T00:00:00Z", "created_before": "2020-01-01T00:00:00Z"}),
            ),
            "must be earlier than created_before",
        ),
        (param(json!({"vault": "kv-r"})), "delete_key_backups_param"),
    ];
    for (body, expect) in cases {
        let r = create(body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.body["code"], 9);
        assert!(r.body["message"].as_str().unwrap().contains(expect), "{body}: {}", r.body["message"]);
    }
    // A single string is accepted for `backups`.
    let job = env.run_job(json!({"backups": backup})).await;
    assert_eq!(job["detailed_status"], json!({ backup.clone(): "Success" }));
    assert!(env.backup_ids(&key).await.is_empty());

    // Cancel as for AWS: on a finished job it only raises `abort`.
    let id = job["id"].as_str().unwrap();
    let cancelled = env.app.post(&format!("/api/v1/cckm/azure/bulkjobs/{id}/cancel"), json!({})).await.ok();
    assert_eq!((cancelled["abort"].as_bool(), cancelled["overall_status"].as_str()), (Some(true), Some("completed")));
    assert_eq!(cancelled["completed_at"], job["completed_at"]);

    // The list: Azure jobs only, with the AWS list's filters.
    let list =
        env.app.get("/api/v1/cckm/azure/bulkjobs?overall_status=completed&operation=delete-key-backups").await.ok();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["resources"][0]["id"], job["id"]);
    for q in ["overall_status=in_progress", "cloud=aws"] {
        assert_eq!(env.app.get(&format!("/api/v1/cckm/azure/bulkjobs?{q}")).await.ok()["total"], 0, "{q}");
    }
    assert_eq!(env.app.get("/api/v1/cckm/azure/bulkjobs?cloud=AzureCloud").await.ok()["total"], 1);
    assert_eq!(env.app.get("/api/v1/cckm/aws/bulkjob").await.ok()["total"], 0, "AWS lists show no Azure job");
    assert_eq!(env.app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await.status, StatusCode::NOT_FOUND);
    let bad = env.app.get("/api/v1/cckm/azure/bulkjobs?operation=disablekey").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// DELETE only for a finished job: 409 while it runs, 204 after cancel, then 404.
#[tokio::test]
async fn delete_job_only_when_finished_and_cancel_like_aws() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-big"], 2).await;
    env.sync(&["kv-big"], false).await;
    let keys = env.keys("kv-big").await;
    // Many backups, written straight into the database while the server is stopped: a job over them runs for
    // a while (every item is a durable commit).
    let mut app = env.app;
    app.stop().await;
    {
        let store = app.store().await;
        let key = store.get_azure_key(keys[0].1.parse().unwrap()).await.unwrap().unwrap();
        let at = keyfleet_core::time::now();
        for i in 0..3000 {
            let b = keyfleet_core::KeyBackupRecord {
                id: keyfleet_core::BackupId::new(),
                key_id: key.id,
                vault_id: key.vault_id,
                key_name: key.material.name.clone(),
                key_version: key.material.version.clone(),
                name: format!("bulk-{i}"),
                description: String::new(),
                size_bytes: 3,
                created_by: keyfleet_core::UserId::new(),
                created_at: at,
                updated_at: at,
            };
            store.insert_key_backup(&b, b"xyz").await.unwrap();
        }
    }
    app.restart().await;
    let r = app
        .post(
            "/api/v1/cckm/azure/bulkjobs",
            json!({
                "operation": "delete-key-backups", "delete_key_backups_param": {"vault_id": "kv-big"}, "max_items": 3000
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.body["uri"].as_str().unwrap(),
        format!("kylo:kylo:cckm:azure-bulkjob:{}", r.body["id"].as_str().unwrap())
    );
    let path = format!("/api/v1/cckm/azure/bulkjobs/{}", r.body["id"].as_str().unwrap());
    let del = app.call("DELETE", &path, Some(&app.admin), None).await;
    assert_eq!(del.status, StatusCode::CONFLICT, "{}", del.body);
    assert_eq!(del.body["code"], 11);
    let cancelled = app.post(&format!("{path}/cancel"), json!({})).await.ok();
    assert_eq!(cancelled["abort"], true);
    let done = app.wait_until_done(&path).await;
    assert_eq!(done["overall_status"], "cancelled", "{done}");
    let skipped = done["progress"]["skipped"].as_i64().unwrap();
    assert!(skipped > 0, "cancel skipped nothing: {done}");
    // Large job: detailed_status keeps only failures; the items list has them all.
    assert!(done["detailed_status"].as_object().unwrap().is_empty());
    let items = app.get(&format!("{path}/items?status=skipped&limit=1")).await.ok();
    assert_eq!(items["total"].as_i64().unwrap(), skipped);
    // The skipped backups are still there.
    let remaining = app.get(&format!("/api/v1/cckm/azure/keys/{}/backups?limit=1", keys[0].1)).await.ok();
    assert_eq!(remaining["total"].as_i64().unwrap(), skipped);

    let del = app.call("DELETE", &path, Some(&app.admin), None).await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(del.body, Value::Null);
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
    let list = app.get("/api/v1/cckm/azure/bulkjobs").await.ok();
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn backups_patch_restore_and_the_conflict_of_an_existing_key() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-src"], 1).await;
    env.vault.fake.create_key("kv-dst", "dst-only");
    env.add_vaults(&["kv-dst"], 0).await;
    env.sync(&["kv-src", "kv-dst"], false).await;
    let (name, key) = env.keys("kv-src").await.remove(0);
    let b = env.backup(&key, "before-upgrade").await;
    let id = b["id"].as_str().unwrap();
    assert_eq!(b["key_name"], name);
    assert!(b["size_bytes"].as_i64().unwrap() > 0);
    let path = format!("/api/v1/cckm/azure/keys/{key}/backups/{id}");
    let patched =
        env.app.call("PATCH", &path, Some(&env.app.admin), Some(json!({"description": "kept for audit"}))).await.ok();
    assert_eq!(
        (patched["name"].as_str(), patched["description"].as_str()),
        (Some("before-upgrade"), Some("kept for audit"))
    );

    // Restoring where the key still exists: Key Vault's 409, said plainly.
    let r = env.app.post(&format!("{path}/restore"), json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("already has a key named"), "{}", r.body);

    // Into the other vault: the key appears there, in Key Vault and in the inventory.
    let restored = env.app.post(&format!("{path}/restore"), json!({"key_vault_id": "kv-dst"})).await.ok();
    assert_eq!(restored["key_vault"], "kv-dst");
    assert_eq!(restored["key_name"], name);
    assert!(env.vault.fake.key_names("kv-dst").contains(&name));
    assert!(env.keys("kv-dst").await.iter().any(|(n, _)| *n == name));

    // Another key's backup id is not found under this key.
    let (_, other) = env.keys("kv-dst").await.into_iter().find(|(n, _)| *n != name).unwrap();
    let r = env.app.get(&format!("/api/v1/cckm/azure/keys/{other}/backups/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// A CCKM User needs keybulkoperation on every vault the job reaches.
#[tokio::test]
async fn cckm_users_need_keybulkoperation_on_every_vault() {
    let env = AzureApp::start().await;
    let ids = env.add_vaults(&["kv-mine", "kv-theirs"], 1).await;
    env.sync(&["kv-mine", "kv-theirs"], true).await;
    let (_, token) = env.app.user("alice", Some("CCKM Users")).await;
    let job = json!({"operation": "delete-key-backups", "delete_key_backups_param": {"vault_id": "kv-mine"}});
    let r = env.app.call("POST", "/api/v1/cckm/azure/bulkjobs", Some(&token), Some(job.clone())).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("keybulkoperation on vault kv-mine"));
    env.app
        .post(
            &format!("/api/v1/cckm/azure/vaults/{}/update-acls", ids[0]),
            json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["keybulkoperation"]}]}),
        )
        .await
        .ok();
    let r = env.app.call("POST", "/api/v1/cckm/azure/bulkjobs", Some(&token), Some(job)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A window over every vault reaches kv-theirs too.
    let all = json!({"operation": "delete-key-backups", "delete_key_backups_param": {"created_after": "2001-01-01T00:00:00Z"}});
    let r = env.app.call("POST", "/api/v1/cckm/azure/bulkjobs", Some(&token), Some(all)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("kv-theirs"));
}

/// Neither the client secret nor any backup blob is in the database in plain text; the stored blob opens
/// only with the master key.
#[tokio::test]
async fn database_holds_no_secret_and_no_plain_backup_blob() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-secret"], 2).await;
    env.sync(&["kv-secret"], true).await;
    let keys = env.keys("kv-secret").await;
    let backup: keyfleet_core::BackupId = env.backup_ids(&keys[0].1).await.into_iter().next().unwrap().parse().unwrap();
    let conn = env.app.get("/api/v1/connectionmgmt/services/azure/connections/az").await.ok();
    assert!(conn.get("client_secret").is_none(), "{conn}");
    assert!(!conn.to_string().contains(AZURE_SECRET));

    let mut app = env.app;
    app.stop().await;
    let master_text = std::fs::read_to_string(app.dir.path().join("data/master.key")).unwrap();
    let master = keyfleet_core::crypto::MasterKey::from_base64(master_text.trim()).unwrap();
    let store = app.store().await;
    let sealed = store.key_backup_blob(backup).await.unwrap().unwrap();
    let blob = master.decrypt(&sealed, &backup.blob_aad()).expect("the stored blob opens with the master key");
    assert!(blob.len() > 32);
    drop(store);
    if app.is_postgres() {
        return; // the file checks below are about the SQLite file
    }
    let mut bytes = std::fs::read(app.db_path()).unwrap();
    if let Ok(wal) = std::fs::read(app.db_path().with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(AZURE_SECRET.as_bytes()), "client secret in the database file");
    assert!(!contains(&blob[..32]), "backup blob in the database file");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&blob);
    assert!(!contains(&b64.as_bytes()[..40]), "base64 backup blob in the database file");
}

#[tokio::test]
async fn connection_and_vault_validation() {
    let env = AzureApp::start().await;
    let conns = "/api/v1/connectionmgmt/services/azure/connections";
    let cases = vec![
        (json!({"client_id": "c", "tenant_id": "t", "client_secret": "s"}), "name"),
        (json!({"name": "x", "tenant_id": "t", "client_secret": "s"}), "client_id"),
        (json!({"name": "x", "client_id": "c", "tenant_id": "t"}), "client_secret"),
        (
            json!({"name": "x", "client_id": "c", "tenant_id": "t", "client_secret": "s", "cloud_name": "Mars"}),
            "cloud_name",
        ),
        (
            json!({"name": "x", "client_id": "c", "tenant_id": "t", "client_secret": "s", "active_directory_endpoint": "http://login"}),
            "active_directory_endpoint",
        ),
        (
            json!({"name": "x", "client_id": "c", "tenant_id": "t", "client_secret": "s", "vault_endpoint_url": "https://h/vaults"}),
            "vault_endpoint_url",
        ),
    ];
    for (body, field) in cases {
        let r = env.app.post(conns, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(field), "{body}: {}", r.body["message"]);
    }
    let dup =
        env.app.post(conns, json!({"name": "az", "client_id": "c", "tenant_id": "t", "client_secret": "s"})).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    let add = "/api/v1/cckm/azure/add-vaults";
    let cases = vec![
        (json!({"subscription_id": SUBSCRIPTION, "vaults": [{"name": "kv-x"}]}), "connection"),
        (json!({"connection": "nope", "subscription_id": SUBSCRIPTION, "vaults": [{"name": "kv-x"}]}), "connection"),
        (json!({"connection": "az", "vaults": [{"name": "kv-x"}]}), "subscription_id"),
        (json!({"connection": "az", "subscription_id": SUBSCRIPTION, "vaults": []}), "vaults"),
        (json!({"connection": "az", "subscription_id": SUBSCRIPTION, "vaults": [{"name": "x_"}]}), "vaults[0].name"),
        (
            json!({"connection": "az", "subscription_id": SUBSCRIPTION, "vaults": [{"name": "kv-x"}, {"name": "KV-X"}]}),
            "vaults[1].name",
        ),
    ];
    for (body, field) in cases {
        let r = env.app.post(add, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(field), "{body}: {}", r.body["message"]);
    }
    env.add_vaults(&["kv-x"], 0).await;
    let again = env
        .app
        .post(add, json!({"connection": "az", "subscription_id": SUBSCRIPTION, "vaults": [{"name": "kv-x"}]}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let in_use = env.app.call("DELETE", &format!("{conns}/az"), Some(&env.app.admin), None).await;
    assert_eq!(in_use.status, StatusCode::CONFLICT, "{}", in_use.body);
    // Wrong credentials: the sync says so per vault.
    env.app
        .call("PATCH", &format!("{conns}/az"), Some(&env.app.admin), Some(json!({"client_secret": "wrong"})))
        .await
        .ok();
    let job = env.sync(&["kv-x"], false).await;
    assert_eq!(job["overall_status"], "failed", "{job}");
    let status = job["detailed_status"]["kv-x"].as_str().unwrap();
    assert!(status.starts_with("Failed:") && !status.contains("wrong"), "{status}");
}
