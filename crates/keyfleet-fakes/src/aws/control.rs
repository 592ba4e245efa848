//! Control routes under `/_fake/` for tests, the CLI and demos: plain JSON, not part of AWS.
//! Errors are `{"error": "..."}` with status 400.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::state::Scope;
use super::wire::Tag;
use super::{BUILTIN_ACCOUNT_ID, CallRecord, DEFAULT_REGION, FakeKms, FakeKmsStats, Faults};
use crate::common::{CallLog, ControlError, list_calls};

/// More keys than this in one request is almost certainly a mistake (and a lot of memory).
const MAX_SEED_COUNT: usize = 1_000_000;

pub(super) fn routes() -> Router<FakeKms> {
    Router::new()
        .route("/_fake/calls", get(list_calls::<FakeKms>))
        .route("/_fake/keys", get(list_keys).post(create_keys))
        .route("/_fake/faults", get(get_faults).put(put_faults))
        .route("/_fake/stats", get(get_stats))
}

impl CallLog for FakeKms {
    type Record = CallRecord;
    fn calls_since(&self, since: u64) -> Vec<CallRecord> {
        FakeKms::calls_since(self, since)
    }
}

/// ScopeQuery a control request acts; both default to the built-in account's default region.
#[derive(Debug, Deserialize)]
struct ScopeQuery {
    account: Option<String>,
    region: Option<String>,
}

impl ScopeQuery {
    fn scope(&self) -> Result<Scope, ControlError> {
        let account = self.account.as_deref().unwrap_or(BUILTIN_ACCOUNT_ID);
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ControlError(format!("account: '{account}' is not a 12-digit AWS account id")));
        }
        let region = self.region.as_deref().unwrap_or(DEFAULT_REGION);
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(ControlError(format!("region: '{region}' is not an AWS region name")));
        }
        Ok(Scope::new(account, region))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest {
    account: Option<String>,
    region: Option<String>,
    count: usize,
}

#[derive(Debug, Serialize)]
struct SeedResponse {
    key_ids: Vec<String>,
}

async fn create_keys(
    State(fake): State<FakeKms>,
    request: Result<Json<SeedRequest>, JsonRejection>,
) -> Result<Json<SeedResponse>, ControlError> {
    let Json(request) = request?;
    let place = ScopeQuery { account: request.account, region: request.region };
    let scope = place.scope()?;
    if request.count > MAX_SEED_COUNT {
        return Err(ControlError(format!("count: at most {MAX_SEED_COUNT} keys per request")));
    }
    let key_ids = fake.create_keys(&scope.account, &scope.region, request.count);
    Ok(Json(SeedResponse { key_ids }))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeyView {
    key_id: String,
    key_state: &'static str,
    policy: String,
    tags: Vec<Tag>,
}

async fn list_keys(
    State(fake): State<FakeKms>,
    query: Result<Query<ScopeQuery>, QueryRejection>,
) -> Result<Json<Vec<KeyView>>, ControlError> {
    let Query(place) = query?;
    let scope = place.scope()?;
    let state = fake.lock();
    let keys = state
        .store(&scope)
        .into_iter()
        .flat_map(|store| store.keys())
        .map(|key| KeyView {
            key_id: key.id.clone(),
            key_state: key.state.as_str(),
            policy: key.policy.clone(),
            tags: Tag::list(key),
        })
        .collect();
    Ok(Json(keys))
}

async fn get_faults(State(fake): State<FakeKms>) -> Json<Faults> {
    Json(fake.faults())
}

/// Replaces the faults; answers the faults now in force. `{}` turns every fault off.
async fn put_faults(
    State(fake): State<FakeKms>,
    request: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Faults>, ControlError> {
    let Json(value) = request?;
    // serde would also read a struct from a JSON array; only an object names its members.
    if !value.is_object() {
        return Err(ControlError("faults must be a JSON object; {} turns every fault off".to_owned()));
    }
    let faults: Faults = serde_path_to_error::deserialize(value).map_err(|err| ControlError(err.to_string()))?;
    faults.validate().map_err(ControlError)?;
    fake.set_faults(faults);
    Ok(Json(fake.faults()))
}

async fn get_stats(State(fake): State<FakeKms>) -> Json<FakeKmsStats> {
    Json(fake.stats())
}
