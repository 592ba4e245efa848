//! The console's session and form security, as a browser would meet it: cookie flags, CSRF refusals, sign-out
//! and token revocation ending the session, and the API's permissions (Audit for admins only).

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;
use crate::visitor::Visitor;

const SESSION: &str = "__Host-kf_session";

/// The `Set-Cookie` line of `name` in `lines`.
fn cookie_line<'a>(lines: &'a [String], name: &str) -> &'a str {
    lines.iter().find(|l| l.starts_with(&format!("{name}="))).unwrap_or_else(|| panic!("no {name} in {lines:?}"))
}

#[tokio::test]
async fn the_console_leads_to_sign_in_and_its_cookies_are_httponly_secure_and_strict() {
    let app = TestApp::start().await;
    let mut v = Visitor::new(&app.url);

    let root = v.get("/").await;
    assert!(root.status.is_redirection(), "{}", root.status);
    assert_eq!(root.location(), "/console/jobs");
    let jobs = v.get("/console/jobs?status=completed").await;
    assert_eq!(jobs.status, StatusCode::SEE_OTHER);
    assert_eq!(jobs.location(), "/console/login?next=%2Fconsole%2Fjobs%3Fstatus%3Dcompleted");

    let form = v.get("/console/login").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"<label for="username">Username</label>"#), "{}", form.body);
    assert!(form.body.contains(r#"<label for="password">Password</label>"#), "{}", form.body);
    let login = cookie_line(&form.set_cookies(), "__Host-kf_login").to_string();
    for flag in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(login.contains(flag), "{flag} missing: {login}");
    }
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");

    let csrf = form.csrf();
    let wrong = v.post("/console/login", &[("username", "admin"), ("password", "nope"), ("csrf", &csrf)]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong username or password."), "{}", wrong.body);
    assert!(!v.cookies.contains_key(SESSION));

    let signed = v.sign_in("admin", ADMIN_PASSWORD).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.body);
    assert_eq!(signed.location(), "/console/jobs");
    let session = cookie_line(&signed.set_cookies(), SESSION).to_string();
    assert_eq!(
        session.split_once(';').unwrap().1.trim(),
        "Path=/; Secure; HttpOnly; SameSite=Strict",
        "a session cookie (no Max-Age) with every flag: {session}"
    );
    // The cookie is sealed: neither the tokens nor the password are readable in it.
    let value = v.cookies[SESSION].clone();
    assert!(!value.contains("eyJ") && !value.contains(ADMIN_PASSWORD), "{value}");
    let jobs = v.get("/console/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK, "{}", jobs.body);
    assert!(jobs.body.contains("Signed in as <strong>admin</strong>"), "{}", jobs.body);

    // A changed cookie is no session.
    let mut forged = Visitor::new(&app.url);
    let mut tampered = value.clone();
    tampered.replace_range(10..11, if &value[10..11] == "A" { "B" } else { "A" });
    forged.cookies.insert(SESSION.into(), tampered);
    assert_eq!(forged.get("/console/jobs").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let app = TestApp::start().await;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", 2);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    app.sync("acct").await;
    let mut v = Visitor::new(&app.url);
    v.sign_in("admin", ADMIN_PASSWORD).await;
    let form = v.get("/console/jobs/new").await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.body);
    let csrf = form.csrf();
    let plan = [("cloud", "aws"), ("operation", "disablekey"), ("containers", "acct")];

    let without = v.post("/console/jobs/new", &plan).await;
    assert_eq!(without.status, StatusCode::FORBIDDEN, "{}", without.body);
    let mut wrong = plan.to_vec();
    wrong.push(("csrf", "not-the-token"));
    assert_eq!(v.post("/console/jobs/new", &wrong).await.status, StatusCode::FORBIDDEN);
    // Another session's token is as wrong as any.
    let mut other = Visitor::new(&app.url);
    other.sign_in("admin", ADMIN_PASSWORD).await;
    let theirs = other.get("/console/jobs/new").await.csrf();
    assert_ne!(theirs, csrf);
    let mut foreign = plan.to_vec();
    foreign.push(("csrf", &theirs));
    assert_eq!(v.post("/console/jobs/new", &foreign).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/api/v1/cckm/aws/bulkjob").await.ok()["total"], 0, "a refused form creates nothing");
    // Sign-out is a form too: without the token the session goes on.
    assert_eq!(v.post("/console/logout", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(v.get("/console/jobs").await.status, StatusCode::OK);
    // The sign-in form's token is checked before the password.
    let mut fresh = Visitor::new(&app.url);
    let no_token = fresh.post("/console/login", &[("username", "admin"), ("password", ADMIN_PASSWORD)]).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN, "{}", no_token.body);
    assert!(!fresh.cookies.contains_key(SESSION));

    // A request the API refuses comes back as the form, filled in, with the API's message.
    let azure = [("cloud", "azure"), ("operation", "delete-key-backups"), ("vault", ""), ("csrf", &csrf)];
    let refused = v.post("/console/jobs/new", &azure).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body.contains("selects nothing"), "{}", refused.body);
    assert!(refused.body.contains(r#"<option value="azure" selected>"#), "{}", refused.body);

    // With the token, the same form plans the job.
    let mut right = plan.to_vec();
    right.push(("csrf", &csrf));
    let planned = v.post("/console/jobs/new", &right).await;
    assert_eq!(planned.status, StatusCode::SEE_OTHER, "{}", planned.body);
    assert!(planned.location().starts_with("/console/jobs/aws/"), "{}", planned.location());
    let jobs = app.get("/api/v1/cckm/aws/bulkjob").await.ok();
    assert_eq!(jobs["total"], 1);
    assert_eq!(jobs["resources"][0]["overall_status"], "planned");
}

#[tokio::test]
async fn signing_out_or_revoking_the_tokens_ends_the_session() {
    let app = TestApp::start().await;
    let (user_id, _) = app.user("ops", Some("CCKM Users")).await;
    let password = "ops-password";

    // Signing out revokes the session's refresh token: a copy of the cookie is worthless afterwards.
    let mut v = Visitor::new(&app.url);
    v.sign_in("ops", password).await;
    let kept = v.cookies[SESSION].clone();
    let csrf = v.get("/console/jobs").await.csrf();
    let out = v.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/console/login?signed_out=1");
    assert!(!v.cookies.contains_key(SESSION), "the cookie is deleted");
    let mut replay = Visitor::new(&app.url);
    replay.cookies.insert(SESSION.into(), kept);
    let r = replay.get("/console/jobs").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with("/console/login"), "{}", r.location());

    // Revoking the session's refresh token through the API ends it at once.
    let mut v = Visitor::new(&app.url);
    v.sign_in("ops", password).await;
    assert_eq!(v.get("/console/jobs").await.status, StatusCode::OK);
    let api = app
        .call("POST", "/api/v1/auth/tokens", None, Some(json!({"username": "ops", "password": password})))
        .await
        .ok();
    let token = api["jwt"].as_str().unwrap();
    let mine = app.call("GET", "/api/v1/auth/tokens?limit=100", Some(token), None).await.ok();
    // Every refresh token of the user but the API client's own: the console session's is among them.
    let others: Vec<&str> = mine["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .filter(|id| *id != api["refresh_token_id"].as_str().unwrap())
        .collect();
    assert!(!others.is_empty(), "{mine}");
    for id in others {
        let r = app.call("DELETE", &format!("/api/v1/auth/tokens/{id}"), Some(token), None).await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    let r = v.get("/console/jobs").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(r.location().starts_with("/console/login"));

    // So does an admin disabling the user (every token of the user is revoked).
    let mut v = Visitor::new(&app.url);
    v.sign_in("ops", password).await;
    assert_eq!(v.get("/console/jobs").await.status, StatusCode::OK);
    let r = app
        .call("PATCH", &format!("/api/v1/usermgmt/users/{user_id}"), Some(&app.admin), Some(json!({"disabled": true})))
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let r = v.get("/console/jobs").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // An event stream or a form is refused, not redirected.
    let r = v.post("/console/jobs/new", &[("csrf", "x")]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn audit_is_for_admins_only_as_in_the_api() {
    let app = TestApp::start().await;
    app.user("ops", Some("CCKM Users")).await;
    let mut ops = Visitor::new(&app.url);
    ops.sign_in("ops", "ops-password").await;
    let jobs = ops.get("/console/jobs").await;
    assert_eq!(jobs.status, StatusCode::OK);
    assert!(!jobs.body.contains("/console/audit"), "no Audit link for a non-admin");
    let audit = ops.get("/console/audit").await;
    assert_eq!(audit.status, StatusCode::FORBIDDEN, "{}", audit.body);
    assert!(!audit.body.contains("<table"), "{}", audit.body);

    let mut admin = Visitor::new(&app.url);
    admin.sign_in("admin", ADMIN_PASSWORD).await;
    assert!(admin.get("/console/jobs").await.body.contains(r#"href="/console/audit""#));
    let audit = admin.get("/console/audit?action=user.create").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    assert!(audit.body.contains("user.create"), "{}", audit.body);
    assert!(!audit.body.contains("auth.login<"), "the filter applies: {}", audit.body);
}
