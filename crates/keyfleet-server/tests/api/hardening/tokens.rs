//! Token lifecycle: listing and revoking one's refresh tokens, administrators changing, disabling and deleting
//! users, groups read, changed and deleted; and revocation seen at once by every node of a cluster.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// Logs in with the password grant; (access token, refresh token, refresh token id).
async fn session(app: &TestApp, user: &str, password: &str) -> (String, String, String) {
    let t = app.call("POST", "/api/v1/auth/tokens", None, Some(json!({"username": user, "password": password}))).await;
    let t = t.ok();
    let s = |f: &str| t[f].as_str().unwrap().to_string();
    (s("jwt"), s("refresh_token"), s("refresh_token_id"))
}

async fn refresh(app: &TestApp, refresh_token: &str) -> StatusCode {
    let body = json!({"grant_type": "refresh_token", "refresh_token": refresh_token});
    app.call("POST", "/api/v1/auth/tokens", None, Some(body)).await.status
}

fn ids(list: &Value) -> Vec<String> {
    list["resources"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn users_list_and_revoke_their_own_refresh_tokens_and_only_theirs() {
    let app = TestApp::start().await;
    let (_, hal) = app.user("hal", None).await;
    let (_, first, first_id) = session(&app, "hal", "hal-password").await;
    let (jwt, second, second_id) = session(&app, "hal", "hal-password").await;

    let list = app.call("GET", "/api/v1/auth/tokens", Some(&jwt), None).await.ok();
    assert_eq!(list["total"], 3, "the user() login and two more: {list}");
    let listed = ids(&list);
    assert!(listed.contains(&first_id) && listed.contains(&second_id), "{list}");
    let text = list.to_string();
    assert!(!text.contains(&first) && !text.contains(&second), "token values never leave: {list}");
    assert_eq!(list["resources"][0]["user_id"].as_str().unwrap().len(), "local|".len() + 36, "{list}");

    // Someone else's token is not found; so is a malformed id.
    let (_, ida) = app.user("ida", None).await;
    let r = app.call("DELETE", &format!("/api/v1/auth/tokens/{first_id}"), Some(&ida), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.call("DELETE", "/api/v1/auth/tokens/not-a-token", Some(&jwt), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(refresh(&app, &first).await, StatusCode::OK);

    let r = app.call("DELETE", &format!("/api/v1/auth/tokens/{first_id}"), Some(&hal), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(refresh(&app, &first).await, StatusCode::UNAUTHORIZED, "the revoked refresh token");
    assert_eq!(refresh(&app, &second).await, StatusCode::OK, "the other one still works");
    let r = app.call("DELETE", &format!("/api/v1/auth/tokens/{first_id}"), Some(&hal), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "revoked twice: {}", r.body);
    let list = app.call("GET", "/api/v1/auth/tokens?limit=1&sort=-createdAt", Some(&jwt), None).await.ok();
    assert_eq!((list["total"].as_u64(), list["limit"].as_u64()), (Some(2), Some(1)), "{list}");
    assert!(!ids(&list).contains(&first_id), "{list}");
    let r = app.call("GET", "/api/v1/auth/tokens?owner=admin", Some(&jwt), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "strict query: {}", r.body);
}

#[tokio::test]
async fn an_admin_changing_a_password_or_disabling_a_user_ends_every_session_of_that_user() {
    let app = TestApp::start().await;
    let (id, _) = app.user("jan", None).await;
    let (jwt, refresh_token, _) = session(&app, "jan", "jan-password").await;
    let me = format!("/api/v1/usermgmt/users/{id}");
    let patch = |body: Value| app.call("PATCH", &me, Some(&app.admin), Some(body));

    let r = patch(json!({"password": "short"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "policy: {}", r.body);
    assert!(r.body["message"].as_str().unwrap().starts_with("password: "), "{}", r.body);
    let r = patch(json!({"disabled": true, "colour": "red"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "strict body: {}", r.body);
    let r = app.call("PATCH", &me, Some(&jwt), Some(json!({"name": "Jan"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "users do not patch users: {}", r.body);
    let r = patch(json!({"name": "Jan Jansen"})).await.ok();
    assert_eq!(r["name"], "Jan Jansen");
    assert_eq!(app.call("GET", &me, Some(&jwt), None).await.status, StatusCode::OK, "a name change revokes nothing");

    let r = patch(json!({"password": "jan-new-long-secret"})).await.ok();
    assert_eq!(r["username"], "jan");
    assert_eq!(app.call("GET", &me, Some(&jwt), None).await.status, StatusCode::UNAUTHORIZED, "old access token");
    assert_eq!(refresh(&app, &refresh_token).await, StatusCode::UNAUTHORIZED, "old refresh token");
    let r = app.call("POST", "/api/v1/auth/tokens", None, Some(json!({"username": "jan", "password": "jan-password"})));
    assert_eq!(r.await.status, StatusCode::UNAUTHORIZED, "old password");

    let (jwt, refresh_token, _) = session(&app, "jan", "jan-new-long-secret").await;
    let r = patch(json!({"disabled": true})).await.ok();
    assert_eq!(r["disabled"], true, "{r}");
    assert_eq!(app.call("GET", &me, Some(&jwt), None).await.status, StatusCode::UNAUTHORIZED, "disabled: access");
    assert_eq!(refresh(&app, &refresh_token).await, StatusCode::UNAUTHORIZED, "disabled: refresh");
    let login = json!({"username": "jan", "password": "jan-new-long-secret"});
    let r = app.call("POST", "/api/v1/auth/tokens", None, Some(login.clone())).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a disabled user cannot log in: {}", r.body);
    assert_eq!(r.body["message"], "Wrong username or password.");

    let r = patch(json!({"disabled": false})).await.ok();
    assert!(r.get("disabled").is_none(), "enabled users show no flag: {r}");
    app.call("POST", "/api/v1/auth/tokens", None, Some(login)).await.ok();

    let admin_id = app.get("/api/v1/usermgmt/users?limit=1").await.ok()["resources"][0]["user_id"].clone();
    let r = app
        .call("PATCH", &format!("/api/v1/usermgmt/users/{}", admin_id.as_str().unwrap()), Some(&app.admin), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "an empty patch changes nothing: {}", r.body);
    let r = app
        .call(
            "PATCH",
            &format!("/api/v1/usermgmt/users/{}", admin_id.as_str().unwrap()),
            Some(&app.admin),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "admins cannot lock themselves out: {}", r.body);
    let r = app.call("PATCH", "/api/v1/usermgmt/users/local|nobody", Some(&app.admin), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[tokio::test]
async fn deleting_a_user_ends_their_sessions_memberships_and_acl_entries() {
    let app = TestApp::start().await;
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    let (id, jwt) = app.user("kim", Some("CCKM Users")).await;
    let (_, _, _) = session(&app, "kim", "kim-password").await;
    let grant = json!({"acls": [{"user_id": id, "permit": true, "actions": ["keybulkoperation"]}]});
    let kms = app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant).await.ok();
    assert_eq!(kms["acls"].as_array().unwrap().len(), 1, "{kms}");

    let r = app.call("DELETE", &format!("/api/v1/usermgmt/users/{id}"), Some(&jwt), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app.call("DELETE", &format!("/api/v1/usermgmt/users/{id}"), Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(r.body, Value::Null, "DELETE answers no body");

    let r = app.call("GET", "/api/v1/cckm/aws/kms", Some(&jwt), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the deleted user's token: {}", r.body);
    assert_eq!(app.get(&format!("/api/v1/usermgmt/users/{id}")).await.status, StatusCode::NOT_FOUND);
    let kms = app.get("/api/v1/cckm/aws/kms/acct").await.ok();
    assert_eq!(kms["acls"], json!([]), "the user's ACL entries went with the user: {kms}");
    let users = app.get("/api/v1/usermgmt/groups/CCKM Users").await.ok();
    assert_eq!(users["users_count"], 0, "{users}");
    let r = app.call("DELETE", &format!("/api/v1/usermgmt/users/{id}"), Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "deleted twice: {}", r.body);

    // The name is free again; the admin cannot delete themselves.
    app.user("kim", None).await;
    let me = app.get("/api/v1/usermgmt/users?limit=1").await.ok()["resources"][0]["user_id"].clone();
    let me = format!("/api/v1/usermgmt/users/{}", me.as_str().unwrap());
    assert_eq!(app.call("DELETE", &me, Some(&app.admin), None).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn groups_are_read_changed_and_deleted_with_their_memberships_and_acl_entries() {
    let app = TestApp::start().await;
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.post("/api/v1/usermgmt/groups", json!({"name": "ops", "description": "first"})).await.ok();
    let (id, jwt) = app.user("lee", Some("ops")).await;
    app.post(&format!("/api/v1/usermgmt/groups/CCKM Users/users/{id}"), json!({})).await.ok();
    let grant = json!({"acls": [{"group": "ops", "permit": true, "actions": ["keybulkoperation"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant).await.ok();

    let g = app.call("GET", "/api/v1/usermgmt/groups/ops", Some(&jwt), None).await.ok();
    assert_eq!((g["name"].as_str(), g["users_count"].as_i64()), (Some("ops"), Some(1)), "{g}");
    let r = app.call("PATCH", "/api/v1/usermgmt/groups/ops", Some(&jwt), Some(json!({"description": "x"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app.call("PATCH", "/api/v1/usermgmt/groups/ops", Some(&app.admin), Some(json!({"descr": "x"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let g = app.call("PATCH", "/api/v1/usermgmt/groups/ops", Some(&app.admin), Some(json!({"description": "second"})));
    assert_eq!(g.await.ok()["description"], "second");

    let r = app.call("DELETE", "/api/v1/usermgmt/groups/CCKM Users", Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "built-in groups stay: {}", r.body);
    let r = app.call("DELETE", "/api/v1/usermgmt/groups/ops", Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(app.get("/api/v1/usermgmt/groups/ops").await.status, StatusCode::NOT_FOUND);
    let user = app.get(&format!("/api/v1/usermgmt/users/{id}")).await.ok();
    assert_eq!(user["groups"], json!(["CCKM Users"]), "{user}");
    let kms = app.get("/api/v1/cckm/aws/kms/acct").await.ok();
    assert_eq!(kms["acls"], json!([]), "the group's ACL entries went with it: {kms}");
    // A new group of the same name starts with nothing.
    app.post("/api/v1/usermgmt/groups", json!({"name": "ops"})).await.ok();
    assert_eq!(app.get("/api/v1/usermgmt/groups/ops").await.ok()["users_count"], 0);
}

/// Two nodes on one PostgreSQL database: a user disabled through node A is refused by node B at once, and a
/// password changed through B ends the sessions A issued.
#[tokio::test]
async fn revocation_on_one_node_is_seen_by_another_within_a_second() {
    let a = TestApp::start().await;
    if !a.is_postgres() {
        eprintln!("skipped: several nodes need PostgreSQL (KEYFLEET_TEST_BACKEND=postgres)");
        return;
    }
    let b = TestApp::start_with(|args| *args = a.args()).await;
    let (id, _) = a.user("max", None).await;
    let (jwt, refresh_token, _) = session(&a, "max", "max-password").await;
    let me = format!("/api/v1/usermgmt/users/{id}");
    assert_eq!(b.call("GET", &me, Some(&jwt), None).await.status, StatusCode::OK, "B accepts A's token");

    a.call("PATCH", &me, Some(&a.admin), Some(json!({"disabled": true}))).await.ok();
    let revoked_at = Instant::now();
    let r = b.call("GET", &me, Some(&jwt), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "B refuses the disabled user's token: {}", r.body);
    assert!(revoked_at.elapsed() < Duration::from_secs(1), "within a second: {:?}", revoked_at.elapsed());
    assert_eq!(refresh(&b, &refresh_token).await, StatusCode::UNAUTHORIZED);

    b.call("PATCH", &me, Some(&b.admin), Some(json!({"disabled": false}))).await.ok();
    let (jwt, _, _) = session(&a, "max", "max-password").await;
    b.call("PATCH", &me, Some(&b.admin), Some(json!({"password": "max-second-long-secret"}))).await.ok();
    let changed_at = Instant::now();
    assert_eq!(a.call("GET", &me, Some(&jwt), None).await.status, StatusCode::UNAUTHORIZED, "A: the old session");
    assert!(changed_at.elapsed() < Duration::from_secs(1));
}

/// The status of listing bulk jobs with `jwt` (403 outside the CCKM groups).
async fn list_jobs_as(app: &TestApp, jwt: &str) -> StatusCode {
    app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(jwt), None).await.status
}

/// A token is checked once and then remembered until it expires; a change of what its holder may do shows
/// from the holder's next request on: on the node that made the change, and (PostgreSQL) on another node
/// that had remembered the token too.
#[tokio::test]
async fn a_remembered_token_follows_group_changes_from_the_next_request_on() {
    let app = TestApp::start().await;
    let (id, jwt) = app.user("nia", None).await;
    let member = format!("/api/v1/usermgmt/groups/CCKM Users/users/{id}");
    assert_eq!(list_jobs_as(&app, &jwt).await, StatusCode::FORBIDDEN, "in no CCKM group");
    assert_eq!(list_jobs_as(&app, &jwt).await, StatusCode::FORBIDDEN, "remembered");

    app.post(&member, json!({})).await.ok();
    assert_eq!(list_jobs_as(&app, &jwt).await, StatusCode::OK, "added to CCKM Users");
    assert_eq!(list_jobs_as(&app, &jwt).await, StatusCode::OK, "remembered");
    let r = app.call("DELETE", &member, Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(list_jobs_as(&app, &jwt).await, StatusCode::FORBIDDEN, "removed again");

    if !app.is_postgres() {
        return;
    }
    let b = TestApp::start_with(|args| *args = app.args()).await;
    assert_eq!(list_jobs_as(&b, &jwt).await, StatusCode::FORBIDDEN, "B checks the token");
    assert_eq!(list_jobs_as(&b, &jwt).await, StatusCode::FORBIDDEN, "B remembers it");
    app.post(&member, json!({})).await.ok();
    assert_eq!(list_jobs_as(&b, &jwt).await, StatusCode::OK, "B: added through A");
    let r = app.call("DELETE", &format!("/api/v1/usermgmt/users/{id}"), Some(&app.admin), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(list_jobs_as(&b, &jwt).await, StatusCode::UNAUTHORIZED, "B: deleted through A");
}
