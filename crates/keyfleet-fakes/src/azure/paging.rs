//! Opaque tokens the fake hands out and must recognise later: `$skiptoken`s of `nextLink`s and
//! backup blobs. Each carries a keyed hash of its content and of what it belongs to (the listing,
//! or "backup"), so a token from another listing or another fake is rejected. Nothing is stored
//! per token.

use std::hash::{BuildHasher, RandomState};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::protocol::VaultError;

/// The most items a page of a Key Vault listing holds, and the default.
pub(crate) const MAX_RESULTS: usize = 25;

/// Signs and opens tokens with a key chosen at random when the fake starts.
#[derive(Debug, Default)]
pub(crate) struct Signer {
    key: RandomState,
}

impl Signer {
    /// `base64url(mac || content)`, without padding: URL-safe, so it travels in a query string
    /// as is, and a plain base64url value, as SDKs expect a backup blob to be.
    pub(crate) fn seal(&self, context: &str, content: &[u8]) -> String {
        let mut sealed = self.mac(context, content).to_be_bytes().to_vec();
        sealed.extend_from_slice(content);
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// The content of a token sealed for `context`; `None` if it is not one. Padding is
    /// tolerated: some clients re-encode with it.
    pub(crate) fn open(&self, context: &str, token: &str) -> Option<Vec<u8>> {
        let sealed = URL_SAFE_NO_PAD.decode(token.trim().trim_end_matches('=')).ok()?;
        let (mac, content) = sealed.split_at_checked(8)?;
        let mac = u64::from_be_bytes(mac.try_into().ok()?);
        (mac == self.mac(context, content)).then(|| content.to_vec())
    }

    fn mac(&self, context: &str, content: &[u8]) -> u64 {
        self.key.hash_one((context, content))
    }

    /// The position a `$skiptoken` of listing `context` resumes at.
    pub(crate) fn open_skiptoken(&self, context: &str, token: &str) -> Result<String, VaultError> {
        self.open(context, token)
            .and_then(|position| String::from_utf8(position).ok())
            .ok_or_else(|| VaultError::bad_parameter(format!("$skiptoken: '{token}' is not a valid skip token")))
    }
}

/// `maxresults`: 1-25, default 25, as Key Vault documents.
pub(crate) fn max_results(value: Option<&str>) -> Result<usize, VaultError> {
    let Some(value) = value else { return Ok(MAX_RESULTS) };
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_RESULTS).contains(&n) => Ok(n),
        _ => Err(VaultError::bad_parameter(format!(
            "maxresults: '{value}' is not valid; it must be an integer between 1 and {MAX_RESULTS}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_in_its_own_context() {
        let signer = Signer::default();
        let token = signer.seal("keys:v1", b"k-0005");
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)), "{token}");
        assert_eq!(signer.open("keys:v1", &format!("{token}==")).unwrap(), b"k-0005");
        assert_eq!(signer.open_skiptoken("keys:v1", &token).unwrap(), "k-0005");
        assert!(signer.open_skiptoken("keys:v2", &token).is_err());
        assert!(signer.open_skiptoken("keys:v1", "zz").is_err());
        assert!(Signer::default().open("keys:v1", &token).is_none(), "another fake did not issue it");
    }

    #[test]
    fn max_results_is_1_to_25() {
        assert_eq!(max_results(None).unwrap(), 25);
        assert_eq!(max_results(Some("10")).unwrap(), 10);
        for bad in ["0", "26", "x", "-1"] {
            assert!(max_results(Some(bad)).is_err(), "{bad}");
        }
    }
}
