//! One test per validation rule of CCKM-COMPAT §3: each bad request is a 400 whose message names the field,
//! and nothing is written.

use serde_json::{Value, json};

use crate::support::*;

/// A server with `n` synced keys of the fake in container `acct`.
pub async fn app_with_keys(n: usize) -> (TestApp, Vec<String>) {
    app_with_keys_and(n, |_| {}).await
}

pub async fn app_with_keys_and(
    n: usize,
    tweak: impl FnOnce(&mut keyfleet_server::ServeArgs),
) -> (TestApp, Vec<String>) {
    let app = TestApp::start_with(tweak).await;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", n);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    let ids = app.key_ids("acct").await;
    (app, ids)
}

/// Asserts a 400 in CCKM's format whose message starts with `field:` and that no job was written.
async fn refused(app: &TestApp, body: Value, field: &str) -> String {
    let r = app.post("/api/v1/cckm/aws/bulkjob", body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["code"], 9);
    assert_eq!(r.body["codeDesc"], "NCERRInvalidParamValue");
    let msg = r.body["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with(&format!("{field}:")), "message {msg:?} should name {field}");
    assert!(!r.body["requestID"].as_str().unwrap().is_empty());
    let list = app.get("/api/v1/cckm/aws/bulkjob").await.ok();
    assert_eq!(list["total"], 0, "a refused request wrote nothing");
    msg
}

#[tokio::test]
async fn operation_is_required() {
    let (app, ids) = app_with_keys(1).await;
    refused(&app, json!({"keys": ids}), "operation").await;
}

#[tokio::test]
async fn operation_must_be_known() {
    let (app, ids) = app_with_keys(1).await;
    let msg = refused(&app, json!({"operation": "rotatekey", "keys": ids}), "operation").await;
    assert!(msg.contains("enablekey"), "lists the allowed operations: {msg}");
}

#[tokio::test]
async fn keys_are_required() {
    let (app, _) = app_with_keys(1).await;
    refused(&app, json!({"operation": "enablekey"}), "keys").await;
}

#[tokio::test]
async fn keys_must_not_be_empty() {
    let (app, _) = app_with_keys(1).await;
    refused(&app, json!({"operation": "enablekey", "keys": []}), "keys").await;
}

#[tokio::test]
async fn keys_are_at_most_100() {
    let (app, ids) = app_with_keys(101).await;
    assert_eq!(ids.len(), 101);
    refused(&app, json!({"operation": "enablekey", "keys": ids}), "keys").await;
    // Exactly 100 is fine.
    let r = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "enablekey", "keys": ids[..100]})).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn keys_must_not_repeat() {
    let (app, ids) = app_with_keys(1).await;
    let msg = refused(&app, json!({"operation": "enablekey", "keys": [ids[0], ids[0]]}), "keys").await;
    assert!(msg.contains(&ids[0]));
}

#[tokio::test]
async fn unknown_keys_are_named() {
    let (app, ids) = app_with_keys(1).await;
    let unknown = "00000000-0000-4000-8000-000000000001";
    let msg = refused(&app, json!({"operation": "enablekey", "keys": [ids[0], unknown, "not-a-uuid"]}), "keys").await;
    assert!(msg.contains(unknown) && msg.contains("not-a-uuid"), "{msg}");
}

#[tokio::test]
async fn keys_must_be_an_array_of_strings() {
    let (app, ids) = app_with_keys(1).await;
    refused(&app, json!({"operation": "enablekey", "keys": ids[0]}), "keys").await;
    refused(&app, json!({"operation": "enablekey", "keys": [1, 2]}), "keys[0]").await;
}

#[tokio::test]
async fn days_only_with_schedulekeydeletion() {
    let (app, ids) = app_with_keys(1).await;
    refused(&app, json!({"operation": "disablekey", "keys": ids, "days": 7}), "days").await;
}

#[tokio::test]
async fn days_between_7_and_30() {
    let (app, ids) = app_with_keys(1).await;
    refused(&app, json!({"operation": "schedulekeydeletion", "keys": ids, "days": 6}), "days").await;
    refused(&app, json!({"operation": "schedulekeydeletion", "keys": ids, "days": 31}), "days").await;
    refused(&app, json!({"operation": "schedulekeydeletion", "keys": ids, "days": "seven"}), "days").await;
}

#[tokio::test]
async fn days_default_to_30() {
    let (app, ids) = app_with_keys(1).await;
    let r = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "schedulekeydeletion", "keys": ids})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["days"], 30);
}

#[tokio::test]
async fn policy_template_id_required_for_applypolicytemplate() {
    let (app, ids) = app_with_keys(1).await;
    refused(&app, json!({"operation": "applypolicytemplate", "keys": ids}), "policy_template_id").await;
}

#[tokio::test]
async fn policy_template_id_only_with_applypolicytemplate() {
    let (app, ids) = app_with_keys(1).await;
    let t = template(&app, FAKE_ACCOUNT).await;
    refused(&app, json!({"operation": "enablekey", "keys": ids, "policy_template_id": t}), "policy_template_id").await;
}

#[tokio::test]
async fn policy_template_must_exist() {
    let (app, ids) = app_with_keys(1).await;
    let body = json!({"operation": "applypolicytemplate", "keys": ids, "policy_template_id": "00000000-0000-4000-8000-000000000009"});
    refused(&app, body, "policy_template_id").await;
}

#[tokio::test]
async fn policy_template_and_keys_share_the_account() {
    let (app, ids) = app_with_keys(1).await;
    let t = template(&app, "999988887777").await;
    let msg = refused(
        &app,
        json!({"operation": "applypolicytemplate", "keys": ids, "policy_template_id": t}),
        "policy_template_id",
    )
    .await;
    assert!(msg.contains(&ids[0]), "names the key: {msg}");
}

#[tokio::test]
async fn keys_gone_from_aws_are_refused() {
    let (app, ids) = app_with_keys(2).await;
    let k = app.get(&format!("/api/v1/cckm/aws/keys/{}", ids[0])).await.ok();
    assert!(app.fake.fake.delete_key_now(FAKE_ACCOUNT, "us-east-1", k["aws_param"]["KeyID"].as_str().unwrap()));
    app.sync("acct").await;
    let k = app.get(&format!("/api/v1/cckm/aws/keys/{}", ids[0])).await.ok();
    assert_eq!(k["gone"], true, "a key that vanished from AWS is marked gone by the sync");
    let msg = refused(&app, json!({"operation": "disablekey", "keys": ids}), "keys").await;
    assert!(msg.contains(&ids[0]));
}

#[tokio::test]
async fn malformed_json_is_a_400_not_a_500() {
    let (app, _) = app_with_keys(1).await;
    let r = app
        .http
        .post(format!("{}/api/v1/cckm/aws/bulkjob", app.url))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{\"operation\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["codeDesc"], "NCERRInvalidParamValue");
    assert!(body["message"].as_str().unwrap().starts_with("body:"), "{body}");
}

#[tokio::test]
async fn list_parameters_are_checked() {
    let (app, _) = app_with_keys(1).await;
    for (q, field) in [
        ("limit=5000", "limit"),
        ("limit=abc", "limit"),
        ("sort=color", "sort"),
        ("overall_status=done", "overall_status"),
        ("operation=x", "operation"),
    ] {
        let r = app.get(&format!("/api/v1/cckm/aws/bulkjob?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{q}: {}", r.body);
    }
}

#[tokio::test]
async fn unknown_job_is_404() {
    let (app, _) = app_with_keys(1).await;
    for id in ["00000000-0000-4000-8000-000000000042", "nope"] {
        let r = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await;
        assert_eq!(r.status, 404);
        assert_eq!((r.body["code"].as_i64(), r.body["codeDesc"].as_str()), (Some(16), Some("NCERRResourceNotFound")));
        let r = app.post(&format!("/api/v1/cckm/aws/bulkjob/{id}/cancel"), json!({})).await;
        assert_eq!(r.status, 404);
    }
}

async fn template(app: &TestApp, account: &str) -> String {
    let policy = json!({"Version": "2012-10-17", "Statement": []});
    let t = app
        .post(
            "/api/v1/cckm/aws/templates",
            json!({"name": format!("t-{account}"), "account_id": account, "policy": policy}),
        )
        .await
        .ok();
    t["id"].as_str().unwrap().to_string()
}
