//! The router: every route CCKM clients call, under `/api`.

mod audit;
/// A cloud's connection routes: `/v1/connectionmgmt/services/<cloud>/connections` (list, create) and `.../{id}`
/// (get, update, delete). The handlers are the same for every cloud but for its request type, its view and its
/// five `Services` calls, named here in that order: create, get, update, list, delete.
macro_rules! connection_routes {
    ($cloud:literal, $request:ty => $view:ty, $to_view:path, $create:ident, $get:ident, $update:ident, $list:ident, $delete:ident) => {{
        use axum::extract::{Path, State};
        use axum::http::StatusCode;
        use $crate::auth::Auth;
        use $crate::error::ApiError;
        use $crate::extract::{Json, Query};
        use $crate::routes::table::get;

        type S = State<std::sync::Arc<$crate::AppState>>;
        type Answer<T> = Result<axum::Json<T>, ApiError>;

        async fn create(
            State(s): S,
            Auth(c): Auth,
            Json(req): Json<$request>,
        ) -> Result<(StatusCode, axum::Json<$view>), ApiError> {
            Ok((StatusCode::CREATED, axum::Json($to_view(s.services.$create(&c, req).await?))))
        }
        async fn get_one(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<$view> {
            Ok(axum::Json($to_view(s.services.$get(&c, &id).await?)))
        }
        async fn update(
            State(s): S,
            Auth(c): Auth,
            Path(id): Path<String>,
            Json(req): Json<$request>,
        ) -> Answer<$view> {
            Ok(axum::Json($to_view(s.services.$update(&c, &id, req).await?)))
        }
        async fn list(
            State(s): S,
            Auth(c): Auth,
            Query(q): Query<keyfleet_api_types::common::ListParams>,
        ) -> Answer<keyfleet_api_types::ListEnvelope<$view>> {
            let p = keyfleet_service::paging::page(&q, keyfleet_store::sort_fields::NAMED)?;
            let (list, total) = s.services.$list(&c, &p).await?;
            Ok(axum::Json($crate::views::list(list, total, &p, $to_view)))
        }
        async fn delete_one(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
            s.services.$delete(&c, &id).await?;
            Ok(StatusCode::NO_CONTENT)
        }

        $crate::routes::table::Routes::new()
            .route(concat!("/v1/connectionmgmt/services/", $cloud, "/connections"), get(list).post(create))
            .route(
                concat!("/v1/connectionmgmt/services/", $cloud, "/connections/{id}"),
                get(get_one).patch(update).delete(delete_one),
            )
    }};
}

mod auth;
mod aws;
mod azure;
pub(crate) mod events;
pub(crate) mod jobs;
pub(crate) mod table;
mod usermgmt;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use keyfleet_service::ServiceError;
use keyfleet_store::audit::{RequestContext, scope as audit_scope};
use tracing::Instrument;

use crate::AppState;
use crate::error::{ApiError, REQUEST_ID};

/// Every route of the API, under `/api`, as one table.
fn api_routes() -> table::Routes {
    table::Routes::new()
        .merge(auth::routes())
        .merge(usermgmt::routes())
        .merge(audit::routes())
        .merge(aws::routes())
        .merge(azure::routes())
}

/// The routes outside `/api`: health, readiness and metrics, and the API's OpenAPI document.
fn root_routes() -> table::Routes {
    table::Routes::new()
        .route("/healthz", table::get(healthz))
        .route("/api/healthz", table::get(healthz))
        .merge(crate::ops::routes())
        .route("/openapi.json", table::get(openapi_json))
}

/// Every (method, path) the router mounts, paths as axum writes them (`/api/v1/cckm/aws/keys/{id}`): what the
/// OpenAPI document must describe.
pub fn mounted_routes() -> Vec<(axum::http::Method, String)> {
    let (_, api) = api_routes().into_parts();
    let (_, root) = root_routes().into_parts();
    api.into_iter().map(|(m, p)| (m, format!("/api{p}"))).chain(root).collect()
}

pub fn router(state: Arc<AppState>) -> Router {
    let (api, _) = api_routes().into_parts();
    let (root, _) = root_routes().into_parts();
    Router::new()
        .nest("/api", api)
        .merge(root)
        // The web console: HTML pages beside the API, outside its route table and its OpenAPI document.
        .merge(crate::console::router(state.clone()))
        .route_layer(middleware::from_fn(matched_route))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(crate::extract::BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), request_context))
        .with_state(state)
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of the whole API (no authentication: it describes the API,
/// not anything in it). Built once.
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(crate::openapi::document_json);
    ([(axum::http::header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> Response {
    let mut r =
        ApiError(ServiceError::invalid("method", format!("{} is not allowed on {}", req.method(), req.uri().path())))
            .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// Hands the route a request matched (`/api/v1/cckm/aws/bulkjob/{id}`) to `request_context`'s log line.
async fn matched_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(route);
    }
    resp
}

/// The longest incoming `X-Request-Id` kept; a longer or non-printable one is replaced by a new id.
const MAX_REQUEST_ID: usize = 128;

/// An incoming `X-Request-Id` when it is usable (printable ASCII, not too long), else a new UUID.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// The request's context: its id (the client's `X-Request-Id` when it sent a usable one; echoed, and
/// `requestID` in error bodies), the client's address and — once authenticated — the user, for the audit
/// records the request writes and for its one log line (with route, status and latency).
async fn request_context(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let method = req.method().clone();
    let client = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()).unwrap_or_default();
    let context = RequestContext::new(client.clone(), id.clone());
    let span = tracing::info_span!(
        "request",
        request.id = %id,
        client.address = %client,
        http.method = %req.method(),
        http.path = %req.uri().path(),
    );
    let started = Instant::now();
    let served = REQUEST_ID.scope(id.clone(), audit_scope(context.clone(), next.run(req)));
    let mut resp = served.instrument(span.clone()).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    // Answers carry tokens, key inventories and job reports: no cache (browser or proxy) may keep them.
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let user = context.actor().user;
    let route = resp.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let route = route.as_deref().unwrap_or("unmatched");
    let took = started.elapsed();
    let status = resp.status();
    let metrics = state.services.engine.metrics();
    metrics.http_requests.inc([method.as_str(), route, status.as_str()]);
    metrics.http_request_seconds.observe([method.as_str(), route], took);
    // Reads that succeed are mostly polling (a CLI watching a job, a console, probes and scrapes): debug, so
    // that info shows the changes and the failures.
    let quiet =
        (method == Method::GET || method == Method::HEAD) && !status.is_client_error() && !status.is_server_error();
    // tracing wants the level of a line where it is written: one line, written at either level.
    macro_rules! request_line {
        ($level:ident) => {
            tracing::$level!(
                user.name = %user,
                http.route = route,
                http.status = status.as_u16(),
                duration_ms = took.as_millis() as u64,
                "request"
            )
        };
    }
    span.in_scope(|| if quiet { request_line!(debug) } else { request_line!(info) });
    resp
}
