//! Authentication and authorization: one test per failure, and the ACL rule for `CCKM Users`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::*;
use crate::validation::app_with_keys;

async fn expect_401(app: &TestApp, token: Option<&str>) -> Value {
    let r = app.call("GET", "/api/v1/cckm/aws/bulkjob", token, None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!((r.body["code"].as_i64(), r.body["codeDesc"].as_str()), (Some(5), Some("NCERRUnauthorizedAccess")));
    r.body
}

/// `POST /auth/tokens` with `body`, without a token.
async fn request_token(app: &TestApp, body: Value) -> Reply {
    app.call("POST", "/api/v1/auth/tokens", None, Some(body)).await
}

/// A `disablekey` bulk job over `keys`, asked for with `token`.
async fn disable_keys_as(app: &TestApp, token: &str, keys: &[String]) -> Reply {
    app.call("POST", "/api/v1/cckm/aws/bulkjob", Some(token), Some(json!({"operation": "disablekey", "keys": keys})))
        .await
}

fn parts(jwt: &str) -> (Value, Value, String) {
    let p: Vec<&str> = jwt.split('.').collect();
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[0]).unwrap()).unwrap();
    let claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).unwrap()).unwrap();
    (header, claims, p[2].to_string())
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn wrong_password_is_401_with_cckm_message() {
    let app = TestApp::start().await;
    let r = request_token(&app, json!({"username": "admin", "password": "nope"})).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.body["message"], "Wrong username or password.");
    let r = request_token(&app, json!({"username": "ghost", "password": "nope"})).await;
    assert_eq!(r.body["message"], "Wrong username or password.", "unknown users look the same");
}

#[tokio::test]
async fn token_endpoint_takes_both_spellings_the_name_alias_and_refresh() {
    let app = TestApp::start().await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/tokens/",
            None,
            Some(json!({"name": "admin", "password": ADMIN_PASSWORD, "grant_type": "password"})),
        )
        .await;
    let t = r.ok();
    assert_eq!(t["duration"], 300);
    let refresh = t["refresh_token"].as_str().unwrap();
    let r = request_token(&app, json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
    let t2 = r.ok();
    assert_ne!(t2["jwt"], t["jwt"]);
    assert_eq!(t2["refresh_token_id"], t["refresh_token_id"]);
    // Renewal revokes the old refresh token.
    let r = request_token(
        &app,
        json!({"grant_type": "refresh_token", "refresh_token": refresh, "renew_refresh_token": true}),
    )
    .await;
    let t3 = r.ok();
    assert_ne!(t3["refresh_token"], t["refresh_token"]);
    let r = request_token(&app, json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
    assert_eq!(r.status, 401);
    let r = request_token(&app, json!({"grant_type": "client_credentials"})).await;
    assert_eq!(r.status, 400);
    assert!(r.body["message"].as_str().unwrap().starts_with("grant_type:"));
    let r = request_token(&app, json!({"username": "admin"})).await;
    assert!(r.body["message"].as_str().unwrap().starts_with("password:"));
}

#[tokio::test]
async fn missing_token_is_401() {
    let app = TestApp::start().await;
    expect_401(&app, None).await;
}

#[tokio::test]
async fn garbage_token_is_401() {
    let app = TestApp::start().await;
    expect_401(&app, Some("not.a.jwt")).await;
}

#[tokio::test]
async fn tampered_token_is_401() {
    let app = TestApp::start().await;
    let (header, mut claims, sig) = parts(&app.admin);
    claims["preferred_username"] = json!("root");
    expect_401(&app, Some(&format!("{}.{}.{sig}", encode(&header), encode(&claims)))).await;
}

#[tokio::test]
async fn unsigned_alg_none_token_is_401() {
    let app = TestApp::start().await;
    let (_, claims, _) = parts(&app.admin);
    let none = json!({"alg": "none", "typ": "JWT"});
    expect_401(&app, Some(&format!("{}.{}.", encode(&none), encode(&claims)))).await;
}

#[tokio::test]
async fn expired_token_is_401() {
    let app = TestApp::start().await;
    let (header, mut claims, _) = parts(&app.admin);
    // Re-sign an expired token with the server's real key: only expiry is wrong.
    let key = keyfleet_core::crypto::MasterKey::from_base64(
        &std::fs::read_to_string(app.dir.path().join("data/master.key")).unwrap(),
    )
    .unwrap()
    .derive("keyfleet/jwt/hs256/v1");
    claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 1000);
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() + 300);
    let signing_input = format!("{}.{}", encode(&header), encode(&claims));
    let tag =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key), signing_input.as_bytes());
    let body = expect_401(&app, Some(&format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))).await;
    assert!(body["message"].as_str().unwrap().contains("expired"), "{body}");
    // The same construction with a valid expiry is accepted: the test's signing matches the server's.
    claims["iat"] = json!(chrono::Utc::now().timestamp());
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() + 300);
    let signing_input = format!("{}.{}", encode(&header), encode(&claims));
    let tag =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key), signing_input.as_bytes());
    let r = app
        .call(
            "GET",
            "/api/v1/cckm/aws/bulkjob",
            Some(&format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn a_user_in_no_cckm_group_is_403() {
    let (app, ids) = app_with_keys(1).await;
    let (_, token) = app.user("plain", None).await;
    let r = disable_keys_as(&app, &token, &ids).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["codeDesc"], "NCERRInsufficientPermissions");
    let r = app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(&token), None).await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn a_cckm_user_without_the_acl_is_403_naming_the_key() {
    let (app, ids) = app_with_keys(2).await;
    let (_, token) = app.user("alice", Some("CCKM Users")).await;
    let r = disable_keys_as(&app, &token, &ids).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains(&ids[0]), "{}", r.body);
}

#[tokio::test]
async fn keybulkoperation_on_every_container_is_required_and_enough() {
    let (app, ids) = app_with_keys(2).await;
    // A second container whose key alice may not touch.
    app.fake.fake.create_keys(FAKE_ACCOUNT, "eu-west-1", 1);
    app.add_kms("other", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["eu-west-1"]).await;
    app.sync("other").await;
    let other = app.key_ids("other").await;
    let (alice, token) = app.user("alice", Some("CCKM Users")).await;
    let grant = json!({"acls": [{"user_id": alice, "permit": true, "actions": ["keybulkoperation"]}]});
    let kms = app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant).await.ok();
    assert_eq!(kms["acls"][0]["actions"], json!(["keybulkoperation"]));

    let r = disable_keys_as(&app, &token, &[ids[0].clone(), other[0].clone()]).await;
    assert_eq!(r.status, 403);
    assert!(r.body["message"].as_str().unwrap().contains(&other[0]), "names the first key that fails: {}", r.body);

    let r = disable_keys_as(&app, &token, &ids).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap();
    let r = app.call("GET", &format!("/api/v1/cckm/aws/bulkjob/{id}"), Some(&token), None).await;
    assert_eq!(r.status, 200);
    let r = app.call("POST", &format!("/api/v1/cckm/aws/bulkjob/{id}/cancel"), Some(&token), None).await;
    assert_eq!(r.status, 200);

    // Through a group works the same; revoking takes the right away.
    let revoke = json!({"acls": [{"user_id": alice, "permit": false, "actions": ["keybulkoperation"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", revoke).await.ok();
    let r = app.call("GET", &format!("/api/v1/cckm/aws/bulkjob/{id}"), Some(&token), None).await;
    assert_eq!(r.status, 403);
    let group = json!({"acls": [{"group": "CCKM Users", "permit": true, "actions": ["keybulkoperation"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", group).await.ok();
    let r = app.call("GET", &format!("/api/v1/cckm/aws/bulkjob/{id}"), Some(&token), None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn cckm_admins_may_do_everything_in_cckm_but_not_user_management() {
    let (app, ids) = app_with_keys(1).await;
    let (_, token) = app.user("bob", Some("CCKM Admins")).await;
    let r = disable_keys_as(&app, &token, &ids).await;
    assert_eq!(r.status, 201);
    let r = app
        .call(
            "POST",
            "/api/v1/usermgmt/users",
            Some(&token),
            Some(json!({"username": "eve", "password": "long-enough-password"})),
        )
        .await;
    assert_eq!(r.status, 403);
}

#[tokio::test]
async fn acl_updates_are_validated() {
    let (app, _) = app_with_keys(1).await;
    for (acl, field) in [
        (json!({"permit": true, "actions": ["keybulkoperation"]}), "acls[0]"),
        (json!({"group": "CCKM Users", "permit": true, "actions": ["fly"]}), "acls[0].actions"),
        (json!({"group": "nobody", "permit": true, "actions": ["keybulkoperation"]}), "acls[0].group"),
        (
            json!({"user_id": "local|00000000-0000-4000-8000-000000000000", "permit": true, "actions": ["keybulkoperation"]}),
            "acls[0].user_id",
        ),
    ] {
        let r = app.post("/api/v1/cckm/aws/kms/acct/update-acls", json!({"acls": [acl]})).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body["message"].as_str().unwrap().starts_with(&format!("{field}:")), "{}", r.body);
    }
}
