//! A small axum server speaking CCKM's wire format (tokens, bulk jobs, error bodies), for the client
//! library's tests here and the CLI commands' tests in keyfleet-cli (which include this file by path).
#![allow(dead_code)] // each including test crate uses a part

use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfleet_client::{Client, ClientOptions};
use serde_json::{Value, json};

pub const JOB_ID: &str = "e612b64f-6364-48ce-92ec-c6dd608d7ad0";

/// A JWT the client can read `exp` from; the fake server compares tokens as strings.
pub fn jwt(exp: i64, n: u32) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"exp": exp, "jwtid": n.to_string()}).to_string());
    format!("{header}.{payload}.c2ln")
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Default)]
pub struct Fake {
    pub valid_jwt: String,
    pub refresh_token: String,
    pub issued: u32,
    /// "refresh", "password", "GET /path Bearer-ok|Bearer-bad", ... in arrival order.
    pub log: Vec<String>,
    pub polls: u32,
    pub last_query: Option<String>,
    /// Whether `.../events` is served (else 404, as from a server that predates it).
    pub events: bool,
}

pub type Shared = Arc<Mutex<Fake>>;

pub fn error(status: StatusCode, code: i32, desc: &str, message: &str) -> Response {
    let body = json!({"code": code, "codeDesc": desc, "message": message, "requestID": "req-1"});
    (status, Json(body)).into_response()
}

pub fn issue(fake: &mut Fake) -> Value {
    fake.issued += 1;
    fake.valid_jwt = jwt(now() + 300, fake.issued);
    json!({
        "jwt": fake.valid_jwt, "duration": 300, "token_type": "Bearer",
        "client_id": "11111111-1111-4111-8111-111111111111",
        "refresh_token": fake.refresh_token,
        "refresh_token_id": format!("22222222-2222-4222-8222-00000000000{}", fake.issued),
    })
}

pub async fn tokens(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    match body["grant_type"].as_str() {
        Some("password") => {
            fake.log.push("password".into());
            if body["username"] == "admin" && body["password"] == "secret" {
                fake.refresh_token = "r".repeat(64);
                Json(issue(&mut fake)).into_response()
            } else {
                error(StatusCode::UNAUTHORIZED, 5, "NCERRUnauthorizedAccess", "Wrong username or password.")
            }
        }
        Some("refresh_token") => {
            fake.log.push("refresh".into());
            if !fake.refresh_token.is_empty() && body["refresh_token"] == fake.refresh_token.as_str() {
                Json(issue(&mut fake)).into_response()
            } else {
                error(StatusCode::UNAUTHORIZED, 5, "NCERRUnauthorizedAccess", "Invalid refresh token.")
            }
        }
        _ => error(StatusCode::BAD_REQUEST, 9, "NCERRInvalidParamValue", "grant_type: unsupported"),
    }
}

/// Whether the request carries the valid JWT; logs the verdict.
pub fn authorized(fake: &mut Fake, headers: &HeaderMap, what: &str) -> bool {
    let expected = format!("Bearer {}", fake.valid_jwt);
    let ok = !fake.valid_jwt.is_empty()
        && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    fake.log.push(format!("{what} {}", if ok { "ok" } else { "rejected" }));
    ok
}

pub fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, 5, "NCERRUnauthorizedAccess", "Token is expired or invalid.")
}

pub fn job(status: &str, detailed: Value, abort: bool) -> Value {
    let mut job = json!({
        "id": JOB_ID, "uri": format!("kylo:kylo:cckm:bulkjob:{JOB_ID}"),
        "account": "kylo:kylo:admin:accounts:kylo",
        "createdAt": "2023-02-10T08:19:48.558869Z", "updatedAt": "2023-02-10T08:19:48.970377Z",
        "overall_status": status, "detailed_status": detailed, "abort": abort, "cloud": "aws",
        "keys": ["k1", "k2", "k3"], "operation": "disablekey"
    });
    if status != "in_progress" {
        job["completed_at"] = json!("2023-02-10T08:19:49.970204Z");
    }
    job
}

pub async fn create(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "POST bulkjob") {
        return unauthorized();
    }
    if let Some(days) = body["days"].as_i64()
        && !(7..=30).contains(&days)
    {
        return error(StatusCode::BAD_REQUEST, 9, "NCERRInvalidParamValue", "days: must be between 7 and 30");
    }
    (StatusCode::CREATED, Json(job("in_progress", json!({}), false))).into_response()
}

pub async fn list(State(s): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "GET bulkjobs") {
        return unauthorized();
    }
    fake.last_query = q;
    let jobs = vec![job("completed", json!({"k1": "Success"}), false)];
    Json(json!({"skip": 0, "limit": 10, "total": 1, "resources": jobs})).into_response()
}

/// The job finishes on the third poll with one success, one failure and one skip.
pub async fn get_job(State(s): State<Shared>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "GET bulkjob") {
        return unauthorized();
    }
    if id != JOB_ID {
        return error(StatusCode::NOT_FOUND, 16, "NCERRResourceNotFound", "bulkjob: no such job");
    }
    fake.polls += 1;
    // With events, the job is read once, at their end.
    let polls = if fake.events { 3 } else { fake.polls };
    let body = match polls {
        1 => job("in_progress", json!({}), false),
        2 => job("in_progress", json!({"k1": "Success"}), false),
        _ => job(
            "completed",
            json!({
                "k1": "Success",
                "k2": "Failed: KMSInvalidStateException: key is pending deletion",
                "k3": "Skipped: cancelled"
            }),
            false,
        ),
    };
    Json(body).into_response()
}

/// `.../events`: two progress events and the end, in one body.
pub async fn events(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut fake = s.lock().expect("lock");
    if !fake.events {
        return error(StatusCode::NOT_FOUND, 16, "NCERRResourceNotFound", "no such route");
    }
    if !authorized(&mut fake, &headers, "GET events") {
        return unauthorized();
    }
    let event = |kind: &str, status: &str, [succeeded, failed, skipped]: [i64; 3]| {
        let done = succeeded + failed + skipped;
        let id = format!("{status}.{done}");
        let counts = json!({"planned": 0, "pending": 3 - done, "running": 0,
            "succeeded": succeeded, "failed": failed, "skipped": skipped});
        let data = json!({"id": id, "bulkjob_id": JOB_ID, "overall_status": status, "total": 3, "done": done,
            "counts": counts, "percent": done as f64 * 100.0 / 3.0});
        format!(": keep-alive\n\nevent: {kind}\nid: {id}\ndata: {data}\n\n")
    };
    let body = [
        event("progress", "in_progress", [0, 0, 1]),
        event("progress", "in_progress", [1, 0, 1]),
        event("end", "completed", [1, 1, 1]),
    ]
    .concat();
    ([(axum::http::header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

pub async fn cancel(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "POST cancel") {
        return unauthorized();
    }
    Json(job("cancelled", json!({"k1": "Success"}), true)).into_response()
}

pub async fn start() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/auth/tokens", post(tokens))
        .route("/api/v1/cckm/aws/bulkjob", post(create).get(list))
        .route("/api/v1/cckm/aws/bulkjob/{id}", get(get_job))
        .route("/api/v1/cckm/aws/bulkjob/{id}/cancel", post(cancel))
        .route("/api/v1/cckm/aws/bulkjob/{id}/events", get(events))
        .route("/api/v1/things/{id}", delete(|| async { StatusCode::NO_CONTENT }))
        .with_state(shared.clone());
    // Bound here and handed over: the port cannot be taken by anyone else in between.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), shared)
}

pub fn client(url: &str) -> Client {
    let opts = ClientOptions { base_url: url.to_owned(), ..ClientOptions::default() };
    Client::new(&opts).expect("client")
}

pub fn log(s: &Shared) -> Vec<String> {
    s.lock().expect("lock").log.clone()
}

/// Makes the server accept `rt` as refresh token and nothing as JWT, as if the session had aged.
pub fn age_session(s: &Shared, rt: &str) {
    let mut fake = s.lock().expect("lock");
    fake.refresh_token = rt.to_owned();
    fake.valid_jwt = "no-jwt-is-valid-yet".to_owned();
}
