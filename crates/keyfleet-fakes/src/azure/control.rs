//! Control routes under `/_fake/` for tests, peers in other languages and demos: plain JSON,
//! not part of Azure, no token needed. Errors are `{"error": "..."}` with status 400.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{FakeVault, ThrottleConfig, VaultCallRecord};

pub(super) fn routes() -> Router<FakeVault> {
    Router::new()
        .route("/_fake/calls", get(list_calls))
        .route("/_fake/throttle", get(get_throttle).put(put_throttle))
        .route("/_fake/stats", get(stats))
}

#[derive(Debug)]
struct ControlError(String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0 });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

impl From<QueryRejection> for ControlError {
    fn from(rejection: QueryRejection) -> Self {
        Self(rejection.body_text())
    }
}

impl From<JsonRejection> for ControlError {
    fn from(rejection: JsonRejection) -> Self {
        Self(rejection.body_text())
    }
}

#[derive(Debug, Deserialize)]
struct CallsQuery {
    since: Option<u64>,
}

async fn list_calls(
    State(fake): State<FakeVault>,
    query: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Json<Vec<VaultCallRecord>>, ControlError> {
    let Query(query) = query?;
    Ok(Json(fake.calls_since(query.since.unwrap_or(0))))
}

async fn get_throttle(State(fake): State<FakeVault>) -> Json<ThrottleConfig> {
    Json(fake.throttle())
}

async fn put_throttle(
    State(fake): State<FakeVault>,
    config: Result<Json<ThrottleConfig>, JsonRejection>,
) -> Result<Json<ThrottleConfig>, ControlError> {
    let Json(config) = config?;
    if !(0.0..=1.0).contains(&config.probability) {
        return Err(ControlError(format!("probability: {} is not between 0 and 1", config.probability)));
    }
    fake.set_throttle(config);
    Ok(Json(fake.throttle()))
}

async fn stats(State(fake): State<FakeVault>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "token_requests": fake.token_requests(),
        "backups": fake.backup_count(),
        "calls": fake.calls().len(),
    }))
}
