//! The client against a small axum server speaking CCKM's wire format: tokens, refresh on 401 and before
//! expiry, error bodies. (The CLI commands built on it are tested in keyfleet-cli.)

#[path = "support/cckm.rs"]
mod cckm;

use keyfleet_api_types::bulkjob::{BulkJobListQuery, CreateAwsBulkJob};
use keyfleet_client::{ClientError, Method};
use serde_json::Value;
use std::sync::{Arc, Mutex};

use cckm::*;

#[tokio::test]
async fn login_and_typed_bulkjob_calls() {
    let (url, s) = start().await;
    let client = client(&url);
    let tokens = client.login("admin", "secret").await.expect("login");
    assert_eq!(tokens.refresh_token.len(), 64);
    assert_eq!(client.jwt().as_deref(), Some(tokens.jwt.as_str()));

    let req = CreateAwsBulkJob {
        operation: Some("disablekey".into()),
        keys: Some(vec!["k1".into(), "k2".into(), "k3".into()]),
        ..CreateAwsBulkJob::default()
    };
    let job = client.create_aws_bulkjob(&req).await.expect("create");
    assert_eq!((job.id.as_str(), job.overall_status.as_str()), (JOB_ID, "in_progress"));

    let got = client.get_aws_bulkjob(JOB_ID).await.expect("get");
    assert_eq!(got.keys.len(), 3);

    let query =
        BulkJobListQuery { overall_status: Some("completed".into()), limit: Some(5), ..BulkJobListQuery::default() };
    let list = client.list_aws_bulkjobs(&query).await.expect("list");
    assert_eq!((list.total, list.resources.len()), (1, 1));
    let sent = s.lock().expect("lock").last_query.clone().unwrap_or_default();
    let mut params: Vec<&str> = sent.split('&').collect();
    params.sort_unstable();
    assert_eq!(params, vec!["limit=5", "overall_status=completed"]);

    let cancelled = client.cancel_aws_bulkjob(JOB_ID).await.expect("cancel");
    assert!(cancelled.abort);
    assert_eq!(log(&s), vec!["password", "POST bulkjob ok", "GET bulkjob ok", "GET bulkjobs ok", "POST cancel ok"]);
}

#[tokio::test]
async fn error_bodies_become_typed_errors() {
    let (url, _s) = start().await;
    let client = client(&url);

    let err = client.login("admin", "wrong").await.expect_err("bad password");
    assert_eq!(err.to_string(), "401 NCERRUnauthorizedAccess: Wrong username or password.");

    client.login("admin", "secret").await.expect("login");
    let req = CreateAwsBulkJob {
        operation: Some("schedulekeydeletion".into()),
        keys: Some(vec!["k1".into()]),
        days: Some(3),
        ..CreateAwsBulkJob::default()
    };
    let err = client.create_aws_bulkjob(&req).await.expect_err("days out of range");
    match &err {
        ClientError::Api { status, body } => {
            assert_eq!(*status, 400);
            assert_eq!(body.code, 9);
            assert_eq!(body.code_desc, "NCERRInvalidParamValue");
            assert_eq!(body.request_id, "req-1");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert_eq!(
        format!("error: {:#}", anyhow::Error::from(err)),
        "error: 400 NCERRInvalidParamValue: days: must be between 7 and 30"
    );

    let err = client.get_aws_bulkjob("nope").await.expect_err("404");
    assert_eq!(err.status(), Some(404));
    // An id with a slash stays one path segment instead of reaching another route.
    let err = client.get_aws_bulkjob("x/cancel").await.expect_err("404");
    assert_eq!(err.status(), Some(404));
}

#[tokio::test]
async fn a_401_refreshes_once_and_retries() {
    let (url, s) = start().await;
    age_session(&s, "rt-1");
    let refreshed = Arc::new(Mutex::new(Vec::new()));
    let seen = refreshed.clone();
    let client = client(&url)
        .with_tokens("opaque-old-token", Some("rt-1".into()))
        .on_token_refresh(move |t| seen.lock().expect("lock").push(t.jwt.clone()));

    let job = client.get_aws_bulkjob(JOB_ID).await.expect("get after refresh");
    assert_eq!(job.id, JOB_ID);
    assert_eq!(log(&s), vec!["GET bulkjob rejected", "refresh", "GET bulkjob ok"]);
    let new_jwt = s.lock().expect("lock").valid_jwt.clone();
    assert_eq!(*refreshed.lock().expect("lock"), vec![new_jwt.clone()]);
    assert_eq!(client.jwt(), Some(new_jwt));
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_request() {
    let (url, s) = start().await;
    age_session(&s, "rt-1");
    let client = client(&url).with_tokens(jwt(now() + 10, 0), Some("rt-1".into()));
    client.get_aws_bulkjob(JOB_ID).await.expect("get");
    assert_eq!(log(&s), vec!["refresh", "GET bulkjob ok"]);

    // A fresh token is used as it is.
    client.get_aws_bulkjob(JOB_ID).await.expect("get again");
    assert_eq!(log(&s).len(), 3);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let (url, s) = start().await;
    age_session(&s, "rt-1");
    let client = client(&url).with_tokens("opaque-old-token", Some("revoked".into()));
    let err = client.get_aws_bulkjob(JOB_ID).await.expect_err("must fail");
    assert!(matches!(err, ClientError::SessionExpired(_)), "{err:?}");
    assert!(err.to_string().contains("keyfleet login"), "{err}");
    assert_eq!(log(&s), vec!["GET bulkjob rejected", "refresh"]);

    // Without a refresh token, a 401 is just an error: nothing to retry with.
    let client = self::client(&url).with_tokens("opaque-old-token", None);
    let err = client.get_aws_bulkjob(JOB_ID).await.expect_err("must fail");
    assert_eq!(err.status(), Some(401));
    assert_eq!(log(&s).len(), 3);
}

#[tokio::test]
async fn generic_requests_accept_bare_v1_paths_and_empty_answers() {
    let (url, _s) = start().await;
    let client = client(&url);
    client.login("admin", "secret").await.expect("login");
    let answer = client.request(Method::GET, "/v1/cckm/aws/bulkjob?limit=1", None).await.expect("get");
    assert_eq!(answer["total"], 1);
    let answer = client.request(Method::DELETE, "/api/v1/things/1", None).await.expect("delete");
    assert_eq!(answer, Value::Null);
}
