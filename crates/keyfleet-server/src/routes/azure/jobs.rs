//! `/v1/cckm/azure/bulkjobs` (create, list, get, cancel, delete, items) and `/v1/cckm/azure/synchronization-jobs`
//! (create, list, get, cancel). Creation is Azure's own; the rest are the handlers both clouds share
//! (`routes::jobs`). Execution happens in `keyfleet-engine`.

use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::{delete, post};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyfleet_api_types::azure::{AzureSyncJobView, CreateAzureBulkJob, CreateAzureSyncJob};
use keyfleet_core::Cloud;
use keyfleet_service::{Caller, Services};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::jobs;
use crate::{AppState, views};

const AZURE: Cloud = Cloud::Azure;

const BULK: &str = "/v1/cckm/azure/bulkjobs";
const SYNC: &str = "/v1/cckm/azure/synchronization-jobs";

pub fn routes() -> Routes {
    jobs::shared(AZURE, BULK, SYNC, views::azure::sync_job)
        .route(BULK, post(jobs::create_bulkjob::<CreateAzureBulkJob>))
        .route("/v1/cckm/azure/bulkjobs/{id}", delete(delete_finished))
        .route(SYNC, post(create_sync))
}

impl jobs::NewBulkJob for CreateAzureBulkJob {
    const CLOUD: Cloud = AZURE;
    fn create(self, services: &Services, caller: &Caller) -> impl Future<Output = jobs::JobResult> + Send {
        services.create_azure_bulkjob(caller, self)
    }
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

/// Only a finished job; a running one answers 409.
async fn delete_finished(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_bulkjob(&c, AZURE, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_sync(State(s): S, Auth(c): Auth, Json(req): Json<CreateAzureSyncJob>) -> Created<AzureSyncJobView> {
    Ok((StatusCode::CREATED, axum::Json(views::azure::sync_job(s.services.create_azure_sync_job(&c, req).await?))))
}
