//! The keys operations on one vault (list, versions, get; backup and restore in `backups`), Key Vault's key JSON
//! and its conversion into [`KeyItem`] and [`KeyBundle`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use chrono::{DateTime, Utc};
use keyfleet_core::rules::{AZURE_KEY_NAME_RULE, is_azure_key_name};
use reqwest::{Method, Url};
use serde::Deserialize;

use super::errors::{invalid_response, parse};
use super::transport::RestVault;
use crate::azure::{KeyBundle, KeyItem, KeyVault, Listing};
use crate::error::{CloudError, ErrorKind};

/// base64url, with or without padding: Key Vault sends it without, other producers add it.
pub(super) const BASE64URL_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

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
        self.backup(name).await
    }

    async fn restore_key(&self, backup: &[u8]) -> Result<KeyBundle, CloudError> {
        self.restore(backup).await
    }
}

/// Key Vault's rule for key names. Checked here because an empty or odd name would address another operation
/// (`keys/` is the listing).
pub(super) fn check_key_name(name: &str) -> Result<(), CloudError> {
    if is_azure_key_name(name) {
        return Ok(());
    }
    let message = format!("'{name}' is not a valid key name: {AZURE_KEY_NAME_RULE}");
    Err(CloudError::new(ErrorKind::Rejected, "InvalidKeyName", message))
}

#[derive(Deserialize)]
pub(super) struct WirePage {
    pub(super) value: Option<Vec<WireKeyItem>>,
    #[serde(rename = "nextLink")]
    pub(super) next_link: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct WireKeyItem {
    kid: Option<String>,
    attributes: Option<WireAttributes>,
    tags: Option<BTreeMap<String, String>>,
    managed: Option<bool>,
}

#[derive(Deserialize)]
pub(super) struct WireKeyBundle {
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
pub(super) struct WireBackup {
    pub(super) value: Option<String>,
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

pub(super) fn key_item(item: WireKeyItem, versioned: bool) -> Result<KeyItem, CloudError> {
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

pub(super) fn key_bundle(bundle: WireKeyBundle) -> Result<KeyBundle, CloudError> {
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
        versions: vec![],
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
}
