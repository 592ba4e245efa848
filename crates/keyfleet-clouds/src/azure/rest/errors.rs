//! Key Vault's error answers classified for the engine's retry policy, `Retry-After` in its three spellings,
//! transport failures, and unexpected answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde::Deserialize;

use crate::error::{CloudError, ErrorKind};

/// How much of an unparsable error body goes into an error message.
const MAX_BODY_IN_MESSAGE: usize = 512;

#[derive(Deserialize)]
struct WireErrorBody {
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireError {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<WireError>>,
}

/// A Key Vault error answer, classified: 429 → Throttled, 401/403 → Unauthorized, 404 → NotFound, other 4xx
/// (409 `Conflict` included) → Rejected, 5xx → Transient.
pub(super) fn vault_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CloudError {
    let parsed = serde_json::from_slice::<WireErrorBody>(body).ok().and_then(|b| b.error);
    let (code, message) = match parsed {
        Some(error) => {
            let mut message = error.message.unwrap_or_default();
            if let Some(inner) = error.innererror.and_then(|i| i.code) {
                message = format!("{message} (innererror: {inner})");
            }
            (error.code, message)
        }
        None => (None, body_excerpt(body)),
    };
    let code = code.filter(|c| !c.is_empty()).unwrap_or_else(|| format!("HTTP{}", status.as_u16()));
    let kind = match status.as_u16() {
        429 => ErrorKind::Throttled,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Transient,
        400..=499 => ErrorKind::Rejected,
        500..=599 => ErrorKind::Transient,
        // A redirect (never followed: it would take the token along) or anything else unexpected.
        _ => ErrorKind::Rejected,
    };
    let message = if message.is_empty() { format!("HTTP {status}") } else { message };
    let mut err = CloudError::new(kind, code, message);
    if kind == ErrorKind::Throttled {
        err.retry_after = retry_after(headers);
    }
    err
}

/// `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds), else `Retry-After` (seconds or an HTTP date).
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = header(name).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = header(RETRY_AFTER.as_str())?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
    Some((at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
}

/// A transport failure (connection refused, TLS handshake, timeout, broken body): worth retrying.
pub(super) fn transport_error(err: &reqwest::Error) -> CloudError {
    if err.is_builder() {
        return CloudError::new(ErrorKind::Rejected, "InvalidRequest", chain(err));
    }
    let code = if err.is_timeout() { "Timeout" } else { "ConnectionError" };
    CloudError::new(ErrorKind::Transient, code, chain(err))
}

/// An error and its causes, `outer: inner: ...` (reqwest's own `Display` stops at the outermost).
pub(super) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(super) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_MESSAGE) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

pub(super) fn invalid_response(what: &str) -> CloudError {
    CloudError::new(ErrorKind::Transient, "InvalidResponse", format!("unexpected Key Vault answer: {what}"))
}

pub(super) fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CloudError> {
    serde_json::from_slice(body).map_err(|e| invalid_response(&e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let body =
            br#"{"error":{"code":"Conflict","message":"gone","innererror":{"code":"ObjectIsDeletedButRecoverable"}}}"#;
        let err = vault_error(StatusCode::CONFLICT, &HeaderMap::new(), body);
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "Conflict"));
        assert!(err.message.contains("ObjectIsDeletedButRecoverable"));
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let err = vault_error(StatusCode::TOO_MANY_REQUESTS, &headers, b"");
        assert_eq!(
            (err.kind, err.code.as_str(), err.retry_after),
            (ErrorKind::Throttled, "HTTP429", Some(Duration::from_secs(7)))
        );
        assert_eq!(vault_error(StatusCode::FORBIDDEN, &HeaderMap::new(), b"{}").kind, ErrorKind::Unauthorized);
        assert_eq!(vault_error(StatusCode::NOT_FOUND, &HeaderMap::new(), b"").kind, ErrorKind::NotFound);
        assert_eq!(vault_error(StatusCode::BAD_REQUEST, &HeaderMap::new(), b"").kind, ErrorKind::Rejected);
        assert_eq!(vault_error(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html>").message, "<html>");
        assert_eq!(vault_error(StatusCode::SERVICE_UNAVAILABLE, &HeaderMap::new(), b"").kind, ErrorKind::Transient);
        assert_eq!(vault_error(StatusCode::FOUND, &HeaderMap::new(), b"").kind, ErrorKind::Rejected);
    }
}
