//! Connections, containers, key sync and the key list's filters.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn sync_pages_through_every_key_and_the_key_list_filters_work() {
    let app = TestApp::start().await;
    // More than one ListKeys page (keyfleet asks for 1000 per page).
    let created = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 1_050);
    app.fake.fake.create_keys(FAKE_ACCOUNT, "eu-west-1", 3);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1", "eu-west-1"]).await;
    let sync = app.sync("acct").await;
    assert_eq!(sync["detailed_status"]["111122223333/us-east-1"], "Success", "{sync}");
    assert_eq!(sync["detailed_status"]["111122223333/eu-west-1"], "Success", "{sync}");
    let all = app.get("/api/v1/cckm/aws/keys?kms=acct&limit=1").await.ok();
    assert_eq!(all["total"], 1_053);

    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1");
    sdk.disable_key().key_id(&created[0]).send().await.unwrap();
    sdk.create_alias().alias_name("alias/payments").target_key_id(&created[1]).send().await.unwrap();
    sdk.tag_resource()
        .key_id(&created[2])
        .tags(aws_sdk_kms::types::Tag::builder().tag_key("team").tag_value("blue").build().unwrap())
        .send()
        .await
        .unwrap();
    app.sync("acct").await;

    let total = |q: &'static str| {
        let app = &app;
        async move { app.get(&format!("/api/v1/cckm/aws/keys?{q}")).await.ok()["total"].as_u64().unwrap() }
    };
    assert_eq!(total("region=eu-west-1").await, 3);
    assert_eq!(total("keystate=Disabled").await, 1);
    assert_eq!(total("enabled=false").await, 1);
    assert_eq!(total("alias=payments").await, 1);
    assert_eq!(total("alias=alias/payments").await, 1);
    assert_eq!(total("tags=team=blue").await, 1);
    assert_eq!(total("tags=team").await, 1);
    assert_eq!(total("tags=team=red").await, 0);
    assert_eq!(total("gone=true").await, 0);
    let one = app.get(&format!("/api/v1/cckm/aws/keys?keyid={}", created[1])).await.ok();
    assert_eq!(one["resources"][0]["aws_param"]["Alias"], json!(["alias/payments"]));
    let bad = app.get("/api/v1/cckm/aws/keys?enabled=maybe").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body["message"].as_str().unwrap().starts_with("enabled:"));

    // Paging: skip/limit walk the same total.
    let page2 = app.get("/api/v1/cckm/aws/keys?kms=acct&skip=1000&limit=1000&sort=-createdAt").await.ok();
    assert_eq!(page2["resources"].as_array().unwrap().len(), 53);
    assert_eq!((page2["skip"].as_u64(), page2["limit"].as_u64()), (Some(1000), Some(1000)));
}

#[tokio::test]
async fn inventory_requests_are_validated() {
    let app = TestApp::start().await;
    let conn = "/api/v1/connectionmgmt/services/aws/connections";
    for (body, field) in [
        (json!({"access_key_id": "A", "secret_access_key": "s"}), "name"),
        (json!({"name": "c", "secret_access_key": "s"}), "access_key_id"),
        (json!({"name": "c", "access_key_id": "A"}), "secret_access_key"),
        (
            json!({"name": "c", "access_key_id": "A", "secret_access_key": "s", "endpoint_url": "ftp://x"}),
            "endpoint_url",
        ),
        (json!({"name": "c", "access_key_id": "A", "secret_access_key": "s", "aws_region": "moon-1"}), "aws_region"),
    ] {
        let r = app.post(conn, body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{}", r.body);
    }
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    for (body, field) in [
        (json!({"name": "k2", "account_id": "12", "connection": "acct-conn", "regions": ["us-east-1"]}), "account_id"),
        (
            json!({"name": "k2", "account_id": FAKE_ACCOUNT, "connection": "nope", "regions": ["us-east-1"]}),
            "connection",
        ),
        (json!({"name": "k2", "account_id": FAKE_ACCOUNT, "connection": "acct-conn", "regions": []}), "regions"),
    ] {
        let r = app.post("/api/v1/cckm/aws/kms", body).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{}", r.body);
    }
    // A connection still used by a container cannot be deleted.
    let r = app.call("DELETE", &format!("{conn}/acct-conn"), Some(&app.admin.clone()), None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = app.call("DELETE", "/api/v1/cckm/aws/kms/acct", Some(&app.admin.clone()), None).await;
    assert_eq!((r.status.as_u16(), r.body.clone()), (204, serde_json::Value::Null));
    let r = app.call("DELETE", &format!("{conn}/acct-conn"), Some(&app.admin.clone()), None).await;
    assert_eq!(r.status, 204);
}
