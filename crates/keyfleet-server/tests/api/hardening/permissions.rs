//! The permission matrix of docs/API.md, walked route by route as each role: `admin`, a `CCKM Admins`
//! member, a `CCKM Users` member holding the ACL, one without it, and a user in no group.

use serde_json::{Value, json};

use crate::azure::AzureApp;
use crate::support::*;

/// Every role of the matrix, in the column order of docs/API.md.
const ROLES: [&str; 5] = ["admin", "cckm-admin", "user-acl", "user-no-acl", "no-group"];

struct World {
    env: AzureApp,
    /// Tokens in `ROLES` order.
    tokens: Vec<String>,
    aws_keys: Vec<String>,
    vaults: Vec<String>,
    azure_key: String,
    backup: String,
}

async fn world() -> World {
    let env = AzureApp::start().await;
    let app = &env.app;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 2);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    let aws_keys = app.key_ids("acct").await;
    env.vault.fake.create_key("kv-src", "src-only");
    env.vault.fake.create_key("kv-dst", "dst-only");
    let vaults = env.add_vaults(&["kv-src", "kv-dst"], 0).await;
    env.sync(&["kv-src", "kv-dst"], false).await;
    let (_, azure_key) = env.keys("kv-src").await.remove(0);
    let backup = env.backup(&azure_key, "b1").await["id"].as_str().unwrap().to_string();

    let (_, cckm_admin) = app.user("cadmin", Some("CCKM Admins")).await;
    let (granted_id, granted) = app.user("granted", Some("CCKM Users")).await;
    let (_, ungranted) = app.user("ungranted", Some("CCKM Users")).await;
    let (_, nogroup) = app.user("nogroup", None).await;
    let all = json!(["keybulkoperation", "keycreate", "keyupdate", "keydelete", "keysynchronize"]);
    let grant = json!({"acls": [{"user_id": granted_id, "permit": true, "actions": all}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant.clone()).await.ok();
    for v in &vaults {
        app.post(&format!("/api/v1/cckm/azure/vaults/{v}/update-acls"), grant.clone()).await.ok();
    }
    let tokens = vec![app.admin.clone(), cckm_admin, granted, ungranted, nogroup];
    World { env, tokens, aws_keys, vaults, azure_key, backup }
}

/// Calls `method path` as every role and checks each answer: `true` allowed (2xx, or 409 — past the
/// permission check), `false` a 403 in CCKM's format.
async fn walk(w: &World, method: &str, path: &str, body: impl Fn(usize) -> Option<Value>, expected: [bool; 5]) {
    for (i, role) in ROLES.iter().enumerate() {
        let r = w.env.app.call(method, path, Some(&w.tokens[i]), body(i)).await;
        if expected[i] {
            assert!(
                r.status.is_success() || r.status == 409,
                "{method} {path} as {role}: expected allowed, got {}: {}",
                r.status,
                r.body
            );
        } else {
            assert_eq!(r.status, 403, "{method} {path} as {role}: expected 403, got {}", r.body);
            assert_eq!(r.body["codeDesc"], "NCERRInsufficientPermissions", "{}", r.body);
        }
    }
}

const EVERYONE_IN_CCKM: [bool; 5] = [true, true, true, true, false];
const ADMINS: [bool; 5] = [true, true, false, false, false];
const ACL: [bool; 5] = [true, true, true, false, false];
const ADMIN_ONLY: [bool; 5] = [true, false, false, false, false];

#[tokio::test]
async fn every_role_gets_the_documented_answer() {
    let w = world().await;
    let app = &w.env.app;
    let none = |_| None;

    // Connections and ACLs: CCKM Admins only.
    let conn = |i: usize| {
        Some(json!({"name": format!("c{i}"), "access_key_id": FAKE_ACCESS_KEY, "secret_access_key": SECRET,
                    "endpoint_url": app.fake.url()}))
    };
    walk(&w, "POST", "/api/v1/connectionmgmt/services/aws/connections", conn, ADMINS).await;
    walk(&w, "GET", "/api/v1/connectionmgmt/services/aws/connections", none, ADMINS).await;
    let acl = |_| Some(json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["viewnative"]}]}));
    walk(&w, "POST", "/api/v1/cckm/aws/kms/acct/update-acls", acl, ADMINS).await;
    walk(&w, "POST", &format!("/api/v1/cckm/azure/vaults/{}/update-acls", w.vaults[0]), acl, ADMINS).await;
    // User management: admin only.
    let user = |i: usize| Some(json!({"username": format!("new{i}"), "password": "a-long-enough-password"}));
    walk(&w, "POST", "/api/v1/usermgmt/users", user, ADMIN_ONLY).await;
    walk(&w, "GET", "/api/v1/usermgmt/users", none, ADMIN_ONLY).await;
    let described = |_| Some(json!({"description": "Users of CCKM"}));
    walk(&w, "PATCH", "/api/v1/usermgmt/groups/CCKM Users", described, ADMIN_ONLY).await;
    walk(&w, "GET", "/api/v1/usermgmt/groups/CCKM Users", none, EVERYONE_IN_CCKM).await;
    walk(&w, "GET", "/api/v1/audit/records", none, ADMIN_ONLY).await;
    // Everyone manages their own refresh tokens.
    walk(&w, "GET", "/api/v1/auth/tokens", none, [true; 5]).await;
    // Inventory: read by every CCKM member.
    walk(&w, "GET", "/api/v1/cckm/aws/keys", none, EVERYONE_IN_CCKM).await;
    walk(&w, "GET", "/api/v1/cckm/azure/vaults", none, EVERYONE_IN_CCKM).await;

    // AWS bulk jobs: created by admin; read and cancelled by whoever holds keybulkoperation on the keys.
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": w.aws_keys})).await;
    let job = job["id"].as_str().unwrap();
    walk(&w, "GET", &format!("/api/v1/cckm/aws/bulkjob/{job}"), none, ACL).await;
    walk(&w, "GET", &format!("/api/v1/cckm/aws/bulkjob/{job}/items"), none, ACL).await;
    walk(&w, "GET", "/api/v1/cckm/aws/bulkjob", none, EVERYONE_IN_CCKM).await;
    walk(&w, "POST", &format!("/api/v1/cckm/aws/bulkjob/{job}/cancel"), none, ACL).await;
    let create = |_| Some(json!({"operation": "enablekey", "keys": w.aws_keys}));
    walk(&w, "POST", "/api/v1/cckm/aws/bulkjob", create, ACL).await;
    // A CCKM User's list shows only the jobs they created.
    let mine = app.call("GET", "/api/v1/cckm/aws/bulkjob?limit=100", Some(&w.tokens[2]), None).await.ok();
    assert_eq!(mine["total"], 1, "granted sees the one job they created: {mine}");
    let theirs = app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(&w.tokens[3]), None).await.ok();
    assert_eq!(theirs["total"], 0, "{theirs}");

    // Azure bulk jobs: read and cancelled by their creator (and CCKM Admins) only.
    let azjob = w.env.run_job(json!({"vault_id": "kv-dst"})).await;
    let azjob = azjob["id"].as_str().unwrap();
    walk(&w, "GET", &format!("/api/v1/cckm/azure/bulkjobs/{azjob}"), none, ADMINS).await;
    walk(&w, "POST", &format!("/api/v1/cckm/azure/bulkjobs/{azjob}/cancel"), none, ADMINS).await;
    walk(&w, "GET", "/api/v1/cckm/azure/bulkjobs", none, EVERYONE_IN_CCKM).await;

    // Sync jobs: created with keysynchronize; cancelled only by their creator or a CCKM Admin.
    let sync = app.sync("acct").await;
    let sync = sync["id"].as_str().unwrap();
    walk(&w, "GET", &format!("/api/v1/cckm/aws/synchronization-jobs/{sync}"), none, EVERYONE_IN_CCKM).await;
    walk(&w, "POST", &format!("/api/v1/cckm/aws/synchronization-jobs/{sync}/cancel"), none, ADMINS).await;
    let create = |_| Some(json!({"kms": ["acct"]}));
    walk(&w, "POST", "/api/v1/cckm/aws/synchronization-jobs", create, ACL).await;

    // Cloud key backups: keycreate on the backup's vault and on the target vault to restore.
    let restore = format!("/api/v1/cckm/azure/keys/{}/backups/{}/restore", w.azure_key, w.backup);
    let into_dst = |_| Some(json!({"key_vault_id": "kv-dst"}));
    walk(&w, "POST", &restore, into_dst, ACL).await;
    let backups = format!("/api/v1/cckm/azure/keys/{}/backups", w.azure_key);
    walk(&w, "GET", &backups, none, EVERYONE_IN_CCKM).await;
    walk(&w, "POST", &backups, |i| Some(json!({"name": format!("r{i}")})), ACL).await;

    // Each kind of change above left its audit record, with the user who made it.
    let trail = app.get("/api/v1/audit/records?limit=1000").await.ok();
    let records = trail["resources"].as_array().unwrap();
    for action in [
        "vault.create",
        "acl.update",
        "bulkjob.create",
        "bulkjob.cancel",
        "syncjob.create",
        "syncjob.cancel",
        "backup.create",
        "azure.RestoreKey",
        "group.update",
    ] {
        assert!(records.iter().any(|r| r["action"] == action), "{action} recorded");
    }
    let by_granted = records.iter().any(|r| r["action"] == "bulkjob.create" && r["user"] == "granted");
    assert!(by_granted, "with the user who made the change");
}

/// The finding: `keycreate` on the target vault alone no longer lets a user restore another vault's keys.
#[tokio::test]
async fn restoring_needs_keycreate_on_the_backups_own_vault_too() {
    let w = world().await;
    let app = &w.env.app;
    let (mallory, token) = app.user("mallory", Some("CCKM Users")).await;
    let on_dst = json!({"acls": [{"user_id": mallory, "permit": true, "actions": ["keycreate"]}]});
    app.post(&format!("/api/v1/cckm/azure/vaults/{}/update-acls", w.vaults[1]), on_dst.clone()).await.ok();
    let restore = format!("/api/v1/cckm/azure/keys/{}/backups/{}/restore", w.azure_key, w.backup);
    let r = app.call("POST", &restore, Some(&token), Some(json!({"key_vault_id": "kv-dst"}))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("keycreate on vault kv-src"), "{}", r.body);
    assert!(!w.env.vault.fake.key_names("kv-dst").contains(&"src-only".to_string()), "nothing was restored");

    // keycreate on the backup's vault alone is not enough either; on both it is.
    app.post(
        &format!("/api/v1/cckm/azure/vaults/{}/update-acls", w.vaults[1]),
        json!({"acls": [{"user_id": mallory, "permit": false, "actions": ["keycreate"]}]}),
    )
    .await
    .ok();
    app.post(&format!("/api/v1/cckm/azure/vaults/{}/update-acls", w.vaults[0]), on_dst.clone()).await.ok();
    let r = app.call("POST", &restore, Some(&token), Some(json!({"key_vault_id": "kv-dst"}))).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("keycreate on vault kv-dst"), "{}", r.body);
    app.post(&format!("/api/v1/cckm/azure/vaults/{}/update-acls", w.vaults[1]), on_dst).await.ok();
    let r = app.call("POST", &restore, Some(&token), Some(json!({"key_vault_id": "kv-dst"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.body["key_vault"].as_str(), r.body["key_name"].as_str()), (Some("kv-dst"), Some("src-only")));
}

/// The finding: a CCKM User cannot cancel another user's synchronization job, even holding keysynchronize.
#[tokio::test]
async fn only_the_creator_or_a_cckm_admin_cancels_a_sync_job() {
    let w = world().await;
    let app = &w.env.app;
    let granted = &w.tokens[2];
    let (_, other) = app.user("other", Some("CCKM Users")).await;
    let grant = json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["keysynchronize"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant).await.ok();
    let job = app.call("POST", "/api/v1/cckm/aws/synchronization-jobs", Some(granted), Some(json!({"kms": ["acct"]})));
    let job = job.await;
    assert_eq!(job.status, 201, "{}", job.body);
    let cancel = format!("/api/v1/cckm/aws/synchronization-jobs/{}/cancel", job.body["id"].as_str().unwrap());
    let r = app.call("POST", &cancel, Some(&other), None).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["codeDesc"], "NCERRInsufficientPermissions");
    assert_eq!(app.call("POST", &cancel, Some(granted), None).await.status, 200);
    assert_eq!(app.call("POST", &cancel, Some(&w.tokens[1]), None).await.status, 200);
}
