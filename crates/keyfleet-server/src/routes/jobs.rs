//! The job routes both clouds share: get, list, cancel and items of bulk jobs; get, list and cancel of key
//! synchronization jobs. Each cloud's `jobs` module mounts them ([`shared`]) at its own two base paths and adds
//! its creation routes (and whatever only it has), so a cloud's route table stays in one place.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodRouter, get, post};
use keyfleet_api_types::bulkjob::{BulkJobListQuery, BulkJobView, ItemListQuery};
use keyfleet_api_types::common::ListParams;
use keyfleet_core::Cloud;
use keyfleet_service::jobs::JobWithItems;
use keyfleet_service::paging::page;
use keyfleet_service::sync_jobs::{SyncJobEntry, SyncJobFilter};
use keyfleet_service::{Caller, ServiceError};
use serde::Serialize;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::Query;
use crate::{AppState, views};

type S = State<Arc<AppState>>;
type Routes = MethodRouter<Arc<AppState>>;

/// Query of the synchronization-job lists (CCKM's filters `id`, `overall_status` and, for AWS, `kms`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncListQuery {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub kms: Option<String>,
    #[serde(default)]
    pub overall_status: Option<String>,
    #[serde(default)]
    pub skip: Option<u64>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub sort: Option<String>,
}

/// The fields a synchronization-job list sorts by.
const SYNC_SORT_FIELDS: &[&str] = &["createdAt", "updatedAt", "id"];

/// The shared routes of one cloud: `{bulk}`, `{bulk}/{id}`, `{bulk}/{id}/cancel` and `{bulk}/{id}/items`;
/// `{sync}`, `{sync}/{id}` and `{sync}/{id}/cancel`, each synchronization job shown by `sync_view`.
pub(crate) fn shared<V: Serialize + Send + 'static>(
    cloud: Cloud,
    bulk: &str,
    sync: &str,
    sync_view: fn(SyncJobEntry) -> V,
) -> Router<Arc<AppState>> {
    Router::new()
        .route(bulk, list_bulkjobs(cloud))
        .route(&format!("{bulk}/{{id}}"), get_bulkjob(cloud))
        .route(&format!("{bulk}/{{id}}/cancel"), cancel_bulkjob(cloud))
        .route(&format!("{bulk}/{{id}}/confirm"), confirm_bulkjob(cloud))
        .route(&format!("{bulk}/{{id}}/items"), bulkjob_items(cloud))
        .route(sync, list_sync_jobs(cloud, sync_view))
        .route(&format!("{sync}/{{id}}"), get_sync_job(cloud, sync_view))
        .route(&format!("{sync}/{{id}}/cancel"), cancel_sync_job(cloud, sync_view))
}

// --- bulk jobs ----------------------------------------------------------------------------------------

/// `GET .../bulkjob(s)`.
fn list_bulkjobs(cloud: Cloud) -> Routes {
    get(move |State(s): S, Auth(c): Auth, Query(q): Query<BulkJobListQuery>| async move {
        let (jobs, total, page) = s.services.list_bulkjobs(&c, cloud, q).await?;
        Ok::<_, ApiError>(axum::Json(views::list(jobs, total, &page, views::bulkjob)))
    })
}

/// `GET .../bulkjob(s)/{id}`.
fn get_bulkjob(cloud: Cloud) -> Routes {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(views::bulkjob(s.services.get_bulkjob(&c, cloud, &id).await?)))
    })
}

/// `POST .../bulkjob(s)/{id}/cancel`.
fn cancel_bulkjob(cloud: Cloud) -> Routes {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(views::bulkjob(s.services.cancel_bulkjob(&c, cloud, &id).await?)))
    })
}

/// Extension `POST .../bulkjob(s)/{id}/confirm`: starts a planned job.
fn confirm_bulkjob(cloud: Cloud) -> Routes {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(views::bulkjob(s.services.confirm_bulkjob(&c, cloud, &id).await?)))
    })
}

/// `POST` of a bulk-job create, either cloud: `create` runs at most once per `Idempotency-Key` (extension);
/// 201 with the job.
pub(crate) async fn create_bulkjob<R, Fut>(
    s: &AppState,
    c: &Caller,
    cloud: Cloud,
    headers: &HeaderMap,
    req: R,
    create: impl FnOnce(R) -> Fut,
) -> Result<(StatusCode, axum::Json<BulkJobView>), ApiError>
where
    R: Serialize + Clone,
    Fut: Future<Output = Result<JobWithItems, ServiceError>>,
{
    let key = idempotency_key(headers)?;
    let body = req.clone();
    let job = s.services.create_once(c, cloud, key, &body, create(req)).await?;
    Ok((StatusCode::CREATED, axum::Json(views::bulkjob(job))))
}

/// Extension: the `Idempotency-Key` header of a create request, if any.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| v.to_str().map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII characters")))
        .transpose()
}

/// Extension `GET .../bulkjob(s)/{id}/items`: every item of a job, paged, optionally of one status.
fn bulkjob_items(cloud: Cloud) -> Routes {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>, Query(q): Query<ItemListQuery>| async move {
        let (items, total, page) = s.services.list_bulkjob_items(&c, cloud, &id, q).await?;
        Ok::<_, ApiError>(axum::Json(views::list(items, total, &page, views::item)))
    })
}

// --- key synchronization jobs -------------------------------------------------------------------------

/// `GET .../synchronization-jobs`, each job shown by `view`.
fn list_sync_jobs<V: Serialize + Send + 'static>(cloud: Cloud, view: fn(SyncJobEntry) -> V) -> Routes {
    get(move |State(s): S, Auth(c): Auth, Query(q): Query<SyncListQuery>| async move {
        let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort }, SYNC_SORT_FIELDS)?;
        let filter = SyncJobFilter { id: q.id, kms: q.kms, overall_status: q.overall_status };
        let (list, total) = s.services.list_sync_jobs(&c, cloud, filter, &p).await?;
        Ok::<_, ApiError>(axum::Json(views::list(list, total, &p, view)))
    })
}

/// `GET .../synchronization-jobs/{id}`.
fn get_sync_job<V: Serialize + Send + 'static>(cloud: Cloud, view: fn(SyncJobEntry) -> V) -> Routes {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(view(s.services.get_sync_job(&c, cloud, &id).await?)))
    })
}

/// `POST .../synchronization-jobs/{id}/cancel`.
fn cancel_sync_job<V: Serialize + Send + 'static>(cloud: Cloud, view: fn(SyncJobEntry) -> V) -> Routes {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(view(s.services.cancel_sync_job(&c, cloud, &id).await?)))
    })
}
