//! Everything the fake remembers: the vaults and their keys (active and deleted), the Entra ID
//! clients and the tokens issued to them, the call log and the throttling settings.

use std::collections::{BTreeMap, HashMap};
use std::mem;

use rand::RngCore as _;
use serde::{Deserialize, Serialize};

use super::VaultCallRecord;
use super::paging::Signer;
use super::throttle::Throttle;

/// Days a deleted key stays recoverable (soft delete is always on, purge protection off).
pub(crate) const RECOVERABLE_DAYS: u32 = 90;
pub(crate) const RECOVERY_LEVEL: &str = "Recoverable+Purgeable";

/// An Entra ID application registration that may ask for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Client {
    pub tenant: String,
    pub client_id: String,
    pub secret: String,
}

/// An access token the token endpoint issued.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub expires_at: i64,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    /// By lower-case vault name. A vault exists as soon as something names it.
    pub vaults: BTreeMap<String, Vault>,
    pub clients: Vec<Client>,
    pub tokens: HashMap<String, Issued>,
    pub token_requests: u64,
    pub backups: u64,
    pub calls: Vec<VaultCallRecord>,
    pub throttle: Throttle,
    /// `https://127.0.0.1:PORT` once served: the authority named in bearer challenges.
    pub public_url: Option<String>,
    pub signer: Signer,
}

impl State {
    pub(crate) fn new(clients: Vec<Client>) -> Self {
        Self { clients, ..Self::default() }
    }

    pub(crate) fn vault_mut(&mut self, vault: &str) -> &mut Vault {
        self.vaults.entry(vault.to_ascii_lowercase()).or_default()
    }

    pub(crate) fn vault(&self, vault: &str) -> Option<&Vault> {
        self.vaults.get(&vault.to_ascii_lowercase())
    }

    /// The tenant named in bearer challenges: the first configured client's.
    pub(crate) fn home_tenant(&self) -> &str {
        self.clients.first().map_or(super::BUILTIN_TENANT_ID, |c| c.tenant.as_str())
    }

    pub(crate) fn token_valid(&self, token: &str, now: i64) -> bool {
        self.tokens.get(token).is_some_and(|issued| issued.expires_at > now)
    }

    pub(crate) fn record(&mut self, mut call: VaultCallRecord) {
        call.seq = self.calls.len() as u64 + 1;
        self.calls.push(call);
    }
}

/// One vault's keys. Key names are case-insensitive in Key Vault: maps are keyed by the lower
/// case name, and each key keeps the spelling it was created with.
#[derive(Debug, Default)]
pub(crate) struct Vault {
    pub keys: BTreeMap<String, Key>,
    pub deleted: BTreeMap<String, DeletedKey>,
}

impl Vault {
    pub(crate) fn key(&self, name: &str) -> Option<&Key> {
        self.keys.get(&name.to_ascii_lowercase())
    }

    pub(crate) fn key_mut(&mut self, name: &str) -> Option<&mut Key> {
        self.keys.get_mut(&name.to_ascii_lowercase())
    }

    pub(crate) fn deleted_key(&self, name: &str) -> Option<&DeletedKey> {
        self.deleted.get(&name.to_ascii_lowercase())
    }

    /// Adds a version to the key `name`, creating the key if needed. The caller has checked
    /// that the name is not deleted.
    pub(crate) fn add_version(&mut self, name: &str, version: KeyVersion) -> &Key {
        let key = match self.keys.entry(name.to_ascii_lowercase()) {
            std::collections::btree_map::Entry::Occupied(entry) => {
                let key = entry.into_mut();
                let previous = mem::replace(&mut key.latest, version);
                key.previous.push(previous);
                key
            }
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(Key { name: name.to_owned(), latest: version, previous: Vec::new() })
            }
        };
        &*key
    }
}

/// A key and all its versions. It always has one: the latest (current) version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Key {
    pub name: String,
    pub latest: KeyVersion,
    /// Older versions, oldest first.
    pub previous: Vec<KeyVersion>,
}

impl Key {
    /// All versions, oldest first.
    pub(crate) fn versions(&self) -> impl Iterator<Item = &KeyVersion> {
        self.previous.iter().chain(std::iter::once(&self.latest))
    }

    pub(crate) fn version_count(&self) -> usize {
        self.previous.len() + 1
    }

    pub(crate) fn version(&self, version: &str) -> Option<&KeyVersion> {
        self.versions().find(|v| v.version.eq_ignore_ascii_case(version))
    }

    pub(crate) fn version_mut(&mut self, version: &str) -> Option<&mut KeyVersion> {
        if self.latest.version.eq_ignore_ascii_case(version) {
            return Some(&mut self.latest);
        }
        self.previous.iter_mut().find(|v| v.version.eq_ignore_ascii_case(version))
    }
}

/// One version of a key: its (fake) public material and its own attributes and tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyVersion {
    /// 32 lower-case hex digits, as Key Vault's.
    pub version: String,
    pub kty: String,
    pub material: Material,
    pub key_ops: Vec<String>,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub exportable: bool,
    pub tags: BTreeMap<String, String>,
}

impl KeyVersion {
    pub(crate) fn new_version_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
}

/// Public key fields, base64url without padding, as in a JSON Web Key. Random bytes of the
/// right length: the fake does no cryptography.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub(crate) enum Material {
    Rsa { n: String, e: String },
    Ec { crv: String, x: String, y: String },
}

impl Material {
    pub(crate) fn rsa(bits: usize, public_exponent: u32) -> Self {
        let mut n = random_bytes(bits / 8);
        if let Some(first) = n.first_mut() {
            *first |= 0x80;
        }
        if let Some(last) = n.last_mut() {
            *last |= 0x01;
        }
        let e = public_exponent.to_be_bytes();
        let start = e.iter().position(|b| *b != 0).unwrap_or(e.len() - 1);
        Self::Rsa { n: b64(&n), e: b64(&e[start..]) }
    }

    pub(crate) fn ec(crv: &str, coordinate_len: usize) -> Self {
        Self::Ec { crv: crv.to_owned(), x: b64(&random_bytes(coordinate_len)), y: b64(&random_bytes(coordinate_len)) }
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// A soft-deleted key: recoverable until purged.
#[derive(Debug, Clone)]
pub(crate) struct DeletedKey {
    pub key: Key,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    #[test]
    fn rsa_material_has_the_modulus_length_and_exponent() {
        let Material::Rsa { n, e } = Material::rsa(2048, 65537) else { panic!() };
        assert_eq!(URL_SAFE_NO_PAD.decode(n).unwrap().len(), 256);
        assert_eq!(e, "AQAB");
        let Material::Ec { x, y, .. } = Material::ec("P-521", 66) else { panic!() };
        assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap().len(), 66);
        assert_eq!(URL_SAFE_NO_PAD.decode(y).unwrap().len(), 66);
    }

    fn version(id: &str) -> KeyVersion {
        KeyVersion {
            version: id.to_owned(),
            kty: "RSA".to_owned(),
            material: Material::rsa(2048, 65537),
            key_ops: Vec::new(),
            enabled: true,
            nbf: None,
            exp: None,
            created: 1,
            updated: 1,
            exportable: false,
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn names_are_case_insensitive_and_versions_ordered() {
        let mut vault = Vault::default();
        vault.add_version("MyKey", version("a"));
        vault.add_version("mykey", version("b"));
        let key = vault.key("MYKEY").unwrap();
        assert_eq!(key.name, "MyKey");
        assert_eq!(key.latest.version, "b");
        assert_eq!(key.versions().map(|v| v.version.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(key.version("A").is_some());
    }
}
