//! Key Vault's JSON shapes (REST API 7.4+): key bundles, list items and pages. Field names are
//! Key Vault's; times are Unix seconds.

use std::collections::BTreeMap;

use serde::Serialize;

use super::state::{DeletedKey, Key, KeyVersion, Material, RECOVERABLE_DAYS, RECOVERY_LEVEL};

/// `https://<vault>.<host>`: the base of key ids and recovery ids.
pub(crate) fn key_id(id_base: &str, name: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{id_base}/keys/{name}/{version}"),
        None => format!("{id_base}/keys/{name}"),
    }
}

pub(crate) fn recovery_id(id_base: &str, name: &str) -> String {
    format!("{id_base}/deletedkeys/{name}")
}

#[derive(Debug, Serialize)]
pub(crate) struct JsonWebKey<'a> {
    pub kid: String,
    pub kty: &'a str,
    pub key_ops: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<&'a str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct KeyAttributes {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub recovery_level: &'static str,
    pub recoverable_days: u32,
    pub exportable: bool,
}

impl KeyAttributes {
    fn of(version: &KeyVersion) -> Self {
        Self {
            enabled: version.enabled,
            nbf: version.nbf,
            exp: version.exp,
            created: version.created,
            updated: version.updated,
            recovery_level: RECOVERY_LEVEL,
            recoverable_days: RECOVERABLE_DAYS,
            exportable: version.exportable,
        }
    }
}

/// A key version with its public material. `tags` is left out when there are none, as Key
/// Vault does; `managed` is never set (the fake has no certificates).
#[derive(Debug, Serialize)]
pub(crate) struct KeyBundle<'a> {
    pub key: JsonWebKey<'a>,
    pub attributes: KeyAttributes,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: &'a BTreeMap<String, String>,
}

impl<'a> KeyBundle<'a> {
    pub(crate) fn new(id_base: &str, key: &Key, version: &'a KeyVersion) -> Self {
        let (n, e, crv, x, y) = match &version.material {
            Material::Rsa { n, e } => (Some(n.as_str()), Some(e.as_str()), None, None, None),
            Material::Ec { crv, x, y } => (None, None, Some(crv.as_str()), Some(x.as_str()), Some(y.as_str())),
        };
        Self {
            key: JsonWebKey {
                kid: key_id(id_base, &key.name, Some(&version.version)),
                kty: &version.kty,
                key_ops: &version.key_ops,
                n,
                e,
                crv,
                x,
                y,
            },
            attributes: KeyAttributes::of(version),
            tags: &version.tags,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletedKeyBundle<'a> {
    #[serde(flatten)]
    pub bundle: KeyBundle<'a>,
    pub recovery_id: String,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

impl<'a> DeletedKeyBundle<'a> {
    pub(crate) fn new(id_base: &str, deleted: &'a DeletedKey) -> Self {
        Self {
            bundle: KeyBundle::new(id_base, &deleted.key, &deleted.key.latest),
            recovery_id: recovery_id(id_base, &deleted.key.name),
            deleted_date: deleted.deleted_date,
            scheduled_purge_date: deleted.scheduled_purge_date,
        }
    }
}

/// An entry of `GET /keys` (kid without version: the current version's attributes) or of
/// `GET /keys/{name}/versions` (kid with version).
#[derive(Debug, Serialize)]
pub(crate) struct KeyItem<'a> {
    pub kid: String,
    pub attributes: KeyAttributes,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: &'a BTreeMap<String, String>,
}

impl<'a> KeyItem<'a> {
    pub(crate) fn key(id_base: &str, key: &'a Key) -> Self {
        Self {
            kid: key_id(id_base, &key.name, None),
            attributes: KeyAttributes::of(&key.latest),
            tags: &key.latest.tags,
        }
    }

    pub(crate) fn version(id_base: &str, key: &Key, version: &'a KeyVersion) -> Self {
        Self {
            kid: key_id(id_base, &key.name, Some(&version.version)),
            attributes: KeyAttributes::of(version),
            tags: &version.tags,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletedKeyItem<'a> {
    #[serde(flatten)]
    pub item: KeyItem<'a>,
    pub recovery_id: String,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
}

impl<'a> DeletedKeyItem<'a> {
    pub(crate) fn new(id_base: &str, deleted: &'a DeletedKey) -> Self {
        Self {
            item: KeyItem::key(id_base, &deleted.key),
            recovery_id: recovery_id(id_base, &deleted.key.name),
            deleted_date: deleted.deleted_date,
            scheduled_purge_date: deleted.scheduled_purge_date,
        }
    }
}

/// One page of a listing. `nextLink` is `null` on the last page, as Key Vault sends it.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub value: Vec<T>,
    #[serde(rename = "nextLink")]
    pub next_link: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BackupKeyResult {
    pub value: String,
}
