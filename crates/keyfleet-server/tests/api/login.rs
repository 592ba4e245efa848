//! Login throttling per username and per client address, and the bounded password-hashing pool.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{ADMIN_PASSWORD, Reply, TestApp};

async fn try_login(app: &TestApp, user: &str, password: &str) -> (Reply, Option<u64>) {
    let resp = app
        .http
        .post(format!("{}/api/v1/auth/tokens", app.url))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("request");
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let status = resp.status();
    let body = resp.json().await.unwrap_or_default();
    (Reply { status, body }, retry_after)
}

fn assert_throttled(reply: &Reply, retry_after: Option<u64>) {
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS, "{}", reply.body);
    assert_eq!(reply.body["codeDesc"], "NCERRTooManyRequests", "{}", reply.body);
    assert_eq!(reply.body["code"], 22, "{}", reply.body);
    assert!(reply.body["requestID"].is_string(), "{}", reply.body);
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After: {retry_after:?}");
}

#[tokio::test]
async fn five_wrong_passwords_throttle_the_username_even_for_the_right_one() {
    let app = TestApp::start_with(|a| a.login_delay_base_ms = Some(1500)).await;
    app.user("carol", None).await;
    for attempt in 1..=5 {
        let (r, retry) = try_login(&app, "carol", "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {attempt}: {}", r.body);
        assert_eq!(retry, None);
    }
    let (r, retry) = try_login(&app, "carol", "wrong-password").await;
    assert_throttled(&r, retry);
    assert_eq!(retry, Some(2), "1.5 s rounds up");
    let refused_at = Instant::now();
    let (r, retry) = try_login(&app, "carol", "carol-password").await;
    assert_throttled(&r, retry);

    // Other users are not affected.
    app.login("admin", ADMIN_PASSWORD).await;

    tokio::time::sleep(Duration::from_millis(1600).saturating_sub(refused_at.elapsed())).await;
    let (r, _) = try_login(&app, "carol", "carol-password").await;
    assert_eq!(r.status, StatusCode::OK, "after the delay: {}", r.body);
}

#[tokio::test]
async fn the_delay_doubles_with_each_further_failure() {
    let app = TestApp::start_with(|a| {
        a.login_failures_before_delay = Some(2);
        a.login_delay_base_ms = Some(300);
    })
    .await;
    app.user("dave", None).await;
    for _ in 0..2 {
        try_login(&app, "dave", "wrong-password").await;
    }
    assert!(try_login(&app, "dave", "dave-password").await.1.is_some(), "throttled after 2");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (r, _) = try_login(&app, "dave", "wrong-password").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "allowed again after 300 ms");
    // The third failure waits 600 ms: still refused after 400.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (r, retry) = try_login(&app, "dave", "dave-password").await;
    assert_throttled(&r, retry);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(try_login(&app, "dave", "dave-password").await.0.status, StatusCode::OK);
}

#[tokio::test]
async fn one_address_guessing_many_usernames_is_throttled() {
    let app = TestApp::start_with(|a| {
        a.login_address_failures_before_delay = Some(6);
        a.login_delay_base_ms = Some(60_000);
    })
    .await;
    for i in 0..6 {
        let (r, _) = try_login(&app, &format!("nobody{i}"), "guess-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    // A username never tried before, and even a right password, from the same address.
    let (r, retry) = try_login(&app, "admin", ADMIN_PASSWORD).await;
    assert_throttled(&r, retry);
    assert_eq!(retry, Some(60));
}

#[tokio::test]
async fn a_successful_login_resets_the_username_counter() {
    let app = TestApp::start().await;
    app.user("erin", None).await;
    for _ in 0..4 {
        assert_eq!(try_login(&app, "erin", "wrong-password").await.0.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(try_login(&app, "erin", "erin-password").await.0.status, StatusCode::OK);
    for attempt in 1..=4 {
        let (r, _) = try_login(&app, "erin", "wrong-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {attempt} after a success: {}", r.body);
    }
}

#[tokio::test]
async fn hashing_beyond_the_queue_is_refused_while_healthz_answers() {
    let app = TestApp::start_with(|a| {
        a.password_hash_concurrency = Some(1);
        a.password_hash_queue = Some(2);
        a.login_address_failures_before_delay = Some(1000);
    })
    .await;
    let logins: Vec<_> = (0..24)
        .map(|i| {
            let (http, url) = (app.http.clone(), app.url.clone());
            tokio::spawn(async move {
                let resp = http
                    .post(format!("{url}/api/v1/auth/tokens"))
                    .json(&json!({"username": format!("flood{i}"), "password": "wrong-password"}))
                    .send()
                    .await
                    .expect("request");
                (resp.status(), resp.headers().get("retry-after").is_some())
            })
        })
        .collect();
    let started = Instant::now();
    let health = app.call("GET", "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(2), "/healthz took {:?}", started.elapsed());
    let mut busy = 0;
    for login in logins {
        let (status, retry_after) = login.await.expect("join");
        match status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(retry_after, "503 without Retry-After");
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "24 concurrent logins with 1 hashing slot and a queue of 2: some must be refused");
}

#[tokio::test]
async fn new_passwords_follow_the_policy() {
    let app = TestApp::start().await;
    for (password, why) in [
        ("short-pw", "must be at least 12 characters"),
        ("Password1234", "commonly used"),
        ("frank-the-user", "must not be the username"),
    ] {
        let r = app.post("/api/v1/usermgmt/users", json!({"username": "frank-the-user", "password": password})).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{password}: {}", r.body);
        let message = r.body["message"].as_str().unwrap();
        assert!(message.starts_with("password: ") && message.contains(why), "{password}: {message}");
    }
    let r = app.post("/api/v1/usermgmt/users", json!({"username": "frank-the-user", "password": "twelve-chars"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn first_start_with_a_weak_admin_password_fails_clearly() {
    for weak in ["admin", "password1234"] {
        let dir = tempfile::tempdir().unwrap();
        let args = keyfleet_server::ServeArgs {
            data_dir: Some(dir.path().join("data")),
            admin_password: Some(weak.into()),
            database_url: crate::support::test_database().await,
            ..Default::default()
        };
        let config = keyfleet_server::Config::resolve(args).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let connector = std::sync::Arc::new(keyfleet_clouds::SdkConnector::default());
        let Err(err) = keyfleet_server::start(config, listener, connector).await else {
            panic!("started with admin password {weak:?}")
        };
        let err = format!("{err:#}");
        assert!(err.contains("KEYFLEET_ADMIN_PASSWORD") && err.contains("weak"), "{err}");
    }
}

#[tokio::test]
async fn changing_the_password_revokes_every_token_of_the_user() {
    let app = TestApp::start().await;
    let (id, _) = app.user("grace", None).await;
    let tokens = app
        .call("POST", "/api/v1/auth/tokens", None, Some(json!({"username": "grace", "password": "grace-password"})))
        .await
        .ok();
    let (jwt, refresh) = (tokens["jwt"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    let me = format!("/api/v1/usermgmt/users/{id}");
    assert_eq!(app.call("GET", &me, Some(jwt), None).await.status, StatusCode::OK);

    let change = |current: &str, new: &str| json!({"username": "grace", "password": current, "new_password": new});
    let r = app.call("PATCH", "/api/v1/auth/changepw", None, Some(change("wrong-password", "grace-new-secret"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = app.call("PATCH", "/api/v1/auth/changepw", None, Some(change("grace-password", "short"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body["message"].as_str().unwrap().starts_with("new_password: "), "{}", r.body);
    assert_eq!(app.call("GET", &me, Some(jwt), None).await.status, StatusCode::OK, "refused changes revoke nothing");

    let r = app.call("PATCH", "/api/v1/auth/changepw", None, Some(change("grace-password", "grace-new-secret"))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    let r = app.call("GET", &me, Some(jwt), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the old access token: {}", r.body);
    let r = app
        .call(
            "POST",
            "/api/v1/auth/tokens",
            None,
            Some(json!({"grant_type": "refresh_token", "refresh_token": refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the old refresh token: {}", r.body);
    assert_eq!(try_login(&app, "grace", "grace-password").await.0.status, StatusCode::UNAUTHORIZED);
    let fresh = app.login("grace", "grace-new-secret").await;
    assert_eq!(app.call("GET", &me, Some(&fresh), None).await.status, StatusCode::OK);
    // Other users' tokens are untouched.
    assert_eq!(app.get("/api/v1/usermgmt/users").await.status, StatusCode::OK);
}
