//! The fake Entra ID token endpoint: `POST /{tenant}/oauth2/v2.0/token` with the client
//! credentials grant, answering and failing as Entra ID does (`AADSTS` codes).

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::Serialize;

use super::FakeVault;
use super::protocol::VAULT_RESOURCE;
use super::state::{Issued, State as FakeState, random_bytes};

/// Lifetime of an issued token, as Entra ID reports it for app tokens.
pub const TOKEN_LIFETIME_SECS: i64 = 3599;
const GRANT_TYPE: &str = "client_credentials";

#[derive(Debug, Serialize)]
struct TokenResponse {
    token_type: &'static str,
    expires_in: i64,
    ext_expires_in: i64,
    access_token: String,
}

/// An Entra ID error: OAuth 2.0 `error`, and the `AADSTS` number and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

impl EntraError {
    fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self { status, error, code, description: description.into() }
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{parameter}'."),
        )
    }
}

pub(super) async fn token(
    State(fake): State<FakeVault>,
    tenant: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let tenant = tenant.map(|Path(t)| t).unwrap_or_default();
    let mut state = fake.lock();
    state.token_requests += 1;
    let result = issue(&mut state, &tenant, &body);
    drop(state);
    match &result {
        Ok(_) => tracing::debug!(entra.tenant = %tenant, "fake Entra ID issued a token"),
        Err(err) => tracing::debug!(entra.tenant = %tenant, entra.error = err.error, "fake Entra ID refused a token"),
    }
    respond(result)
}

fn issue(state: &mut FakeState, tenant: &str, body: &[u8]) -> Result<TokenResponse, EntraError> {
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let param = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());

    if !state.clients.iter().any(|c| c.tenant.eq_ignore_ascii_case(tenant)) {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90_002,
            format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID."),
        ));
    }
    let grant_type = param("grant_type").ok_or_else(|| EntraError::missing("grant_type"))?;
    if grant_type != GRANT_TYPE {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant_type}'; the fake serves '{GRANT_TYPE}'."),
        ));
    }
    let client_id = param("client_id").ok_or_else(|| EntraError::missing("client_id"))?;
    let client =
        state.clients.iter().find(|c| c.tenant.eq_ignore_ascii_case(tenant) && c.client_id == client_id).ok_or_else(
            || {
                EntraError::new(
                    StatusCode::BAD_REQUEST,
                    "unauthorized_client",
                    700_016,
                    format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
                )
            },
        )?;
    let secret = param("client_secret").ok_or_else(|| {
        EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    })?;
    if secret != client.secret {
        return Err(EntraError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client \
                 secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
        ));
    }
    let scope = param("scope").ok_or_else(|| EntraError::missing("scope"))?;
    let expected = format!("{VAULT_RESOURCE}/.default");
    if scope != expected {
        return Err(EntraError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1_002_012,
            format!(
                "The provided value for scope '{scope}' is not valid; the fake issues tokens for '{expected}' only."
            ),
        ));
    }

    let now = Utc::now().timestamp();
    state.tokens.retain(|_, issued| issued.expires_at > now);
    let access_token = URL_SAFE_NO_PAD.encode(random_bytes(32));
    state.tokens.insert(access_token.clone(), Issued { expires_at: now + TOKEN_LIFETIME_SECS });
    Ok(TokenResponse {
        token_type: "Bearer",
        expires_in: TOKEN_LIFETIME_SECS,
        ext_expires_in: TOKEN_LIFETIME_SECS,
        access_token,
    })
}

fn respond(result: Result<TokenResponse, EntraError>) -> Response {
    let (status, body) = match result {
        Ok(token) => (StatusCode::OK, serde_json::to_value(token).unwrap_or_default()),
        Err(err) => {
            let now = Utc::now();
            let trace_id = uuid::Uuid::new_v4();
            let correlation_id = uuid::Uuid::new_v4();
            let timestamp = now.format("%Y-%m-%d %H:%M:%SZ");
            let body = serde_json::json!({
                "error": err.error,
                "error_description": format!(
                    "AADSTS{}: {} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {timestamp}",
                    err.code, err.description
                ),
                "error_codes": [err.code],
                "timestamp": timestamp.to_string(),
                "trace_id": trace_id,
                "correlation_id": correlation_id,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", err.code),
            });
            (err.status, body)
        }
    };
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::state::Client;
    use super::*;

    fn state() -> FakeState {
        FakeState::new(vec![Client { tenant: "t1".into(), client_id: "app".into(), secret: "s3cret".into() }])
    }

    fn form(secret: &str) -> String {
        format!(
            "grant_type=client_credentials&client_id=app&client_secret={secret}&scope=https%3A%2F%2Fvault.azure.net%2F.default"
        )
    }

    #[test]
    fn issues_tokens_to_configured_clients() {
        let mut state = state();
        let token = issue(&mut state, "t1", form("s3cret").as_bytes()).unwrap();
        assert_eq!((token.token_type, token.expires_in), ("Bearer", 3599));
        assert!(state.token_valid(&token.access_token, Utc::now().timestamp()));
    }

    #[test]
    fn refuses_like_entra_id() {
        let mut state = state();
        let err = issue(&mut state, "t1", form("wrong").as_bytes()).unwrap_err();
        assert_eq!((err.status, err.error, err.code), (StatusCode::UNAUTHORIZED, "invalid_client", 7_000_215));
        assert_eq!(issue(&mut state, "t2", form("s3cret").as_bytes()).unwrap_err().code, 90_002);
        let no_scope = "grant_type=client_credentials&client_id=app&client_secret=s3cret";
        assert_eq!(issue(&mut state, "t1", no_scope.as_bytes()).unwrap_err().code, 900_144);
        let graph = form("s3cret").replace("vault.azure.net", "graph.microsoft.com");
        assert_eq!(issue(&mut state, "t1", graph.as_bytes()).unwrap_err().error, "invalid_scope");
        let password = form("s3cret").replace("client_credentials", "password");
        assert_eq!(issue(&mut state, "t1", password.as_bytes()).unwrap_err().error, "unsupported_grant_type");
        let other_app = form("s3cret").replace("client_id=app", "client_id=nope");
        assert_eq!(issue(&mut state, "t1", other_app.as_bytes()).unwrap_err().error, "unauthorized_client");
        assert!(state.tokens.is_empty());
    }
}
