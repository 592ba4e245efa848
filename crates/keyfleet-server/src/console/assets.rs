//! The console's one stylesheet and one script, compiled into the binary (no CDN, no build step, works
//! offline). Their addresses carry a version so that a new binary's browsers never use a stale copy.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) const CSS_PATH: &str = concat!("/console/assets/console-", env!("CARGO_PKG_VERSION"), ".css");
pub(crate) const JS_PATH: &str = concat!("/console/assets/console-", env!("CARGO_PKG_VERSION"), ".js");

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// `GET /console/assets/{name}`.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let path = format!("/console/assets/{name}");
    let (body, kind) = if path == CSS_PATH {
        (CSS, "text/css; charset=utf-8")
    } else if path == JS_PATH {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}
