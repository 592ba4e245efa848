//! Shapes shared by several operations, exactly as AWS KMS puts them on the wire.
//! Timestamps are epoch seconds as JSON numbers (with milliseconds), like AWS.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::keyspec::CUSTOMER_MASTER_KEY_SPECS;
use super::state::{Alias, Key, KeyState, Scope};

pub(crate) fn epoch(at: DateTime<Utc>) -> f64 {
    // Milliseconds fit exactly in an f64 for any realistic date.
    at.timestamp_millis() as f64 / 1000.0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    pub tag_key: String,
    pub tag_value: String,
}

impl Tag {
    pub(crate) fn list(key: &Key) -> Vec<Tag> {
        key.tags.iter().map(|(k, v)| Tag { tag_key: k.clone(), tag_value: v.clone() }).collect()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct KeyMetadata<'a> {
    #[serde(rename = "AWSAccountId")]
    aws_account_id: &'a str,
    key_id: &'a str,
    arn: &'a str,
    creation_date: f64,
    enabled: bool,
    description: &'a str,
    key_usage: &'a str,
    key_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    deletion_date: Option<f64>,
    origin: &'static str,
    key_manager: &'static str,
    /// Deprecated by AWS; absent for specs newer than the deprecation.
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_master_key_spec: Option<&'a str>,
    key_spec: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    encryption_algorithms: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    signing_algorithms: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    mac_algorithms: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    key_agreement_algorithms: &'a [&'static str],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    encapsulation_algorithms: &'a [&'static str],
    multi_region: bool,
}

impl<'a> KeyMetadata<'a> {
    pub(crate) fn of(key: &'a Key) -> Self {
        Self {
            aws_account_id: &key.account,
            key_id: &key.id,
            arn: &key.arn,
            creation_date: epoch(key.created),
            enabled: key.enabled(),
            description: &key.description,
            key_usage: &key.key_usage,
            key_state: key.state.as_str(),
            deletion_date: match key.state {
                KeyState::PendingDeletion => key.deletion_date.map(epoch),
                _ => None,
            },
            origin: "AWS_KMS",
            key_manager: "CUSTOMER",
            customer_master_key_spec: CUSTOMER_MASTER_KEY_SPECS
                .contains(&key.key_spec.as_str())
                .then_some(key.key_spec.as_str()),
            key_spec: &key.key_spec,
            encryption_algorithms: &key.algorithms.encryption,
            signing_algorithms: &key.algorithms.signing,
            mac_algorithms: &key.algorithms.mac,
            key_agreement_algorithms: &key.algorithms.key_agreement,
            encapsulation_algorithms: &key.algorithms.encapsulation,
            multi_region: false,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AliasListEntry {
    alias_name: String,
    alias_arn: String,
    target_key_id: String,
    creation_date: f64,
    last_updated_date: f64,
}

impl AliasListEntry {
    pub(crate) fn of(scope: &Scope, alias: &Alias) -> Self {
        Self {
            alias_name: alias.name.clone(),
            alias_arn: scope.alias_arn(&alias.name),
            target_key_id: alias.target_key_id.clone(),
            creation_date: epoch(alias.created),
            last_updated_date: epoch(alias.updated),
        }
    }
}
