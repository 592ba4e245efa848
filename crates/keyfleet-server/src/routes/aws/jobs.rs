//! `/v1/cckm/aws/bulkjob` (create, list, get, cancel, items) and `/v1/cckm/aws/synchronization-jobs` (create,
//! list, get, cancel). Only creation is AWS's own; the rest are the handlers both clouds share (`routes::jobs`).
//! Execution happens in `keyfleet-engine`.

use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::post;
use axum::extract::State;
use axum::http::StatusCode;
use keyfleet_api_types::aws::{CreateAwsSyncJob, SyncJobView};
use keyfleet_api_types::bulkjob::CreateAwsBulkJob;
use keyfleet_core::Cloud;
use keyfleet_service::{Caller, Services};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Json;
use crate::routes::jobs;
use crate::{AppState, views};

const AWS: Cloud = Cloud::Aws;

const BULK: &str = "/v1/cckm/aws/bulkjob";
const SYNC: &str = "/v1/cckm/aws/synchronization-jobs";

pub fn routes() -> Routes {
    jobs::shared(AWS, BULK, SYNC, views::aws::sync_job)
        .route(BULK, post(jobs::create_bulkjob::<CreateAwsBulkJob>))
        .route(SYNC, post(create_sync))
}

impl jobs::NewBulkJob for CreateAwsBulkJob {
    const CLOUD: Cloud = AWS;
    fn create(self, services: &Services, caller: &Caller) -> impl Future<Output = jobs::JobResult> + Send {
        services.create_aws_bulkjob(caller, self)
    }
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;

async fn create_sync(State(s): S, Auth(c): Auth, Json(req): Json<CreateAwsSyncJob>) -> Created<SyncJobView> {
    Ok((StatusCode::CREATED, axum::Json(views::aws::sync_job(s.services.create_aws_sync_job(&c, req).await?))))
}
