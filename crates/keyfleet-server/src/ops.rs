//! Operations endpoints: `/readyz` (ready to take traffic and work) and `/metrics` (Prometheus text).
//! `/healthz` (the process answers) lives with the router.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use keyfleet_core::crypto::sha256_hex;
use secrecy::ExposeSecret;

use crate::AppState;
use crate::routes::table::{Routes, get};

/// Prometheus' text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn routes() -> Routes {
    Routes::new().route("/readyz", get(readyz)).route("/api/readyz", get(readyz)).route("/metrics", get(metrics))
}

/// The router of `metrics_listen`: only the operations endpoints, plain HTTP.
pub(crate) fn listener_router(state: Arc<AppState>) -> Router {
    let (router, _) = routes().into_parts();
    let healthz = || async { axum::Json(serde_json::json!({"status": "ok"})) };
    router.route("/healthz", axum::routing::get(healthz)).with_state(state)
}

/// 200 `{"status": "ready"}`, or 503 `{"status": "not ready", "reason": ..., "checks": {check: reason}}`.
async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let readiness = s.services.readiness().await;
    if readiness.ready() {
        return (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))).into_response();
    }
    let reason = readiness.problems.iter().map(|p| format!("{}: {}", p.check, p.reason)).collect::<Vec<_>>();
    let checks: serde_json::Map<String, serde_json::Value> =
        readiness.problems.iter().map(|p| (p.check.to_string(), p.reason.clone().into())).collect();
    tracing::warn!(reason = %reason.join("; "), "not ready");
    let body = serde_json::json!({"status": "not ready", "reason": reason.join("; "), "checks": checks});
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &s.metrics_token {
        let given = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim);
        // Compared as hashes: the time a comparison takes says nothing about the token.
        let ok = given.is_some_and(|g| sha256_hex(g.as_bytes()) == sha256_hex(token.expose_secret().as_bytes()));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Bearer")],
                "metrics_token is set: send Authorization: Bearer <metrics_token>\n",
            )
                .into_response();
        }
    }
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], s.services.render_metrics().await).into_response()
}
