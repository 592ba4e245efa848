//! The web console: server-rendered pages (maud templates, checked at compile time) on the API's port, at
//! `/console/...` (`/` leads there). A browser session holds the user's API tokens in a sealed cookie and every
//! page calls the same `Services` methods as the API's handlers with the user's `Caller`, so the API's
//! permission rules apply unchanged. Mounted beside the API's route table, not in it: these routes are HTML,
//! not part of the OpenAPI document. docs/CONSOLE.md describes the pages and the session design.

mod assets;
mod audit;
mod inventory;
mod jobs;
mod layout;
mod new_job;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use keyfleet_core::{Cloud, Page};
use keyfleet_service::ServiceError;

use crate::AppState;

pub(crate) use session::Session;

type St = Arc<AppState>;

/// Where the console starts.
const HOME: &str = "/console/jobs";

/// Every route of the console.
pub(crate) fn router(state: St) -> Router<St> {
    let signed_in = Router::new()
        .route(HOME, get(jobs::list))
        .route("/console/jobs/new", get(new_job::page).post(new_job::plan))
        .route("/console/jobs/{cloud}/{id}", get(jobs::show))
        .route("/console/jobs/{cloud}/{id}/events", get(jobs::events))
        .route("/console/jobs/{cloud}/{id}/report.csv", get(jobs::report))
        .route("/console/jobs/{cloud}/{id}/{action}", post(jobs::act))
        .route("/console/inventory", get(inventory::page))
        .route("/console/audit", get(audit::page))
        .route("/console/logout", post(session::logout))
        .route_layer(middleware::from_fn_with_state(state, session::authenticated));
    Router::new()
        .route("/", get(|| async { Redirect::to(HOME) }))
        .route("/console", get(|| async { Redirect::to(HOME) }))
        .route("/console/login", get(session::login_form).post(session::login))
        .route("/console/assets/{name}", get(assets::serve))
        .merge(signed_in)
        .layer(middleware::from_fn(security_headers))
}

/// Headers of every console answer: scripts and styles only from the console itself (no inline script can
/// run, so injected markup stays inert), no framing, no MIME sniffing, no referrer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// A failure on its way to the browser: a page with the status and message the API would answer with (the
/// same table, `error::classify`).
pub(crate) struct ConsoleError(pub ServiceError);

impl From<ServiceError> for ConsoleError {
    fn from(e: ServiceError) -> Self {
        ConsoleError(e)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, _, _) = crate::error::classify(&self.0);
        let message = match &self.0 {
            ServiceError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error in the console");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        (status, layout::error_page(status, &message)).into_response()
    }
}

pub(crate) type Answer = Result<Response, ConsoleError>;

/// The cloud named in a console path (`aws`, `azure`); 404 for anything else.
fn cloud_of(name: &str) -> Result<Cloud, ConsoleError> {
    Cloud::parse(name).ok_or_else(|| ConsoleError(ServiceError::NotFound(format!("no cloud {name:?}"))))
}

/// Rows per page of every console table.
const PAGE_SIZE: u64 = 20;

/// The page of a console table from its `page` query parameter (1-based), newest first where that applies.
fn page_of(n: Option<u64>) -> Page {
    let n = n.unwrap_or(1).max(1);
    Page { skip: (n - 1) * PAGE_SIZE, limit: PAGE_SIZE, sort: vec![] }
}

/// A query string of a console page, leniently: unknown parameters are ignored (a page's own links make
/// them), a malformed one is a 400.
fn query<T: serde::de::DeserializeOwned + Default>(q: Option<&str>) -> Result<T, ConsoleError> {
    match q.filter(|q| !q.is_empty()) {
        None => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q)
            .map_err(|e| ConsoleError(ServiceError::invalid("query", format!("cannot read the query: {e}")))),
    }
}

/// A submitted form (`application/x-www-form-urlencoded`; its CSRF token was checked by the session layer).
fn form<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(body)
        .map_err(|e| ConsoleError(ServiceError::invalid("form", format!("cannot read the form: {e}"))))
}

/// A text field or query parameter: trimmed, `None` when empty.
fn some(text: &str) -> Option<String> {
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// After a form that changed something: the page to show next (POST, redirect, GET).
fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}
