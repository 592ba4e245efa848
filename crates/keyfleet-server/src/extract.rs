//! axum's extractors, wrapped so that malformed input also gets CCKM's error body naming the field.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// axum's default limit of a request body (`DefaultBodyLimit`); a larger body is a 413.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A JSON body. An empty body reads as `{}` so that a missing field is reported by name.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                // CCKM's error body with the status that says what is wrong.
                let mut r = ApiError::invalid("body", format!("is larger than the limit of {BODY_LIMIT} bytes"))
                    .into_response();
                *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
                r
            } else {
                ApiError::invalid("body", e.body_text()).into_response()
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map(Json).map_err(|e| {
            let path = e.path().to_string();
            // A syntax error is the body's fault, wherever the parser happened to be.
            let syntax =
                matches!(e.inner().classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof);
            // The body itself when the fault is its syntax, or its top level (an array or a scalar instead of an
            // object, `[0]`), or a key with no name.
            let field = if path == "." || path.is_empty() || path.starts_with('[') || syntax {
                "body".to_string()
            } else {
                path
            };
            let message = e.into_inner().to_string();
            ApiError::invalid(&field, if syntax { message } else { explain(message) }).into_response()
        })
    }
}

/// serde's message, said for the field it is reported on: `unknown field `x`, expected one of ...` becomes
/// `unknown field; expected one of ...` (the field's path already leads the message).
fn explain(message: String) -> String {
    // serde_json ends its messages with the parser's position, which says nothing the field path does not.
    let message = match message.rfind(" at line ") {
        Some(at) if message[at..].contains(" column ") => message[..at].to_string(),
        _ => message,
    };
    match message.strip_prefix("unknown field `").and_then(|rest| rest.split_once("`, ")) {
        Some((_, "there are no fields")) => "unknown field; this takes no fields".to_string(),
        Some((_, expected)) => format!("unknown field; {expected}"),
        // std's integer parse errors, as query parameters meet them.
        None if message == "invalid digit found in string" || message == "cannot parse integer from empty string" => {
            "expected a whole number of 0 or more".to_string()
        }
        None if message == "number too large to fit in target type" => {
            "expected a whole number of 0 or more; this one is too large".to_string()
        }
        None => message,
    }
}

/// Query parameters. The query types refuse unknown parameters (`deny_unknown_fields`): a misspelt filter must
/// never return the whole list.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let path = e.path().to_string();
            // A parameter with no name (`?=1`) has an empty path: the query as a whole is at fault.
            let field = if path == "." || path.is_empty() { "query".to_string() } else { path };
            ApiError::invalid(&field, explain(e.into_inner().to_string()))
        })
    }
}

/// The client's IP address, from the TCP connection (`X-Forwarded-For` is not trusted: any client can set
/// it). `None` only when the router is served without connection info.
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let info = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(ClientAddr(info.map(|c| c.0.ip())))
    }
}

#[cfg(test)]
mod properties;
