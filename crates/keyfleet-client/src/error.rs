//! The one error type of the client library.

use std::fmt;

use keyfleet_api_types::ErrorBody;

/// Everything a call through [`crate::Client`] can fail with.
///
/// `Display` is written for people: an API error renders as `400 NCERRInvalidParamValue: days: must be
/// between 7 and 30`, a transport error carries its whole cause chain (TLS, connect, ...) in one line.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered non-2xx with a CCKM error body.
    Api { status: u16, body: ErrorBody },
    /// The server answered non-2xx with something that is not a CCKM error body (a proxy, another server).
    Status { status: u16, text: String },
    /// The request never got an HTTP answer: connect, TLS, timeout, ...
    Http(reqwest::Error),
    /// A 2xx answer whose body did not have the expected shape.
    Decode { path: String, source: serde_json::Error },
    /// The automatic token refresh was refused: the session is over and the user must log in again.
    SessionExpired(Box<ClientError>),
    /// A problem before any request was sent: bad base URL, unreadable CA certificate, ...
    Local(String),
}

impl ClientError {
    /// The HTTP status of an answered request, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Status { status, .. } => Some(*status),
            ClientError::SessionExpired(inner) => inner.status(),
            _ => None,
        }
    }

    /// The CCKM error body, if the server sent one.
    pub fn error_body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Api { body, .. } => Some(body),
            ClientError::SessionExpired(inner) => inner.error_body(),
            _ => None,
        }
    }

    /// Turns a non-2xx answer into an error: a CCKM body when it parses, the (shortened) text otherwise.
    pub(crate) fn from_answer(status: u16, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => ClientError::Api { status, body },
            Err(_) => ClientError::Status { status, text: shorten(&String::from_utf8_lossy(bytes), 300) },
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Api { status, body } => {
                write!(f, "{status} {}: {}", body.code_desc, body.message)
            }
            ClientError::Status { status, text } => {
                let reason =
                    reqwest::StatusCode::from_u16(*status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
                let text = text.trim();
                match (reason.is_empty(), text.is_empty()) {
                    (_, true) => write!(f, "{status} {reason}"),
                    (true, false) => write!(f, "{status}: {text}"),
                    (false, false) => write!(f, "{status} {reason}: {text}"),
                }
            }
            ClientError::Http(err) => {
                // reqwest's own message is terse ("error sending request for url (...)"); the useful part
                // (certificate unknown, connection refused) is further down the chain, so print all of it
                // here and report no `source()`, which keeps `{:#}` from printing it twice.
                match err.url() {
                    Some(url) if err.is_timeout() => write!(f, "timed out calling {url}")?,
                    Some(url) if err.is_connect() => write!(f, "cannot connect to {url}")?,
                    Some(url) => write!(f, "request to {url} failed")?,
                    None => write!(f, "{err}")?,
                }
                let mut cause = std::error::Error::source(err);
                while let Some(c) = cause {
                    let text = c.to_string();
                    // hyper's "client error (Connect)" only repeats what `what` says.
                    if !text.starts_with("client error (") {
                        write!(f, ": {text}")?;
                    }
                    cause = c.source();
                }
                Ok(())
            }
            ClientError::Decode { path, source } => {
                write!(f, "unexpected answer from {path}: {source}")
            }
            ClientError::SessionExpired(inner) => {
                write!(f, "session expired, run `keyfleet login` again (refresh refused: {inner})")
            }
            ClientError::Local(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<reqwest::Error> for ClientError {
    fn from(err: reqwest::Error) -> Self {
        ClientError::Http(err)
    }
}

fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cckm_body_renders_status_code_desc_and_message() {
        let body = br#"{"code":9,"codeDesc":"NCERRInvalidParamValue","message":"days: must be between 7 and 30","requestID":"r1"}"#;
        let err = ClientError::from_answer(400, body);
        assert_eq!(err.to_string(), "400 NCERRInvalidParamValue: days: must be between 7 and 30");
        assert_eq!(err.status(), Some(400));
        assert_eq!(err.error_body().map(|b| b.code), Some(9));
    }

    #[test]
    fn body_without_request_id_still_parses() {
        let body = br#"{"code":5,"codeDesc":"NCERRUnauthorizedAccess","message":"Wrong username or password."}"#;
        let err = ClientError::from_answer(401, body);
        assert_eq!(err.to_string(), "401 NCERRUnauthorizedAccess: Wrong username or password.");
    }

    #[test]
    fn foreign_bodies_render_with_reason_and_shortened_text() {
        let err = ClientError::from_answer(502, b"<html>bad gateway</html>");
        assert_eq!(err.to_string(), "502 Bad Gateway: <html>bad gateway</html>");
        assert!(err.error_body().is_none());

        let err = ClientError::from_answer(404, b"");
        assert_eq!(err.to_string(), "404 Not Found");

        let long = "x".repeat(1000);
        let err = ClientError::from_answer(500, long.as_bytes());
        assert!(err.to_string().ends_with("..."));
        assert!(err.to_string().len() < 350);
    }

    #[test]
    fn session_expired_keeps_the_refusal() {
        let inner = ClientError::from_answer(
            401,
            br#"{"code":5,"codeDesc":"NCERRUnauthorizedAccess","message":"refresh token revoked"}"#,
        );
        let err = ClientError::SessionExpired(Box::new(inner));
        assert_eq!(err.status(), Some(401));
        assert!(err.to_string().contains("keyfleet login"));
        assert!(err.to_string().contains("refresh token revoked"));
    }
}
