//! The selector extension: jobs beyond CCKM's 100 keys, progress, and the item listing.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_selector_job_acts_on_every_matching_key_and_pages_its_items() {
    let app = TestApp::start().await;
    let east = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 1_030);
    app.fake.fake.create_keys(FAKE_ACCOUNT, "eu-west-1", 5);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1", "eu-west-1"]).await;
    app.sync("acct").await;

    let created = app
        .post(
            "/api/v1/cckm/aws/bulkjob",
            // Over the server's default cap of 1,000 items: the request says how many it means.
            json!({"operation": "disablekey", "selector": {"kms": ["acct"], "regions": ["us-east-1"]}, "max_items": 1030}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["progress"]["total"], 1_030);
    assert_eq!(created.body["keys"], json!([]), "over 1,000 items the key list moves to .../items");
    assert_eq!(created.body["selector"], json!({"kms": ["acct"], "regions": ["us-east-1"]}));
    let id = created.body["id"].as_str().unwrap().to_string();
    let done = app.wait_until_done(&format!("/api/v1/cckm/aws/bulkjob/{id}")).await;
    assert_eq!(done["overall_status"], "completed", "{}", done["progress"]);
    assert_eq!(
        done["progress"],
        json!({"total": 1030, "succeeded": 1030, "failed": 0, "skipped": 0, "pending": 0, "percent": 100.0})
    );
    assert_eq!(done["detailed_status"], json!({}), "large jobs list only failures");

    // Every key of the region is Disabled in the backend, the other region untouched.
    for k in &east {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).as_deref(), Some("Disabled"));
    }
    let enabled = app.get("/api/v1/cckm/aws/keys?region=eu-west-1&keystate=Enabled").await.ok();
    assert_eq!(enabled["total"], 5);

    // The item listing pages through all items, with their evidence.
    let page = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?limit=1000")).await.ok();
    assert_eq!((page["total"].as_u64(), page["resources"].as_array().unwrap().len()), (Some(1030), 1000));
    let rest = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?skip=1000&limit=1000")).await.ok();
    assert_eq!(rest["resources"].as_array().unwrap().len(), 30);
    let item = &page["resources"][0];
    assert_eq!(item["status"], "succeeded");
    assert_eq!((item["state_before"].as_str(), item["state_after"].as_str()), (Some("Enabled"), Some("Disabled")));
    assert_eq!(item["attempts"], 1);
    let failed = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?status=failed")).await.ok();
    assert_eq!(failed["total"], 0);
    let bad = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?status=done")).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn selector_ids_take_any_number_and_filters_combine() {
    let app = TestApp::start().await;
    let keys = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 150);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    let sdk = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1");
    for k in &keys[..3] {
        sdk.tag_resource()
            .key_id(k)
            .tags(aws_sdk_kms::types::Tag::builder().tag_key("team").tag_value("blue").build().unwrap())
            .send()
            .await
            .unwrap();
    }
    sdk.create_alias().alias_name("alias/payments-1").target_key_id(&keys[3]).send().await.unwrap();
    app.sync("acct").await;
    let ids = app.key_ids("acct").await;
    assert_eq!(ids.len(), 150);

    // 150 ids: over CCKM's limit for `keys`, fine for `selector.ids`.
    let r = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "disablekey", "keys": ids})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["message"].as_str().unwrap().contains("selector"), "{}", r.body);
    let job = app.run_bulkjob(json!({"operation": "disablekey", "selector": {"ids": ids}})).await;
    assert_eq!(job["progress"]["succeeded"], 150);
    assert_eq!(job["keys"].as_array().unwrap().len(), 150, "up to 1,000 items the view keeps CCKM's shape");

    app.sync("acct").await;
    let tagged = app
        .run_bulkjob(json!({"operation": "enablekey", "selector": {"kms": ["acct"], "tags": {"team": "blue"}, "key_state": "Disabled"}}))
        .await;
    assert_eq!(tagged["progress"]["total"], 3);
    let aliased = app.run_bulkjob(json!({"operation": "enablekey", "selector": {"alias_prefix": "payments"}})).await;
    assert_eq!(aliased["progress"]["total"], 1);
}

#[tokio::test]
async fn selector_requests_are_validated() {
    let app = TestApp::start().await;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 2);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    let ids = app.key_ids("acct").await;
    for (body, field) in [
        (json!({"operation": "disablekey", "selector": {}}), "selector"),
        (json!({"operation": "disablekey", "keys": ids, "selector": {"kms": ["acct"]}}), "selector"),
        (json!({"operation": "disablekey", "selector": {"ids": ids, "kms": ["acct"]}}), "selector.ids"),
        (json!({"operation": "disablekey", "selector": {"kms": ["nope"]}}), "selector.kms"),
        (json!({"operation": "disablekey", "selector": {"regions": ["moon"]}}), "selector.regions"),
        (json!({"operation": "disablekey", "selector": {"key_state": "Sleeping"}}), "selector.key_state"),
        (json!({"operation": "disablekey", "selector": {"regions": ["ap-south-1"]}}), "selector"),
        (
            json!({"operation": "disablekey", "selector": {"ids": ["00000000-0000-4000-8000-000000000000"]}}),
            "selector.ids",
        ),
        (json!({"operation": "disablekey", "selector": {"kms": ["acct"], "colour": "red"}}), "selector"),
    ] {
        let r = app.post("/api/v1/cckm/aws/bulkjob", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(field), "{body}: {}", r.body);
    }
    // A CCKM User must name containers they hold keybulkoperation on.
    let (_, token) = app.user("erin", Some("CCKM Users")).await;
    let r = app
        .call(
            "POST",
            "/api/v1/cckm/aws/bulkjob",
            Some(&token),
            Some(json!({"operation": "disablekey", "selector": {"regions": ["us-east-1"]}})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .call(
            "POST",
            "/api/v1/cckm/aws/bulkjob",
            Some(&token),
            Some(json!({"operation": "disablekey", "selector": {"kms": ["acct"]}})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn container_quota_overrides_are_validated_and_shown() {
    let app = TestApp::start().await;
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    let r = app
        .call(
            "PATCH",
            "/api/v1/cckm/aws/kms/acct",
            Some(&app.admin.clone()),
            Some(json!({"quotas": {"DisableKey": 2.5}})),
        )
        .await
        .ok();
    assert_eq!(r["quotas"], json!({"DisableKey": 2.5}));
    for q in [json!({"Fly": 1.0}), json!({"DisableKey": 0.0}), json!({"DisableKey": -1})] {
        let r =
            app.call("PATCH", "/api/v1/cckm/aws/kms/acct", Some(&app.admin.clone()), Some(json!({"quotas": q}))).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with("quotas."), "{}", r.body);
    }
}
