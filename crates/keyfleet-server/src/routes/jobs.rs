//! The job routes both clouds share: get, list, cancel, confirm, items, report, errors, retry-failed and revert of
//! bulk jobs; get, list and cancel of key
//! synchronization jobs. Each cloud's `jobs` module mounts them ([`shared`]) at its own two base paths and adds
//! its creation routes (and whatever only it has), so a cloud's route table stays in one place.

use std::sync::Arc;

use crate::routes::table::{Methods, Routes, get, post};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use keyfleet_api_types::bulkjob::{BulkJobListQuery, BulkJobView, ItemListQuery, RetryFailedRequest, RevertRequest};
use keyfleet_api_types::common::ListParams;
use keyfleet_core::{Cloud, JobRecord};
use keyfleet_service::jobs::{JobWithItems, REPORT_PAGE};
use keyfleet_service::paging::page;
use keyfleet_service::sync_jobs::{SyncJobEntry, SyncJobFilter};
use keyfleet_service::{Caller, ServiceError, Services};
use serde::Serialize;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::views::report::ReportFormat;
use crate::{AppState, views};

type S = State<Arc<AppState>>;

/// Query of the synchronization-job lists (CCKM's filters `id`, `overall_status` and, for AWS, `kms`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
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

/// The shared routes of one cloud: `{bulk}`, `{bulk}/{id}` and its `cancel`, `confirm`, `items`, `report`,
/// `errors`, `events`, `retry-failed` and `revert`;
/// `{sync}`, `{sync}/{id}` and `{sync}/{id}/cancel`, each synchronization job shown by `sync_view`.
pub(crate) fn shared<V: Serialize + Send + 'static>(
    cloud: Cloud,
    bulk: &str,
    sync: &str,
    sync_view: fn(SyncJobEntry) -> V,
) -> Routes {
    Routes::new()
        .route(bulk, list_bulkjobs(cloud))
        .route(&format!("{bulk}/{{id}}"), get_bulkjob(cloud))
        .route(&format!("{bulk}/{{id}}/cancel"), cancel_bulkjob(cloud))
        .route(&format!("{bulk}/{{id}}/confirm"), confirm_bulkjob(cloud))
        .route(&format!("{bulk}/{{id}}/items"), bulkjob_items(cloud))
        .route(&format!("{bulk}/{{id}}/report"), bulkjob_report(cloud))
        .route(&format!("{bulk}/{{id}}/errors"), bulkjob_errors(cloud))
        .route(&format!("{bulk}/{{id}}/events"), crate::routes::events::bulkjob_events(cloud))
        .route(&format!("{bulk}/{{id}}/retry-failed"), derived_bulkjob::<RetryFailedRequest>(cloud))
        .route(&format!("{bulk}/{{id}}/revert"), derived_bulkjob::<RevertRequest>(cloud))
        .route(sync, list_sync_jobs(cloud, sync_view))
        .route(&format!("{sync}/{{id}}"), get_sync_job(cloud, sync_view))
        .route(&format!("{sync}/{{id}}/cancel"), cancel_sync_job(cloud, sync_view))
}

// --- bulk jobs ----------------------------------------------------------------------------------------

/// `GET .../bulkjob(s)`.
fn list_bulkjobs(cloud: Cloud) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Query(q): Query<BulkJobListQuery>| async move {
        let (jobs, total, page) = s.services.list_bulkjobs(&c, cloud, q).await?;
        Ok::<_, ApiError>(axum::Json(views::list(jobs, total, &page, |j| s.rendered.bulkjob(j))))
    })
}

/// `GET .../bulkjob(s)/{id}`.
fn get_bulkjob(cloud: Cloud) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(s.rendered.bulkjob(s.services.get_bulkjob(&c, cloud, &id).await?)))
    })
}

/// `POST .../bulkjob(s)/{id}/cancel`.
fn cancel_bulkjob(cloud: Cloud) -> Methods {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(views::bulkjob(s.services.cancel_bulkjob(&c, cloud, &id).await?)))
    })
}

/// Extension `POST .../bulkjob(s)/{id}/confirm`: starts a planned job.
fn confirm_bulkjob(cloud: Cloud) -> Methods {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(views::bulkjob(s.services.confirm_bulkjob(&c, cloud, &id).await?)))
    })
}

/// A new job made from a finished one.
enum Derive {
    /// `retry-failed`: over the failed and skipped items (a plan with `dry_run`).
    RetryFailed { dry_run: bool },
    /// `revert`: a planned job that puts back what the job changed.
    Revert,
}

/// The body of a request that makes a new job from a finished one.
trait DerivedBulkJob: serde::de::DeserializeOwned + Serialize + Clone + Send + Sync + 'static {
    /// The route's last segment; with the source job and the body, what an `Idempotency-Key` is compared on.
    const ACTION: &'static str;
    fn derive(&self) -> Derive;
}

impl DerivedBulkJob for RetryFailedRequest {
    const ACTION: &'static str = "retry-failed";
    fn derive(&self) -> Derive {
        Derive::RetryFailed { dry_run: self.dry_run }
    }
}

impl DerivedBulkJob for RevertRequest {
    const ACTION: &'static str = "revert";
    fn derive(&self) -> Derive {
        Derive::Revert
    }
}

/// Extension `POST .../bulkjob(s)/{id}/retry-failed` and `.../revert`: 201 with the new job, created at most
/// once per `Idempotency-Key`.
fn derived_bulkjob<R: DerivedBulkJob>(cloud: Cloud) -> Methods {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>, headers: HeaderMap, Json(r): Json<R>| async move {
        let key = idempotency_key(&headers)?;
        let derived = async {
            match r.derive() {
                Derive::RetryFailed { dry_run } => s.services.retry_failed_bulkjob(&c, cloud, &id, dry_run).await,
                Derive::Revert => s.services.revert_bulkjob(&c, cloud, &id).await,
            }
        };
        let job = s.services.create_once(&c, cloud, key, &(R::ACTION, &id, &r), derived).await?;
        Ok::<_, ApiError>((StatusCode::CREATED, axum::Json(views::bulkjob(job))))
    })
}

/// A cloud's create-bulk-job body, and the service call that creates its job.
pub(crate) trait NewBulkJob: serde::de::DeserializeOwned + Serialize + Clone + Send + 'static {
    const CLOUD: Cloud;
    fn create(self, services: &Services, caller: &Caller) -> impl Future<Output = JobResult> + Send;
}

pub(crate) type JobResult = Result<JobWithItems, ServiceError>;

/// `POST` of a bulk-job create, either cloud: the job is created at most once per `Idempotency-Key`
/// (extension); 201 with the job.
pub(crate) async fn create_bulkjob<R: NewBulkJob>(
    State(s): S,
    Auth(c): Auth,
    headers: HeaderMap,
    Json(req): Json<R>,
) -> Result<(StatusCode, axum::Json<BulkJobView>), ApiError> {
    let key = idempotency_key(&headers)?;
    let body = req.clone();
    let job = s.services.create_once(&c, R::CLOUD, key, &body, req.create(&s.services, &c)).await?;
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
fn bulkjob_items(cloud: Cloud) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>, Query(q): Query<ItemListQuery>| async move {
        let (items, total, page) = s.services.list_bulkjob_items(&c, cloud, &id, q).await?;
        Ok::<_, ApiError>(axum::Json(views::list(items, total, &page, views::item)))
    })
}

/// Query of `.../report`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    /// `csv` (the default) or `ndjson`.
    #[serde(default)]
    pub format: Option<String>,
}

/// Extension `GET .../bulkjob(s)/{id}/report?format=csv|ndjson`: one line per item, streamed from the store a
/// page at a time (memory does not grow with the job).
fn bulkjob_report(cloud: Cloud) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>, Query(q): Query<ReportQuery>| async move {
        let format = ReportFormat::parse(q.format.as_deref())
            .ok_or_else(|| ApiError::invalid("format", "must be csv or ndjson"))?;
        let job = s.services.report_job(&c, cloud, &id).await?;
        Ok::<_, ApiError>(report_download(s.services.clone(), job, format))
    })
}

/// A job's report as a download (the API's `.../report` and the console's `Download report`).
pub(crate) fn report_download(
    services: Arc<Services>,
    job: JobRecord,
    format: ReportFormat,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let disposition = format!("attachment; filename=\"bulkjob-{}-report.{}\"", job.id, format.extension());
    let headers =
        [(header::CONTENT_TYPE, format.content_type().to_string()), (header::CONTENT_DISPOSITION, disposition)];
    (headers, Body::from_stream(report_stream(services, job, format))).into_response()
}

/// The report's text: the header, then a page of lines per chunk until a page comes back short. A store error
/// midway ends the body early (the client sees a truncated download) and is logged.
fn report_stream(
    services: Arc<Services>,
    job: JobRecord,
    format: ReportFormat,
) -> impl futures::Stream<Item = Result<String, ServiceError>> {
    let first = futures::stream::once(std::future::ready(Ok(format.header())));
    let pages = futures::stream::try_unfold(Some(-1), move |after| {
        let (services, job) = (services.clone(), job.clone());
        async move {
            let Some(after) = after else { return Ok(None) };
            let lines = services.report_lines(&job, after).await.inspect_err(|e| {
                tracing::error!(bulkjob.id = %job.id, error = %e, "bulk job report ended early");
            })?;
            let next = (lines.len() as i64 == REPORT_PAGE).then(|| lines.last().map_or(after, |l| l.row.item.seq));
            let chunk: String = lines.iter().map(|l| format.line(l)).collect();
            Ok(Some((chunk, next)))
        }
    });
    first.chain(pages)
}

/// Extension `GET .../bulkjob(s)/{id}/errors`: the failed items grouped by error code.
fn bulkjob_errors(cloud: Cloud) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        let (job, groups) = s.services.bulkjob_errors(&c, cloud, &id).await?;
        Ok::<_, ApiError>(axum::Json(views::report::errors(&job, groups)))
    })
}

// --- key synchronization jobs -------------------------------------------------------------------------

/// `GET .../synchronization-jobs`, each job shown by `view`.
fn list_sync_jobs<V: Serialize + Send + 'static>(cloud: Cloud, view: fn(SyncJobEntry) -> V) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Query(q): Query<SyncListQuery>| async move {
        let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort }, SYNC_SORT_FIELDS)?;
        let filter = SyncJobFilter { id: q.id, kms: q.kms, overall_status: q.overall_status };
        let (list, total) = s.services.list_sync_jobs(&c, cloud, filter, &p).await?;
        Ok::<_, ApiError>(axum::Json(views::list(list, total, &p, view)))
    })
}

/// `GET .../synchronization-jobs/{id}`.
fn get_sync_job<V: Serialize + Send + 'static>(cloud: Cloud, view: fn(SyncJobEntry) -> V) -> Methods {
    get(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(view(s.services.get_sync_job(&c, cloud, &id).await?)))
    })
}

/// `POST .../synchronization-jobs/{id}/cancel`.
fn cancel_sync_job<V: Serialize + Send + 'static>(cloud: Cloud, view: fn(SyncJobEntry) -> V) -> Methods {
    post(move |State(s): S, Auth(c): Auth, Path(id): Path<String>| async move {
        Ok::<_, ApiError>(axum::Json(view(s.services.cancel_sync_job(&c, cloud, &id).await?)))
    })
}
