//! `/v1/cckm/azure/bulkjobs` (create, list, get, cancel, delete, items) and `/v1/cckm/azure/synchronization-jobs`
//! (create, list, get, cancel). Creation is Azure's own; the rest are the handlers both clouds share
//! (`routes::jobs`). Execution happens in `keyfleet-engine`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use keyfleet_api_types::azure::{AzureSyncJobView, CreateAzureBulkJob, CreateAzureSyncJob};
use keyfleet_api_types::bulkjob::BulkJobView;
use keyfleet_core::Cloud;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::jobs;
use crate::{AppState, views};

const AZURE: Cloud = Cloud::Azure;

pub fn routes() -> Router<Arc<AppState>> {
    let sync_view = views::azure::sync_job;
    Router::new()
        .route("/v1/cckm/azure/bulkjobs", jobs::list_bulkjobs(AZURE).post(create))
        .route("/v1/cckm/azure/bulkjobs/{id}", jobs::get_bulkjob(AZURE).delete(delete))
        .route("/v1/cckm/azure/bulkjobs/{id}/cancel", jobs::cancel_bulkjob(AZURE))
        .route("/v1/cckm/azure/bulkjobs/{id}/confirm", jobs::confirm_bulkjob(AZURE))
        .route("/v1/cckm/azure/bulkjobs/{id}/items", jobs::bulkjob_items(AZURE))
        .route("/v1/cckm/azure/synchronization-jobs", jobs::list_sync_jobs(AZURE, sync_view).post(create_sync))
        .route("/v1/cckm/azure/synchronization-jobs/{id}", jobs::get_sync_job(AZURE, sync_view))
        .route("/v1/cckm/azure/synchronization-jobs/{id}/cancel", jobs::cancel_sync_job(AZURE, sync_view))
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

async fn create(
    State(s): S,
    Auth(c): Auth,
    headers: HeaderMap,
    Json(req): Json<CreateAzureBulkJob>,
) -> Created<BulkJobView> {
    jobs::create_bulkjob(&s, &c, AZURE, &headers, req, |req| s.services.create_azure_bulkjob(&c, req)).await
}

/// Only a finished job; a running one answers 409.
async fn delete(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_bulkjob(&c, AZURE, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_sync(State(s): S, Auth(c): Auth, Json(req): Json<CreateAzureSyncJob>) -> Created<AzureSyncJobView> {
    Ok((StatusCode::CREATED, axum::Json(views::azure::sync_job(s.services.create_azure_sync_job(&c, req).await?))))
}
