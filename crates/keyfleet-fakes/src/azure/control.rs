//! Control routes under `/_fake/` for tests, peers in other languages and demos: plain JSON,
//! not part of Azure, no token needed. Errors are `{"error": "..."}` with status 400.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};

use super::{FakeVault, ThrottleConfig, VaultCallRecord};
use crate::common::{CallLog, ControlError, list_calls};

pub(super) fn routes() -> Router<FakeVault> {
    Router::new()
        .route("/_fake/calls", get(list_calls::<FakeVault>))
        .route("/_fake/throttle", get(get_throttle).put(put_throttle))
        .route("/_fake/stats", get(stats))
}

impl CallLog for FakeVault {
    type Record = VaultCallRecord;
    fn calls_since(&self, since: u64) -> Vec<VaultCallRecord> {
        FakeVault::calls_since(self, since)
    }
}

async fn get_throttle(State(fake): State<FakeVault>) -> Json<ThrottleConfig> {
    Json(fake.throttle())
}

async fn put_throttle(
    State(fake): State<FakeVault>,
    config: Result<Json<ThrottleConfig>, JsonRejection>,
) -> Result<Json<ThrottleConfig>, ControlError> {
    let Json(config) = config?;
    for (name, p) in [("probability", config.probability), ("error_5xx", config.error_5xx)] {
        if !(0.0..=1.0).contains(&p) {
            return Err(ControlError(format!("{name}: {p} is not between 0 and 1")));
        }
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
