//! AWS KMS: the trait, and its implementation on the official SDK.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::types::Tag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};

use crate::error::{CloudError, ErrorKind};

/// What keyfleet needs to reach one AWS account. `Debug` never shows the secret.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Overrides AWS's endpoint (tests, fakes, VPC endpoints).
    pub endpoint_url: Option<String>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// The part of DescribeKey's KeyMetadata keyfleet keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyMetadata {
    pub key_id: String,
    pub arn: String,
    pub account_id: String,
    pub key_state: String,
    pub enabled: bool,
    pub description: String,
    pub key_usage: String,
    pub origin: String,
    pub key_manager: String,
    pub creation_date: Option<DateTime<Utc>>,
    pub deletion_date: Option<DateTime<Utc>>,
    pub multi_region: bool,
}

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

/// The AWS KMS actions keyfleet performs, in one account and region. `key` is a key id or ARN.
#[async_trait]
pub trait AwsKms: Send + Sync {
    async fn describe_key(&self, key: &str) -> Result<KeyMetadata, CloudError>;
    async fn enable_key(&self, key: &str) -> Result<(), CloudError>;
    async fn disable_key(&self, key: &str) -> Result<(), CloudError>;
    async fn schedule_key_deletion(&self, key: &str, days: i32) -> Result<(), CloudError>;
    async fn cancel_key_deletion(&self, key: &str) -> Result<(), CloudError>;
    async fn get_key_policy(&self, key: &str) -> Result<String, CloudError>;
    async fn put_key_policy(&self, key: &str, policy: &str) -> Result<(), CloudError>;
    async fn tag_resource(&self, key: &str, tags: &[(String, String)]) -> Result<(), CloudError>;
    async fn list_resource_tags(&self, key: &str) -> Result<Vec<(String, String)>, CloudError>;
    /// Key ids, `limit` per page.
    async fn list_keys(&self, marker: Option<String>, limit: i32) -> Result<Page<String>, CloudError>;
    async fn list_aliases(&self, marker: Option<String>, limit: i32) -> Result<Page<AliasEntry>, CloudError>;
}

/// Builds clients: one per (credentials, region).
pub trait AwsKmsConnector: Send + Sync {
    fn connect(&self, credentials: &AwsCredentials, region: &str) -> Arc<dyn AwsKms>;
}

/// The real thing: `aws-sdk-kms` with its retries off and bounded timeouts.
#[derive(Debug, Clone)]
pub struct SdkConnector {
    pub operation_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for SdkConnector {
    fn default() -> Self {
        Self { operation_timeout: Duration::from_secs(30), connect_timeout: Duration::from_secs(5) }
    }
}

impl AwsKmsConnector for SdkConnector {
    fn connect(&self, credentials: &AwsCredentials, region: &str) -> Arc<dyn AwsKms> {
        let creds = Credentials::new(
            credentials.access_key_id.clone(),
            credentials.secret_access_key.clone(),
            None,
            None,
            "keyfleet-connection",
        );
        let mut config = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(creds)
            // One retry policy, the engine's: the SDK would otherwise retry throttling invisibly.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(self.operation_timeout)
                    .connect_timeout(self.connect_timeout)
                    .build(),
            );
        if let Some(url) = &credentials.endpoint_url {
            config = config.endpoint_url(url.clone());
        }
        Arc::new(SdkKms { client: aws_sdk_kms::Client::from_conf(config.build()) })
    }
}

struct SdkKms {
    client: aws_sdk_kms::Client,
}

/// Classifies an SDK error by AWS's error code, the HTTP status, or the transport failure.
fn classify<E>(err: SdkError<E, aws_smithy_runtime_api::http::Response>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string);
    match (&err, code) {
        (SdkError::TimeoutError(_), _) => CloudError::new(ErrorKind::Transient, "Timeout", "the request timed out"),
        (SdkError::DispatchFailure(_), _) => CloudError::new(
            ErrorKind::Transient,
            "ConnectionError",
            aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        ),
        (SdkError::ConstructionFailure(_), _) => {
            CloudError::new(ErrorKind::Rejected, "RequestConstructionFailed", format!("{err}"))
        }
        (_, Some(code)) => {
            let kind = match code.as_str() {
                // KMS's LimitExceededException is a resource quota (too many keys), not a rate: not retried.
                "ThrottlingException" | "TooManyRequestsException" => ErrorKind::Throttled,
                "AccessDeniedException"
                | "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignature"
                | "ExpiredTokenException"
                | "MissingAuthenticationTokenException"
                | "InvalidClientTokenId"
                | "SignatureDoesNotMatch" => ErrorKind::Unauthorized,
                "NotFoundException" => ErrorKind::NotFound,
                "KMSInvalidStateException" | "DisabledException" => ErrorKind::InvalidState,
                "KMSInternalException"
                | "DependencyTimeoutException"
                | "ServiceUnavailableException"
                | "InternalFailure" => ErrorKind::Transient,
                _ if status.is_some_and(|s| s >= 500) => ErrorKind::Transient,
                _ if status == Some(429) => ErrorKind::Throttled,
                _ => ErrorKind::Rejected,
            };
            CloudError::new(kind, code, message.unwrap_or_default())
        }
        (_, None) => {
            let kind = match status {
                Some(429) => ErrorKind::Throttled,
                Some(s) if s >= 500 => ErrorKind::Transient,
                Some(401 | 403) => ErrorKind::Unauthorized,
                _ => ErrorKind::Transient,
            };
            let code = status.map(|s| format!("HTTP{s}")).unwrap_or_else(|| "ResponseError".to_string());
            CloudError::new(kind, code, message.unwrap_or_else(|| format!("{err}")))
        }
    }
}

fn to_utc(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

#[async_trait]
impl AwsKms for SdkKms {
    async fn describe_key(&self, key: &str) -> Result<KeyMetadata, CloudError> {
        let out = self.client.describe_key().key_id(key).send().await.map_err(classify)?;
        let m = out.key_metadata().ok_or_else(|| {
            CloudError::new(ErrorKind::Transient, "EmptyResponse", "DescribeKey returned no KeyMetadata")
        })?;
        Ok(KeyMetadata {
            key_id: m.key_id().to_string(),
            arn: m.arn().unwrap_or_default().to_string(),
            account_id: m.aws_account_id().unwrap_or_default().to_string(),
            key_state: m.key_state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            enabled: m.enabled(),
            description: m.description().unwrap_or_default().to_string(),
            key_usage: m.key_usage().map(|s| s.as_str().to_string()).unwrap_or_default(),
            origin: m.origin().map(|s| s.as_str().to_string()).unwrap_or_default(),
            key_manager: m.key_manager().map(|s| s.as_str().to_string()).unwrap_or_default(),
            creation_date: m.creation_date().and_then(to_utc),
            deletion_date: m.deletion_date().and_then(to_utc),
            multi_region: m.multi_region().unwrap_or(false),
        })
    }

    async fn enable_key(&self, key: &str) -> Result<(), CloudError> {
        self.client.enable_key().key_id(key).send().await.map_err(classify)?;
        Ok(())
    }

    async fn disable_key(&self, key: &str) -> Result<(), CloudError> {
        self.client.disable_key().key_id(key).send().await.map_err(classify)?;
        Ok(())
    }

    async fn schedule_key_deletion(&self, key: &str, days: i32) -> Result<(), CloudError> {
        self.client.schedule_key_deletion().key_id(key).pending_window_in_days(days).send().await.map_err(classify)?;
        Ok(())
    }

    async fn cancel_key_deletion(&self, key: &str) -> Result<(), CloudError> {
        self.client.cancel_key_deletion().key_id(key).send().await.map_err(classify)?;
        Ok(())
    }

    async fn get_key_policy(&self, key: &str) -> Result<String, CloudError> {
        let out = self.client.get_key_policy().key_id(key).policy_name("default").send().await.map_err(classify)?;
        Ok(out.policy().unwrap_or_default().to_string())
    }

    async fn put_key_policy(&self, key: &str, policy: &str) -> Result<(), CloudError> {
        self.client
            .put_key_policy()
            .key_id(key)
            .policy_name("default")
            .policy(policy)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn tag_resource(&self, key: &str, tags: &[(String, String)]) -> Result<(), CloudError> {
        let mut req = self.client.tag_resource().key_id(key);
        for (k, v) in tags {
            let tag = Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| CloudError::new(ErrorKind::Rejected, "InvalidTag", e.to_string()))?;
            req = req.tags(tag);
        }
        req.send().await.map_err(classify)?;
        Ok(())
    }

    async fn list_resource_tags(&self, key: &str) -> Result<Vec<(String, String)>, CloudError> {
        let mut tags = Vec::new();
        let mut marker = None;
        loop {
            let out = self.client.list_resource_tags().key_id(key).set_marker(marker).send().await.map_err(classify)?;
            tags.extend(out.tags().iter().map(|t| (t.tag_key().to_string(), t.tag_value().to_string())));
            marker = out.next_marker().map(str::to_string);
            if !out.truncated() || marker.is_none() {
                return Ok(tags);
            }
        }
    }

    async fn list_keys(&self, marker: Option<String>, limit: i32) -> Result<Page<String>, CloudError> {
        let out = self.client.list_keys().set_marker(marker).limit(limit).send().await.map_err(classify)?;
        Ok(Page {
            items: out.keys().iter().filter_map(|k| k.key_id().map(str::to_string)).collect(),
            next_marker: if out.truncated() { out.next_marker().map(str::to_string) } else { None },
        })
    }

    async fn list_aliases(&self, marker: Option<String>, limit: i32) -> Result<Page<AliasEntry>, CloudError> {
        let out = self.client.list_aliases().set_marker(marker).limit(limit).send().await.map_err(classify)?;
        Ok(Page {
            items: out
                .aliases()
                .iter()
                .map(|a| AliasEntry {
                    alias_name: a.alias_name().unwrap_or_default().to_string(),
                    target_key_id: a.target_key_id().map(str::to_string),
                })
                .collect(),
            next_marker: if out.truncated() { out.next_marker().map(str::to_string) } else { None },
        })
    }
}
