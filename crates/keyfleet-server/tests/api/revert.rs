//! After a bulk job (issue 10, section 5): `retry-failed` runs exactly its failed and not-attempted items again;
//! `revert` plans a job that returns every key the job changed to its exact prior state and policy, against
//! the fake and moto. Azure backup deletion cannot be reverted.

use std::collections::{BTreeSet, HashMap};

use keyfleet_fakes::Faults;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::AzureApp;
use crate::faults::setup;
use crate::safety::{id_of, key_pairs, post_with_key};
use crate::support::*;

const AWS_JOBS: &str = "/api/v1/cckm/aws/bulkjob";
const AZURE_JOBS: &str = "/api/v1/cckm/azure/bulkjobs";
const REGION: &str = "us-east-1";

fn keys_of(job: &Value) -> BTreeSet<String> {
    job["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// AWS KeyId → CCKM id of every key of container `acct`.
async fn by_aws_id(app: &TestApp) -> HashMap<String, String> {
    key_pairs(app).await.into_iter().map(|(id, aws)| (aws, id)).collect()
}

/// POSTs `body` to `{jobs}/{id}/{action}` and expects `status`.
async fn after(app: &TestApp, jobs: &str, id: &str, action: &str, body: Value, status: StatusCode) -> Value {
    let r = app.post(&format!("{jobs}/{id}/{action}"), body).await;
    assert_eq!(r.status, status, "{action} of {id}: {}", r.body);
    r.body
}

async fn audit_count(app: &TestApp, action: &str, job: &str) -> u64 {
    let audit = app.get(&format!("/api/v1/audit/records?action={action}&resource=bulkjob:{job}")).await.ok();
    audit["total"].as_u64().unwrap()
}

#[tokio::test]
async fn retry_failed_runs_exactly_the_failed_and_skipped_items_again() {
    let app = TestApp::start().await;
    let (aws, _) = setup(&app, 5).await;
    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, REGION);
    // Two keys pending deletion: disabling them fails (KMSInvalidStateException).
    for k in &aws[..2] {
        sdk.schedule_key_deletion().key_id(k).pending_window_in_days(7).send().await.unwrap();
    }
    app.sync("acct").await;
    let by_aws = by_aws_id(&app).await;
    let ids: Vec<&String> = aws.iter().map(|a| &by_aws[a]).collect();

    let first = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids[..4], "max_failures": 3})).await;
    let first_id = id_of(&first);
    assert_eq!((first["progress"]["succeeded"].as_i64(), first["progress"]["failed"].as_i64()), (Some(2), Some(2)));

    // A job that has not finished cannot be retried; nor can one with nothing to retry.
    let plan = app.post(AWS_JOBS, json!({"operation": "disablekey", "keys": ids[4..], "dry_run": true})).await.ok();
    let r = after(&app, AWS_JOBS, &id_of(&plan), "retry-failed", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("only a finished job"), "{r}");
    // Strict body, as every route.
    let r = after(&app, AWS_JOBS, &first_id, "retry-failed", json!({"dryrun": true}), StatusCode::BAD_REQUEST).await;
    assert!(r["message"].as_str().unwrap().contains("dryrun"), "{r}");

    // The cause is fixed: the keys are Enabled again, so the retry has something to change.
    for k in &aws[..2] {
        sdk.cancel_key_deletion().key_id(k).send().await.unwrap();
        sdk.enable_key().key_id(k).send().await.unwrap();
    }
    // With an Idempotency-Key, as every create: a repeat answers the same retry; the key on another request
    // (a revert of the same job) is a 422.
    let path = format!("{AWS_JOBS}/{first_id}/retry-failed");
    let retry = post_with_key(&app, &app.admin, &path, "retry-1", &json!({})).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    let again = post_with_key(&app, &app.admin, &path, "retry-1", &json!({})).await;
    assert_eq!((again.status, id_of(&again.body)), (StatusCode::CREATED, id_of(&retry.body)), "the same job");
    let revert = post_with_key(&app, &app.admin, &format!("{AWS_JOBS}/{first_id}/revert"), "retry-1", &json!({})).await;
    assert_eq!(revert.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", revert.body);
    let retry = retry.body;
    let retry_id = id_of(&retry);
    assert_eq!(retry["retry_of"], first_id.as_str(), "{retry}");
    assert_eq!(retry["operation"], "disablekey");
    assert_eq!(keys_of(&retry), set(&ids[..2]), "exactly the failed items");
    assert_ne!(retry["overall_status"], "planned", "a retry starts at once");
    let done = app.wait_until_done(&format!("{AWS_JOBS}/{retry_id}")).await;
    assert_eq!((done["overall_status"].as_str(), done["progress"]["succeeded"].as_i64()), (Some("completed"), Some(2)));
    for k in &aws[..4] {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, REGION, k).as_deref(), Some("Disabled"));
    }
    assert_eq!(audit_count(&app, "bulkjob.retry", &retry_id).await, 1);
    let r = after(&app, AWS_JOBS, &retry_id, "retry-failed", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("nothing to retry"), "{r}");

    // Skipped (not attempted) items are retried too; with dry_run the retry is a plan to confirm.
    let cancelled = after(&app, AWS_JOBS, &id_of(&plan), "cancel", json!({}), StatusCode::OK).await;
    assert_eq!(
        (cancelled["overall_status"].as_str(), cancelled["progress"]["skipped"].as_i64()),
        (Some("cancelled"), Some(1))
    );
    let planned =
        after(&app, AWS_JOBS, &id_of(&plan), "retry-failed", json!({"dry_run": true}), StatusCode::CREATED).await;
    assert_eq!(planned["overall_status"], "planned", "{planned}");
    assert_eq!(planned["retry_of"], id_of(&plan).as_str());
    assert_eq!(keys_of(&planned), set(&ids[4..]));
    assert_eq!(planned["plan"]["items"], 1, "{planned}");
    assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, REGION, &aws[4]).as_deref(), Some("Enabled"));
    after(&app, AWS_JOBS, &id_of(&planned), "confirm", json!({}), StatusCode::OK).await;
    let done = app.wait_until_done(&format!("{AWS_JOBS}/{}", id_of(&planned))).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, REGION, &aws[4]).as_deref(), Some("Disabled"));
}

/// The backend a revert scenario runs against: the fake or moto.
struct Backend {
    endpoint: String,
    access_key: &'static str,
    account: &'static str,
    _moto: Option<Moto>,
}

/// Every revertible operation, each job then reverted, against `b`: the keys the job changed are back in their
/// exact prior state (and policy), the keys it did not change are not in the revert.
async fn every_operation_reverts(app: &TestApp, b: Backend) {
    let sdk = kms_client(&b.endpoint, b.access_key, REGION);
    let mut aws = Vec::new();
    for i in 0..7 {
        let k = sdk.create_key().description(format!("revert key {i}")).send().await.unwrap();
        aws.push(k.key_metadata().unwrap().key_id().to_string());
    }
    for k in [&aws[1], &aws[3], &aws[5]] {
        sdk.disable_key().key_id(k).send().await.unwrap();
    }
    app.add_kms("acct", &b.endpoint, b.access_key, b.account, &[REGION]).await;
    app.sync("acct").await;
    let by_aws = by_aws_id(app).await;
    let id = |i: usize| by_aws[&aws[i]].clone();
    let state = |i: usize| {
        let sdk = sdk.clone();
        let key = aws[i].clone();
        async move {
            let m = sdk.describe_key().key_id(key).send().await.unwrap();
            m.key_metadata().unwrap().key_state().unwrap().as_str().to_string()
        }
    };
    let policy = |i: usize| {
        let sdk = sdk.clone();
        let key = aws[i].clone();
        async move {
            sdk.get_key_policy().key_id(key).policy_name("default").send().await.unwrap().policy().unwrap().to_string()
        }
    };
    // Runs the revert of `job` through plan and confirm; returns the plan and each planned item's action.
    let revert = |job: String| async move {
        let plan = after(app, AWS_JOBS, &job, "revert", json!({}), StatusCode::CREATED).await;
        let plan_id = id_of(&plan);
        assert_eq!(
            (plan["overall_status"].as_str(), plan["revert_of"].as_str()),
            (Some("planned"), Some(job.as_str()))
        );
        assert_eq!(audit_count(app, "bulkjob.revert", &plan_id).await, 1);
        let items = app.get(&format!("{AWS_JOBS}/{plan_id}/items")).await.ok();
        let actions: HashMap<String, String> = items["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["key_id"].as_str().unwrap().to_string(), i["action"].as_str().unwrap().to_string()))
            .collect();
        after(app, AWS_JOBS, &plan_id, "confirm", json!({}), StatusCode::OK).await;
        let done = app.wait_until_done(&format!("{AWS_JOBS}/{plan_id}")).await;
        assert_eq!(done["overall_status"], "completed", "{done}");
        (plan, actions)
    };

    // A disable job over an Enabled and an already Disabled key: only the first is reverted.
    let disable = app.run_bulkjob(json!({"operation": "disablekey", "keys": [id(0), id(1)]})).await;
    assert_eq!(state(0).await, "Disabled");
    let (plan, actions) = revert(id_of(&disable)).await;
    assert_eq!(plan["operation"], "enablekey");
    assert_eq!(keys_of(&plan), set(&[&id(0)]), "the key that was already disabled is not in the revert");
    assert_eq!(actions, HashMap::from([(id(0), "enablekey".to_string())]));
    assert_eq!((state(0).await, state(1).await), ("Enabled".to_string(), "Disabled".to_string()));

    // Enable, reverted: disabled again.
    let enable = app.run_bulkjob(json!({"operation": "enablekey", "keys": [id(1)]})).await;
    assert_eq!(state(1).await, "Enabled");
    revert(id_of(&enable)).await;
    assert_eq!(state(1).await, "Disabled");

    // Deletion scheduled on Enabled keys and a Disabled one: cancelled, and each back where it was, also a key
    // whose deletion someone cancelled meanwhile (AWS left it Disabled: it still needs enabling).
    let keys = [id(2), id(3), id(6)];
    let schedule = app.run_bulkjob(json!({"operation": "schedulekeydeletion", "keys": keys, "days": 7})).await;
    assert_eq!((state(2).await, state(3).await), ("PendingDeletion".to_string(), "PendingDeletion".to_string()));
    sdk.cancel_key_deletion().key_id(&aws[6]).send().await.unwrap();
    app.sync("acct").await;
    let (plan, actions) = revert(id_of(&schedule)).await;
    let expected = [
        (id(2), "cancelkeydeletion, enablekey".to_string()),
        (id(3), "cancelkeydeletion".to_string()),
        (id(6), "enablekey".to_string()),
    ];
    assert_eq!(actions, HashMap::from(expected));
    assert_eq!(plan["plan"]["no_ops"], 0, "every key needs a call: {plan}");
    assert_eq!((state(2).await, state(3).await), ("Enabled".to_string(), "Disabled".to_string()));
    assert_eq!(state(6).await, "Enabled");

    // A policy template, reverted: the exact previous policy document is back.
    let original = policy(4).await;
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "revert-test", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{}:root", b.account)}, "Action": "kms:*", "Resource": "*"}]});
    let t = app
        .post("/api/v1/cckm/aws/templates", json!({"name": "t1", "account_id": b.account, "policy": doc}))
        .await
        .ok();
    let apply = app
        .run_bulkjob(json!({"operation": "applypolicytemplate", "keys": [id(4)], "policy_template_id": t["id"]}))
        .await;
    assert_eq!(apply["overall_status"], "completed", "{apply}");
    assert_ne!(policy(4).await, original);
    let (plan, actions) = revert(id_of(&apply)).await;
    assert_eq!(actions, HashMap::from([(id(4), "restore key policy".to_string())]));
    assert_eq!(policy(4).await, original, "the exact previous policy");
    assert_eq!(state(4).await, "Enabled");
    // The stored policy never shows in the API.
    assert!(!plan.to_string().contains(&original), "{plan}");

    // A job that changed nothing, one that has not finished, and one whose effect cannot be put back: 409s.
    let noop = app.run_bulkjob(json!({"operation": "disablekey", "keys": [id(5)]})).await;
    assert_eq!(noop["overall_status"], "completed");
    let r = after(app, AWS_JOBS, &id_of(&noop), "revert", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("nothing to revert"), "{r}");
    let planned = app.post(AWS_JOBS, json!({"operation": "enablekey", "keys": [id(5)], "dry_run": true})).await.ok();
    let r = after(app, AWS_JOBS, &id_of(&planned), "revert", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("only a finished job"), "{r}");
    let cancel = app.run_bulkjob(json!({"operation": "cancelkeydeletion", "keys": [id(5)]})).await;
    let r = after(app, AWS_JOBS, &id_of(&cancel), "revert", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("cannot be reverted"), "{r}");
    // The body takes no fields.
    after(app, AWS_JOBS, &id_of(&apply), "revert", json!({"dry_run": false}), StatusCode::BAD_REQUEST).await;

    // Every change sent, the job's and the reverts', is in the audit trail with the request id AWS answered.
    let changes =
        ["EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy", "TagResource"];
    for action in changes {
        let records = app.get(&format!("/api/v1/audit/records?action=aws.{action}&limit=100")).await.ok();
        assert!(records["total"].as_u64().unwrap() > 0, "no aws.{action} record");
        for r in records["resources"].as_array().unwrap() {
            let details: Value = serde_json::from_str(r["details"].as_str().unwrap()).unwrap();
            assert!(details["cloud_request_id"].as_str().is_some_and(|id| !id.is_empty()), "{r}");
        }
    }
}

#[tokio::test]
async fn every_operation_reverts_against_the_fake() {
    let app = TestApp::start().await;
    let b = Backend { endpoint: app.fake.url(), access_key: FAKE_ACCESS_KEY, account: FAKE_ACCOUNT, _moto: None };
    every_operation_reverts(&app, b).await;
}

#[tokio::test]
async fn every_operation_reverts_against_moto() {
    let app = TestApp::start().await;
    let m = Moto::start().await;
    let b =
        Backend { endpoint: m.url.clone(), access_key: "AKIAMOTOTEST00000001", account: MOTO_ACCOUNT, _moto: Some(m) };
    every_operation_reverts(&app, b).await;
}

#[tokio::test]
async fn a_revert_interrupted_after_aws_acted_is_reconciled_not_repeated() {
    let app = TestApp::start_with(|a| a.max_attempts = Some(12)).await;
    let (aws, ids) = setup(&app, 20).await;
    let disable = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    let plan = after(&app, AWS_JOBS, &id_of(&disable), "revert", json!({}), StatusCode::CREATED).await;
    // A third of the answers are lost after the call was applied: the next attempt reads the key, finds it
    // Enabled, and sends nothing.
    let since = app.fake.fake.calls().len() as u64;
    app.fake.fake.set_faults(Faults { drop_after_apply: 0.3, seed: Some(5), ..Default::default() });
    after(&app, AWS_JOBS, &id_of(&plan), "confirm", json!({}), StatusCode::OK).await;
    let done = app.wait_until_done(&format!("{AWS_JOBS}/{}", id_of(&plan))).await;
    assert_eq!(done["progress"]["succeeded"], 20, "{done}");
    let calls = app.fake.fake.calls_since(since);
    assert!(calls.iter().any(|c| c.error.as_deref() == Some(keyfleet_fakes::aws::DROPPED_AFTER_APPLY)));
    let mut applied = BTreeSet::new();
    for c in calls.iter().filter(|c| c.operation == "EnableKey") {
        let key = c.key_id.clone().unwrap();
        assert!(!applied.contains(&key), "EnableKey #{} on {key} after it had been applied", c.seq);
        if c.applied {
            applied.insert(key);
        }
    }
    assert_eq!(applied.len(), 20);
    for k in &aws {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, REGION, k).as_deref(), Some("Enabled"));
    }
}

#[tokio::test]
async fn azure_backup_deletion_cannot_be_reverted() {
    let env = AzureApp::start().await;
    env.add_vaults(&["kv-a"], 1).await;
    env.sync(&["kv-a"], true).await;
    let job = env.run_job(json!({"vault_id": "kv-a"})).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    let id = id_of(&job);
    let r = after(&env.app, AZURE_JOBS, &id, "revert", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("Azure backup deletion cannot be reverted"), "{r}");
    // Every backup was deleted: nothing to retry either.
    let r = after(&env.app, AZURE_JOBS, &id, "retry-failed", json!({}), StatusCode::CONFLICT).await;
    assert!(r["message"].as_str().unwrap().contains("nothing to retry"), "{r}");
    assert_eq!(env.app.get(AZURE_JOBS).await.ok()["total"], 1, "no job was created");
}

#[tokio::test]
async fn who_may_act_on_a_job_may_retry_or_revert_it_and_owns_the_new_job() {
    let app = TestApp::start().await;
    let (aws, ids) = setup(&app, 2).await;
    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, REGION);
    sdk.schedule_key_deletion().key_id(&aws[1]).pending_window_in_days(7).send().await.unwrap();
    app.sync("acct").await;
    let (alice, alice_token) = app.user("alice", Some("CCKM Users")).await;
    let (_, bob_token) = app.user("bob", Some("CCKM Users")).await;
    let grant = json!({"acls": [{"user_id": alice, "permit": true, "actions": ["keybulkoperation"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant).await.ok();
    let job = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!((job["progress"]["succeeded"].as_i64(), job["progress"]["failed"].as_i64()), (Some(1), Some(1)));
    let id = id_of(&job);

    // bob may not touch the keys: neither action, and nothing is created.
    for action in ["retry-failed", "revert"] {
        let r = app.call("POST", &format!("{AWS_JOBS}/{id}/{action}"), Some(&bob_token), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{action}: {}", r.body);
    }
    // alice may, without a body, and the new jobs are hers (a CCKM User lists only her own jobs).
    let mut created = BTreeSet::new();
    for action in ["retry-failed", "revert"] {
        let r = app.call("POST", &format!("{AWS_JOBS}/{id}/{action}"), Some(&alice_token), None).await;
        assert_eq!(r.status, StatusCode::CREATED, "{action}: {}", r.body);
        created.insert(id_of(&r.body));
    }
    let mine = app.call("GET", AWS_JOBS, Some(&alice_token), None).await.ok();
    let listed: BTreeSet<String> = mine["resources"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(listed, created);
}

#[tokio::test]
async fn a_policy_replaced_before_its_answer_was_lost_is_still_put_back() {
    let app = TestApp::start_with(|a| a.max_attempts = Some(20)).await;
    let (aws, ids) = setup(&app, 50).await;
    let policy_of = |k: &String| app.fake.fake.key_policy(FAKE_ACCOUNT, REGION, k).unwrap();
    let original: Vec<String> = aws.iter().map(policy_of).collect();
    let doc = json!({"Version": "2012-10-17", "Statement": [{"Sid": "lost", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{FAKE_ACCOUNT}:root")}, "Action": "kms:*", "Resource": "*"}]});
    let t = app
        .post("/api/v1/cckm/aws/templates", json!({"name": "t", "account_id": FAKE_ACCOUNT, "policy": doc}))
        .await
        .ok();
    // Some PutKeyPolicy (and TagResource) answers are lost after KMS applied them: the item is retried, and
    // the policy it replaced, read before the first attempt's call, stays recorded.
    app.fake.fake.set_faults(Faults { drop_after_apply: 0.1, seed: Some(3), ..Default::default() });
    let apply =
        app.run_bulkjob(json!({"operation": "applypolicytemplate", "keys": ids, "policy_template_id": t["id"]})).await;
    app.fake.fake.set_faults(Faults::default());
    assert_eq!(apply["progress"]["succeeded"], 50, "{apply}");
    let lost = app
        .fake
        .fake
        .calls()
        .iter()
        .filter(|c| {
            c.operation == "PutKeyPolicy" && c.error.as_deref() == Some(keyfleet_fakes::aws::DROPPED_AFTER_APPLY)
        })
        .count();
    assert!(lost > 0, "the scenario loses PutKeyPolicy answers");
    assert!(aws.iter().all(|k| policy_of(k) != original[0]));

    let plan = after(&app, AWS_JOBS, &id_of(&apply), "revert", json!({}), StatusCode::CREATED).await;
    assert_eq!(plan["plan"]["items"], 50, "{plan}");
    after(&app, AWS_JOBS, &id_of(&plan), "confirm", json!({}), StatusCode::OK).await;
    let done = app.wait_until_done(&format!("{AWS_JOBS}/{}", id_of(&plan))).await;
    assert_eq!(done["progress"]["succeeded"], 50, "{done}");
    let restored: Vec<String> = aws.iter().map(policy_of).collect();
    assert_eq!(restored, original);
}
