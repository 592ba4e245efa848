//! `/v1/cckm/aws/bulkjob` (create, list, get, cancel, items) and `/v1/cckm/aws/synchronization-jobs` (create,
//! list, get, cancel). Only creation is AWS's own; the rest are the handlers both clouds share (`routes::jobs`).
//! Execution happens in `keyfleet-engine`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use keyfleet_api_types::aws::{CreateAwsSyncJob, SyncJobView};
use keyfleet_api_types::bulkjob::{BulkJobView, CreateAwsBulkJob};
use keyfleet_core::Cloud;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::jobs;
use crate::{AppState, views};

const AWS: Cloud = Cloud::Aws;

const BULK: &str = "/v1/cckm/aws/bulkjob";
const SYNC: &str = "/v1/cckm/aws/synchronization-jobs";

pub fn routes() -> Router<Arc<AppState>> {
    jobs::shared(AWS, BULK, SYNC, views::aws::sync_job).route(BULK, post(create)).route(SYNC, post(create_sync))
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

async fn create(
    State(s): S,
    Auth(c): Auth,
    headers: HeaderMap,
    Json(req): Json<CreateAwsBulkJob>,
) -> Created<BulkJobView> {
    jobs::create_bulkjob(&s, &c, AWS, &headers, req, |req| s.services.create_aws_bulkjob(&c, req)).await
}

async fn create_sync(State(s): S, Auth(c): Auth, Json(req): Json<CreateAwsSyncJob>) -> Created<SyncJobView> {
    Ok((StatusCode::CREATED, axum::Json(views::aws::sync_job(s.services.create_aws_sync_job(&c, req).await?))))
}
