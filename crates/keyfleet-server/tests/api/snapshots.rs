//! `insta` snapshots of every response shape. Ids, timestamps and tokens vary per run, so `normalize`
//! replaces them with placeholders — but only values of exactly the right format are replaced, so a
//! timestamp with three fractional digits or a non-v4 id shows up as a snapshot difference.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::support::*;
use crate::validation::app_with_keys;

fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && [8, 13, 18, 23].iter().all(|&i| b[i] == b'-')
        && b[14] == b'4'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// `2023-02-10T08:19:48.558869Z`: UTC, six fractional digits.
fn is_cckm_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && s.chars().enumerate().all(|(i, c)| [4, 7, 10, 13, 16, 19, 26].contains(&i) || c.is_ascii_digit())
}

struct Normalizer {
    ids: HashMap<String, usize>,
}

impl Normalizer {
    fn text(&mut self, s: &str) -> String {
        if is_uuid_v4(s) {
            let n = self.ids.len() + 1;
            return format!("[uuid-{}]", self.ids.entry(s.to_string()).or_insert(n));
        }
        if is_cckm_timestamp(s) {
            return "[timestamp]".into();
        }
        if let Some(port) = s.strip_prefix("http://127.0.0.1:")
            && port.chars().all(|c| c.is_ascii_digit())
        {
            return "http://127.0.0.1:[port]".into();
        }
        // uuids inside other strings (uri, sub, messages)
        let mut out = s.to_string();
        for (i, _) in s.char_indices() {
            if let Some(cand) = s.get(i..i + 36)
                && is_uuid_v4(cand)
            {
                let n = self.ids.len() + 1;
                let tag = format!("[uuid-{}]", self.ids.entry(cand.to_string()).or_insert(n));
                out = out.replace(cand, &tag);
            }
        }
        out
    }

    fn value(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(o) => {
                let mut m = Map::new();
                for (k, v) in o {
                    let k = self.text(k);
                    m.insert(k, self.value(v));
                }
                Value::Object(m)
            }
            other => other.clone(),
        }
    }
}

/// Numbers ids in a stable order: first those listed in `keys` arrays (request order), then in document order
/// (where map keys are sorted, so the numbering would otherwise depend on the random ids themselves).
fn normalize(v: &Value) -> Value {
    fn listed_keys(v: &Value, n: &mut Normalizer) {
        match v {
            Value::Object(o) => {
                if let Some(Value::Array(keys)) = o.get("keys") {
                    for k in keys.iter().filter_map(Value::as_str) {
                        n.text(k);
                    }
                }
                o.values().for_each(|x| listed_keys(x, n));
            }
            Value::Array(a) => a.iter().for_each(|x| listed_keys(x, n)),
            _ => {}
        }
    }
    let mut n = Normalizer { ids: HashMap::new() };
    listed_keys(v, &mut n);
    n.value(v)
}

#[tokio::test]
async fn token_response_and_jwt_claims() {
    let app = TestApp::start().await;
    let t = app
        .call("POST", "/api/v1/auth/tokens", None, Some(json!({"username": "admin", "password": ADMIN_PASSWORD})))
        .await
        .ok();
    let jwt = t["jwt"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 64);
    let mut shape = t.clone();
    shape["jwt"] = json!("[jwt]");
    shape["refresh_token"] = json!("[64 characters]");
    let expires = t["refresh_token_expires_in"].as_i64().unwrap();
    assert!((7 * 86400 - 5..=7 * 86400).contains(&expires), "{expires}");
    shape["refresh_token_expires_in"] = json!("[7 days]");
    insta::assert_json_snapshot!("token_response", normalize(&shape));

    let parts: Vec<&str> = jwt.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    claims["iat"] = json!("[iat]");
    claims["exp"] = json!("[iat + 300]");
    insta::assert_json_snapshot!("jwt_header", header);
    insta::assert_json_snapshot!("jwt_claims", normalize(&claims));
}

/// The seed example of CCKM-COMPAT §3: GET of a finished `enablekey` job on two keys.
#[tokio::test]
async fn bulk_job_shapes() {
    let (app, ids) = app_with_keys(2).await;
    let created = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "enablekey", "keys": ids})).await;
    assert_eq!(created.status, 201);
    insta::assert_json_snapshot!("bulkjob_created", normalize(&created.body));
    let id = created.body["id"].as_str().unwrap();
    let done = app.wait_until_done(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await;
    let again = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await.ok();
    assert_eq!(done, again);
    insta::assert_json_snapshot!("bulkjob_enablekey_two_keys_finished", normalize(&done));
    // Exactly CCKM's fields, plus the documented extension `progress`.
    let fields: std::collections::BTreeSet<&str> = done.as_object().unwrap().keys().map(String::as_str).collect();
    let expected: std::collections::BTreeSet<&str> = [
        "id",
        "uri",
        "account",
        "createdAt",
        "updatedAt",
        "completed_at",
        "overall_status",
        "detailed_status",
        "abort",
        "cloud",
        "keys",
        "operation",
        "progress",
    ]
    .into_iter()
    .collect();
    assert_eq!(fields, expected);

    let cancelled = app.post(&format!("/api/v1/cckm/aws/bulkjob/{id}/cancel"), json!({})).await.ok();
    assert_eq!(cancelled["abort"], true);
    assert_eq!(cancelled["overall_status"], "completed", "cancel of a finished job only sets abort");
    assert_eq!(cancelled["updatedAt"], done["updatedAt"]);

    let sched = app.run_bulkjob(json!({"operation": "schedulekeydeletion", "keys": [ids[0]], "days": 7})).await;
    insta::assert_json_snapshot!("bulkjob_schedulekeydeletion_finished", normalize(&sched));

    let list = app.get("/api/v1/cckm/aws/bulkjob?limit=1&sort=createdAt").await.ok();
    assert_eq!(list["total"], 2);
    insta::assert_json_snapshot!("bulkjob_list", normalize(&list));
}

#[tokio::test]
async fn error_bodies() {
    let (app, ids) = app_with_keys(1).await;
    let bad = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "disablekey", "keys": ids, "days": 9})).await;
    assert_eq!(bad.status, 400);
    insta::assert_json_snapshot!("error_400", normalize(&bad.body));
    let unauth = app.call("GET", "/api/v1/cckm/aws/bulkjob", None, None).await;
    assert_eq!(unauth.status, 401);
    insta::assert_json_snapshot!("error_401", normalize(&unauth.body));
    let (_, token) = app.user("carol", None).await;
    let forbidden = app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(&token), None).await;
    assert_eq!(forbidden.status, 403);
    insta::assert_json_snapshot!("error_403", normalize(&forbidden.body));
    let missing = app.get("/api/v1/cckm/aws/bulkjob/00000000-0000-4000-8000-00000000beef").await;
    assert_eq!(missing.status, 404);
    insta::assert_json_snapshot!("error_404", normalize(&missing.body));
    let dup = app
        .post(
            "/api/v1/cckm/aws/kms",
            json!({"name": "acct", "account_id": FAKE_ACCOUNT, "connection": "acct-conn", "regions": ["us-east-1"]}),
        )
        .await;
    assert_eq!(dup.status, 409);
    insta::assert_json_snapshot!("error_409", normalize(&dup.body));
}

#[tokio::test]
async fn inventory_shapes() {
    let (app, ids) = app_with_keys(1).await;
    let conns = app.get("/api/v1/connectionmgmt/services/aws/connections").await.ok();
    insta::assert_json_snapshot!("aws_connection_list", normalize(&conns));
    let kms = app.get("/api/v1/cckm/aws/kms/acct").await.ok();
    insta::assert_json_snapshot!("aws_kms", normalize(&kms));
    let mut key = app.get(&format!("/api/v1/cckm/aws/keys/{}", ids[0])).await.ok();
    key["aws_param"]["Arn"] =
        json!(key["aws_param"]["Arn"].as_str().unwrap().rsplit_once('/').unwrap().0.to_string() + "/[key id]");
    insta::assert_json_snapshot!("aws_key", normalize(&key));
    let sync = app.get("/api/v1/cckm/aws/synchronization-jobs").await.ok();
    insta::assert_json_snapshot!("aws_sync_job_list", normalize(&sync));
    let template = app
        .post(
            "/api/v1/cckm/aws/templates",
            json!({"name": "admins", "kms": "acct", "key_admins": ["alice"], "key_users": ["bob"]}),
        )
        .await
        .ok();
    insta::assert_json_snapshot!("aws_template", normalize(&template));
    let (_, _) = app.user("dave", Some("CCKM Users")).await;
    let users = app.get("/api/v1/usermgmt/users?sort=username").await.ok();
    insta::assert_json_snapshot!("user_list", normalize(&users));
    let groups = app.get("/api/v1/usermgmt/groups").await.ok();
    insta::assert_json_snapshot!("group_list", normalize(&groups));
}

/// Every Azure response shape: connection, added vaults, vault, key, backup, sync job, bulk job.
#[tokio::test]
async fn azure_shapes() {
    use crate::azure::AzureApp;
    let env = AzureApp::start().await;
    let app = &env.app;
    let conn = app.get("/api/v1/connectionmgmt/services/azure/connections/az").await.ok();
    let mut conn = normalize(&conn);
    conn["active_directory_endpoint"] = json!("[fake authority]");
    conn["vault_endpoint_url"] = json!("[fake vault url]");
    insta::assert_json_snapshot!("azure_connection", conn);

    env.vault.fake.create_keys("kv-shape", 1);
    let added = app
        .post(
            "/api/v1/cckm/azure/add-vaults",
            json!({"connection": "az", "subscription_id": crate::azure::SUBSCRIPTION, "vaults": [{
                "name": "kv-shape", "location": "westeurope", "tags": {"team": "blue"},
                "azure_vault_id": "/subscriptions/00000000-0000-0000-0000-0000000000b1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-shape",
                "properties": {"sku": {"family": "A", "name": "standard"}, "enableSoftDelete": true}
            }]}),
        )
        .await;
    assert_eq!(added.status, reqwest::StatusCode::CREATED);
    insta::assert_json_snapshot!("azure_add_vaults", normalize(&added.body));

    let sync = env.sync(&["kv-shape"], true).await;
    insta::assert_json_snapshot!("azure_sync_job_finished", normalize(&sync));
    let vault = app.get("/api/v1/cckm/azure/vaults/kv-shape").await.ok();
    insta::assert_json_snapshot!("azure_vault_synced", normalize(&vault));

    let (_, key_id) = env.keys("kv-shape").await.remove(0);
    let mut key = normalize(&app.get(&format!("/api/v1/cckm/azure/keys/{key_id}")).await.ok());
    // Key Vault's own values that vary per run: the version id and its times (Unix seconds, so not CCKM's
    // six-digit timestamps).
    key["version"] = json!("[version]");
    key["azure_param"]["kid"] = json!("[kid]");
    for t in ["created", "updated"] {
        key["azure_param"]["attributes"][t] = json!("[key vault time]");
        key["versions"][0][t] = json!("[key vault time]");
    }
    key["versions"][0]["version"] = json!("[version]");
    insta::assert_json_snapshot!("azure_key", key);

    let backups = app.get(&format!("/api/v1/cckm/azure/keys/{key_id}/backups")).await.ok();
    let mut backups = normalize(&backups);
    backups["resources"][0]["name"] = json!("[key name]-[time]");
    backups["resources"][0]["key_version"] = json!("[version]");
    backups["resources"][0]["size_bytes"] = json!("[size]");
    insta::assert_json_snapshot!("azure_backup_list", backups);

    let backup_id = env.backup_ids(&key_id).await.into_iter().next().unwrap();
    let job = env.run_job(json!({"backups": [backup_id], "created_after": "2001-01-01T00:00:00Z"})).await;
    insta::assert_json_snapshot!("azure_bulkjob_finished", normalize(&job));
}
