//! Strict input (issue 10 §1, issue 11 §4 paging): every body refuses unknown fields, every list refuses unknown
//! query parameters, empty filters and implicit "every key" are refused, enumerations ignore case or are refused,
//! numbers and lists must have their type, keys may be named by AWS KeyId, ARN or alias, and out-of-range paging
//! is a 400. Each refusal is checked to have changed nothing in the cloud.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::azure::AzureApp;
use crate::support::*;
use crate::validation::app_with_keys;

/// Asserts a 400 in CCKM's format whose message starts with `field:`; returns the message.
fn assert_refused(r: &Reply, field: &str, what: &str) -> String {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
    assert_eq!(r.body["code"], 9, "{what}");
    assert_eq!(r.body["codeDesc"], "NCERRInvalidParamValue", "{what}");
    let msg = r.body["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with(&format!("{field}:")), "{what}: message {msg:?} should name {field}");
    msg
}

/// What the fake AWS and keyfleet hold that a refused request must not change.
#[derive(Debug, PartialEq)]
struct Snapshot {
    calls: usize,
    states: Vec<Option<String>>,
    jobs: Value,
}

async fn snapshot(app: &TestApp, aws_key_ids: &[String]) -> Snapshot {
    let states = aws_key_ids.iter().map(|k| app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k)).collect::<Vec<_>>();
    Snapshot {
        calls: app.fake.fake.calls().len(),
        states,
        jobs: app.get("/api/v1/cckm/aws/bulkjob").await.ok()["total"].clone(),
    }
}

/// The AWS KeyIds of the synced keys, in the order of `ids`.
async fn aws_key_ids(app: &TestApp, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let k = app.get(&format!("/api/v1/cckm/aws/keys/{id}")).await.ok();
        out.push(k["aws_param"]["KeyID"].as_str().unwrap().to_string());
    }
    out
}

async fn bulkjob(app: &TestApp, body: Value) -> Reply {
    app.post("/api/v1/cckm/aws/bulkjob", body).await
}

#[tokio::test]
async fn unknown_fields_are_refused_on_every_aws_and_user_route() {
    let (app, ids) = app_with_keys(3).await;
    let kms = app.get("/api/v1/cckm/aws/kms/acct").await.ok()["id"].as_str().unwrap().to_string();
    let conn = "/api/v1/connectionmgmt/services/aws/connections/acct-conn";
    let template = app
        .post("/api/v1/cckm/aws/templates", json!({"name": "t1", "kms": "acct", "policy": {"Version": "2012-10-17"}}))
        .await
        .ok()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let aws_ids = aws_key_ids(&app, &ids).await;
    let before = snapshot(&app, &aws_ids).await;
    let users_before = app.get("/api/v1/usermgmt/users").await.ok()["total"].clone();

    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/auth/tokens".into(),
            json!({"username": "admin", "password": ADMIN_PASSWORD, "pasword": "x"}),
            "pasword",
        ),
        (
            "POST",
            "/api/v1/usermgmt/users".into(),
            json!({"username": "u1", "password": "u1-password", "role": "admin"}),
            "role",
        ),
        ("POST", "/api/v1/usermgmt/groups".into(), json!({"name": "g1", "descr": "x"}), "descr"),
        (
            "POST",
            "/api/v1/connectionmgmt/services/aws/connections".into(),
            json!({"name": "c2", "access_key_id": FAKE_ACCESS_KEY, "secret_access_key": SECRET, "region": "x"}),
            "region",
        ),
        ("PATCH", conn.into(), json!({"secret": "x"}), "secret"),
        (
            "POST",
            "/api/v1/cckm/aws/kms".into(),
            json!({"name": "k2", "account_id": "1", "connection": "acct-conn", "region": ["us-east-1"]}),
            "region",
        ),
        ("PATCH", format!("/api/v1/cckm/aws/kms/{kms}"), json!({"region": ["eu-west-1"]}), "region"),
        (
            "POST",
            format!("/api/v1/cckm/aws/kms/{kms}/update-acls"),
            json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["keyupdate"], "expires": 1}]}),
            "acls[0].expires",
        ),
        (
            "POST",
            "/api/v1/cckm/aws/templates".into(),
            json!({"name": "t2", "kms": "acct", "policy": {}, "polcy": {}}),
            "polcy",
        ),
        ("PATCH", format!("/api/v1/cckm/aws/templates/{template}"), json!({"key_admin": ["x"]}), "key_admin"),
        (
            "POST",
            "/api/v1/cckm/aws/synchronization-jobs".into(),
            json!({"kms": ["acct"], "region": ["us-east-1"]}),
            "region",
        ),
        (
            "POST",
            "/api/v1/cckm/aws/bulkjob".into(),
            json!({"operation": "disablekey", "keys": ids, "dryRun": true}),
            "dryRun",
        ),
        (
            "POST",
            "/api/v1/cckm/aws/bulkjob".into(),
            json!({"operation": "schedulekeydeletion", "keys": ids, "pending_window_in_days": 7}),
            "pending_window_in_days",
        ),
        (
            "POST",
            "/api/v1/cckm/aws/bulkjob".into(),
            json!({"operation": "disablekey", "selector": {"kms": ["acct"], "state": "Enabled"}}),
            "selector.state",
        ),
        // Filters next to the selector instead of in it.
        (
            "POST",
            "/api/v1/cckm/aws/bulkjob".into(),
            json!({"operation": "disablekey", "selector": {"kms": ["acct"]}, "regions": ["eu-west-1"]}),
            "regions",
        ),
        ("POST", "/api/v1/cckm/aws/bulkjob".into(), json!({"operation": "disablekey", "kms": ["acct"]}), "kms"),
    ];
    for (method, path, body, field) in cases {
        let token = app.admin.clone();
        let r = app.call(method, &path, Some(&token), Some(body.clone())).await;
        let msg = assert_refused(&r, field, &format!("{method} {path} {body}"));
        assert!(msg.contains("unknown field"), "{msg}");
        assert!(msg.contains("; expected "), "lists the accepted fields: {msg}");
        assert!(!msg.contains(" at line "), "no parser position: {msg}");
    }
    assert_eq!(snapshot(&app, &aws_ids).await, before, "nothing changed in AWS, no job was created");
    assert_eq!(app.get("/api/v1/usermgmt/users").await.ok()["total"], users_before);
    assert_eq!(app.get("/api/v1/cckm/aws/kms").await.ok()["total"], 1);
    let k = app.get(&format!("/api/v1/cckm/aws/kms/{kms}")).await.ok();
    assert_eq!((k["regions"].clone(), k["acls"].clone()), (json!(["us-east-1"]), json!([])));

    // CCKM's documented forms stay accepted: `name` for `username`, `Policy` for `policy`.
    let r =
        app.call("POST", "/api/v1/auth/tokens", None, Some(json!({"name": "admin", "password": ADMIN_PASSWORD}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.call("POST", "/api/v1/auth/tokens/", None, Some(json!({"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD, "domain": "root", "labels": ["x"]}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.post(
        "/api/v1/cckm/aws/templates",
        json!({"name": "t3", "account_id": FAKE_ACCOUNT, "Policy": {"Version": "2012-10-17"}}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn empty_filters_and_an_implicit_every_key_are_refused() {
    let (app, ids) = app_with_keys(3).await;
    let aws_ids = aws_key_ids(&app, &ids).await;
    let before = snapshot(&app, &aws_ids).await;
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"kms": []}), "selector.kms", "`kms` is empty: name at least one container, or leave it out"),
        (json!({"regions": []}), "selector.regions", "`regions` is empty"),
        (json!({"tags": {}}), "selector.tags", "`tags` is empty"),
        (json!({"ids": []}), "selector.ids", "`ids` is empty"),
        (json!({"alias_prefix": ""}), "selector.alias_prefix", "`alias_prefix` is empty"),
        (json!({"key_state": ""}), "selector.key_state", "`key_state` is empty"),
        (json!({"kms": ["acct"], "regions": []}), "selector.regions", "`regions` is empty"),
        (json!({}), "selector", "\"all\": true"),
        (json!({"all": false}), "selector", "\"all\": true"),
        (json!({"all": true, "kms": ["acct"]}), "selector.all", "cannot be combined"),
        (json!({"all": true, "ids": [ids[0]]}), "selector.all", "cannot be combined"),
        (json!({"all": "yes"}), "selector.all", "expected a boolean"),
    ];
    for (selector, field, expect) in cases {
        let r = bulkjob(&app, json!({"operation": "disablekey", "selector": selector})).await;
        let msg = assert_refused(&r, field, &selector.to_string());
        assert!(msg.contains(expect), "{selector}: {msg}");
    }
    // `keys` (CCKM's form) must not be empty either.
    assert_refused(&bulkjob(&app, json!({"operation": "disablekey", "keys": []})).await, "keys", "keys []");
    assert_eq!(snapshot(&app, &aws_ids).await, before, "nothing changed in AWS, no job was created");

    // Every key: only by asking for it.
    let job = app.run_bulkjob(json!({"operation": "disablekey", "selector": {"all": true}})).await;
    assert_eq!(job["overall_status"], "completed", "{job}");
    assert_eq!(job["progress"]["succeeded"], 3, "{job}");
    assert_eq!(job["selector"], json!({"all": true}));
    for k in &aws_ids {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).as_deref(), Some("Disabled"));
    }
}

#[tokio::test]
async fn enumerations_ignore_case_or_are_refused() {
    let (app, ids) = app_with_keys(2).await;
    let aws_ids = aws_key_ids(&app, &ids).await;
    let before = snapshot(&app, &aws_ids).await;

    // Refused, listing what is allowed; nothing sent to AWS.
    let r =
        bulkjob(&app, json!({"operation": "disablekey", "selector": {"kms": ["acct"], "key_state": "enabeld"}})).await;
    let msg = assert_refused(&r, "selector.key_state", "misspelt state");
    assert!(msg.contains("Enabled") && msg.contains("PendingDeletion"), "{msg}");
    let msg = assert_refused(&bulkjob(&app, json!({"operation": "disable", "keys": ids})).await, "operation", "op");
    assert!(msg.contains("disablekey"), "{msg}");
    for (q, field) in [
        ("/api/v1/cckm/aws/keys?keystate=enabeld", "keystate"),
        ("/api/v1/cckm/aws/keys?enabled=yes", "enabled"),
        ("/api/v1/cckm/aws/bulkjob?overall_status=done", "overall_status"),
        ("/api/v1/cckm/aws/bulkjob?operation=disable", "operation"),
        ("/api/v1/cckm/aws/bulkjob?cloud=gcp", "cloud"),
        ("/api/v1/cckm/aws/synchronization-jobs?overall_status=done", "overall_status"),
    ] {
        let msg = assert_refused(&app.get(q).await, field, q);
        assert!(msg.contains("one of") || msg.contains("true or false"), "{q}: {msg}");
    }
    assert_eq!(snapshot(&app, &aws_ids).await, before);

    // Any case matches: a lower-case key state selects the keys instead of silently nothing.
    assert_eq!(app.get("/api/v1/cckm/aws/keys?keystate=enabled").await.ok()["total"], 2);
    assert_eq!(app.get("/api/v1/cckm/aws/keys?enabled=TRUE").await.ok()["total"], 2);
    let job = app
        .run_bulkjob(json!({"operation": "DisableKey", "selector": {"kms": ["acct"], "key_state": "enabled"}}))
        .await;
    assert_eq!(
        (job["operation"].as_str(), job["progress"]["succeeded"].as_i64()),
        (Some("disablekey"), Some(2)),
        "{job}"
    );
    assert_eq!(job["overall_status"], "completed");
    for k in &aws_ids {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).as_deref(), Some("Disabled"));
    }
    let id = job["id"].as_str().unwrap();
    for q in ["overall_status=COMPLETED", "operation=DISABLEKEY", "cloud=AWS"] {
        assert_eq!(app.get(&format!("/api/v1/cckm/aws/bulkjob?{q}")).await.ok()["total"], 1, "{q}");
    }
    let items = app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?status=Succeeded")).await.ok();
    assert_eq!(items["total"], 2);
    assert_refused(&app.get(&format!("/api/v1/cckm/aws/bulkjob/{id}/items?status=done")).await, "status", "items");
    // Another cloud's name is a true empty answer, not an error.
    assert_eq!(app.get("/api/v1/cckm/aws/bulkjob?cloud=azure").await.ok()["total"], 0);
}

#[tokio::test]
async fn numbers_lists_and_ranges_must_have_their_type() {
    let (app, ids) = app_with_keys(2).await;
    let aws_ids = aws_key_ids(&app, &ids).await;
    let before = snapshot(&app, &aws_ids).await;
    let csv = format!("{},{}", ids[0], ids[1]);
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"operation": "schedulekeydeletion", "keys": ids, "days": "7"}), "days", "expected i64"),
        (json!({"operation": "schedulekeydeletion", "keys": ids, "days": 7.5}), "days", "expected i64"),
        (json!({"operation": "schedulekeydeletion", "keys": ids, "days": 6}), "days", "between 7 and 30"),
        (json!({"operation": "schedulekeydeletion", "keys": ids, "days": 31}), "days", "between 7 and 30"),
        (json!({"operation": "schedulekeydeletion", "keys": ids, "days": 1e30}), "days", "expected i64"),
        (json!({"operation": "disablekey", "keys": csv}), "keys", "expected a sequence"),
        (json!({"operation": "disablekey", "selector": {"kms": "acct"}}), "selector.kms", "expected a sequence"),
        (
            json!({"operation": "disablekey", "selector": {"regions": "us-east-1,eu-west-1"}}),
            "selector.regions",
            "expected a sequence",
        ),
        (json!({"operation": "disablekey", "selector": {"tags": "team=blue"}}), "selector.tags", "expected a map"),
        (json!({"operation": 1, "keys": ids}), "operation", "expected a string"),
    ];
    for (body, field, expect) in cases {
        let msg = assert_refused(&bulkjob(&app, body.clone()).await, field, &body.to_string());
        assert!(msg.contains(expect), "{body}: {msg}");
    }
    for (q, field) in [("skip=-1", "skip"), ("limit=ten", "limit"), ("limit=1.5", "limit"), ("skip=", "skip")] {
        let msg = assert_refused(&app.get(&format!("/api/v1/cckm/aws/keys?{q}")).await, field, q);
        assert!(msg.contains("whole number"), "{q}: {msg}");
    }
    assert_eq!(snapshot(&app, &aws_ids).await, before);
}

#[tokio::test]
async fn keys_are_named_by_cckm_id_aws_key_id_arn_or_alias() {
    let app = TestApp::start().await;
    let east = app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 4);
    let west = app.fake.fake.create_keys(FAKE_ACCOUNT, "eu-west-1", 1);
    let kms_east = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "us-east-1");
    let kms_west = kms_client(&app.fake.url(), FAKE_ACCESS_KEY, "eu-west-1");
    kms_east.create_alias().alias_name("alias/payments").target_key_id(&east[2]).send().await.unwrap();
    // The same alias in two regions: ambiguous.
    kms_east.create_alias().alias_name("alias/shared").target_key_id(&east[3]).send().await.unwrap();
    kms_west.create_alias().alias_name("alias/shared").target_key_id(&west[0]).send().await.unwrap();
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1", "eu-west-1"]).await;
    app.sync("acct").await;
    let arn_of = |k: &str| format!("arn:aws:kms:us-east-1:{FAKE_ACCOUNT}:key/{k}");
    let list = app.get("/api/v1/cckm/aws/keys?region=us-east-1&limit=100").await.ok();
    let cckm_of = |aws: &str| {
        list["resources"].as_array().unwrap().iter().find(|k| k["aws_param"]["KeyID"] == aws).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before_calls = app.fake.fake.calls().len();

    // A reference naming no key, or more than one, is a 400 naming it; so is a key named twice.
    let refs_and_errors: Vec<(Value, &str, Vec<String>)> = vec![
        (json!({"keys": ["alias/nope", east[0]]}), "keys", vec!["alias/nope".into()]),
        (json!({"keys": ["arn:aws:kms:us-east-1:000000000000:key/nope"]}), "keys", vec!["key/nope".into()]),
        (json!({"keys": ["alias/shared"]}), "keys", vec!["alias/shared".into(), "ambiguous".into()]),
        (json!({"selector": {"ids": ["alias/shared"]}}), "selector.ids", vec!["ambiguous".into()]),
        (json!({"keys": [east[0], arn_of(&east[0])]}), "keys", vec!["already listed".into()]),
        (json!({"keys": [cckm_of(&east[0]), east[0]]}), "keys", vec!["already listed".into()]),
    ];
    for (mut body, field, expect) in refs_and_errors {
        body["operation"] = json!("disablekey");
        let msg = assert_refused(&bulkjob(&app, body.clone()).await, field, &body.to_string());
        for e in expect {
            assert!(msg.contains(&e), "{body}: {msg}");
        }
    }
    assert_eq!(app.fake.fake.calls().len(), before_calls, "nothing sent to AWS");
    assert_eq!(app.get("/api/v1/cckm/aws/bulkjob").await.ok()["total"], 0);

    // CCKM id, AWS KeyId, ARN and alias, in `keys` and in `selector.ids`.
    let job = app
        .run_bulkjob(json!({"operation": "disablekey", "keys": [cckm_of(&east[0]), east[1], arn_of(&east[3])]}))
        .await;
    assert_eq!(job["keys"], json!([cckm_of(&east[0]), cckm_of(&east[1]), cckm_of(&east[3])]), "{job}");
    let job = app.run_bulkjob(json!({"operation": "disablekey", "selector": {"ids": ["alias/payments"]}})).await;
    assert_eq!(job["keys"], json!([cckm_of(&east[2])]), "{job}");
    for k in &east {
        assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "us-east-1", k).as_deref(), Some("Disabled"));
    }
    assert_eq!(app.fake.fake.key_state(FAKE_ACCOUNT, "eu-west-1", &west[0]).as_deref(), Some("Enabled"));
}

/// Every list route.
fn list_routes(job: &str) -> Vec<String> {
    vec![
        "/api/v1/usermgmt/users".into(),
        "/api/v1/usermgmt/groups".into(),
        "/api/v1/connectionmgmt/services/aws/connections".into(),
        "/api/v1/cckm/aws/kms".into(),
        "/api/v1/cckm/aws/keys".into(),
        "/api/v1/cckm/aws/templates".into(),
        "/api/v1/cckm/aws/synchronization-jobs".into(),
        "/api/v1/cckm/aws/bulkjob".into(),
        format!("/api/v1/cckm/aws/bulkjob/{job}/items"),
        "/api/v1/connectionmgmt/services/azure/connections".into(),
        "/api/v1/cckm/azure/vaults".into(),
        "/api/v1/cckm/azure/keys".into(),
        "/api/v1/cckm/azure/synchronization-jobs".into(),
        "/api/v1/cckm/azure/bulkjobs".into(),
        format!("/api/v1/cckm/azure/keys/{}/backups", uuid_like()),
    ]
}

fn uuid_like() -> &'static str {
    "00000000-0000-4000-8000-000000000000"
}

#[tokio::test]
async fn unknown_query_parameters_and_out_of_range_paging_are_refused() {
    let (app, ids) = app_with_keys(2).await;
    let job = app.run_bulkjob(json!({"operation": "enablekey", "keys": ids})).await;
    let job = job["id"].as_str().unwrap().to_string();
    for route in list_routes(&job) {
        let msg = assert_refused(&app.get(&format!("{route}?bogus=1")).await, "bogus", &route);
        assert!(msg.contains("unknown field") && msg.contains("skip"), "{route}: {msg}");
        // A misspelt filter never returns the whole list.
        assert_refused(&app.get(&format!("{route}?limit=5&overal_status=failed")).await, "overal_status", &route);
        if route.contains("/backups") {
            continue; // no such key: paging is checked on a real key's backups in the Azure test
        }
        for (q, field) in [
            ("skip=9223372036854775808", "skip"),
            ("skip=18446744073709551616", "skip"),
            ("limit=1001", "limit"),
            ("limit=-1", "limit"),
        ] {
            assert_refused(&app.get(&format!("{route}?{q}")).await, field, &format!("{route}?{q}"));
        }
        let r = app.get(&format!("{route}?skip=9223372036854775807&limit=1000")).await;
        assert_eq!(r.status, StatusCode::OK, "{route}: the largest skip is an empty page: {}", r.body);
        if !route.contains("/items") {
            let long = "x".repeat(5000);
            let msg = assert_refused(&app.get(&format!("{route}?sort={long}")).await, "sort", &route);
            // The route's first sort field, 2000 times.
            let field = msg.split("allowed: ").nth(1).unwrap().split(", ").next().unwrap().to_string();
            let many = vec![field.as_str(); 2000].join(",");
            let msg = assert_refused(&app.get(&format!("{route}?sort={many}")).await, "sort", &route);
            assert!(msg.contains("more than once"), "{route}: {msg}");
            let r = app.get(&format!("{route}?sort=-{field}")).await;
            assert_eq!(r.status, StatusCode::OK, "{route}: {}", r.body);
        }
    }
    // The documented filters stay accepted, with their meaning.
    let keys = app.get("/api/v1/cckm/aws/keys?kms=acct&region=us-east-1&gone=false&sort=-createdAt").await.ok();
    assert_eq!(keys["total"], 2);
    let sync = app.get("/api/v1/cckm/aws/synchronization-jobs").await.ok();
    let sync_id = sync["resources"][0]["id"].as_str().unwrap().to_string();
    let by_id = app.get(&format!("/api/v1/cckm/aws/synchronization-jobs?id={sync_id}&kms=acct")).await.ok();
    assert_eq!((by_id["total"].as_u64(), by_id["resources"][0]["id"].as_str()), (Some(1), Some(sync_id.as_str())));
    let other = app.get(&format!("/api/v1/cckm/aws/synchronization-jobs?id={}", uuid_like())).await.ok();
    assert_eq!(other["total"], 0);
    assert_refused(&app.get("/api/v1/cckm/aws/synchronization-jobs?kms=nope").await, "kms", "unknown kms");
    assert_refused(&app.get("/api/v1/cckm/aws/synchronization-jobs?id=nope").await, "id", "bad id");
}

#[tokio::test]
async fn azure_bodies_are_strict_and_top_level_conditions_mean_what_they_mean_inside() {
    let env = AzureApp::start().await;
    let vault_ids = env.add_vaults(&["kv-a", "kv-b"], 1).await;
    env.sync(&["kv-a", "kv-b"], false).await;
    let (_, key_a) = env.keys("kv-a").await.remove(0);
    let (_, key_b) = env.keys("kv-b").await.remove(0);
    let backup_a = env.backup(&key_a, "a1").await["id"].as_str().unwrap().to_string();
    let backup_b = env.backup(&key_b, "b1").await["id"].as_str().unwrap().to_string();
    let app = &env.app;
    let vault_calls = env.vault.fake.calls().len();
    let everything = || async {
        let mut all = env.backup_ids(&key_a).await;
        all.extend(env.backup_ids(&key_b).await);
        all
    };
    assert_eq!(everything().await, BTreeSet::from([backup_a.clone(), backup_b.clone()]));

    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/api/v1/cckm/azure/bulkjobs".into(),
            json!({"operation": "delete-key-backups", "vault": "kv-a"}),
            "vault",
        ),
        (
            "POST",
            "/api/v1/cckm/azure/bulkjobs".into(),
            json!({"operation": "delete-key-backups", "delete_key_backups_param": {"vault_id": "kv-a", "older_than": "x"}}),
            "delete_key_backups_param.older_than",
        ),
        // The same condition in both places with different values.
        (
            "POST",
            "/api/v1/cckm/azure/bulkjobs".into(),
            json!({"operation": "delete-key-backups", "vault_id": "kv-a", "delete_key_backups_param": {"vault_id": "kv-b"}}),
            "vault_id",
        ),
        (
            "POST",
            "/api/v1/cckm/azure/bulkjobs".into(),
            json!({"operation": "delete-key-backups", "backups": [backup_a], "delete_key_backups_param": {"backups": [backup_b]}}),
            "backups",
        ),
        (
            "POST",
            "/api/v1/cckm/azure/bulkjobs".into(),
            json!({"operation": "delete-key-backups", "created_before": "2030-01-01T00:00:00Z", "delete_key_backups_param": {"vault_id": "kv-a", "created_before": "2031-01-01T00:00:00Z"}}),
            "created_before",
        ),
        // Exclusion holds across the two places.
        (
            "POST",
            "/api/v1/cckm/azure/bulkjobs".into(),
            json!({"operation": "delete-key-backups", "key_id": key_a, "delete_key_backups_param": {"vault_id": "kv-a"}}),
            "delete_key_backups_param",
        ),
        (
            "POST",
            "/api/v1/connectionmgmt/services/azure/connections".into(),
            json!({"name": "az2", "client_id": "x", "tenant_id": "t", "client_secret": "s", "secret": "x"}),
            "secret",
        ),
        ("PATCH", "/api/v1/connectionmgmt/services/azure/connections/az".into(), json!({"tenant": "x"}), "tenant"),
        (
            "POST",
            "/api/v1/cckm/azure/add-vaults".into(),
            json!({"connection": "az", "subscription_id": "s", "vaults": [{"name": "kv-c", "sku": "premium"}]}),
            "vaults[0].sku",
        ),
        (
            "POST",
            format!("/api/v1/cckm/azure/vaults/{}/update-acls", vault_ids[0]),
            json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["keyupdate"]}], "replace": true}),
            "replace",
        ),
        ("POST", "/api/v1/cckm/azure/synchronization-jobs".into(), json!({"vaults": ["kv-a"]}), "vaults"),
        ("POST", format!("/api/v1/cckm/azure/keys/{key_a}/backups"), json!({"nam": "x"}), "nam"),
        ("PATCH", format!("/api/v1/cckm/azure/keys/{key_a}/backups/{backup_a}"), json!({"title": "x"}), "title"),
        (
            "POST",
            format!("/api/v1/cckm/azure/keys/{key_a}/backups/{backup_a}/restore"),
            json!({"vault_id": vault_ids[1]}),
            "vault_id",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = app.call(method, &path, Some(&app.admin), Some(body.clone())).await;
        assert_refused(&r, field, &format!("{method} {path} {body}"));
    }
    assert_eq!(everything().await, BTreeSet::from([backup_a.clone(), backup_b.clone()]), "no backup deleted");
    assert_eq!(app.get("/api/v1/cckm/azure/bulkjobs").await.ok()["total"], 0, "no job created");
    assert_eq!(app.get("/api/v1/cckm/azure/vaults").await.ok()["total"], 2);
    let changing: Vec<_> = env.vault.fake.calls().into_iter().skip(vault_calls).filter(|c| c.method != "GET").collect();
    assert!(changing.is_empty(), "nothing changed in Key Vault: {changing:?}");

    // Top-level `vault_id`: only that vault's backups go.
    let r = app
        .post("/api/v1/cckm/azure/bulkjobs", json!({"operation": "delete-key-backups", "vault_id": vault_ids[0]}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["delete_key_backups_param"], json!({"vault_id": vault_ids[0]}), "echoed where CCKM has it");
    let id = r.body["id"].as_str().unwrap();
    let job = app.wait_until_done(&format!("/api/v1/cckm/azure/bulkjobs/{id}")).await;
    assert_eq!(job["detailed_status"], json!({ backup_a.clone(): "Success" }), "{job}");
    assert_eq!(everything().await, BTreeSet::from([backup_b.clone()]), "kv-b's backup remains");

    // The same condition in both places with the same value is one condition; top-level and nested ones AND.
    let backup_b2 = env.backup(&key_b, "b2").await["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/api/v1/cckm/azure/bulkjobs",
            json!({"operation": "delete-key-backups", "vault_id": "kv-b", "backups": backup_b2,
                   "delete_key_backups_param": {"vault_id": "kv-b"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let job = app.wait_until_done(&format!("/api/v1/cckm/azure/bulkjobs/{}", r.body["id"].as_str().unwrap())).await;
    assert_eq!(job["detailed_status"], json!({ backup_b2.clone(): "Success" }), "{job}");
    assert_eq!(everything().await, BTreeSet::from([backup_b]));

    // Azure list routes refuse unknown parameters and out-of-range paging, and match enumerations in any case.
    let backups = format!("/api/v1/cckm/azure/keys/{key_b}/backups");
    for (q, field) in
        [("skip=9223372036854775808", "skip"), ("limit=1001", "limit"), ("sort=name,name", "sort"), ("name=x", "name")]
    {
        assert_refused(&app.get(&format!("{backups}?{q}")).await, field, q);
    }
    assert_refused(&app.get("/api/v1/cckm/azure/keys?vault=kv-a").await, "vault", "azure keys");
    assert_eq!(app.get("/api/v1/cckm/azure/bulkjobs?overall_status=Completed&cloud=azurecloud").await.ok()["total"], 2);
    assert_eq!(app.get("/api/v1/cckm/azure/keys?enabled=True").await.ok()["total"], 2);
    assert_refused(&app.get("/api/v1/cckm/azure/synchronization-jobs?kms=acct").await, "kms", "kms on azure");
}
