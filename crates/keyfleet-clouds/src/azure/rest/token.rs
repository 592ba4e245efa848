//! Entra ID client-credentials tokens: fetched single-flight per application, cached until shortly before they
//! expire. Neither the client secret nor a token ever appears in an error, a log line or `Debug` output.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::ACCEPT;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::errors::{body_excerpt, retry_after, transport_error};
use super::transport::origin_label;
use crate::azure::AzureCredentials;
use crate::error::{CloudError, ErrorKind};

/// A token is refreshed when less than this is left of it, or less than half its lifetime for short-lived ones.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A bearer token, shared by the clients of one application. `Debug` never shows it.
#[derive(Debug, Clone)]
pub(super) struct AccessToken(Arc<SecretString>);

impl AccessToken {
    pub(super) fn bearer(&self) -> &str {
        self.0.expose_secret()
    }
}

/// The same token: the one answer of one token request (a later request makes another, even if equal).
impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Debug)]
struct CachedToken {
    token: AccessToken,
    /// Used until then, refreshed from then on.
    refresh_at: Instant,
}

#[derive(Debug, Default)]
struct SlotState {
    token: Option<CachedToken>,
    /// The outcome of the latest token request when it failed: shared with the callers that waited for it.
    last_error: Option<CloudError>,
}

/// One application's token: the cache and the single-flight lock around fetching it.
#[derive(Debug, Default)]
pub(super) struct TokenSlot {
    state: tokio::sync::Mutex<SlotState>,
    /// Token requests made so far; tells a waiter whether a request ran while it waited.
    fetches: AtomicU64,
}

/// When a token of `lifetime` fetched at `now` should be replaced: 5 minutes before it expires, or at half its
/// lifetime for tokens that live less than 10 minutes.
fn refresh_at(now: Instant, lifetime: Duration) -> Instant {
    let margin = REFRESH_MARGIN.min(lifetime / 2);
    now + lifetime.saturating_sub(margin)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    /// A number from v2.0 endpoints, a string from some older ones.
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct EntraErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenSlot {
    /// A token, and whether it came from the cache (`true`) rather than a request made for this caller.
    pub(super) async fn get(
        &self,
        http: &reqwest::Client,
        credentials: &AzureCredentials,
    ) -> Result<(AccessToken, bool), CloudError> {
        let seen = self.fetches.load(Ordering::SeqCst);
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.token
            && Instant::now() < cached.refresh_at
        {
            return Ok((cached.token.clone(), true));
        }
        // Someone fetched while we waited for the lock and failed: their answer is ours too.
        if self.fetches.load(Ordering::SeqCst) != seen
            && let Some(err) = &state.last_error
        {
            return Err(err.clone());
        }
        // The lifetime counts from when we asked, not from when the answer arrived: on the safe side.
        let asked = Instant::now();
        let result = fetch_token(http, credentials).await;
        self.fetches.fetch_add(1, Ordering::SeqCst);
        match result {
            Ok((token, lifetime)) => {
                state.token = Some(CachedToken { token: token.clone(), refresh_at: refresh_at(asked, lifetime) });
                state.last_error = None;
                Ok((token, false))
            }
            Err(err) => {
                state.last_error = Some(err.clone());
                Err(err)
            }
        }
    }

    /// Drops `token` from the cache if it is still the cached one.
    pub(super) async fn invalidate(&self, token: &AccessToken) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|cached| &cached.token == token) {
            state.token = None;
        }
    }
}

/// `POST {authority}/{tenant}/oauth2/v2.0/token` with the client-credentials grant.
async fn fetch_token(
    http: &reqwest::Client,
    credentials: &AzureCredentials,
) -> Result<(AccessToken, Duration), CloudError> {
    let url = token_url(credentials)?;
    let scope = format!("{}/.default", credentials.resource.trim_end_matches('/'));
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", credentials.client_id.as_str()),
        ("client_secret", credentials.client_secret.expose_secret()),
        ("scope", scope.as_str()),
    ];
    let started = Instant::now();
    let sent = http.post(url.clone()).header(ACCEPT, "application/json").form(&form).send().await;
    let scrub = |text: String| scrub_secret(text, credentials.client_secret.expose_secret());
    let log = |status: u16| {
        tracing::debug!(
            entra.host = %origin_label(&url),
            entra.tenant = %credentials.tenant_id,
            entra.client_id = %credentials.client_id,
            http.status = status,
            duration_ms = started.elapsed().as_millis() as u64,
            "Entra ID token request"
        );
    };
    let response = match sent {
        Ok(response) => response,
        Err(err) => {
            log(0);
            let mut err = transport_error(&err);
            err.message = scrub(format!("token request: {}", err.message));
            return Err(err);
        }
    };
    let status = response.status();
    log(status.as_u16());
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(err) => {
            let mut err = transport_error(&err);
            err.message = scrub(format!("token request: {}", err.message));
            return Err(err);
        }
    };

    if status.is_success() {
        let invalid = |what: &str| {
            CloudError::new(ErrorKind::Transient, "InvalidTokenResponse", format!("Entra ID token response: {what}"))
        };
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| invalid(&e.to_string()))?;
        let token = parsed.access_token.filter(|t| !t.is_empty()).ok_or_else(|| invalid("no access_token"))?;
        let lifetime = match parsed.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| invalid("no valid expires_in"))?;
        return Ok((AccessToken(Arc::new(token.into())), Duration::from_secs(lifetime)));
    }

    let entra: EntraErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    let code = entra.error.clone().unwrap_or_else(|| format!("HTTP{}", status.as_u16()));
    let detail = match (&entra.error, &entra.error_description) {
        (Some(error), Some(description)) => format!("{error}: {description}"),
        (Some(error), None) => error.clone(),
        (None, Some(description)) => description.clone(),
        (None, None) => body_excerpt(&body),
    };
    let message = scrub(format!(
        "Entra ID refused a token for client '{}' in tenant '{}' (HTTP {}): {detail}",
        credentials.client_id,
        credentials.tenant_id,
        status.as_u16()
    ));
    let kind = match status {
        StatusCode::TOO_MANY_REQUESTS => ErrorKind::Throttled,
        StatusCode::REQUEST_TIMEOUT => ErrorKind::Transient,
        s if s.is_server_error() => ErrorKind::Transient,
        // invalid_client, unauthorized_client, an unknown tenant, a wrong authority...: asking again will not help.
        _ => ErrorKind::Unauthorized,
    };
    let mut err = CloudError::new(kind, code, message);
    if kind == ErrorKind::Throttled {
        err.retry_after = retry_after(&headers);
    }
    Err(err)
}

fn token_url(credentials: &AzureCredentials) -> Result<Url, CloudError> {
    let invalid = |why: &str| {
        CloudError::new(
            ErrorKind::Unauthorized,
            "InvalidAuthority",
            format!("authority '{}': {why}", credentials.authority),
        )
    };
    if credentials.tenant_id.is_empty() {
        return Err(CloudError::new(ErrorKind::Unauthorized, "InvalidTenant", "the tenant id is empty"));
    }
    let mut url = Url::parse(credentials.authority.trim_end_matches('/')).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("must be an https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must have no query, fragment or user info"));
    }
    url.path_segments_mut().map_err(|()| invalid("cannot hold a path"))?.pop_if_empty().extend([
        credentials.tenant_id.as_str(),
        "oauth2",
        "v2.0",
        "token",
    ]);
    Ok(url)
}

/// Replaces the client secret wherever it appears (Entra ID does not echo it, but nothing here relies on that).
fn scrub_secret(text: String, secret: &str) -> String {
    if secret.is_empty() || !text.contains(secret) { text } else { text.replace(secret, "<redacted>") }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::azure::{PUBLIC_AUTHORITY, VAULT_RESOURCE};

    #[test]
    fn token_urls() {
        let mut credentials = AzureCredentials {
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            authority: format!("{PUBLIC_AUTHORITY}/"),
            resource: VAULT_RESOURCE.into(),
        };
        assert_eq!(
            token_url(&credentials).unwrap().as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        credentials.tenant_id = "a/b".into();
        assert!(token_url(&credentials).unwrap().as_str().ends_with("/a%2Fb/oauth2/v2.0/token"));
        credentials.authority = "http://login.example".into();
        assert_eq!(token_url(&credentials).unwrap_err().kind, ErrorKind::Unauthorized);
    }

    #[test]
    fn debug_never_shows_a_token() {
        let token = AccessToken(Arc::new("eyJ0eXAiOiJKV1Qi.secret-part".into()));
        let shown = format!("{token:?}");
        assert!(!shown.contains("secret-part"), "{shown}");
        assert_eq!(token.bearer(), "eyJ0eXAiOiJKV1Qi.secret-part");
        assert_eq!(token, token.clone());
        assert_ne!(token, AccessToken(Arc::new("eyJ0eXAiOiJKV1Qi.secret-part".into())));
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let now = Instant::now();
        assert_eq!(refresh_at(now, Duration::from_secs(3599)), now + Duration::from_secs(3299));
        assert_eq!(refresh_at(now, Duration::from_secs(120)), now + Duration::from_secs(60));
        assert_eq!(refresh_at(now, Duration::ZERO), now);
    }

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(scrub_secret("bad s3cret!".into(), "s3cret"), "bad <redacted>!");
        assert_eq!(scrub_secret("nothing".into(), ""), "nothing");
    }
}
