//! AWS inventory: connections, KMS containers, keys, key synchronization jobs and policy templates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::common::AclView;

/// `POST /v1/connectionmgmt/services/aws/connections` and its PATCH (every field optional there).
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsConnectionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role_external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
}

resource! {
    /// A connection as the API shows it: never the secret.
    pub struct AwsConnectionView {
        pub name: String,
        pub description: String,
        pub category: String,
        pub service: String,
        pub cloud_name: String,
        pub access_key_id: String,
        pub aws_region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub assume_role_arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub assume_role_external_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub endpoint_url: Option<String>,
        pub products: Vec<String>,
    }
}

/// `POST /v1/cckm/aws/kms` and its PATCH.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KmsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    /// Extension: requests/s per KMS action for this account, overriding AWS's default quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<BTreeMap<String, f64>>,
}

resource! {
    /// An AWS KMS container: one AWS account, reached through one connection, in some regions.
    pub struct KmsView {
        pub name: String,
        pub account_id: String,
        pub connection: String,
        pub regions: Vec<String>,
        pub acls: Vec<AclView>,
        /// Extension: quota overrides (requests/s per action); empty means AWS's defaults.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pub quotas: BTreeMap<String, f64>,
    }
}

/// One tag in `aws_param.Tags`.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AwsTag {
    #[serde(rename = "TagKey")]
    pub tag_key: String,
    #[serde(rename = "TagValue")]
    pub tag_value: String,
}

/// AWS's KeyMetadata with CipherTrust's spellings (`KeyID`, `AWSAccountId`).
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct AwsParam {
    #[serde(rename = "KeyID")]
    pub key_id: String,
    #[serde(rename = "Arn")]
    pub arn: String,
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    #[serde(rename = "KeyState")]
    pub key_state: String,
    #[serde(rename = "Enabled")]
    pub enabled: bool,
    #[serde(rename = "Description")]
    pub description: String,
    #[serde(rename = "KeyUsage")]
    pub key_usage: String,
    #[serde(rename = "Origin")]
    pub origin: String,
    #[serde(rename = "KeyManager")]
    pub key_manager: String,
    #[serde(rename = "CreationDate", default, skip_serializing_if = "Option::is_none")]
    pub creation_date: Option<Timestamp>,
    #[serde(rename = "DeletionDate", default, skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<Timestamp>,
    #[serde(rename = "MultiRegion")]
    pub multi_region: bool,
    #[serde(rename = "Policy")]
    pub policy: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<AwsTag>,
    #[serde(rename = "Alias")]
    pub alias: Vec<String>,
}

resource! {
    /// `GET /v1/cckm/aws/keys/{id}`.
    pub struct AwsKeyView {
        pub kms_id: String,
        pub kms: String,
        pub region: String,
        pub cloud_name: String,
        pub key_material_origin: String,
        pub synced_at: Timestamp,
        pub gone: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub deletion_date: Option<Timestamp>,
        pub labels: BTreeMap<String, String>,
        pub aws_param: AwsParam,
    }
}

/// `POST /v1/cckm/aws/synchronization-jobs`.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CreateAwsSyncJob {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronize_all: Option<bool>,
}

job_resource! {
    /// A key synchronization job; `detailed_status` is keyed `"<aws account>/<region>"`.
    pub struct SyncJobView {
        pub kms: Vec<String>,
        pub regions: Vec<String>,
        pub synchronize_all: bool,
    }
}

/// `POST /v1/cckm/aws/templates` and its PATCH.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, alias = "Policy", skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_admins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_users: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_admins_roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_users_roles: Option<Vec<String>>,
}

resource! {
    /// A policy template: the policy document applied by `applypolicytemplate`.
    pub struct TemplateView {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms: Option<String>,
        pub account_id: String,
        pub policy: serde_json::Value,
        pub key_admins: Vec<String>,
        pub key_users: Vec<String>,
        pub key_admins_roles: Vec<String>,
        pub key_users_roles: Vec<String>,
        pub is_verified: bool,
    }
}

list_query! {
    /// Query of `GET /v1/cckm/aws/keys`. Values stay strings here so the server can name a malformed one.
    pub struct AwsKeyQuery {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kms_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub region: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keyid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub arn: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub alias: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub keystate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enabled: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub gone: Option<String>,
        /// `key=value` or `key`, comma-separated; a key must carry every one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tags: Option<String>,
    }
}
