//! AWS KMS: the trait, and its implementation on the official SDK ([`SdkConnector`]): the connector and the
//! KMS calls in `sdk`, the classification of the SDK's errors in `errors`.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::{CloudError, Receipt};

mod errors;
mod sdk;

pub use sdk::SdkConnector;

/// What keyfleet needs to reach one AWS account. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Overrides AWS's endpoint (tests, fakes, VPC endpoints).
    pub endpoint_url: Option<String>,
}

/// DescribeKey's KeyMetadata, read into the key material keyfleet caches: `policy`, `tags` and `aliases` stay
/// empty (other calls read those).
pub type KeyMetadata = keyfleet_core::AwsKeyMaterial;

/// One alias from ListAliases.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasEntry {
    pub alias_name: String,
    pub target_key_id: Option<String>,
}

/// One page of a listing and the marker of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

/// The AWS KMS actions keyfleet performs, in one account and region. `key` is a key id or ARN. A change that
/// succeeded answers its [`Receipt`] (AWS's request id, for the audit record).
#[async_trait]
pub trait AwsKms: Send + Sync {
    async fn describe_key(&self, key: &str) -> Result<KeyMetadata, CloudError>;
    async fn enable_key(&self, key: &str) -> Result<Receipt, CloudError>;
    async fn disable_key(&self, key: &str) -> Result<Receipt, CloudError>;
    async fn schedule_key_deletion(&self, key: &str, days: i32) -> Result<Receipt, CloudError>;
    async fn cancel_key_deletion(&self, key: &str) -> Result<Receipt, CloudError>;
    async fn get_key_policy(&self, key: &str) -> Result<String, CloudError>;
    async fn put_key_policy(&self, key: &str, policy: &str) -> Result<Receipt, CloudError>;
    async fn tag_resource(&self, key: &str, tags: &[(String, String)]) -> Result<Receipt, CloudError>;
    async fn list_resource_tags(&self, key: &str) -> Result<Vec<(String, String)>, CloudError>;
    /// Key ids, `limit` per page.
    async fn list_keys(&self, marker: Option<String>, limit: i32) -> Result<Page<String>, CloudError>;
    async fn list_aliases(&self, marker: Option<String>, limit: i32) -> Result<Page<AliasEntry>, CloudError>;
}

/// Builds clients: one per (credentials, region).
pub trait AwsKmsConnector: Send + Sync {
    fn connect(&self, credentials: &AwsCredentials, region: &str) -> Arc<dyn AwsKms>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI-secret".into(),
            endpoint_url: None,
        };
        let shown = format!("{credentials:?}");
        assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        assert!(!shown.contains("wJalrXUtnFEMI-secret"), "{shown}");
    }
}
