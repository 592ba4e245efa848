//! The fake Azure Key Vault (keys data plane) and its fake Entra ID token endpoint: the HTTPS
//! surface ([`FakeVault::router`], [`FakeVault::spawn`]), the in-memory state, and the helpers
//! tests use to arrange and inspect that state.

mod cli;
mod control;
mod entra;
mod ops;
mod paging;
mod protocol;
mod state;
mod throttle;
mod tls;
mod wire;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use cli::{FakeAzureArgs, run};
pub use entra::TOKEN_LIFETIME_SECS;
pub use protocol::{SUPPORTED_API_VERSIONS, VAULT_RESOURCE};
pub use throttle::ThrottleConfig;

use ops::Cx;
use protocol::{ErrorCode, Query, Reply, VaultError};
use state::{Client, State};

/// The tenant of the built-in client, and the tenant bearer challenges name by default.
pub const BUILTIN_TENANT_ID: &str = "00000000-0000-0000-0000-00000000000a";
/// The client id of the built-in Entra ID application.
pub const BUILTIN_CLIENT_ID: &str = "fake-client";
/// The client secret of the built-in Entra ID application.
pub const BUILTIN_CLIENT_SECRET: &str = "fake-secret";
/// The vault `keyfleet fake-azure` prints when no `--vault` is given.
pub const DEFAULT_VAULT: &str = "fake-vault";

/// Who may get tokens, and extra names for the server certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeVaultConfig {
    /// Entra ID applications as `(tenant, client_id, client_secret)`. The first one's tenant is
    /// the tenant bearer challenges name; tokens from any listed tenant are accepted.
    pub clients: Vec<(String, String, String)>,
    /// DNS names or IP addresses the server certificate covers besides `localhost`,
    /// `*.vault.localhost`, `127.0.0.1`, `::1` and `*.vault.azure.net`.
    pub tls_names: Vec<String>,
}

impl Default for FakeVaultConfig {
    fn default() -> Self {
        Self {
            clients: vec![(
                BUILTIN_TENANT_ID.to_owned(),
                BUILTIN_CLIENT_ID.to_owned(),
                BUILTIN_CLIENT_SECRET.to_owned(),
            )],
            tls_names: Vec::new(),
        }
    }
}

impl fmt::Debug for FakeVaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clients: Vec<(&str, &str, &str)> =
            self.clients.iter().map(|(tenant, id, _)| (tenant.as_str(), id.as_str(), "<redacted>")).collect();
        f.debug_struct("FakeVaultConfig").field("clients", &clients).field("tls_names", &self.tls_names).finish()
    }
}

impl FakeVaultConfig {
    /// Adds an Entra ID application that may get tokens.
    #[must_use]
    pub fn with_client(
        mut self,
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.clients.push((tenant.into(), client_id.into(), client_secret.into()));
        self
    }
}

/// One data-plane request the fake answered, successful or not (token requests are counted by
/// [`FakeVault::token_requests`] instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultCallRecord {
    /// 1, 2, 3... in arrival order.
    pub seq: u64,
    pub at: DateTime<Utc>,
    /// Lower case; empty when the request named no valid vault.
    pub vault: String,
    pub method: String,
    /// The path inside the vault, without the query: `/keys/k1/create`.
    pub path: String,
    pub status: u16,
    /// Key Vault's error code (`KeyNotFound`, `Throttled`...), `None` on success.
    pub error: Option<String>,
}

/// A strict in-memory Azure Key Vault (keys) with its Entra ID token endpoint. Hosts any
/// number of vaults; a vault exists as soon as something names it. Cheap to clone: clones share
/// the same state.
#[derive(Clone)]
pub struct FakeVault {
    state: Arc<Mutex<State>>,
    tls_names: Arc<Vec<String>>,
}

impl fmt::Debug for FakeVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeVault").finish_non_exhaustive()
    }
}

impl Default for FakeVault {
    fn default() -> Self {
        Self::new(FakeVaultConfig::default())
    }
}

impl FakeVault {
    pub fn new(config: FakeVaultConfig) -> Self {
        let clients = config
            .clients
            .into_iter()
            .map(|(tenant, client_id, secret)| Client { tenant, client_id, secret })
            .collect();
        Self { state: Arc::new(Mutex::new(State::new(clients))), tls_names: Arc::new(config.tls_names) }
    }

    /// The whole HTTP surface: the token endpoint `POST /{tenant}/oauth2/v2.0/token`, the
    /// `/_fake/...` control routes, and the Key Vault data plane for everything else.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
            .merge(control::routes())
            .fallback(data_plane)
            .with_state(self.clone())
    }

    /// Binds `127.0.0.1:0` and serves HTTPS on a background task until the [`RunningVault`]
    /// drops.
    pub async fn spawn(self) -> io::Result<RunningVault> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        self.spawn_on(listener).await
    }

    /// Serves HTTPS on an already bound listener, on a background task until the
    /// [`RunningVault`] drops. Generates the CA and the server certificate (which also covers
    /// the listener's IP address). Bearer challenges name the URL of the latest spawn.
    pub async fn spawn_on(self, listener: std::net::TcpListener) -> io::Result<RunningVault> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let public =
            if addr.ip().is_unspecified() { SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())) } else { addr };
        let url = format!("https://{public}");
        let mut names = self.tls_names.as_ref().clone();
        names.push(public.ip().to_string());
        let material = tls::generate(&names)?;
        let config = tls::server_config(&material)?;
        self.lock().public_url = Some(url.clone());

        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(listener, config)?.handle(handle.clone());
        let task = tokio::spawn(server.serve(self.router().into_make_service()));
        Ok(RunningVault { fake: self, addr, url, ca_pem: material.ca_pem, handle, task })
    }

    /// Creates an enabled RSA-2048 key (or a new version of it) in `vault`, as
    /// `POST /keys/{name}/create` with `{"kty": "RSA"}` would; returns its versioned `kid`. A
    /// deleted key of that name is purged first (arranging state; Key Vault would answer
    /// `Conflict`). Names are not validated.
    pub fn create_key(&self, vault: &str, name: &str) -> String {
        let now = Utc::now().timestamp();
        let mut state = self.lock();
        let id_base = state.id_base(vault);
        let vault = state.vault_mut(vault);
        vault.deleted.remove(&name.to_ascii_lowercase());
        let key = vault.add_version(name, ops::default_version(now));
        wire::key_id(&id_base, &key.name, Some(&key.latest.version))
    }

    /// Creates `n` keys named `key-0001`, `key-0002`... (skipping names in use); returns the
    /// names.
    pub fn create_keys(&self, vault: &str, n: usize) -> Vec<String> {
        let mut names = Vec::with_capacity(n);
        let mut index = 0;
        while names.len() < n {
            index += 1;
            let name = format!("key-{index:04}");
            let taken =
                self.lock().vault(vault).is_some_and(|v| v.key(&name).is_some() || v.deleted_key(&name).is_some());
            if !taken {
                self.create_key(vault, &name);
                names.push(name);
            }
        }
        names
    }

    /// The names of the vault's keys that are not deleted, sorted case-insensitively.
    pub fn key_names(&self, vault: &str) -> Vec<String> {
        let state = self.lock();
        state.vault(vault).map(|v| v.keys.values().map(|k| k.name.clone()).collect()).unwrap_or_default()
    }

    /// The names of the vault's deleted (recoverable, not purged) keys.
    pub fn deleted_key_names(&self, vault: &str) -> Vec<String> {
        let state = self.lock();
        state.vault(vault).map(|v| v.deleted.values().map(|d| d.key.name.clone()).collect()).unwrap_or_default()
    }

    /// The versions of a key that is not deleted, oldest first; empty if there is no such key.
    pub fn key_versions(&self, vault: &str, name: &str) -> Vec<String> {
        let state = self.lock();
        let key = state.vault(vault).and_then(|v| v.key(name));
        key.map(|k| k.versions().map(|v| v.version.clone()).collect()).unwrap_or_default()
    }

    /// Whether the current version of a key is enabled; `None` if there is no such key.
    pub fn key_enabled(&self, vault: &str, name: &str) -> Option<bool> {
        let state = self.lock();
        state.vault(vault)?.key(name).map(|k| k.latest.enabled)
    }

    /// The tags of the current version of a key; `None` if there is no such key.
    pub fn key_tags(&self, vault: &str, name: &str) -> Option<BTreeMap<String, String>> {
        let state = self.lock();
        state.vault(vault)?.key(name).map(|k| k.latest.tags.clone())
    }

    /// How many backups (`POST /keys/{name}/backup`) succeeded, over all vaults.
    pub fn backup_count(&self) -> u64 {
        self.lock().backups
    }

    /// How many requests reached the token endpoint, successful or not.
    pub fn token_requests(&self) -> u64 {
        self.lock().token_requests
    }

    /// Replaces the throttling settings (and restarts their counters).
    pub fn set_throttle(&self, config: ThrottleConfig) {
        self.lock().throttle.set(config);
    }

    /// The current throttling settings.
    pub fn throttle(&self) -> ThrottleConfig {
        self.lock().throttle.config.clone()
    }

    /// The whole data-plane call log, oldest first.
    pub fn calls(&self) -> Vec<VaultCallRecord> {
        self.calls_since(0)
    }

    /// The calls with `seq > since`.
    pub fn calls_since(&self, since: u64) -> Vec<VaultCallRecord> {
        let state = self.lock();
        state.calls.iter().filter(|c| c.seq > since).cloned().collect()
    }

    /// A panic while the lock was held cannot leave the state half-changed in a way that
    /// matters to a test fake, so a poisoned lock is simply taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one data-plane call and records it. Returns the result and the bearer challenge
    /// that goes with a 401.
    fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        server_error: Option<bool>,
    ) -> (Result<Reply, VaultError>, String) {
        let at = Utc::now();
        let now = at.timestamp();
        let tick = tokio::time::Instant::now();
        let target = protocol::target(headers, uri);
        let query = Query::parse(uri);
        let mut state = self.lock();

        let authority = match &state.public_url {
            Some(url) => url.clone(),
            None => protocol::origin(headers, uri),
        };
        let challenge = format!(
            "Bearer authorization=\"{authority}/{}\", resource=\"{}\"",
            state.home_tenant(),
            protocol::VAULT_RESOURCE
        );
        let result = target.clone().and_then(|target| {
            let api_version = protocol::check_api_version(&query)?;
            match protocol::bearer_token(headers) {
                None => {
                    return Err(VaultError::new(
                        ErrorCode::Unauthorized,
                        "AKV10000: Request is missing a Bearer or PoP token.",
                    ));
                }
                Some(token) if !state.token_valid(token, now) => {
                    return Err(VaultError::new(
                        ErrorCode::Unauthorized,
                        "The access token is not valid: it was not issued by this fake's token endpoint, or it expired.",
                    ));
                }
                Some(_) => {}
            }
            state.throttle.admit(&target.vault, tick)?;
            if let Some(unavailable) = server_error {
                return Err(throttle::server_error(unavailable));
            }
            let operation = ops::route(method, &target.path)?;
            let State { vaults, signer, backups, .. } = &mut *state;
            let vault = vaults.entry(target.vault.clone()).or_default();
            let mut cx = Cx { target: &target, query: &query, api_version, now, signer, backups };
            ops::dispatch(operation, &mut cx, vault, body)
        });

        let (vault, path) = match &target {
            Ok(t) => (t.vault.clone(), t.path.clone()),
            Err(_) => (String::new(), uri.path().to_owned()),
        };
        let (status, error) = match &result {
            Ok(Reply::Json(_)) => (200, None),
            Ok(Reply::NoContent) => (204, None),
            Err(err) => (err.code.status().as_u16(), Some(err.code.as_str().to_owned())),
        };
        match &result {
            Err(err) if err.code == ErrorCode::Internal && server_error.is_none() => {
                tracing::error!(azure.vault = %vault, http.method = %method, url.path = %path, error = %err, "fake Key Vault internal error");
            }
            _ => tracing::debug!(
                azure.vault = %vault,
                http.method = %method,
                url.path = %path,
                http.status = status,
                error = error.as_deref().unwrap_or_default(),
                "fake Key Vault call"
            ),
        }
        state.record(VaultCallRecord { seq: 0, at, vault, method: method.to_string(), path, status, error });
        (result, challenge)
    }
}

impl State {
    /// `https://<vault>.vault.localhost[:port]`: the base of key ids outside a request.
    fn id_base(&self, vault: &str) -> String {
        let vault = vault.to_ascii_lowercase();
        let port = self.public_url.as_deref().and_then(|url| url.rsplit_once(':')).map(|(_, port)| port);
        match port {
            Some(port) => format!("https://{vault}.vault.localhost:{port}"),
            None => format!("https://{vault}.vault.localhost"),
        }
    }
}

async fn data_plane(
    AxumState(fake): AxumState<FakeVault>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    // Drawn on arrival, so that a seed gives the same faults to the same order of arrival.
    let transient = fake.lock().throttle.transient();
    if !transient.delay.is_zero() {
        tokio::time::sleep(transient.delay).await;
    }
    let (result, challenge) = fake.handle(&method, &uri, &headers, &body, transient.server_error);
    protocol::respond(&request_id, result, &challenge)
}

/// A fake serving HTTPS on a background task; the task stops when this value drops.
pub struct RunningVault {
    pub fake: FakeVault,
    pub addr: SocketAddr,
    url: String,
    ca_pem: String,
    handle: axum_server::Handle<SocketAddr>,
    task: JoinHandle<io::Result<()>>,
}

impl fmt::Debug for RunningVault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningVault").field("addr", &self.addr).field("url", &self.url).finish_non_exhaustive()
    }
}

impl RunningVault {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// `https://127.0.0.1:PORT/vaults/<name>`: what to give an SDK as its vault URL.
    pub fn vault_url(&self, name: &str) -> String {
        format!("{}/vaults/{}", self.url, name.to_ascii_lowercase())
    }

    /// The Entra ID authority host, `https://127.0.0.1:PORT` (bearer challenges name
    /// `<authority>/<tenant>`).
    pub fn authority(&self) -> String {
        self.url.clone()
    }

    /// `https://127.0.0.1:PORT/<tenant>/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.url)
    }

    /// The PEM of the CA that signed the server certificate: what clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

impl Drop for RunningVault {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.task.abort();
    }
}
