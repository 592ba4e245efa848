//! One vault's HTTP calls: URLs under the vault's base URL, the bearer token, one retry with a new token after a
//! 401, and `nextLink`s followed only on the vault's own origin (the token is never sent elsewhere).

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode, Url};

use super::errors::{parse, transport_error, vault_error};
use super::keys::{WirePage, key_item};
use super::token::{AccessToken, TokenSlot};
use crate::azure::{API_VERSION, AzureCredentials, KeyItem, Listing};
use crate::error::{CloudError, ErrorKind};

/// One vault, for one application.
pub(super) struct RestVault {
    pub(super) http: reqwest::Client,
    pub(super) credentials: AzureCredentials,
    pub(super) slot: Arc<TokenSlot>,
    /// The vault's base URL (no trailing `/`, no query), or why it is unusable.
    pub(super) vault: Result<Url, CloudError>,
    /// `host[:port]` of the vault, for logs.
    pub(super) host: String,
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
    pub(super) fn endpoint(&self, segments: &[&str]) -> Result<Url, CloudError> {
        let mut url = self.base()?.clone();
        url.path_segments_mut()
            .map_err(|()| CloudError::new(ErrorKind::Rejected, "InvalidVaultUrl", "the vault URL cannot hold a path"))?
            .pop_if_empty()
            .extend(segments);
        url.query_pairs_mut().append_pair("api-version", API_VERSION);
        Ok(url)
    }

    /// A `nextLink` to follow: as returned, if it is on the vault's origin.
    pub(super) fn next_link_url(&self, next_link: &str) -> Result<Url, CloudError> {
        let vault = self.base()?;
        let mut url = checked_next_link(vault, next_link)?;
        if !url.query_pairs().any(|(k, _)| k == "api-version") {
            url.query_pairs_mut().append_pair("api-version", API_VERSION);
        }
        Ok(url)
    }

    /// Sends one call with a bearer token; on a 401 with a cached token, drops it and retries once with a new one.
    pub(super) async fn call(
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
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.bearer())
            .header(ACCEPT, "application/json");
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

    pub(super) async fn list(
        &self,
        operation: &'static str,
        url: Url,
        versions: bool,
    ) -> Result<Listing<KeyItem>, CloudError> {
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

/// The vault's base URL: https, a host, no query, fragment or user info; a trailing `/` is dropped.
pub(super) fn parse_vault_url(vault_url: &str) -> Result<Url, CloudError> {
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
pub(super) fn origin_label(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::azure::{PUBLIC_AUTHORITY, VAULT_RESOURCE};

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
}
