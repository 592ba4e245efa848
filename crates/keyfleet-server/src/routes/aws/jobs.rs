//! `/v1/cckm/aws/bulkjob`: create, list, get, cancel. Execution happens in `keyfleet-engine`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::bulkjob::{BulkJobListQuery, BulkJobView, CreateAwsBulkJob, ItemListQuery, ItemView};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::{AppState, views};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/cckm/aws/bulkjob", get(list).post(create))
        .route("/v1/cckm/aws/bulkjob/{id}", get(get_one))
        .route("/v1/cckm/aws/bulkjob/{id}/cancel", post(cancel))
        .route("/v1/cckm/aws/bulkjob/{id}/items", get(items))
}

type S = State<Arc<AppState>>;

async fn create(
    State(s): S,
    Auth(c): Auth,
    Json(req): Json<CreateAwsBulkJob>,
) -> Result<(StatusCode, axum::Json<BulkJobView>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(views::bulkjob(s.services.create_aws_bulkjob(&c, req).await?))))
}

async fn get_one(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<axum::Json<BulkJobView>, ApiError> {
    Ok(axum::Json(views::bulkjob(s.services.get_aws_bulkjob(&c, &id).await?)))
}

async fn list(
    State(s): S,
    Auth(c): Auth,
    Query(q): Query<BulkJobListQuery>,
) -> Result<axum::Json<ListEnvelope<BulkJobView>>, ApiError> {
    let (jobs, total, page) = s.services.list_aws_bulkjobs(&c, q).await?;
    Ok(axum::Json(views::list(jobs, total, &page, views::bulkjob)))
}

async fn cancel(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<axum::Json<BulkJobView>, ApiError> {
    Ok(axum::Json(views::bulkjob(s.services.cancel_aws_bulkjob(&c, &id).await?)))
}

/// Extension: every item of a job, paged, optionally of one status.
async fn items(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Query<ItemListQuery>,
) -> Result<axum::Json<ListEnvelope<ItemView>>, ApiError> {
    let (items, total, page) = s.services.list_aws_bulkjob_items(&c, &id, q).await?;
    Ok(axum::Json(views::list(items, total, &page, views::item)))
}
