//! The audit trail over HTTP: changes and logins are recorded with user, client address and request id;
//! `GET /v1/audit/records` filters and pages them for admins; a change whose record cannot be written is not
//! made (fail closed); and the request context reaches the answer (`X-Request-Id`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn records(app: &TestApp, query: &str) -> Value {
    app.get(&format!("/api/v1/audit/records?{query}")).await.ok()
}

fn actions(list: &Value) -> Vec<String> {
    list["resources"].as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn changes_and_logins_are_recorded_with_user_client_and_request_id() {
    let app = TestApp::start().await;
    // A change made with our own request id.
    let resp = app
        .http
        .post(format!("{}/api/v1/usermgmt/users", app.url))
        .bearer_auth(&app.admin)
        .header("X-Request-Id", "audit-test-0001")
        .json(&json!({"username": "nina", "password": "nina-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["x-request-id"], "audit-test-0001", "an incoming X-Request-Id is kept and echoed");
    let nina: Value = resp.json().await.unwrap();
    let nina_id = nina["user_id"].as_str().unwrap().trim_start_matches("local|").to_string();

    app.post("/api/v1/usermgmt/groups", json!({"name": "auditors"})).await.ok();
    app.post(&format!("/api/v1/usermgmt/groups/auditors/users/local|{nina_id}"), json!({})).await.ok();
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    let acl = json!({"acls": [{"group": "auditors", "permit": true, "actions": ["keybulkoperation"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", acl).await.ok();
    let wrong = json!({"username": "nina", "password": "not-her-password"});
    assert_eq!(app.call("POST", "/api/v1/auth/tokens", None, Some(wrong)).await.status, StatusCode::UNAUTHORIZED);
    let nina_token = app.login("nina", "nina-password").await;

    let all = records(&app, "limit=100").await;
    let acts = actions(&all);
    for expected in [
        "auth.login",
        "user.create",
        "group.create",
        "group.member.add",
        "connection.create",
        "kms.create",
        "acl.update",
    ] {
        assert!(acts.contains(&expected.to_string()), "{expected} is recorded: {acts:?}");
    }
    assert_eq!(all["total"].as_u64().unwrap() as usize, acts.len(), "{all}");

    let created = records(&app, "action=user.create&resource=user:").await;
    assert_eq!(created["total"], 0, "filters match whole values: {created}");
    let created = records(&app, &format!("action=user.create&resource=user:{nina_id}")).await;
    assert_eq!(created["total"], 1, "{created}");
    let r = &created["resources"][0];
    assert_eq!((r["user"].as_str(), r["client"].as_str()), (Some("admin"), Some("127.0.0.1")), "{r}");
    assert_eq!(r["request_id"], "audit-test-0001", "{r}");
    assert_eq!(r["outcome"], "success");
    assert!(r["details"].as_str().unwrap().contains("nina"), "{r}");
    assert_eq!(r["hash"].as_str().unwrap().len(), 64, "{r}");

    // Logins: the refused one with the name tried, the successful one with the user.
    let logins = records(&app, "action=auth.login&user=nina").await;
    let outcomes: Vec<&str> =
        logins["resources"].as_array().unwrap().iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["failure", "success"], "{logins}");
    assert!(logins["resources"][0]["details"].as_str().unwrap().contains("wrong"), "{logins}");

    // Time range, paging and order: the chain's by default, newest first on request.
    let first = &all["resources"][0];
    let since = first["at"].as_str().unwrap();
    let later = records(&app, &format!("since={since}&limit=2&skip=1")).await;
    assert_eq!(later["resources"][0]["seq"], all["resources"][1]["seq"], "{later}");
    assert_eq!(later["limit"], 2);
    let none = records(&app, &format!("until={since}")).await;
    assert_eq!(none["total"], 0, "until is exclusive: {none}");
    let newest = records(&app, "sort=-seq&limit=1").await;
    assert_eq!(newest["resources"][0]["seq"], all["total"], "{newest}");
    // Each record links to the one before.
    for pair in all["resources"].as_array().unwrap().windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }

    // Admins only; strict query.
    let r = app.call("GET", "/api/v1/audit/records", Some(&nina_token), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    for bad in ["usr=admin", "since=yesterday", "sort=hash", "limit=5000"] {
        let r = app.get(&format!("/api/v1/audit/records?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }
}

#[tokio::test]
async fn a_request_without_a_usable_request_id_gets_a_new_one() {
    let app = TestApp::start().await;
    for sent in [None, Some("has spaces in it"), Some(&*"x".repeat(200))] {
        let mut req = app.http.get(format!("{}/healthz", app.url));
        if let Some(s) = sent {
            req = req.header("X-Request-Id", s);
        }
        let resp = req.send().await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(id.len(), 36, "a UUID instead of {sent:?}: {id}");
    }
    // Error bodies carry the kept id too.
    let resp = app.http.get(format!("{}/api/v1/nothing", app.url)).header("X-Request-Id", "mine-42").send().await;
    let body: Value = resp.unwrap().json().await.unwrap();
    assert_eq!(body["requestID"], "mine-42", "{body}");
}

/// Fail closed: with appends to the audit table refused by the database, a change is refused as a whole.
#[tokio::test]
async fn a_change_whose_record_cannot_be_written_is_not_made() {
    let mut app = TestApp::start().await;
    if app.is_postgres() {
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::PgConnection::connect(app.args().database_url.as_deref().unwrap()).await.unwrap();
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await
        .unwrap();
    } else {
        app.stop().await;
        use sqlx::{Connection, Executor};
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display())).await.unwrap();
        // Logins still pass, so that the restarted app can log its admin in.
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON audit_records WHEN NEW.action != 'auth.login' \
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        )
        .await
        .unwrap();
        conn.close().await.unwrap();
        app.restart().await;
    }
    let r = app.post("/api/v1/usermgmt/users", json!({"username": "olga", "password": "olga-password"})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    let r = app.post("/api/v1/usermgmt/groups", json!({"name": "nobody-sees-this"})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    let users = app.get("/api/v1/usermgmt/users").await.ok();
    assert_eq!(users["total"], 1, "only admin: the user was not created without its record: {users}");
    assert_eq!(app.get("/api/v1/usermgmt/groups/nobody-sees-this").await.status, StatusCode::NOT_FOUND);
}
