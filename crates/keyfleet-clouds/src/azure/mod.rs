//! Azure Key Vault (keys data plane): the trait, and its implementation as a small REST client with Entra ID
//! client-credentials tokens ([`RestConnector`]).

mod rest;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::error::CloudError;

pub use rest::RestConnector;

/// Entra ID's public-cloud authority host.
pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The resource Key Vault tokens are for (scope `<resource>/.default`).
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// The Key Vault REST API version keyfleet speaks.
pub const API_VERSION: &str = "7.5";

/// What keyfleet needs to get Key Vault tokens for one Entra ID application. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct AzureCredentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Authority host, e.g. [`PUBLIC_AUTHORITY`]; the token URL is `<authority>/<tenant>/oauth2/v2.0/token`.
    pub authority: String,
    /// Token resource, e.g. [`VAULT_RESOURCE`]; the scope asked for is `<resource>/.default`.
    pub resource: String,
}

impl AzureCredentials {
    /// Every field, the secret too: credentials are equal (and share a cached token) only when all are.
    fn parts(&self) -> [&str; 5] {
        [&self.tenant_id, &self.client_id, self.client_secret.expose_secret(), &self.authority, &self.resource]
    }
}

impl PartialEq for AzureCredentials {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for AzureCredentials {}

impl Hash for AzureCredentials {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

/// A key as a listing shows it (`KeyItem`): no key material, attributes and tags only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyItem {
    /// `https://<vault>/keys/<name>` in a key listing, `.../<name>/<version>` in a version listing.
    pub kid: String,
    pub name: String,
    /// Set in a version listing.
    pub version: Option<String>,
    pub enabled: bool,
    pub created: Option<DateTime<Utc>>,
    pub updated: Option<DateTime<Utc>>,
    pub exp: Option<DateTime<Utc>>,
    pub nbf: Option<DateTime<Utc>>,
    pub managed: bool,
    pub tags: BTreeMap<String, String>,
}

/// A key's current version in full (`KeyBundle`), without private material (Key Vault never returns it), read
/// into the key material keyfleet caches: `versions` stays empty (ListKeyVersions reads those).
pub type KeyBundle = keyfleet_core::AzureKeyMaterial;

/// One page of a listing and the `nextLink` to the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next_link: Option<String>,
}

/// The Key Vault key operations keyfleet performs on one vault. Errors are classified for the engine's retry
/// policy: 429 → `Throttled` (with `Retry-After`), 401/403 and refused credentials → `Unauthorized`, 404 →
/// `NotFound`, 409 → `Rejected` with code `Conflict`, 5xx and transport failures → `Transient`.
#[async_trait]
pub trait KeyVault: Send + Sync {
    /// A page of keys; `next_link` is the previous page's `nextLink` (None for the first page).
    async fn list_keys(&self, next_link: Option<&str>) -> Result<Listing<KeyItem>, CloudError>;
    /// A page of one key's versions.
    async fn list_key_versions(&self, name: &str, next_link: Option<&str>) -> Result<Listing<KeyItem>, CloudError>;
    /// The key's current version.
    async fn get_key(&self, name: &str) -> Result<KeyBundle, CloudError>;
    /// Key Vault's backup of the key (all versions): the opaque blob, base64url-decoded.
    async fn backup_key(&self, name: &str) -> Result<Vec<u8>, CloudError>;
    /// Restores a backup into this vault. Key Vault refuses (409 `Conflict`) when a key of that name exists.
    async fn restore_key(&self, backup: &[u8]) -> Result<KeyBundle, CloudError>;
}

/// Builds clients: one per (credentials, vault URL). Clients of the same credentials share one cached token.
pub trait KeyVaultConnector: Send + Sync {
    /// `vault_url` is the vault's base URL, e.g. `https://myvault.vault.azure.net` (a trailing `/` is ignored).
    fn connect(&self, credentials: &AzureCredentials, vault_url: &str) -> Arc<dyn KeyVault>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(secret: &str) -> AzureCredentials {
        AzureCredentials {
            tenant_id: "contoso".into(),
            client_id: "app-1".into(),
            client_secret: secret.into(),
            authority: PUBLIC_AUTHORITY.into(),
            resource: VAULT_RESOURCE.into(),
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let shown = format!("{:?}", credentials("Qx8~very-secret"));
        assert!(shown.contains("app-1"), "{shown}");
        assert!(!shown.contains("Qx8~very-secret"), "{shown}");
    }

    #[test]
    fn the_secret_tells_credentials_apart() {
        assert_eq!(credentials("a"), credentials("a"));
        assert_ne!(credentials("a"), credentials("b"));
    }
}
