//! Key Vault (keys data plane, REST API [`API_VERSION`]) over HTTPS with reqwest, authenticated with Entra ID
//! client-credentials tokens.
//!
//! - One [`reqwest::Client`] per connector: connect timeout 5 s, request timeout 30 s, no redirects (a redirect
//!   would carry the bearer token to wherever it points), https only.
//! - Tokens are cached per [`AzureCredentials`] in the connector, shared by every client it made, and fetched
//!   single-flight: concurrent callers wait for one token request (and share its failure).
//! - A 401 from the vault on a request sent with a cached token drops that token and retries the request once with
//!   a new one (the token may have been revoked, or the clock may be off).
//! - `nextLink`s are followed as returned, but only to the vault's own origin: the token is never sent elsewhere.
//! - Neither the client secret nor a token ever appears in an error, a log line or `Debug` output.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::*;
use crate::error::{CloudError, ErrorKind};

/// How long establishing a connection (TCP and TLS) may take.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request (connect, send, read the answer) may take.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A token is refreshed when less than this is left of it, or less than half its lifetime for short-lived ones.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Key Vault's rule for object names.
const MAX_KEY_NAME_LEN: usize = 127;
/// How much of an unparsable error body goes into an error message.
const MAX_BODY_IN_MESSAGE: usize = 512;

/// base64url, with or without padding: Key Vault sends it without, other producers add it.
const BASE64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Key Vault over HTTPS with reqwest; Entra ID client-credentials tokens cached per application.
#[derive(Clone)]
pub struct RestConnector {
    http: reqwest::Client,
    tokens: Arc<StdMutex<HashMap<AzureCredentials, Arc<TokenSlot>>>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl fmt::Debug for RestConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.tokens.lock().map(|t| t.len()).unwrap_or_default();
        f.debug_struct("RestConnector")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("applications", &cached)
            .finish_non_exhaustive()
    }
}

impl RestConnector {
    /// `extra_roots_pem`: CA certificates (PEM) to trust besides the system's, e.g. a fake's CA in tests. Connect
    /// timeout 5 s, request timeout 30 s.
    pub fn new(extra_roots_pem: Option<&[u8]>) -> Result<Self, CloudError> {
        Self::with_timeouts(extra_roots_pem, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)
    }

    /// As [`RestConnector::new`], with other timeouts: `connect_timeout` for TCP and TLS, `request_timeout` for a
    /// whole request including reading the answer.
    pub fn with_timeouts(
        extra_roots_pem: Option<&[u8]>,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, CloudError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true)
            .user_agent(concat!("keyfleet/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_roots_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                CloudError::new(ErrorKind::Rejected, "InvalidCertificate", format!("extra CA certificates: {e}"))
            })?;
            if certs.is_empty() {
                return Err(CloudError::new(
                    ErrorKind::Rejected,
                    "InvalidCertificate",
                    "extra CA certificates: the PEM holds no certificate",
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            CloudError::new(ErrorKind::Rejected, "ClientConfiguration", format!("HTTPS client: {}", chain(&e)))
        })?;
        Ok(Self { http, tokens: Arc::default(), connect_timeout, request_timeout })
    }

    /// The token slot of one application, shared by every client of this connector that uses it.
    fn slot(&self, credentials: &AzureCredentials) -> Arc<TokenSlot> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.entry(credentials.clone()).or_default().clone()
    }
}

impl KeyVaultConnector for RestConnector {
    fn connect(&self, credentials: &AzureCredentials, vault_url: &str) -> Arc<dyn KeyVault> {
        let vault = parse_vault_url(vault_url);
        let host = match &vault {
            Ok(url) => origin_label(url),
            Err(_) => "<invalid vault url>".to_owned(),
        };
        Arc::new(RestVault {
            http: self.http.clone(),
            credentials: credentials.clone(),
            slot: self.slot(credentials),
            vault,
            host,
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens

/// A bearer token. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
struct AccessToken(Arc<str>);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
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
struct TokenSlot {
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
    async fn get(
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
    async fn invalidate(&self, token: &AccessToken) {
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
        ("client_secret", credentials.client_secret.as_str()),
        ("scope", scope.as_str()),
    ];
    let started = Instant::now();
    let sent = http.post(url.clone()).header(ACCEPT, "application/json").form(&form).send().await;
    let scrub = |text: String| scrub_secret(text, &credentials.client_secret);
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
        return Ok((AccessToken(token.into()), Duration::from_secs(lifetime)));
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

// ---------------------------------------------------------------------------------------------------------------
// The data plane

/// One vault, for one application.
struct RestVault {
    http: reqwest::Client,
    credentials: AzureCredentials,
    slot: Arc<TokenSlot>,
    /// The vault's base URL (no trailing `/`, no query), or why it is unusable.
    vault: Result<Url, CloudError>,
    /// `host[:port]` of the vault, for logs.
    host: String,
}

/// What one attempt of a data-plane call ended with.
enum Attempt {
    Done(Vec<u8>),
    /// HTTP 401: the token was refused.
    Refused(CloudError),
    Failed(CloudError),
}

impl RestVault {
    fn base(&self) -> Result<&Url, CloudError> {
        self.vault.as_ref().map_err(Clone::clone)
    }

    /// `{vault}/{segments...}?api-version=...`, appended to the vault URL's own path.
    fn endpoint(&self, segments: &[&str]) -> Result<Url, CloudError> {
        let mut url = self.base()?.clone();
        url.path_segments_mut()
            .map_err(|()| CloudError::new(ErrorKind::Rejected, "InvalidVaultUrl", "the vault URL cannot hold a path"))?
            .pop_if_empty()
            .extend(segments);
        url.query_pairs_mut().append_pair("api-version", API_VERSION);
        Ok(url)
    }

    /// A `nextLink` to follow: as returned, if it is on the vault's origin.
    fn next_link_url(&self, next_link: &str) -> Result<Url, CloudError> {
        let vault = self.base()?;
        let mut url = checked_next_link(vault, next_link)?;
        if !url.query_pairs().any(|(k, _)| k == "api-version") {
            url.query_pairs_mut().append_pair("api-version", API_VERSION);
        }
        Ok(url)
    }

    /// Sends one call with a bearer token; on a 401 with a cached token, drops it and retries once with a new one.
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, CloudError> {
        let (token, cached) = self.slot.get(&self.http, &self.credentials).await?;
        match self.attempt(operation, &method, &url, body.as_ref(), &token).await {
            Attempt::Done(bytes) => Ok(bytes),
            Attempt::Failed(err) => Err(err),
            // A token fetched for this very call and refused would be refused again.
            Attempt::Refused(err) if !cached => Err(err),
            Attempt::Refused(_) => {
                self.slot.invalidate(&token).await;
                let (token, _) = self.slot.get(&self.http, &self.credentials).await?;
                // A new token refused too: the vault refuses this application, whatever the token. The new token
                // stays cached for the application's other vaults.
                match self.attempt(operation, &method, &url, body.as_ref(), &token).await {
                    Attempt::Done(bytes) => Ok(bytes),
                    Attempt::Refused(err) | Attempt::Failed(err) => Err(err),
                }
            }
        }
    }

    async fn attempt(
        &self,
        operation: &'static str,
        method: &Method,
        url: &Url,
        body: Option<&Vec<u8>>,
        token: &AccessToken,
    ) -> Attempt {
        let started = Instant::now();
        let mut request =
            self.http.request(method.clone(), url.clone()).bearer_auth(&*token.0).header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        } else if *method == Method::POST {
            request = request.body(Vec::new());
        }
        let log = |status: u16, error: &str| {
            tracing::debug!(
                azure.vault_host = %self.host,
                azure.operation = operation,
                http.status = status,
                error,
                duration_ms = started.elapsed().as_millis() as u64,
                "Key Vault call"
            );
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let err = transport_error(&err);
                log(0, &err.code);
                return Attempt::Failed(err);
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => {
                let err = transport_error(&err);
                log(status.as_u16(), &err.code);
                return Attempt::Failed(err);
            }
        };
        if status.is_success() {
            log(status.as_u16(), "");
            return Attempt::Done(body.into());
        }
        let err = vault_error(status, &headers, &body);
        log(status.as_u16(), &err.code);
        if status == StatusCode::UNAUTHORIZED { Attempt::Refused(err) } else { Attempt::Failed(err) }
    }

    async fn list(&self, operation: &'static str, url: Url, versions: bool) -> Result<Listing<KeyItem>, CloudError> {
        let body = self.call(operation, Method::GET, url, None).await?;
        let page: WirePage = parse(&body)?;
        let items = page
            .value
            .unwrap_or_default()
            .into_iter()
            .map(|item| key_item(item, versions))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Listing { items, next_link: page.next_link.filter(|l| !l.is_empty()) })
    }
}

impl fmt::Debug for RestVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestVault")
            .field("vault", &self.vault.as_ref().map(Url::as_str))
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl KeyVault for RestVault {
    async fn list_keys(&self, next_link: Option<&str>) -> Result<Listing<KeyItem>, CloudError> {
        let url = match next_link {
            None => self.endpoint(&["keys"])?,
            Some(link) => self.next_link_url(link)?,
        };
        self.list("list_keys", url, false).await
    }

    async fn list_key_versions(&self, name: &str, next_link: Option<&str>) -> Result<Listing<KeyItem>, CloudError> {
        check_key_name(name)?;
        let url = match next_link {
            None => self.endpoint(&["keys", name, "versions"])?,
            Some(link) => self.next_link_url(link)?,
        };
        self.list("list_key_versions", url, true).await
    }

    async fn get_key(&self, name: &str) -> Result<KeyBundle, CloudError> {
        check_key_name(name)?;
        let url = self.endpoint(&["keys", name])?;
        let body = self.call("get_key", Method::GET, url, None).await?;
        key_bundle(parse(&body)?)
    }

    async fn backup_key(&self, name: &str) -> Result<Vec<u8>, CloudError> {
        check_key_name(name)?;
        let url = self.endpoint(&["keys", name, "backup"])?;
        let body = self.call("backup_key", Method::POST, url, None).await?;
        let result: WireBackup = parse(&body)?;
        let value = result.value.ok_or_else(|| invalid_response("backup: no value"))?;
        BASE64URL_LENIENT
            .decode(value.trim())
            .map_err(|e| invalid_response(&format!("backup: value is not base64url: {e}")))
    }

    async fn restore_key(&self, backup: &[u8]) -> Result<KeyBundle, CloudError> {
        let url = self.endpoint(&["keys", "restore"])?;
        let body = serde_json::to_vec(&serde_json::json!({ "value": URL_SAFE_NO_PAD.encode(backup) }))
            .map_err(|e| CloudError::new(ErrorKind::Rejected, "InvalidRequest", e.to_string()))?;
        let body = self.call("restore_key", Method::POST, url, Some(body)).await?;
        key_bundle(parse(&body)?)
    }
}

/// Key Vault's rule for key names: 1-127 characters of `0-9a-zA-Z-`. Checked here because an empty or odd name
/// would address another operation (`keys/` is the listing).
fn check_key_name(name: &str) -> Result<(), CloudError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_KEY_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(CloudError::new(
            ErrorKind::Rejected,
            "InvalidKeyName",
            format!("'{name}' is not a valid key name: 1-{MAX_KEY_NAME_LEN} characters of 0-9, a-z, A-Z and -"),
        ))
    }
}

/// The vault's base URL: https, a host, no query, fragment or user info; a trailing `/` is dropped.
fn parse_vault_url(vault_url: &str) -> Result<Url, CloudError> {
    let invalid = |why: &str| CloudError::new(ErrorKind::Rejected, "InvalidVaultUrl", format!("'{vault_url}': {why}"));
    let mut url = Url::parse(vault_url.trim()).map_err(|e| invalid(&e.to_string()))?;
    if url.scheme() != "https" {
        return Err(invalid("a vault URL must be https"));
    }
    if url.host().is_none() {
        return Err(invalid("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must have no query, fragment or user info"));
    }
    url.path_segments_mut().map_err(|()| invalid("cannot hold a path"))?.pop_if_empty();
    Ok(url)
}

/// Whether two URLs have the same origin: scheme, host and port (a default port equals no port).
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

/// A `nextLink` parsed, if it may be followed from `vault`: on the same origin and without user info; otherwise a
/// `Rejected` error (the bearer token is never sent to another origin).
pub(crate) fn checked_next_link(vault: &Url, next_link: &str) -> Result<Url, CloudError> {
    let refused = |why: String| CloudError::new(ErrorKind::Rejected, "InvalidNextLink", why);
    let url = Url::parse(next_link).map_err(|e| refused(format!("the nextLink is not an absolute URL: {e}")))?;
    if !same_origin(vault, &url) || !url.username().is_empty() || url.password().is_some() {
        return Err(refused(format!(
            "the nextLink points to {}, not to the vault's origin {}; it is not followed",
            origin_label(&url),
            origin_label(vault)
        )));
    }
    Ok(url)
}

/// `scheme://host[:port]` for logs and messages.
fn origin_label(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

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
fn vault_error(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> CloudError {
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
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
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
fn transport_error(err: &reqwest::Error) -> CloudError {
    if err.is_builder() {
        return CloudError::new(ErrorKind::Rejected, "InvalidRequest", chain(err));
    }
    let code = if err.is_timeout() { "Timeout" } else { "ConnectionError" };
    CloudError::new(ErrorKind::Transient, code, chain(err))
}

/// An error and its causes, `outer: inner: ...` (reqwest's own `Display` stops at the outermost).
fn chain(err: &dyn std::error::Error) -> String {
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

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MAX_BODY_IN_MESSAGE) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

fn invalid_response(what: &str) -> CloudError {
    CloudError::new(ErrorKind::Transient, "InvalidResponse", format!("unexpected Key Vault answer: {what}"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, CloudError> {
    serde_json::from_slice(body).map_err(|e| invalid_response(&e.to_string()))
}

// ---------------------------------------------------------------------------------------------------------------
// Key Vault's JSON

#[derive(Deserialize)]
struct WirePage {
    value: Option<Vec<WireKeyItem>>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct WireKeyItem {
    kid: Option<String>,
    attributes: Option<WireAttributes>,
    tags: Option<BTreeMap<String, String>>,
    managed: Option<bool>,
}

#[derive(Deserialize)]
struct WireKeyBundle {
    key: Option<WireJsonWebKey>,
    attributes: Option<WireAttributes>,
    tags: Option<BTreeMap<String, String>>,
    managed: Option<bool>,
}

#[derive(Deserialize)]
struct WireJsonWebKey {
    kid: Option<String>,
    kty: Option<String>,
    key_ops: Option<Vec<String>>,
    n: Option<String>,
    crv: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WireAttributes {
    enabled: Option<bool>,
    created: Option<f64>,
    updated: Option<f64>,
    exp: Option<f64>,
    nbf: Option<f64>,
    recovery_level: Option<String>,
    recoverable_days: Option<i64>,
}

#[derive(Deserialize)]
struct WireBackup {
    value: Option<String>,
}

/// Unix seconds (Key Vault sends integers; fractions are kept if it ever does not).
fn unix_time(seconds: Option<f64>) -> Option<DateTime<Utc>> {
    let seconds = seconds.filter(|s| s.is_finite())?;
    let whole = seconds.floor();
    DateTime::from_timestamp(whole as i64, ((seconds - whole) * 1e9) as u32)
}

/// `(name, version)` from a key id `https://<vault>/keys/<name>[/<version>]` (a path prefix before `keys` is
/// allowed).
pub(crate) fn split_kid(kid: &str) -> Option<(String, Option<String>)> {
    let url = Url::parse(kid).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "keys", name, version] => Some(((*name).to_owned(), Some((*version).to_owned()))),
        [.., "keys", name] => Some(((*name).to_owned(), None)),
        _ => None,
    }
}

/// An RSA modulus's size in bits: its big-endian bytes without leading zeros, times 8.
fn rsa_key_size(n: &str) -> Option<i64> {
    let bytes = BASE64URL_LENIENT.decode(n.trim()).ok()?;
    let significant = bytes.iter().skip_while(|b| **b == 0).count();
    (significant > 0).then(|| significant as i64 * 8)
}

fn key_item(item: WireKeyItem, versioned: bool) -> Result<KeyItem, CloudError> {
    let kid = item.kid.ok_or_else(|| invalid_response("a listed key has no kid"))?;
    let (name, version) = split_kid(&kid).ok_or_else(|| invalid_response(&format!("kid '{kid}' names no key")))?;
    let attributes = item.attributes.unwrap_or_default();
    Ok(KeyItem {
        name,
        version: if versioned { version } else { None },
        enabled: attributes.enabled.unwrap_or(false),
        created: unix_time(attributes.created),
        updated: unix_time(attributes.updated),
        exp: unix_time(attributes.exp),
        nbf: unix_time(attributes.nbf),
        managed: item.managed.unwrap_or(false),
        tags: item.tags.unwrap_or_default(),
        kid,
    })
}

fn key_bundle(bundle: WireKeyBundle) -> Result<KeyBundle, CloudError> {
    let key = bundle.key.ok_or_else(|| invalid_response("the key bundle has no key"))?;
    let kid = key.kid.ok_or_else(|| invalid_response("the key has no kid"))?;
    let (name, version) = split_kid(&kid).ok_or_else(|| invalid_response(&format!("kid '{kid}' names no key")))?;
    let version = version.ok_or_else(|| invalid_response(&format!("kid '{kid}' has no version")))?;
    let attributes = bundle.attributes.unwrap_or_default();
    Ok(KeyBundle {
        name,
        version,
        kty: key.kty.unwrap_or_default(),
        key_ops: key.key_ops.unwrap_or_default(),
        key_size: key.n.as_deref().and_then(rsa_key_size),
        curve: key.crv,
        enabled: attributes.enabled.unwrap_or(false),
        created: unix_time(attributes.created),
        updated: unix_time(attributes.updated),
        exp: unix_time(attributes.exp),
        nbf: unix_time(attributes.nbf),
        recovery_level: attributes.recovery_level.unwrap_or_default(),
        recoverable_days: attributes.recoverable_days,
        managed: bundle.managed.unwrap_or(false),
        tags: bundle.tags.unwrap_or_default(),
        kid,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn next_links_are_followed_only_on_the_vault_origin() {
        let vault = parse_vault_url("https://MyVault.vault.azure.net/").unwrap();
        // Key Vault writes the default port out.
        let real = "https://myvault.vault.azure.net:443/keys?api-version=7.5&$skiptoken=abc&maxresults=25";
        // (The URL parser drops the default port; the request is the same.)
        assert_eq!(checked_next_link(&vault, real).unwrap().as_str(), real.replacen(":443", "", 1));
        for bad in [
            "https://evil.example.com/keys?api-version=7.5",
            "https://myvault.vault.azure.net.evil.example.com/keys",
            "http://myvault.vault.azure.net/keys",
            "https://myvault.vault.azure.net:8443/keys",
            "https://user:pw@myvault.vault.azure.net/keys",
            "/keys?$skiptoken=abc",
            "",
        ] {
            let err = checked_next_link(&vault, bad).unwrap_err();
            assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "InvalidNextLink"), "{bad}");
        }
        let local = parse_vault_url("https://127.0.0.1:4600/vaults/v1").unwrap();
        assert!(checked_next_link(&local, "https://127.0.0.1:4600/vaults/v1/keys?$skiptoken=x").is_ok());
        assert!(checked_next_link(&local, "https://127.0.0.1:4601/vaults/v1/keys").is_err());
        assert!(checked_next_link(&local, "https://localhost:4600/vaults/v1/keys").is_err());
    }

    #[test]
    fn vault_urls_keep_their_path() {
        let vault = RestVault {
            http: reqwest::Client::new(),
            credentials: AzureCredentials {
                tenant_id: "t".into(),
                client_id: "c".into(),
                client_secret: "s".into(),
                authority: PUBLIC_AUTHORITY.into(),
                resource: VAULT_RESOURCE.into(),
            },
            slot: Arc::default(),
            vault: parse_vault_url("https://127.0.0.1:4600/vaults/v1/"),
            host: String::new(),
        };
        assert_eq!(
            vault.endpoint(&["keys", "k1", "backup"]).unwrap().as_str(),
            "https://127.0.0.1:4600/vaults/v1/keys/k1/backup?api-version=7.5"
        );
        let plain = RestVault { vault: parse_vault_url("https://v.vault.azure.net"), ..vault };
        assert_eq!(plain.endpoint(&["keys"]).unwrap().as_str(), "https://v.vault.azure.net/keys?api-version=7.5");
        assert_eq!(
            plain.next_link_url("https://v.vault.azure.net/keys?$skiptoken=x").unwrap().as_str(),
            "https://v.vault.azure.net/keys?$skiptoken=x&api-version=7.5"
        );
        for bad in ["http://v.vault.azure.net", "v.vault.azure.net", "https://v.vault.azure.net/?a=b"] {
            assert_eq!(parse_vault_url(bad).unwrap_err().code, "InvalidVaultUrl", "{bad}");
        }
    }

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
    fn tokens_are_refreshed_before_they_expire() {
        let now = Instant::now();
        assert_eq!(refresh_at(now, Duration::from_secs(3599)), now + Duration::from_secs(3299));
        assert_eq!(refresh_at(now, Duration::from_secs(120)), now + Duration::from_secs(60));
        assert_eq!(refresh_at(now, Duration::ZERO), now);
    }

    #[test]
    fn key_ids() {
        assert_eq!(split_kid("https://v.vault.azure.net/keys/k1/abc"), Some(("k1".into(), Some("abc".into()))));
        assert_eq!(split_kid("https://v.vault.azure.net/keys/k1"), Some(("k1".into(), None)));
        assert_eq!(split_kid("https://v.vault.azure.net/keys/keys"), Some(("keys".into(), None)));
        assert_eq!(split_kid("https://h/vaults/v/keys/k1/abc/"), Some(("k1".into(), Some("abc".into()))));
        assert_eq!(split_kid("https://v.vault.azure.net/secrets/s1"), None);
        assert_eq!(split_kid("k1"), None);
    }

    #[test]
    fn rsa_sizes_ignore_leading_zeros() {
        let mut n = vec![0u8];
        n.extend(std::iter::repeat_n(0xab, 256));
        assert_eq!(rsa_key_size(&URL_SAFE_NO_PAD.encode(&n)), Some(2048));
        assert_eq!(rsa_key_size(&base64::engine::general_purpose::URL_SAFE.encode(&n[1..])), Some(2048));
        assert_eq!(rsa_key_size("!!"), None);
    }

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

    #[test]
    fn secrets_are_scrubbed() {
        assert_eq!(scrub_secret("bad s3cret!".into(), "s3cret"), "bad <redacted>!");
        assert_eq!(scrub_secret("nothing".into(), ""), "nothing");
    }
}
