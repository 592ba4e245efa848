//! Job semantics beyond the happy path: failures, cancel, resume after an interruption.

use std::time::Duration;

use keyfleet_core::time::now;
use keyfleet_core::*;
use serde_json::json;

use crate::support::*;
use crate::validation::{app_with_keys, app_with_keys_and};

fn aws_key_id(app_key: &serde_json::Value) -> String {
    app_key["aws_param"]["KeyID"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_cloud_refusal_is_a_failed_item_with_the_cloud_error_code() {
    let (app, ids) = app_with_keys(2).await;
    let k = app.get(&format!("/api/v1/cckm/aws/keys/{}", ids[0])).await.ok();
    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1");
    sdk.schedule_key_deletion().key_id(aws_key_id(&k)).pending_window_in_days(7).send().await.unwrap();
    let job = app.run_bulkjob(json!({"operation": "enablekey", "keys": ids})).await;
    assert_eq!(job["overall_status"], "completed", "some items failed, the job itself ran: {job}");
    let failed = job["detailed_status"][&ids[0]].as_str().unwrap();
    assert!(failed.starts_with("Failed: KMSInvalidStateException: "), "{failed}");
    assert_eq!(job["detailed_status"][&ids[1]], "Success");
    // Invalid state is final: one attempt, no retries; the key that was already Enabled got none at all.
    let enables = app.fake.fake.calls().iter().filter(|c| c.operation == "EnableKey").count();
    assert_eq!(enables, 1);

    let all_failed = app.run_bulkjob(json!({"operation": "enablekey", "keys": [ids[0]]})).await;
    assert_eq!(all_failed["overall_status"], "failed", "every item failed: {all_failed}");
}

#[tokio::test]
async fn effects_are_idempotent_and_rerunning_a_job_sends_nothing() {
    let (app, ids) = app_with_keys(3).await;
    let first = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!(first["overall_status"], "completed");
    let before = app.fake.fake.calls().len();
    let again = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert!(again["detailed_status"].as_object().unwrap().values().all(|v| v == "Success"), "{again}");
    let sent: Vec<String> = app.fake.fake.calls()[before..].iter().map(|c| c.operation.clone()).collect();
    assert!(sent.iter().all(|op| op == "DescribeKey"), "already Disabled: only reads, got {sent:?}");
}

#[tokio::test]
async fn cancel_skips_what_has_not_started_and_the_cloud_never_sees_it() {
    // AWS's real quota (5 DisableKey/s) makes the job slow enough to cancel midway.
    let app = TestApp::start_with(|a| a.quota_scale = Some(1.0)).await;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 40);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    let ids = app.key_ids("acct").await;
    let created = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "disablekey", "keys": ids})).await.ok();
    let id = created["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cancelled = app.post(&format!("/api/v1/cckm/aws/bulkjob/{id}/cancel"), json!({})).await.ok();
    assert_eq!(cancelled["abort"], true);
    let done = app.wait_until_done(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await;
    assert_eq!(done["overall_status"], "cancelled", "{done}");
    let statuses = done["detailed_status"].as_object().unwrap();
    assert_eq!(statuses.len(), 40, "every item ended");
    let skipped: Vec<&String> = statuses.iter().filter(|(_, v)| *v == "Skipped: cancelled").map(|(k, _)| k).collect();
    let succeeded = statuses.values().filter(|v| *v == "Success").count();
    assert!(!skipped.is_empty() && succeeded > 0, "cancelled midway: {succeeded} done, {} skipped", skipped.len());
    assert_eq!(succeeded + skipped.len(), 40);
    // No DisableKey ever reached a skipped key.
    let mut skipped_aws = Vec::new();
    for k in &skipped {
        skipped_aws.push(aws_key_id(&app.get(&format!("/api/v1/cckm/aws/keys/{k}")).await.ok()));
    }
    for c in app.fake.fake.calls().iter().filter(|c| c.operation == "DisableKey") {
        assert!(!skipped_aws.contains(c.key_id.as_ref().unwrap()), "a skipped key was disabled");
    }
    for k in skipped_aws {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", &k).as_deref(), Some("Enabled"));
    }
}

#[tokio::test]
async fn a_restart_resumes_and_an_interrupted_item_is_reconciled_not_repeated() {
    // A short lease, so that on PostgreSQL (where a restarted node must not take live nodes' leases) the
    // dead node's lease expires and the reaper hands the item over within the test.
    let (mut app, ids) = app_with_keys_and(4, |a| a.lease_ttl_secs = Some(2)).await;
    let first = aws_key_id(&app.get(&format!("/api/v1/cckm/aws/keys/{}", ids[0])).await.ok());
    app.stop().await;

    // What a crash leaves behind: a job whose first item was claimed (written "running") by a node that then
    // died right after AWS carried out the effect, before the result was recorded.
    let store = app.store().await;
    let admin = store.user_by_name("admin").await.unwrap().unwrap().id;
    let job = JobRecord {
        total: 4,
        ..JobRecord::started(Cloud::Aws, Operation::DisableKey, JobParams::default(), admin, now())
    };
    let keys: Vec<KeyId> = ids.iter().map(|k| k.parse().unwrap()).collect();
    let partition = partition_of(FAKE_ACCOUNT, "us-east-1");
    let items: Vec<NewItem> = keys.iter().map(|k| NewItem { key_id: *k, partition: partition.clone() }).collect();
    store.create_job(&job, &items).await.unwrap();
    let claimed = store
        .claim_items(
            &partition,
            keyfleet_store::Lease::new("dead-node", now(), now() + chrono::Duration::seconds(1)),
            1,
        )
        .await
        .unwrap();
    assert_eq!(claimed[0].key_id, keys[0]);
    drop(store);
    kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1").disable_key().key_id(&first).send().await.unwrap();

    let before = app.fake.fake.calls().len();
    app.restart().await;

    let done = app.wait_until_done(&format!("/api/v1/cckm/aws/bulkjob/{}", job.id)).await;
    assert_eq!(done["overall_status"], "completed", "{done}");
    assert!(done["detailed_status"].as_object().unwrap().values().all(|v| v == "Success"), "{done}");
    let after: Vec<_> = app.fake.fake.calls()[before..].to_vec();
    assert!(
        !after.iter().any(|c| c.operation == "DisableKey" && c.key_id.as_deref() == Some(first.as_str())),
        "the interrupted item was reconciled by reading the key, not sent again"
    );
    assert_eq!(after.iter().filter(|c| c.operation == "DisableKey").count(), 3, "the other three were done once");
    for k in &ids {
        let key = app.get(&format!("/api/v1/cckm/aws/keys/{k}")).await.ok();
        assert_eq!(key["aws_param"]["KeyState"], "Disabled");
    }
}

#[tokio::test]
async fn a_container_moved_to_another_connection_runs_its_next_job_with_that_connection() {
    // The engine reads a container and the connection it had last time side by side (`aws/resolve.rs`): once
    // the container names another connection, its items must be sent with that one, never the remembered one.
    let (app, ids) = app_with_keys(3).await;
    let first = app.run_bulkjob(json!({"operation": "disablekey", "keys": ids})).await;
    assert!(first["detailed_status"].as_object().unwrap().values().all(|v| v == "Success"), "{first}");
    let other = "AKIAOTHERCONNECTION01";
    app.post(
        "/api/v1/connectionmgmt/services/aws/connections",
        json!({"name": "other-conn", "access_key_id": other, "secret_access_key": SECRET, "endpoint_url": app.fake.url()}),
    )
    .await
    .ok();
    app.fake.fake.refuse_access_key(other);
    let kms = app.get("/api/v1/cckm/aws/kms").await.ok();
    let kms_id = kms["resources"][0]["id"].as_str().unwrap().to_string();
    let admin = app.admin.clone();
    let moved = app
        .call(
            "PATCH",
            &format!("/api/v1/cckm/aws/kms/{kms_id}"),
            Some(&admin),
            Some(json!({"connection": "other-conn"})),
        )
        .await
        .ok();
    assert_eq!(moved["connection"], "other-conn", "{moved}");
    let before = app.fake.fake.calls().len();

    let second = app.run_bulkjob(json!({"operation": "enablekey", "keys": ids})).await;
    for (key, status) in second["detailed_status"].as_object().unwrap() {
        let status = status.as_str().unwrap();
        assert!(status.starts_with("Failed: UnrecognizedClientException: "), "{key}: {status}");
    }
    let calls = &app.fake.fake.calls()[before..];
    assert!(!calls.is_empty() && calls.iter().all(|c| c.access_key_id == other), "sent with the old connection");
}
