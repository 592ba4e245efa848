//! [`Client`]: typed async calls to a keyfleet (or CipherTrust CCKM) server, with token refresh.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::auth::{TokenRequest, TokenResponse};
use keyfleet_api_types::aws::{
    AwsConnectionRequest, AwsConnectionView, AwsKeyView, CreateAwsSyncJob, KmsRequest, KmsView, SyncJobView,
};
use keyfleet_api_types::azure::{AzureKeyQuery, AzureKeyView};
use keyfleet_api_types::bulkjob::{BulkJobListQuery, BulkJobView, CreateAwsBulkJob};
use keyfleet_api_types::common::ListParams;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ClientError;
use crate::token::{needs_refresh, now_secs};

/// Where a server listens when nothing else is said: `keyfleet serve`'s default.
pub const DEFAULT_URL: &str = "https://127.0.0.1:8443";

const TOKENS_PATH: &str = "/api/v1/auth/tokens";

/// How long an unused pooled connection is kept: the client must let it go before the server does
/// (`idle_timeout_secs`, 75 s by default), or a request can be sent just as the server closes it.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach the server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `https://host:port` (a path prefix is kept, for reverse proxies); `http://` works too.
    pub base_url: String,
    /// Accept any server certificate (self-signed, wrong host): the `curl -k` of CCKM users.
    pub insecure: bool,
    /// A PEM file of CA certificates to trust in addition to the system's.
    pub ca_cert: Option<PathBuf>,
    /// Whole-request timeout.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            base_url: DEFAULT_URL.to_owned(),
            insecure: false,
            ca_cert: None,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The cloud of a bulk job: its routes differ only in their base path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    /// `/api/v1/cckm/aws/bulkjob`
    Aws,
    /// `/api/v1/cckm/azure/bulkjobs`
    Azure,
}

impl Cloud {
    /// The collection route of the cloud's bulk jobs.
    pub fn bulkjobs_path(self) -> &'static str {
        match self {
            Cloud::Aws => "/api/v1/cckm/aws/bulkjob",
            Cloud::Azure => "/api/v1/cckm/azure/bulkjobs",
        }
    }

    /// The route of one job, followed by `suffix` (`""`, `"/confirm"`, ...).
    fn bulkjob_path(self, id: &str, suffix: &str) -> String {
        format!("{}/{}{suffix}", self.bulkjobs_path(), segment(id))
    }
}

/// Query of `GET /v1/cckm/aws/keys`.
pub type AwsKeyListQuery = keyfleet_api_types::aws::AwsKeyQuery;

/// The refresh grant's answer as CipherTrust Manager may send it: it can leave out the refresh token when
/// it did not renew it, which [`TokenResponse`] (built for the password grant) requires.
#[derive(Deserialize)]
struct RefreshAnswer {
    jwt: String,
    #[serde(default)]
    duration: Option<i64>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_token_id: Option<String>,
    #[serde(default)]
    refresh_token_expires_in: Option<i64>,
}

#[derive(Debug, Clone)]
struct Tokens {
    jwt: SecretString,
    refresh_token: Option<SecretString>,
}

/// What [`Client::on_token_refresh`] calls.
#[derive(Clone)]
struct RefreshHook(Arc<dyn Fn(&TokenResponse) + Send + Sync>);

impl fmt::Debug for RefreshHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshHook")
    }
}

/// An async client for the CCKM-compatible API.
///
/// It holds the session's tokens. Before each request it reads the JWT's `exp` (unverified) and, when
/// less than 30 s are left, uses the refresh token first; a 401 answer triggers one refresh and one retry.
/// Each refresh is reported to the hook set with [`Client::on_token_refresh`], so the CLI can save the new
/// tokens at once (a long `watch` outlives several JWTs).
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    tokens: Mutex<Option<Tokens>>,
    // Serialises refreshes so that concurrent requests holding the same stale JWT refresh it once.
    refresh_lock: tokio::sync::Mutex<()>,
    on_refresh: Option<RefreshHook>,
}

impl Client {
    /// A client for `opts.base_url`, without tokens yet.
    pub fn new(opts: &ClientOptions) -> Result<Client, ClientError> {
        let base_url = opts.base_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| ClientError::Local(format!("invalid server URL {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(ClientError::Local(format!("invalid server URL {base_url:?}: expected https://HOST[:PORT]")));
        }

        let mut builder = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .user_agent(concat!("keyfleet-client/", env!("CARGO_PKG_VERSION")));
        if opts.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(path) = &opts.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| ClientError::Local(format!("reading CA certificate {}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ClientError::Local(format!("parsing CA certificate {}: {e}", path.display())))?;
            if certs.is_empty() {
                return Err(ClientError::Local(format!("{} holds no PEM certificate", path.display())));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build()?;
        Ok(Client {
            http,
            base_url,
            tokens: Mutex::new(None),
            refresh_lock: tokio::sync::Mutex::new(()),
            on_refresh: None,
        })
    }

    /// Starts from tokens saved earlier.
    pub fn with_tokens(self, jwt: impl Into<String>, refresh_token: Option<String>) -> Client {
        self.set_tokens(jwt, refresh_token);
        self
    }

    /// Calls `hook` with the new tokens after every successful refresh (automatic or explicit).
    pub fn on_token_refresh(mut self, hook: impl Fn(&TokenResponse) + Send + Sync + 'static) -> Client {
        self.on_refresh = Some(RefreshHook(Arc::new(hook)));
        self
    }

    /// Replaces the session's tokens.
    pub fn set_tokens(&self, jwt: impl Into<String>, refresh_token: Option<String>) {
        let refresh_token = refresh_token.filter(|t| !t.is_empty()).map(SecretString::from);
        *self.lock_tokens() = Some(Tokens { jwt: SecretString::from(jwt.into()), refresh_token });
    }

    /// The JWT currently sent as bearer token.
    pub fn jwt(&self) -> Option<String> {
        self.lock_tokens().as_ref().map(|t| t.jwt.expose_secret().to_owned())
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /api/v1/auth/tokens` with the password grant; the client keeps the tokens it gets.
    pub async fn login(&self, username: &str, password: &str) -> Result<TokenResponse, ClientError> {
        let req = TokenRequest {
            grant_type: Some("password".to_owned()),
            username: Some(username.to_owned()),
            password: Some(password.to_owned()),
            ..TokenRequest::default()
        };
        let bytes = self.post_token(&req).await?;
        let tokens: TokenResponse = decode(TOKENS_PATH, &bytes)?;
        self.set_tokens(tokens.jwt.clone(), Some(tokens.refresh_token.clone()));
        Ok(tokens)
    }

    /// `POST /api/v1/auth/tokens` with the refresh-token grant. The client keeps the new JWT, and the new
    /// refresh token when the server issued one. When the server did not send a refresh token (or its id),
    /// the answer carries the one sent (or an empty id).
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, ClientError> {
        let req = TokenRequest {
            grant_type: Some("refresh_token".to_owned()),
            refresh_token: Some(refresh_token.to_owned()),
            ..TokenRequest::default()
        };
        let bytes = self.post_token(&req).await?;
        let answer: RefreshAnswer = decode(TOKENS_PATH, &bytes)?;
        let tokens = TokenResponse {
            jwt: answer.jwt,
            duration: answer.duration.unwrap_or(300),
            token_type: answer.token_type.unwrap_or_else(|| "Bearer".to_owned()),
            client_id: answer.client_id.unwrap_or_default(),
            refresh_token: answer.refresh_token.filter(|t| !t.is_empty()).unwrap_or_else(|| refresh_token.to_owned()),
            refresh_token_id: answer.refresh_token_id.unwrap_or_default(),
            refresh_token_expires_in: answer.refresh_token_expires_in,
        };
        self.set_tokens(tokens.jwt.clone(), Some(tokens.refresh_token.clone()));
        if let Some(RefreshHook(hook)) = &self.on_refresh {
            hook(&tokens);
        }
        Ok(tokens)
    }

    /// Any call: `path` is `/api/v1/...` (a bare `/v1/...` gets `/api` in front) and may carry a query
    /// string. The answer's JSON, or `Null` for an empty body (DELETE's 204).
    pub async fn request(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ClientError> {
        let path = api_path(path);
        let bytes = self.call(method, &path, &[], &[], body.as_ref()).await?.bytes().await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        decode(&path, &bytes)
    }

    /// `POST /api/v1/cckm/aws/bulkjob`.
    pub async fn create_aws_bulkjob(&self, req: &CreateAwsBulkJob) -> Result<BulkJobView, ClientError> {
        self.create_bulkjob(Cloud::Aws, req, None).await
    }

    /// `GET /api/v1/cckm/aws/bulkjob/{id}`.
    pub async fn get_aws_bulkjob(&self, id: &str) -> Result<BulkJobView, ClientError> {
        self.get_bulkjob(Cloud::Aws, id).await
    }

    /// `GET /api/v1/cckm/aws/bulkjob`.
    pub async fn list_aws_bulkjobs(&self, query: &BulkJobListQuery) -> Result<ListEnvelope<BulkJobView>, ClientError> {
        self.list_bulkjobs(Cloud::Aws, query).await
    }

    /// `POST /api/v1/cckm/aws/bulkjob/{id}/cancel`: answers the job with `abort: true`.
    pub async fn cancel_aws_bulkjob(&self, id: &str) -> Result<BulkJobView, ClientError> {
        self.cancel_bulkjob(Cloud::Aws, id).await
    }

    /// Creates a bulk job of `cloud` from its create body ([`CreateAwsBulkJob`] or
    /// [`CreateAzureBulkJob`](keyfleet_api_types::azure::CreateAzureBulkJob)); with `idempotency_key`, a repeat
    /// of the same request answers the first job instead of creating another.
    pub async fn create_bulkjob(
        &self,
        cloud: Cloud,
        req: &(impl Serialize + ?Sized),
        idempotency_key: Option<&str>,
    ) -> Result<BulkJobView, ClientError> {
        let headers: Vec<(&str, &str)> = idempotency_key.map(|k| ("Idempotency-Key", k)).into_iter().collect();
        let body = encode(req)?;
        let bytes = self.call(Method::POST, cloud.bulkjobs_path(), &[], &headers, Some(&body)).await?.bytes().await?;
        decode(cloud.bulkjobs_path(), &bytes)
    }

    /// `GET .../{id}` of a bulk job of `cloud`.
    pub async fn get_bulkjob(&self, cloud: Cloud, id: &str) -> Result<BulkJobView, ClientError> {
        self.typed(Method::GET, &cloud.bulkjob_path(id, ""), &[], None::<&()>).await
    }

    /// The bulk-job list of `cloud`.
    pub async fn list_bulkjobs(
        &self,
        cloud: Cloud,
        query: &BulkJobListQuery,
    ) -> Result<ListEnvelope<BulkJobView>, ClientError> {
        let query = query_pairs(query)?;
        self.typed(Method::GET, cloud.bulkjobs_path(), &query, None::<&()>).await
    }

    /// `POST .../{id}/cancel`.
    pub async fn cancel_bulkjob(&self, cloud: Cloud, id: &str) -> Result<BulkJobView, ClientError> {
        self.typed(Method::POST, &cloud.bulkjob_path(id, "/cancel"), &[], None::<&()>).await
    }

    /// `POST .../{id}/confirm`: starts a planned job; answers it, now running.
    pub async fn confirm_bulkjob(&self, cloud: Cloud, id: &str) -> Result<BulkJobView, ClientError> {
        self.typed(Method::POST, &cloud.bulkjob_path(id, "/confirm"), &[], None::<&()>).await
    }

    /// `POST .../{id}/retry-failed`: a new job over the failed and not-attempted items of a finished job.
    pub async fn retry_failed_bulkjob(&self, cloud: Cloud, id: &str) -> Result<BulkJobView, ClientError> {
        let empty = serde_json::Map::new();
        self.typed(Method::POST, &cloud.bulkjob_path(id, "/retry-failed"), &[], Some(&empty)).await
    }

    /// `POST .../{id}/revert`: a new planned job that puts back what a finished job changed.
    pub async fn revert_bulkjob(&self, cloud: Cloud, id: &str) -> Result<BulkJobView, ClientError> {
        let empty = serde_json::Map::new();
        self.typed(Method::POST, &cloud.bulkjob_path(id, "/revert"), &[], Some(&empty)).await
    }

    /// `GET .../{id}/errors`: the failed items grouped by error code.
    pub async fn bulkjob_errors(&self, cloud: Cloud, id: &str) -> Result<Value, ClientError> {
        self.typed(Method::GET, &cloud.bulkjob_path(id, "/errors"), &[], None::<&()>).await
    }

    /// `GET .../{id}/events`: the job's progress as server-sent events, read one at a time; `last_event_id` (the
    /// `id` of the last event a previous stream gave) skips the state already seen. The stream ends after the
    /// `end` event, or when the server closes it (after some minutes, or when the client's whole-request timeout
    /// ends it): reconnect with the last id.
    pub async fn bulkjob_events(
        &self,
        cloud: Cloud,
        id: &str,
        last_event_id: Option<&str>,
    ) -> Result<crate::EventStream, ClientError> {
        let headers: Vec<(&str, &str)> = last_event_id.map(|l| ("Last-Event-ID", l)).into_iter().collect();
        let resp = self.call(Method::GET, &cloud.bulkjob_path(id, "/events"), &[], &headers, None).await?;
        Ok(crate::EventStream::new(resp))
    }

    /// `GET .../{id}/report?format=`: copies the report to `out` chunk by chunk as it arrives (never the
    /// whole body in memory) and returns the number of bytes written. `format` is `csv` or `ndjson`.
    pub async fn download_bulkjob_report(
        &self,
        cloud: Cloud,
        id: &str,
        format: &str,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, ClientError> {
        let path = cloud.bulkjob_path(id, "/report");
        let query = [("format".to_owned(), format.to_owned())];
        let mut resp = self.call(Method::GET, &path, &query, &[], None).await?;
        let mut written = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            out.write_all(&chunk).map_err(|e| ClientError::Local(format!("writing the report: {e}")))?;
            written += chunk.len() as u64;
        }
        out.flush().map_err(|e| ClientError::Local(format!("writing the report: {e}")))?;
        Ok(written)
    }

    /// `GET /api/v1/cckm/azure/keys`.
    pub async fn list_azure_keys(&self, query: &AzureKeyQuery) -> Result<ListEnvelope<AzureKeyView>, ClientError> {
        let query = query_pairs(query)?;
        self.typed(Method::GET, "/api/v1/cckm/azure/keys", &query, None::<&()>).await
    }

    /// `POST /api/v1/connectionmgmt/services/aws/connections`.
    pub async fn create_aws_connection(&self, req: &AwsConnectionRequest) -> Result<AwsConnectionView, ClientError> {
        let path = "/api/v1/connectionmgmt/services/aws/connections";
        self.typed(Method::POST, path, &[], Some(req)).await
    }

    /// `GET /api/v1/connectionmgmt/services/aws/connections`.
    pub async fn list_aws_connections(
        &self,
        params: &ListParams,
    ) -> Result<ListEnvelope<AwsConnectionView>, ClientError> {
        let path = "/api/v1/connectionmgmt/services/aws/connections";
        let query = query_pairs(params)?;
        self.typed(Method::GET, path, &query, None::<&()>).await
    }

    /// `POST /api/v1/cckm/aws/kms`.
    pub async fn create_aws_kms(&self, req: &KmsRequest) -> Result<KmsView, ClientError> {
        self.typed(Method::POST, "/api/v1/cckm/aws/kms", &[], Some(req)).await
    }

    /// `GET /api/v1/cckm/aws/kms`.
    pub async fn list_aws_kms(&self, params: &ListParams) -> Result<ListEnvelope<KmsView>, ClientError> {
        let query = query_pairs(params)?;
        self.typed(Method::GET, "/api/v1/cckm/aws/kms", &query, None::<&()>).await
    }

    /// `POST /api/v1/cckm/aws/synchronization-jobs`.
    pub async fn create_aws_sync_job(&self, req: &CreateAwsSyncJob) -> Result<SyncJobView, ClientError> {
        let path = "/api/v1/cckm/aws/synchronization-jobs";
        self.typed(Method::POST, path, &[], Some(req)).await
    }

    /// `GET /api/v1/cckm/aws/synchronization-jobs/{id}`.
    pub async fn get_aws_sync_job(&self, id: &str) -> Result<SyncJobView, ClientError> {
        let path = format!("/api/v1/cckm/aws/synchronization-jobs/{}", segment(id));
        self.typed(Method::GET, &path, &[], None::<&()>).await
    }

    /// `GET /api/v1/cckm/aws/keys`.
    pub async fn list_aws_keys(&self, query: &AwsKeyListQuery) -> Result<ListEnvelope<AwsKeyView>, ClientError> {
        let query = query_pairs(query)?;
        self.typed(Method::GET, "/api/v1/cckm/aws/keys", &query, None::<&()>).await
    }

    async fn typed<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        let body = body.map(encode).transpose()?;
        let bytes = self.call(method, path, query, &[], body.as_ref()).await?.bytes().await?;
        decode(path, &bytes)
    }

    /// One authenticated call with the refresh rules: a 2xx answer with its body still unread (a download
    /// reads it in chunks), any other answer as an error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ClientError> {
        let url = format!("{}{}", self.base_url, path);
        let jwt = self.fresh_jwt().await?;
        let mut resp = self.send_raw(method.clone(), &url, query, headers, body, jwt.as_deref()).await?;
        if resp.status() == 401
            && let Some(stale) = jwt.as_deref()
            && self.has_refresh_token()
        {
            self.refresh_replacing(stale).await?;
            let jwt = self.jwt();
            resp = self.send_raw(method, &url, query, headers, body, jwt.as_deref()).await?;
        }
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let bytes = resp.bytes().await?;
            return Err(ClientError::from_answer(status, &bytes));
        }
        Ok(resp)
    }

    async fn send_raw(
        &self,
        method: Method,
        url: &str,
        query: &[(String, String)],
        headers: &[(&str, &str)],
        body: Option<&Value>,
        jwt: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self.http.request(method, url).header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        if let Some(jwt) = jwt {
            req = req.bearer_auth(jwt);
        }
        Ok(req.send().await?)
    }

    async fn post_token(&self, req: &TokenRequest) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{}", self.base_url, TOKENS_PATH);
        let body = serde_json::to_value(req)
            .map_err(|e| ClientError::Local(format!("cannot encode the token request: {e}")))?;
        let resp = self.send_raw(Method::POST, &url, &[], &[], Some(&body), None).await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?.to_vec();
        if !(200..300).contains(&status) {
            return Err(ClientError::from_answer(status, &bytes));
        }
        Ok(bytes)
    }

    /// The JWT to send, refreshed first when it is about to expire.
    async fn fresh_jwt(&self) -> Result<Option<String>, ClientError> {
        let Some(jwt) = self.jwt() else {
            return Ok(None);
        };
        if self.has_refresh_token() && needs_refresh(&jwt, now_secs()) {
            self.refresh_replacing(&jwt).await?;
            return Ok(self.jwt());
        }
        Ok(Some(jwt))
    }

    /// Refreshes unless another request already replaced `stale` meanwhile. A refusal ends the session.
    async fn refresh_replacing(&self, stale: &str) -> Result<(), ClientError> {
        let _guard = self.refresh_lock.lock().await;
        let refresh_token = match self.lock_tokens().as_ref() {
            Some(t) if t.jwt.expose_secret() == stale => t.refresh_token.clone(),
            _ => return Ok(()),
        };
        let Some(refresh_token) = refresh_token else {
            return Ok(());
        };
        match self.refresh(refresh_token.expose_secret()).await {
            Ok(_) => Ok(()),
            Err(e) if e.status().is_some_and(|s| (400..500).contains(&s)) => {
                Err(ClientError::SessionExpired(Box::new(e)))
            }
            Err(e) => Err(e),
        }
    }

    fn has_refresh_token(&self) -> bool {
        self.lock_tokens().as_ref().is_some_and(|t| t.refresh_token.is_some())
    }

    fn lock_tokens(&self) -> MutexGuard<'_, Option<Tokens>> {
        // The guarded data is two strings written in one assignment: a panic elsewhere cannot leave it
        // half-written, so a poisoned lock is safe to use.
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn encode(body: &(impl Serialize + ?Sized)) -> Result<Value, ClientError> {
    serde_json::to_value(body).map_err(|e| ClientError::Local(format!("cannot encode the request: {e}")))
}

fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|source| ClientError::Decode { path: path.to_owned(), source })
}

/// `/api/v1/...` as given; `/v1/...` and `v1/...` get the `/api` prefix every CCKM route has.
pub(crate) fn api_path(path: &str) -> String {
    let path = path.trim();
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    if path == "/api" || path.starts_with("/api/") || path.starts_with("/api?") { path } else { format!("/api{path}") }
}

/// Percent-encodes one path segment (ids are UUIDs, but a stray `/` or `?` must not change the route).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A flat serialisable struct as query pairs; `None` fields (skipped) vanish, arrays repeat the key.
fn query_pairs<T: Serialize>(query: &T) -> Result<Vec<(String, String)>, ClientError> {
    let value = serde_json::to_value(query).map_err(|e| ClientError::Local(format!("cannot encode the query: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ClientError::Local("a query must be a struct".to_owned()));
    };
    let mut pairs = Vec::new();
    for (key, value) in map {
        let values = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        for v in values {
            match v {
                Value::Null => {}
                Value::String(s) => pairs.push((key.clone(), s)),
                other => pairs.push((key.clone(), other.to_string())),
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_tokens() {
        let client = Client::new(&ClientOptions::default())
            .unwrap()
            .with_tokens("eyJhbGciOi.jwt-secret-part", Some("refresh-secret-value".into()))
            .on_token_refresh(|_| {});
        let shown = format!("{client:?}");
        assert!(shown.contains(DEFAULT_URL), "{shown}");
        assert!(!shown.contains("jwt-secret-part"), "{shown}");
        assert!(!shown.contains("refresh-secret-value"), "{shown}");
    }

    #[test]
    fn api_paths_get_the_prefix_once() {
        assert_eq!(api_path("/api/v1/cckm/aws/keys"), "/api/v1/cckm/aws/keys");
        assert_eq!(api_path("/v1/cckm/aws/keys?limit=5"), "/api/v1/cckm/aws/keys?limit=5");
        assert_eq!(api_path("v1/usermgmt/users"), "/api/v1/usermgmt/users");
        assert_eq!(api_path("/apiary"), "/api/apiary");
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(segment("e612b64f-6364-48ce-92ec-c6dd608d7ad0"), "e612b64f-6364-48ce-92ec-c6dd608d7ad0");
        assert_eq!(segment("a/b?c d"), "a%2Fb%3Fc%20d");
    }

    #[test]
    fn queries_drop_unset_fields() {
        let q = BulkJobListQuery {
            overall_status: Some("in_progress".into()),
            limit: Some(5),
            ..BulkJobListQuery::default()
        };
        let mut pairs = query_pairs(&q).expect("pairs");
        pairs.sort();
        assert_eq!(
            pairs,
            vec![("limit".to_owned(), "5".to_owned()), ("overall_status".to_owned(), "in_progress".to_owned()),]
        );
    }

    #[test]
    fn bad_urls_are_refused_before_any_request() {
        for url in ["not a url", "ftp://host", "https://"] {
            let opts = ClientOptions { base_url: url.to_owned(), ..ClientOptions::default() };
            assert!(matches!(Client::new(&opts), Err(ClientError::Local(_))), "{url}");
        }
        let opts = ClientOptions { base_url: "http://127.0.0.1:1/".to_owned(), ..ClientOptions::default() };
        let client = Client::new(&opts).expect("http is fine");
        assert_eq!(client.base_url(), "http://127.0.0.1:1");
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_local_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("ca.pem");
        std::fs::write(&empty, "").expect("write");
        for path in [dir.path().join("absent.pem"), empty] {
            let opts = ClientOptions { ca_cert: Some(path), ..ClientOptions::default() };
            let err = Client::new(&opts).expect_err("must fail");
            assert!(matches!(err, ClientError::Local(_)), "{err}");
        }
    }
}
