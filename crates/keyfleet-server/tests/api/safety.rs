//! Operator safety (issue 10): plan then confirm (`dry_run`), the blast-radius cap (`max_items`), failure
//! thresholds and idempotent creation, for AWS and Azure bulk jobs.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::AzureApp;
use crate::support::*;

const AWS_JOBS: &str = "/api/v1/cckm/aws/bulkjob";
const AZURE_JOBS: &str = "/api/v1/cckm/azure/bulkjobs";

/// `(CCKM id, AWS KeyId)` of every key of container `acct`.
pub(crate) async fn key_pairs(app: &TestApp) -> Vec<(String, String)> {
    let list = app.get("/api/v1/cckm/aws/keys?kms=acct&limit=1000").await.ok();
    list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["id"].as_str().unwrap().to_string(), k["aws_param"]["KeyID"].as_str().unwrap().to_string()))
        .collect()
}

/// An app with `n` keys in us-east-1 (and `west` in eu-west-1) in container `acct`, synchronized.
async fn app_with(tweak: impl FnOnce(&mut keyfleet_server::ServeArgs), n: usize, west: usize) -> TestApp {
    let app = TestApp::start_with(tweak).await;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", n);
    app.fake.fake.create_keys(FAKE_ACCOUNT, "eu-west-1", west);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1", "eu-west-1"]).await;
    app.sync("acct").await;
    app
}

pub(crate) fn id_of(job: &Value) -> String {
    job["id"].as_str().unwrap().to_string()
}

/// The state-changing calls the fake AWS received (everything but reads).
fn changes(app: &TestApp) -> Vec<(String, Option<String>)> {
    app.fake
        .fake
        .calls()
        .into_iter()
        .filter(|c| {
            !["DescribeKey", "ListKeys", "ListAliases", "GetKeyPolicy", "ListResourceTags"]
                .contains(&c.operation.as_str())
        })
        .map(|c| (c.operation, c.key_id))
        .collect()
}

async fn job_count(app: &TestApp, jobs: &str) -> u64 {
    app.get(jobs).await.ok()["total"].as_u64().unwrap()
}

#[tokio::test]
async fn an_aws_plan_runs_nothing_until_confirmed_and_then_exactly_its_items() {
    let app = app_with(|_| {}, 5, 2).await;
    let keys = key_pairs(&app).await;
    let east: Vec<&(String, String)> =
        keys.iter().filter(|k| app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", &k.1).is_some()).collect();
    assert_eq!(east.len(), 5);
    // One key already where the job puts it.
    app.run_bulkjob(json!({"operation": "disablekey", "keys": [east[0].0]})).await;
    let before = changes(&app).len();

    let selector = json!({"kms": ["acct"], "regions": ["us-east-1"]});
    let r = app.post(AWS_JOBS, json!({"operation": "disablekey", "selector": selector, "dry_run": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let plan = r.body;
    let id = id_of(&plan);
    assert_eq!(plan["overall_status"], "planned");
    assert!(plan["plan_expires_at"].is_string(), "{plan}");
    let p = &plan["plan"];
    assert_eq!(p["items"], 5, "{p}");
    assert_eq!(p["by_container"], json!({"acct": 5}));
    assert_eq!(p["by_region"], json!({"us-east-1": 5}));
    assert_eq!(p["by_state"], json!({"Enabled": 4, "Disabled": 1}));
    assert_eq!(p["no_ops"], 1);
    assert_eq!(p["sample"].as_array().unwrap().len(), 5);
    assert_eq!(plan["detailed_status"], json!({}));

    // Every planned item with its current state and intended action.
    let items = app.get(&format!("{AWS_JOBS}/{id}/items")).await.ok();
    assert_eq!(items["total"], 5);
    for item in items["resources"].as_array().unwrap() {
        assert_eq!(item["status"], "planned");
        if item["key_id"] == east[0].0.as_str() {
            assert_eq!(
                (item["current_state"].as_str(), item["action"].as_str()),
                (Some("Disabled"), Some("none (already Disabled)"))
            );
        } else {
            assert_eq!(
                (item["current_state"].as_str(), item["action"].as_str()),
                (Some("Enabled"), Some("disablekey"))
            );
        }
    }
    // The engine leaves a plan alone.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.get(&format!("{AWS_JOBS}/{id}")).await.ok()["overall_status"], "planned");
    assert_eq!(changes(&app).len(), before, "nothing was sent to AWS");

    // A key that appears after the plan is not part of it.
    let new_key = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 1).remove(0);
    app.sync("acct").await;
    let r = app.post(&format!("{AWS_JOBS}/{id}/confirm"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_ne!(r.body["overall_status"], "planned");
    let done = app.wait_until_done(&format!("{AWS_JOBS}/{id}")).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    assert_eq!(done["progress"]["succeeded"], 5);
    for k in &east {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", &k.1).as_deref(), Some("Disabled"));
    }
    assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", &new_key).as_deref(), Some("Enabled"));
    assert!(!changes(&app).iter().any(|(_, k)| k.as_deref() == Some(new_key.as_str())), "the new key was not touched");
    // The confirm is in the audit trail, by its user, with the job it started.
    let audit = app.get(&format!("/api/v1/audit/records?action=bulkjob.confirm&resource=bulkjob:{id}")).await.ok();
    assert_eq!(audit["total"], 1, "{audit}");
    assert_eq!(audit["resources"][0]["user"], "admin", "{audit}");
    // Each DisableKey the engine sent is recorded with its outcome; the no-op key got no call and no record.
    let calls = app.get("/api/v1/audit/records?action=aws.DisableKey&limit=100").await.ok();
    let sent = changes(&app).iter().filter(|(op, _)| op == "DisableKey").count();
    assert_eq!(calls["total"].as_u64().unwrap() as usize, sent, "{calls}");
    let mut recorded = BTreeSet::new();
    for r in calls["resources"].as_array().unwrap() {
        assert_eq!((r["user"].as_str(), r["outcome"].as_str()), (Some("system"), Some("Success")), "{r}");
        assert!(r["resource"].as_str().unwrap().starts_with("aws-key:"), "{r}");
        let details: Value = serde_json::from_str(r["details"].as_str().unwrap()).unwrap();
        recorded
            .insert(details["cloud_request_id"].as_str().unwrap_or_else(|| panic!("no request id: {r}")).to_owned());
    }
    // ... with the request id AWS answered it with, as the fake logged it.
    let answered: BTreeSet<String> =
        app.fake.fake.calls().into_iter().filter(|c| c.operation == "DisableKey").map(|c| c.request_id).collect();
    assert_eq!(recorded, answered);

    // Only a plan can be confirmed.
    let again = app.post(&format!("{AWS_JOBS}/{id}/confirm"), json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body["message"].as_str().unwrap().contains("not planned"), "{}", again.body);
}

#[tokio::test]
async fn a_plan_expires_and_a_cancelled_plan_cannot_be_confirmed() {
    let app = app_with(|a| a.safety_plan_ttl_secs = Some(1), 3, 0).await;
    let ids: Vec<String> = key_pairs(&app).await.into_iter().map(|k| k.0).collect();
    let before = changes(&app).len();

    let body = json!({"operation": "enablekey", "keys": ids, "dry_run": true});
    let expiring = app.post(AWS_JOBS, body.clone()).await.ok();
    assert_eq!((expiring["overall_status"].as_str(), expiring["plan"]["no_ops"].as_i64()), (Some("planned"), Some(3)));
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let r = app.post(&format!("{AWS_JOBS}/{}/confirm", id_of(&expiring)), json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("expired"), "{}", r.body);

    let cancelled = app.post(AWS_JOBS, body).await.ok();
    let id = id_of(&cancelled);
    let c = app.post(&format!("{AWS_JOBS}/{id}/cancel"), json!({})).await.ok();
    assert_eq!((c["overall_status"].as_str(), c["abort"].as_bool()), (Some("cancelled"), Some(true)), "{c}");
    assert_eq!(c["progress"]["skipped"], 3);
    assert!(c["detailed_status"].as_object().unwrap().values().all(|v| v == "Skipped: cancelled"));
    let r = app.post(&format!("{AWS_JOBS}/{id}/confirm"), json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // A non-planned job is not confirmable either, and confirming an unknown job is a 404.
    let r = app.post(&format!("{AWS_JOBS}/00000000-0000-0000-0000-000000000000/confirm"), json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(changes(&app).len(), before, "nothing was sent to AWS");
}

#[tokio::test]
async fn an_azure_plan_deletes_only_its_frozen_backups_and_only_its_owner_confirms() {
    let env = AzureApp::start().await;
    let vault_ids = env.add_vaults(&["kv-a", "kv-b"], 2).await;
    env.sync(&["kv-a", "kv-b"], true).await;
    let (_, alice) = env.app.user("alice", Some("CCKM Users")).await;
    let (_, bob) = env.app.user("bob", Some("CCKM Users")).await;
    env.app
        .post(
            &format!("/api/v1/cckm/azure/vaults/{}/update-acls", vault_ids[0]),
            json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["keybulkoperation"]}]}),
        )
        .await
        .ok();
    let keys_a = env.keys("kv-a").await;
    let mut old = BTreeSet::new();
    for (_, k) in &keys_a {
        old.extend(env.backup_ids(k).await);
    }
    assert_eq!(old.len(), 2);

    let body = json!({"operation": "delete-key-backups", "vault_id": "kv-a", "dry_run": true});
    let r = env.app.call("POST", AZURE_JOBS, Some(&alice), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = id_of(&r.body);
    assert_eq!(r.body["overall_status"], "planned");
    let p = &r.body["plan"];
    assert_eq!((p["items"].as_i64(), p["no_ops"].as_i64()), (Some(2), Some(0)), "{p}");
    assert_eq!(p["by_container"], json!({"kv-a": 2}));
    assert_eq!(p["by_region"], json!({"westeurope": 2}));
    assert_eq!(p["by_state"], json!({"stored": 2}));
    let items = env.app.call("GET", &format!("{AZURE_JOBS}/{id}/items"), Some(&alice), None).await.ok();
    for item in items["resources"].as_array().unwrap() {
        assert_eq!((item["status"].as_str(), item["action"].as_str()), (Some("planned"), Some("delete-key-backups")));
        assert_eq!(item["current_state"], "stored");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (_, k) in &keys_a {
        assert_eq!(env.backup_ids(k).await.len(), 1, "the plan deleted nothing");
    }
    // A backup taken after the plan is not in it.
    let late = env.backup(&keys_a[0].1, "late").await;
    let late = late["id"].as_str().unwrap().to_string();

    let r = env.app.call("POST", &format!("{AZURE_JOBS}/{id}/confirm"), Some(&bob), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "only who may cancel the job may confirm it: {}", r.body);
    let r = env.app.call("POST", &format!("{AZURE_JOBS}/{id}/confirm"), Some(&alice), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let done = env.app.wait_until_done(&format!("{AZURE_JOBS}/{id}")).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    let reported: BTreeSet<String> = done["detailed_status"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(reported, old);
    assert_eq!(env.backup_ids(&keys_a[0].1).await, BTreeSet::from([late]));
    assert!(env.backup_ids(&keys_a[1].1).await.is_empty());
    for (_, k) in env.keys("kv-b").await {
        assert_eq!(env.backup_ids(&k).await.len(), 1, "kv-b untouched");
    }
}

#[tokio::test]
async fn a_selection_over_the_cap_needs_max_items_or_a_plan() {
    let app = app_with(|a| a.safety_confirm_above = Some(5), 8, 0).await;
    let before = changes(&app).len();
    let job = |extra: Value| {
        let mut body = json!({"operation": "disablekey", "selector": {"kms": ["acct"]}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };

    let r = app.post(AWS_JOBS, job(json!({}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    assert!(msg.contains("matches 8 keys") && msg.contains("\"max_items\": 8") && msg.contains("dry_run"), "{msg}");
    let r = app.post(AWS_JOBS, job(json!({"max_items": 7}))).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("more than its max_items 7"), "{}", r.body);
    // max_items below the count is refused even under the cap.
    let ids: Vec<String> = key_pairs(&app).await.into_iter().take(3).map(|k| k.0).collect();
    let r = app.post(AWS_JOBS, json!({"operation": "disablekey", "keys": ids, "max_items": 2})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(job_count(&app, AWS_JOBS).await, 0, "a refused request creates nothing");
    assert_eq!(changes(&app).len(), before);

    // A plan is fine, and so is its confirmation.
    let plan = app.post(AWS_JOBS, job(json!({"dry_run": true}))).await.ok();
    assert_eq!(plan["plan"]["items"], 8);
    app.post(&format!("{AWS_JOBS}/{}/confirm", id_of(&plan)), json!({})).await.ok();
    let done = app.wait_until_done(&format!("{AWS_JOBS}/{}", id_of(&plan))).await;
    assert_eq!(done["progress"]["succeeded"], 8, "{done}");

    // As is the request that says how many it means.
    let r = app.post(AWS_JOBS, json!({"operation": "enablekey", "selector": {"kms": ["acct"]}, "max_items": 8})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn an_azure_selection_over_the_cap_needs_max_items() {
    let env = AzureApp::start_with(|a| a.safety_confirm_above = Some(2)).await;
    env.add_vaults(&["kv-a"], 3).await;
    env.sync(&["kv-a"], true).await;
    let body = json!({"operation": "delete-key-backups", "delete_key_backups_param": {"vault_id": "kv-a"}});
    let r = env.app.post(AZURE_JOBS, body.clone()).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("matches 3 backups"), "{}", r.body);
    assert_eq!(job_count(&env.app, AZURE_JOBS).await, 0);
    let mut with_max = body.clone();
    with_max["max_items"] = json!(3);
    let r = env.app.post(AZURE_JOBS, with_max).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let done = env.app.wait_until_done(&format!("{AZURE_JOBS}/{}", id_of(&r.body))).await;
    assert_eq!(done["progress"]["succeeded"], 3, "{done}");
}

/// Keys listed so that the first `bad` are gone from AWS (their items fail with NotFoundException).
async fn keys_failing_first(app: &TestApp, bad: usize) -> (Vec<String>, Vec<String>) {
    let keys = key_pairs(app).await;
    for (_, aws) in &keys[..bad] {
        assert!(app.fake.fake.delete_key_now(FAKE_ACCOUNT, "us-east-1", aws));
    }
    (keys.iter().map(|k| k.0.clone()).collect(), keys.iter().map(|k| k.1.clone()).collect())
}

/// An app with `n` keys whose items run one at a time, so in the request's order.
async fn one_at_a_time(n: usize) -> TestApp {
    let serial = |a: &mut keyfleet_server::ServeArgs| {
        a.workers = Some(1);
        a.partition_concurrency = Some(1);
    };
    app_with(serial, n, 0).await
}

#[tokio::test]
async fn max_failures_stops_the_job_without_further_calls() {
    let app = one_at_a_time(10).await;
    let (ids, aws) = keys_failing_first(&app, 3).await;
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids, "max_failures": 1})).await;
    assert_eq!(job["overall_status"], "failed", "{job}");
    let reason = "2 items failed, more than max_failures 1";
    assert_eq!(job["stop_reason"], reason);
    assert_eq!(job["max_failures"], 1, "the job shows the threshold it was created with");
    assert_eq!((job["progress"]["failed"].as_i64(), job["progress"]["skipped"].as_i64()), (Some(2), Some(8)));
    let skipped = format!("Failed: not attempted: failure threshold reached ({reason})");
    for id in &ids[2..] {
        assert_eq!(job["detailed_status"][id], skipped.as_str());
    }
    let touched: BTreeSet<String> = changes(&app).into_iter().filter_map(|(_, k)| k).collect();
    for k in &aws[2..] {
        assert!(!touched.contains(k), "no call for a key after the stop");
        if app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).is_some() {
            assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).as_deref(), Some("Enabled"));
        }
    }
}

#[tokio::test]
async fn the_default_failure_percentage_stops_a_job_after_100_items() {
    let app = one_at_a_time(130).await;
    let (ids, _) = keys_failing_first(&app, 60).await;
    // 60 of the first 100 fail: more than the server's 50%.
    let job = app.run_bulkjob(json!({"operation": "disablekey", "selector": {"ids": ids}})).await;
    assert_eq!(job["overall_status"], "failed", "{}", job["progress"]);
    assert_eq!(job["stop_reason"], "60 of 100 finished items failed (60%), more than max_failure_percent 50");
    let p = &job["progress"];
    assert_eq!((p["succeeded"].as_i64(), p["failed"].as_i64(), p["skipped"].as_i64()), (Some(40), Some(60), Some(30)));
    let items = app.get(&format!("{AWS_JOBS}/{}/items?status=skipped", id_of(&job))).await.ok();
    assert_eq!(items["total"], 30);

    // A request may allow more: every item runs and the job completes.
    let job =
        app.run_bulkjob(json!({"operation": "enablekey", "selector": {"ids": ids}, "max_failure_percent": 100})).await;
    assert_eq!(job["overall_status"], "completed", "{}", job["progress"]);
    assert!(job.get("stop_reason").is_none());
    assert_eq!(job["progress"]["failed"], 60);
    let r = app.post(AWS_JOBS, json!({"operation": "enablekey", "keys": [ids[70]], "max_failure_percent": 101})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
}

/// POSTs `body` with an `Idempotency-Key`.
pub(crate) async fn post_with_key(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> Reply {
    let resp = app
        .http
        .post(format!("{}{path}", app.url))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    Reply { status, body: resp.json().await.unwrap_or(Value::Null) }
}

#[tokio::test]
async fn an_idempotency_key_creates_one_job_per_user_and_body() {
    let app = app_with(|_| {}, 2, 0).await;
    let ids: Vec<String> = key_pairs(&app).await.into_iter().map(|k| k.0).collect();
    let admin = app.admin.clone();
    let body = json!({"operation": "disablekey", "keys": ids});

    // A request that fails leaves the key free.
    let bad = json!({"operation": "disablekey", "keys": ["alias/none"]});
    assert_eq!(post_with_key(&app, &admin, AWS_JOBS, "k-1", &bad).await.status, StatusCode::BAD_REQUEST);

    let first = post_with_key(&app, &admin, AWS_JOBS, "k-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = post_with_key(&app, &admin, AWS_JOBS, "k-1", &body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(id_of(&again.body), id_of(&first.body), "the same job");
    let other = post_with_key(&app, &admin, AWS_JOBS, "k-1", &json!({"operation": "enablekey", "keys": ids})).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.body);
    assert!(other.body["message"].as_str().unwrap().contains("different request"), "{}", other.body);
    assert_eq!(job_count(&app, AWS_JOBS).await, 1);

    // Keys are per user; without a key every request creates a job.
    let (_, bob) = app.user("bob", Some("CCKM Admins")).await;
    let bobs = post_with_key(&app, &bob, AWS_JOBS, "k-1", &body).await;
    assert_eq!(bobs.status, StatusCode::CREATED, "{}", bobs.body);
    assert_ne!(id_of(&bobs.body), id_of(&first.body));
    app.post(AWS_JOBS, body.clone()).await.ok();
    assert_eq!(job_count(&app, AWS_JOBS).await, 3);
}

#[tokio::test]
async fn an_idempotency_key_replays_an_azure_job() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-a"], 1).await;
    env.sync(&["kv-a"], true).await;
    let admin = env.app.admin.clone();
    let body = json!({"operation": "delete-key-backups", "vault_id": "kv-a"});
    let first = post_with_key(&env.app, &admin, AZURE_JOBS, "retention-2026-12-02", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    env.app.wait_until_done(&format!("{AZURE_JOBS}/{}", id_of(&first.body))).await;
    let again = post_with_key(&env.app, &admin, AZURE_JOBS, "retention-2026-12-02", &body).await;
    assert_eq!((again.status, id_of(&again.body)), (StatusCode::CREATED, id_of(&first.body)));
    assert_eq!(job_count(&env.app, AZURE_JOBS).await, 1);
    let mut other = body.clone();
    other["created_before"] = json!("2001-01-01T00:00:00Z");
    let r = post_with_key(&env.app, &admin, AZURE_JOBS, "retention-2026-12-02", &other).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}
