//! The Key Vault key operations: which path and method is which operation, and each
//! operation's checks (in Key Vault's terms), state changes and answer.

use std::collections::BTreeMap;

use axum::http::Method;
use keyfleet_core::rules::{AZURE_KEY_NAME_RULE, is_azure_key_name};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::paging::{Signer, max_results};
use super::protocol::{ErrorCode, Query, Reply, Target, VaultError, body, method_not_allowed};
use super::state::{DeletedKey, Key, KeyVersion, Material, RECOVERABLE_DAYS, Vault};
use super::wire::{BackupKeyResult, DeletedKeyBundle, DeletedKeyItem, KeyBundle, KeyItem, Page};
use crate::common::take_page;

/// Key Vault refuses to back up an object with more versions than this.
pub(crate) const MAX_BACKUP_VERSIONS: usize = 500;
const MAX_TAGS: usize = 15;
const MAX_TAG_NAME_LEN: usize = 512;
const MAX_TAG_VALUE_LEN: usize = 256;
const KEY_OPS: &[&str] = &["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"];
const RSA_DEFAULT_OPS: &[&str] = &["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"];
const EC_DEFAULT_OPS: &[&str] = &["sign", "verify"];
const RSA_SIZES: &[u32] = &[2048, 3072, 4096];
const RSA_DEFAULT_SIZE: u32 = 2048;
const RSA_EXPONENT: u32 = 65537;
/// Curve name and the byte length of a coordinate.
const CURVES: &[(&str, usize)] = &[("P-256", 32), ("P-384", 48), ("P-521", 66), ("P-256K", 32)];
const EC_DEFAULT_CURVE: &str = "P-256";
const BACKUP_CONTEXT: &str = "backup";
const BACKUP_FORMAT: &str = "keyfleet-fake-keyvault-backup/1";
const SECONDS_PER_DAY: i64 = 86_400;

/// The operations the fake serves, with what the path named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Operation {
    CreateKey {
        name: String,
    },
    GetKey {
        name: String,
        version: Option<String>,
    },
    ListKeys,
    ListKeyVersions {
        name: String,
    },
    UpdateKey {
        name: String,
        version: Option<String>,
    },
    BackupKey {
        name: String,
    },
    RestoreKey,
    DeleteKey {
        name: String,
    },
    GetDeletedKey {
        name: String,
    },
    ListDeletedKeys,
    PurgeDeletedKey {
        name: String,
    },
    RecoverDeletedKey {
        name: String,
    },
    /// A Key Vault operation the fake does not model (import, rotate, cryptography, ...).
    NotModelled(&'static str),
}

/// Which operation `method path` (inside the vault) is. An empty version (`/keys/k/`) means
/// the latest, as the SDKs send it.
pub(crate) fn route(method: &Method, path: &str) -> Result<Operation, VaultError> {
    use Operation as Op;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let version = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let not_allowed = || Err(method_not_allowed(method, path));
    let m = method.clone();
    match segments.as_slice() {
        ["keys"] | ["keys", ""] => match m {
            Method::GET => Ok(Op::ListKeys),
            _ => not_allowed(),
        },
        ["keys", "restore"] if m == Method::POST => Ok(Op::RestoreKey),
        ["keys", name] => match m {
            Method::GET => Ok(Op::GetKey { name: (*name).to_owned(), version: None }),
            Method::PATCH => Ok(Op::UpdateKey { name: (*name).to_owned(), version: None }),
            Method::DELETE => Ok(Op::DeleteKey { name: (*name).to_owned() }),
            Method::PUT => Ok(Op::NotModelled("import key")),
            _ => not_allowed(),
        },
        ["keys", name, "create"] if m == Method::POST => Ok(Op::CreateKey { name: (*name).to_owned() }),
        ["keys", name, "backup"] if m == Method::POST => Ok(Op::BackupKey { name: (*name).to_owned() }),
        ["keys", _, "rotate"] if m == Method::POST => Ok(Op::NotModelled("rotate key")),
        ["keys", _, "rotationpolicy"] => Ok(Op::NotModelled("key rotation policy")),
        ["keys", name, "versions"] if m == Method::GET => Ok(Op::ListKeyVersions { name: (*name).to_owned() }),
        ["keys", name, v] => match m {
            Method::GET => Ok(Op::GetKey { name: (*name).to_owned(), version: version(v) }),
            Method::PATCH => Ok(Op::UpdateKey { name: (*name).to_owned(), version: version(v) }),
            _ => not_allowed(),
        },
        ["keys", _, _, "attestation"] => Ok(Op::NotModelled("key attestation")),
        ["keys", _, _, _] => Ok(Op::NotModelled("cryptographic operations")),
        ["deletedkeys"] | ["deletedkeys", ""] => match m {
            Method::GET => Ok(Op::ListDeletedKeys),
            _ => not_allowed(),
        },
        ["deletedkeys", name] => match m {
            Method::GET => Ok(Op::GetDeletedKey { name: (*name).to_owned() }),
            Method::DELETE => Ok(Op::PurgeDeletedKey { name: (*name).to_owned() }),
            _ => not_allowed(),
        },
        ["deletedkeys", name, "recover"] => match m {
            Method::POST => Ok(Op::RecoverDeletedKey { name: (*name).to_owned() }),
            _ => not_allowed(),
        },
        ["rng"] => Ok(Op::NotModelled("random bytes")),
        _ => Err(VaultError::new(ErrorCode::NotFound, format!("The path {path} is not a Key Vault keys operation."))),
    }
}

/// What an operation runs with besides the vault.
pub(crate) struct Cx<'a> {
    pub target: &'a Target,
    pub query: &'a Query,
    pub api_version: &'a str,
    pub now: i64,
    pub signer: &'a Signer,
    /// Successful backups, for `FakeVault::backup_count`.
    pub backups: &'a mut u64,
}

pub(crate) fn dispatch(op: Operation, cx: &mut Cx<'_>, vault: &mut Vault, body: &[u8]) -> Result<Reply, VaultError> {
    match op {
        Operation::CreateKey { name } => create_key(cx, vault, &name, body),
        Operation::GetKey { name, version } => get_key(cx, vault, &name, version.as_deref()),
        Operation::ListKeys => list_keys(cx, vault),
        Operation::ListKeyVersions { name } => list_key_versions(cx, vault, &name),
        Operation::UpdateKey { name, version } => update_key(cx, vault, &name, version.as_deref(), body),
        Operation::BackupKey { name } => backup_key(cx, vault, &name),
        Operation::RestoreKey => restore_key(cx, vault, body),
        Operation::DeleteKey { name } => delete_key(cx, vault, &name),
        Operation::GetDeletedKey { name } => {
            let deleted = vault.deleted_key(&name).ok_or_else(|| VaultError::deleted_key_not_found(&name))?;
            Reply::json(&DeletedKeyBundle::new(&cx.target.id_base, deleted))
        }
        Operation::ListDeletedKeys => list_deleted_keys(cx, vault),
        Operation::PurgeDeletedKey { name } => {
            vault.deleted.remove(&name.to_ascii_lowercase()).ok_or_else(|| VaultError::deleted_key_not_found(&name))?;
            Ok(Reply::NoContent)
        }
        Operation::RecoverDeletedKey { name } => {
            let deleted = vault
                .deleted
                .remove(&name.to_ascii_lowercase())
                .ok_or_else(|| VaultError::deleted_key_not_found(&name))?;
            let lower = deleted.key.name.to_ascii_lowercase();
            let key = vault.keys.entry(lower).or_insert(deleted.key);
            Reply::json(&KeyBundle::new(&cx.target.id_base, key, &key.latest))
        }
        Operation::NotModelled(what) => {
            Err(VaultError::new(ErrorCode::NotImplemented, format!("The fake Key Vault does not model {what}.")))
        }
    }
}

/// Key Vault's rule for object names.
pub(crate) fn check_key_name(name: &str) -> Result<(), VaultError> {
    if is_azure_key_name(name) {
        return Ok(());
    }
    Err(VaultError::bad_parameter(format!("name: '{name}' is not a valid key name: {AZURE_KEY_NAME_RULE}")))
}

#[derive(Debug, Default, Deserialize)]
struct AttributesIn {
    enabled: Option<bool>,
    nbf: Option<i64>,
    exp: Option<i64>,
    exportable: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct CreateKeyParameters {
    kty: Option<String>,
    key_size: Option<u32>,
    public_exponent: Option<u32>,
    key_ops: Option<Vec<String>>,
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
    crv: Option<String>,
    release_policy: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct UpdateKeyParameters {
    key_ops: Option<Vec<String>>,
    attributes: Option<AttributesIn>,
    tags: Option<BTreeMap<String, String>>,
    release_policy: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct RestoreParameters {
    value: Option<String>,
}

/// What a backup blob holds (sealed, so that only this fake can read it back).
#[derive(Debug, Serialize, Deserialize)]
struct BackupBlob {
    format: String,
    key: Key,
}

/// A new enabled RSA-2048 version with the default operations, for seeding.
pub(crate) fn default_version(now: i64) -> KeyVersion {
    KeyVersion {
        version: KeyVersion::new_version_id(),
        kty: "RSA".to_owned(),
        material: Material::rsa(RSA_DEFAULT_SIZE as usize, RSA_EXPONENT),
        key_ops: RSA_DEFAULT_OPS.iter().map(|op| (*op).to_owned()).collect(),
        enabled: true,
        nbf: None,
        exp: None,
        created: now,
        updated: now,
        exportable: false,
        tags: BTreeMap::new(),
    }
}

fn create_key(cx: &mut Cx<'_>, vault: &mut Vault, name: &str, body_bytes: &[u8]) -> Result<Reply, VaultError> {
    check_key_name(name)?;
    let params: CreateKeyParameters = body(body_bytes)?;
    if vault.deleted_key(name).is_some() {
        return Err(VaultError::deleted_but_recoverable(name));
    }
    let version = new_version(params, cx.now)?;
    let key = vault.add_version(name, version);
    Reply::json(&KeyBundle::new(&cx.target.id_base, key, &key.latest))
}

fn new_version(params: CreateKeyParameters, now: i64) -> Result<KeyVersion, VaultError> {
    let kty = params.kty.ok_or_else(|| VaultError::bad_parameter("kty: the key type is required"))?;
    if params.release_policy.is_some() {
        return Err(VaultError::new(ErrorCode::NotImplemented, "release_policy: the fake does not model key release"));
    }
    let (material, default_ops) = match kty.as_str() {
        "RSA" | "RSA-HSM" => {
            if params.crv.is_some() {
                return Err(VaultError::bad_parameter(format!("crv: not valid for key type {kty}")));
            }
            let size = params.key_size.unwrap_or(RSA_DEFAULT_SIZE);
            if !RSA_SIZES.contains(&size) {
                return Err(VaultError::bad_parameter(format!(
                    "key_size: {size} is not a supported RSA key size (2048, 3072, 4096)"
                )));
            }
            let exponent = params.public_exponent.unwrap_or(RSA_EXPONENT);
            if exponent != RSA_EXPONENT {
                return Err(VaultError::bad_parameter(format!(
                    "public_exponent: {exponent} is not supported; vaults create RSA keys with exponent 65537"
                )));
            }
            (Material::rsa(size as usize, exponent), RSA_DEFAULT_OPS)
        }
        "EC" | "EC-HSM" => {
            if params.key_size.is_some() || params.public_exponent.is_some() {
                return Err(VaultError::bad_parameter(format!(
                    "key_size, public_exponent: not valid for key type {kty}"
                )));
            }
            let crv = params.crv.as_deref().unwrap_or(EC_DEFAULT_CURVE);
            let (crv, len) = CURVES.iter().find(|(c, _)| *c == crv).ok_or_else(|| {
                VaultError::bad_parameter(format!(
                    "crv: '{crv}' is not a supported curve (P-256, P-384, P-521, P-256K)"
                ))
            })?;
            (Material::ec(crv, *len), EC_DEFAULT_OPS)
        }
        "oct" | "oct-HSM" => {
            return Err(VaultError::bad_parameter(format!(
                "kty: {kty} keys are only available in Managed HSM, not in a vault"
            )));
        }
        other => {
            return Err(VaultError::bad_parameter(format!(
                "kty: '{other}' is not a valid key type (EC, EC-HSM, RSA, RSA-HSM, oct, oct-HSM)"
            )));
        }
    };
    let key_ops = match params.key_ops {
        Some(ops) => checked_ops(ops)?,
        None => default_ops.iter().map(|op| (*op).to_owned()).collect(),
    };
    let attributes = params.attributes.unwrap_or_default();
    let exportable = attributes.exportable.unwrap_or(false);
    if exportable {
        return Err(VaultError::bad_parameter("attributes.exportable: an exportable key requires a release_policy"));
    }
    Ok(KeyVersion {
        version: KeyVersion::new_version_id(),
        kty,
        material,
        key_ops,
        enabled: attributes.enabled.unwrap_or(true),
        nbf: attributes.nbf,
        exp: attributes.exp,
        created: now,
        updated: now,
        exportable,
        tags: checked_tags(params.tags.unwrap_or_default())?,
    })
}

fn checked_ops(ops: Vec<String>) -> Result<Vec<String>, VaultError> {
    if let Some(bad) = ops.iter().find(|op| !KEY_OPS.contains(&op.as_str())) {
        return Err(VaultError::bad_parameter(format!(
            "key_ops: '{bad}' is not a valid key operation ({})",
            KEY_OPS.join(", ")
        )));
    }
    Ok(ops)
}

fn checked_tags(tags: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, VaultError> {
    if tags.len() > MAX_TAGS {
        return Err(VaultError::bad_parameter(format!("tags: {} tags; at most {MAX_TAGS} are allowed", tags.len())));
    }
    for (name, value) in &tags {
        if name.is_empty() || name.chars().count() > MAX_TAG_NAME_LEN {
            return Err(VaultError::bad_parameter(format!(
                "tags: tag name '{name}' must be 1-{MAX_TAG_NAME_LEN} characters"
            )));
        }
        if value.chars().count() > MAX_TAG_VALUE_LEN {
            return Err(VaultError::bad_parameter(format!(
                "tags: the value of tag '{name}' is longer than {MAX_TAG_VALUE_LEN} characters"
            )));
        }
    }
    Ok(tags)
}

fn get_key(cx: &Cx<'_>, vault: &Vault, name: &str, version: Option<&str>) -> Result<Reply, VaultError> {
    let key = vault.key(name).ok_or_else(|| VaultError::key_not_found(name))?;
    let found = match version {
        None => &key.latest,
        Some(v) => key.version(v).ok_or_else(|| VaultError::key_not_found(&format!("{name}/{v}")))?,
    };
    Reply::json(&KeyBundle::new(&cx.target.id_base, key, found))
}

fn update_key(
    cx: &Cx<'_>,
    vault: &mut Vault,
    name: &str,
    version: Option<&str>,
    body_bytes: &[u8],
) -> Result<Reply, VaultError> {
    let params: UpdateKeyParameters = body(body_bytes)?;
    if params.release_policy.is_some() {
        return Err(VaultError::new(ErrorCode::NotImplemented, "release_policy: the fake does not model key release"));
    }
    let key_ops = params.key_ops.map(checked_ops).transpose()?;
    let tags = params.tags.map(checked_tags).transpose()?;
    let attributes = params.attributes.unwrap_or_default();
    let key = vault.key_mut(name).ok_or_else(|| VaultError::key_not_found(name))?;
    let target = match version {
        None => &mut key.latest,
        Some(v) => key.version_mut(v).ok_or_else(|| VaultError::key_not_found(&format!("{name}/{v}")))?,
    };
    if attributes.exportable.is_some_and(|e| e != target.exportable) {
        return Err(VaultError::bad_parameter("attributes.exportable: cannot be changed after the key is created"));
    }
    if let Some(ops) = key_ops {
        target.key_ops = ops;
    }
    if let Some(tags) = tags {
        target.tags = tags;
    }
    if let Some(enabled) = attributes.enabled {
        target.enabled = enabled;
    }
    if attributes.nbf.is_some() {
        target.nbf = attributes.nbf;
    }
    if attributes.exp.is_some() {
        target.exp = attributes.exp;
    }
    target.updated = cx.now;
    let updated = target.version.clone();
    let key = vault.key(name).ok_or_else(VaultError::internal)?;
    let version = key.version(&updated).ok_or_else(VaultError::internal)?;
    Reply::json(&KeyBundle::new(&cx.target.id_base, key, version))
}

fn next_link(cx: &Cx<'_>, collection: &str, skiptoken: &str) -> String {
    let mut link = format!("{}{collection}?api-version={}&$skiptoken={skiptoken}", cx.target.link_base, cx.api_version);
    if let Some(max) = cx.query.get("maxresults") {
        link.push_str("&maxresults=");
        link.push_str(max);
    }
    link
}

fn list_keys(cx: &Cx<'_>, vault: &Vault) -> Result<Reply, VaultError> {
    let limit = max_results(cx.query.get("maxresults"))?;
    let context = format!("keys:{}", cx.target.vault);
    let start = match cx.query.get("$skiptoken") {
        Some(token) => cx.signer.open_skiptoken(&context, token)?,
        None => String::new(),
    };
    let items = vault.keys.range(start..).map(|(lower, key)| (lower.clone(), KeyItem::key(&cx.target.id_base, key)));
    let (value, next) = take_page(items, limit);
    let next_link = next.map(|position| next_link(cx, "/keys", &cx.signer.seal(&context, position.as_bytes())));
    Reply::json(&Page { value, next_link })
}

fn list_key_versions(cx: &Cx<'_>, vault: &Vault, name: &str) -> Result<Reply, VaultError> {
    let limit = max_results(cx.query.get("maxresults"))?;
    let key = vault.key(name).ok_or_else(|| VaultError::key_not_found(name))?;
    let context = format!("versions:{}:{}", cx.target.vault, name.to_ascii_lowercase());
    let skip = match cx.query.get("$skiptoken") {
        Some(token) => {
            let position = cx.signer.open_skiptoken(&context, token)?;
            key.versions()
                .position(|v| v.version == position)
                .ok_or_else(|| VaultError::bad_parameter(format!("$skiptoken: '{token}' is not a valid skip token")))?
        }
        None => 0,
    };
    let items = key.versions().skip(skip).map(|v| (v.version.clone(), KeyItem::version(&cx.target.id_base, key, v)));
    let (value, next) = take_page(items, limit);
    let collection = format!("/keys/{}/versions", key.name);
    let next_link = next.map(|position| next_link(cx, &collection, &cx.signer.seal(&context, position.as_bytes())));
    Reply::json(&Page { value, next_link })
}

fn list_deleted_keys(cx: &Cx<'_>, vault: &Vault) -> Result<Reply, VaultError> {
    let limit = max_results(cx.query.get("maxresults"))?;
    let context = format!("deletedkeys:{}", cx.target.vault);
    let start = match cx.query.get("$skiptoken") {
        Some(token) => cx.signer.open_skiptoken(&context, token)?,
        None => String::new(),
    };
    let items = vault
        .deleted
        .range(start..)
        .map(|(lower, deleted)| (lower.clone(), DeletedKeyItem::new(&cx.target.id_base, deleted)));
    let (value, next) = take_page(items, limit);
    let next_link = next.map(|position| next_link(cx, "/deletedkeys", &cx.signer.seal(&context, position.as_bytes())));
    Reply::json(&Page { value, next_link })
}

fn backup_key(cx: &mut Cx<'_>, vault: &Vault, name: &str) -> Result<Reply, VaultError> {
    let key = vault.key(name).ok_or_else(|| VaultError::key_not_found(name))?;
    let versions = key.version_count();
    if versions > MAX_BACKUP_VERSIONS {
        return Err(VaultError::bad_parameter(format!(
            "Key {} has {versions} versions; backup is not supported for an object with more than \
             {MAX_BACKUP_VERSIONS} versions.",
            key.name
        )));
    }
    let blob = BackupBlob { format: BACKUP_FORMAT.to_owned(), key: key.clone() };
    let json = serde_json::to_vec(&blob).map_err(|_| VaultError::internal())?;
    *cx.backups += 1;
    Reply::json(&BackupKeyResult { value: cx.signer.seal(BACKUP_CONTEXT, &json) })
}

fn restore_key(cx: &Cx<'_>, vault: &mut Vault, body_bytes: &[u8]) -> Result<Reply, VaultError> {
    let params: RestoreParameters = body(body_bytes)?;
    let value = params.value.ok_or_else(|| VaultError::bad_parameter("value: the backup blob is required"))?;
    let corrupt = || VaultError::bad_parameter("value: the backup blob is invalid or corrupt");
    let json = cx.signer.open(BACKUP_CONTEXT, &value).ok_or_else(corrupt)?;
    let blob: BackupBlob = serde_json::from_slice(&json).map_err(|_| corrupt())?;
    if blob.format != BACKUP_FORMAT {
        return Err(corrupt());
    }
    let name = blob.key.name.clone();
    if vault.deleted_key(&name).is_some() {
        return Err(VaultError::deleted_but_recoverable(&name));
    }
    if vault.key(&name).is_some() {
        return Err(VaultError::new(
            ErrorCode::Conflict,
            format!("Key {name} already exists in this vault; only a key that does not exist can be restored."),
        ));
    }
    let key = vault.keys.entry(name.to_ascii_lowercase()).or_insert(blob.key);
    Reply::json(&KeyBundle::new(&cx.target.id_base, key, &key.latest))
}

fn delete_key(cx: &Cx<'_>, vault: &mut Vault, name: &str) -> Result<Reply, VaultError> {
    let lower = name.to_ascii_lowercase();
    let key = vault.keys.remove(&lower).ok_or_else(|| VaultError::key_not_found(name))?;
    let deleted = DeletedKey {
        key,
        deleted_date: cx.now,
        scheduled_purge_date: cx.now + i64::from(RECOVERABLE_DAYS) * SECONDS_PER_DAY,
    };
    let deleted = vault.deleted.entry(lower).or_insert(deleted);
    Reply::json(&DeletedKeyBundle::new(&cx.target.id_base, deleted))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let op = |m: Method, p: &str| route(&m, p).unwrap();
        assert_eq!(op(Method::GET, "/keys"), Operation::ListKeys);
        assert_eq!(op(Method::GET, "/keys/k/"), Operation::GetKey { name: "k".into(), version: None });
        assert_eq!(op(Method::GET, "/keys/k/v1"), Operation::GetKey { name: "k".into(), version: Some("v1".into()) });
        assert_eq!(op(Method::PATCH, "/keys/k/"), Operation::UpdateKey { name: "k".into(), version: None });
        assert_eq!(op(Method::POST, "/keys/restore"), Operation::RestoreKey);
        assert_eq!(op(Method::GET, "/keys/restore"), Operation::GetKey { name: "restore".into(), version: None });
        assert_eq!(op(Method::POST, "/keys/k/create"), Operation::CreateKey { name: "k".into() });
        assert_eq!(op(Method::GET, "/keys/k/versions"), Operation::ListKeyVersions { name: "k".into() });
        assert_eq!(op(Method::DELETE, "/deletedkeys/k"), Operation::PurgeDeletedKey { name: "k".into() });
        assert_eq!(op(Method::POST, "/deletedkeys/k/recover"), Operation::RecoverDeletedKey { name: "k".into() });
        assert!(matches!(op(Method::POST, "/keys/k/v/sign"), Operation::NotModelled(_)));
        assert_eq!(route(&Method::POST, "/keys").unwrap_err().code, ErrorCode::MethodNotAllowed);
        assert_eq!(route(&Method::GET, "/secrets").unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn key_names() {
        assert!(check_key_name("Key-01").is_ok());
        assert!(check_key_name(&"k".repeat(127)).is_ok());
        for bad in ["", "a_b", "a.b", "ключ", &"k".repeat(128)] {
            assert!(check_key_name(bad).is_err(), "{bad}");
        }
    }

    fn params(json: &str) -> CreateKeyParameters {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn create_parameters_are_checked() {
        let ok = new_version(params(r#"{"kty":"EC-HSM","crv":"P-384"}"#), 5).unwrap();
        assert_eq!((ok.kty.as_str(), ok.key_ops.len(), ok.created), ("EC-HSM", 2, 5));
        let rsa = new_version(params(r#"{"kty":"RSA","key_size":4096,"tags":{"a":"b"}}"#), 5).unwrap();
        assert_eq!(rsa.key_ops, RSA_DEFAULT_OPS);
        for bad in [
            r#"{}"#,
            r#"{"kty":"RSA","key_size":1024}"#,
            r#"{"kty":"RSA","crv":"P-256"}"#,
            r#"{"kty":"EC","crv":"P-192"}"#,
            r#"{"kty":"EC","key_size":2048}"#,
            r#"{"kty":"oct-HSM"}"#,
            r#"{"kty":"DES"}"#,
            r#"{"kty":"RSA","key_ops":["fly"]}"#,
            r#"{"kty":"RSA","attributes":{"exportable":true}}"#,
        ] {
            assert_eq!(new_version(params(bad), 0).unwrap_err().code, ErrorCode::BadParameter, "{bad}");
        }
        let many: BTreeMap<String, String> = (0..16).map(|i| (format!("t{i}"), String::new())).collect();
        assert!(checked_tags(many).is_err());
    }
}
