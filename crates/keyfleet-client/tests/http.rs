//! The client against a small axum server speaking CCKM's wire format: tokens, refresh on 401 and before
//! expiry, error bodies, and the CLI commands end to end (session file included).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use keyfleet_api_types::bulkjob::{BulkJobListQuery, CreateAwsBulkJob};
use keyfleet_client::{Client, ClientCommand, ClientConfig, ClientError, ClientGlobalArgs, ClientOptions, Method};
use serde_json::{Value, json};

const JOB_ID: &str = "e612b64f-6364-48ce-92ec-c6dd608d7ad0";

/// A JWT the client can read `exp` from; the fake server compares tokens as strings.
fn jwt(exp: i64, n: u32) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(json!({"exp": exp, "jwtid": n.to_string()}).to_string());
    format!("{header}.{payload}.c2ln")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Default)]
struct Fake {
    valid_jwt: String,
    refresh_token: String,
    issued: u32,
    /// "refresh", "password", "GET /path Bearer-ok|Bearer-bad", ... in arrival order.
    log: Vec<String>,
    polls: u32,
    last_query: Option<String>,
}

type Shared = Arc<Mutex<Fake>>;

fn error(status: StatusCode, code: i32, desc: &str, message: &str) -> Response {
    let body = json!({"code": code, "codeDesc": desc, "message": message, "requestID": "req-1"});
    (status, Json(body)).into_response()
}

fn issue(fake: &mut Fake) -> Value {
    fake.issued += 1;
    fake.valid_jwt = jwt(now() + 300, fake.issued);
    json!({
        "jwt": fake.valid_jwt, "duration": 300, "token_type": "Bearer",
        "client_id": "11111111-1111-4111-8111-111111111111",
        "refresh_token": fake.refresh_token,
        "refresh_token_id": format!("22222222-2222-4222-8222-00000000000{}", fake.issued),
    })
}

async fn tokens(State(s): State<Shared>, Json(body): Json<Value>) -> Response {
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
fn authorized(fake: &mut Fake, headers: &HeaderMap, what: &str) -> bool {
    let expected = format!("Bearer {}", fake.valid_jwt);
    let ok = !fake.valid_jwt.is_empty()
        && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str());
    fake.log.push(format!("{what} {}", if ok { "ok" } else { "rejected" }));
    ok
}

fn unauthorized() -> Response {
    error(StatusCode::UNAUTHORIZED, 5, "NCERRUnauthorizedAccess", "Token is expired or invalid.")
}

fn job(status: &str, detailed: Value, abort: bool) -> Value {
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

async fn create(State(s): State<Shared>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
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

async fn list(State(s): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "GET bulkjobs") {
        return unauthorized();
    }
    fake.last_query = q;
    let jobs = vec![job("completed", json!({"k1": "Success"}), false)];
    Json(json!({"skip": 0, "limit": 10, "total": 1, "resources": jobs})).into_response()
}

/// The job finishes on the third poll with one success, one failure and one skip.
async fn get_job(State(s): State<Shared>, headers: HeaderMap, UrlPath(id): UrlPath<String>) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "GET bulkjob") {
        return unauthorized();
    }
    if id != JOB_ID {
        return error(StatusCode::NOT_FOUND, 16, "NCERRResourceNotFound", "bulkjob: no such job");
    }
    fake.polls += 1;
    let body = match fake.polls {
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

async fn cancel(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let mut fake = s.lock().expect("lock");
    if !authorized(&mut fake, &headers, "POST cancel") {
        return unauthorized();
    }
    Json(job("cancelled", json!({"k1": "Success"}), true)).into_response()
}

async fn start() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let app = Router::new()
        .route("/api/v1/auth/tokens", post(tokens))
        .route("/api/v1/cckm/aws/bulkjob", post(create).get(list))
        .route("/api/v1/cckm/aws/bulkjob/{id}", get(get_job))
        .route("/api/v1/cckm/aws/bulkjob/{id}/cancel", post(cancel))
        .route("/api/v1/things/{id}", delete(|| async { StatusCode::NO_CONTENT }))
        .with_state(shared.clone());
    // Bound here and handed over: the port cannot be taken by anyone else in between.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), shared)
}

fn client(url: &str) -> Client {
    let opts = ClientOptions { base_url: url.to_owned(), ..ClientOptions::default() };
    Client::new(&opts).expect("client")
}

fn log(s: &Shared) -> Vec<String> {
    s.lock().expect("lock").log.clone()
}

/// Makes the server accept `rt` as refresh token and nothing as JWT, as if the session had aged.
fn age_session(s: &Shared, rt: &str) {
    let mut fake = s.lock().expect("lock");
    fake.refresh_token = rt.to_owned();
    fake.valid_jwt = "no-jwt-is-valid-yet".to_owned();
}

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

/// The binary's shape: global args plus the flattened client commands.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    global: ClientGlobalArgs,
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    #[command(flatten)]
    Client(ClientCommand),
    /// Stands for the server's own subcommand, whose `--config` must not collide with ours.
    Serve {
        #[arg(long)]
        config: Option<String>,
    },
}

async fn cli(config: &Path, args: &[&str]) -> anyhow::Result<std::process::ExitCode> {
    let mut argv = vec!["keyfleet", "--config", config.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv)?;
    match cli.command {
        Top::Client(cmd) => keyfleet_client::run(cmd, &cli.global).await,
        Top::Serve { .. } => unreachable!("not a client command"),
    }
}

fn code(c: std::process::ExitCode) -> String {
    format!("{c:?}")
}

#[test]
fn the_command_line_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[tokio::test]
async fn cli_login_saves_a_private_session_and_commands_use_it() {
    let (url, s) = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("keyfleet").join("client.json");

    let err = cli(&config, &["aws", "bulkjob", "get", JOB_ID]).await.expect_err("not logged in");
    assert!(format!("{err:#}").contains("keyfleet login"), "{err:#}");

    let status = cli(&config, &["login", "--url", &url, "--password", "secret"]).await.expect("login");
    assert_eq!(code(status), code(std::process::ExitCode::SUCCESS));
    let mode = std::fs::metadata(&config).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved = ClientConfig::load(&config).expect("load").expect("saved");
    assert_eq!((saved.url.as_str(), saved.username.as_str()), (url.as_str(), "admin"));
    assert!(!std::fs::read_to_string(&config).expect("read").contains("secret"));

    let status = cli(&config, &["aws", "bulkjob", "list", "--status", "completed"]).await.expect("list");
    assert_eq!(code(status), code(std::process::ExitCode::SUCCESS));

    // The job ends with a failed key: watch exits 1.
    let status = cli(&config, &["aws", "bulkjob", "watch", JOB_ID, "--interval-ms", "50"]).await.expect("watch");
    assert_eq!(code(status), code(std::process::ExitCode::from(1)));
    assert!(s.lock().expect("lock").polls >= 3);

    let err =
        cli(&config, &["aws", "bulkjob", "create", "--operation", "schedulekeydeletion", "--key", "k1", "--days", "3"])
            .await
            .expect_err("400");
    assert_eq!(format!("error: {err:#}"), "error: 400 NCERRInvalidParamValue: days: must be between 7 and 30");
}

#[tokio::test]
async fn cli_saves_refreshed_tokens_at_once() {
    let (url, s) = start().await;
    age_session(&s, "rt-saved");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("client.json");
    let stale = jwt(now() - 5, 0);
    ClientConfig {
        url,
        insecure: false,
        ca_cert: None,
        username: "admin".into(),
        jwt: stale.clone(),
        refresh_token: "rt-saved".into(),
        refresh_token_id: "old-id".into(),
    }
    .save(&config)
    .expect("save");

    cli(&config, &["aws", "bulkjob", "get", JOB_ID]).await.expect("get");
    assert_eq!(log(&s), vec!["refresh", "GET bulkjob ok"]);
    let saved = ClientConfig::load(&config).expect("load").expect("saved");
    assert_eq!(saved.jwt, s.lock().expect("lock").valid_jwt);
    assert_ne!(saved.jwt, stale);
    assert_eq!(saved.refresh_token, "rt-saved");
    assert_eq!(saved.refresh_token_id, "22222222-2222-4222-8222-000000000001");
    let mode = std::fs::metadata(&config).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
