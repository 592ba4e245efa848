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
//!
//! The client by concern: the connector and its shared HTTP client (here), Entra ID tokens (`token`), one
//! vault's HTTP calls with the bearer token, the 401 retry and `nextLink` checks (`transport`), Key Vault's error
//! answers and `Retry-After` (`errors`), the keys operations and Key Vault's JSON (`keys`), backup and restore
//! (`backups`).

mod backups;
mod errors;
mod keys;
mod token;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use super::{AzureCredentials, KeyVault, KeyVaultConnector};
use crate::error::{CloudError, ErrorKind};
use errors::chain;
use token::TokenSlot;
use transport::{RestVault, origin_label, parse_vault_url};

/// How long establishing a connection (TCP and TLS) may take.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request (connect, send, read the answer) may take.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
