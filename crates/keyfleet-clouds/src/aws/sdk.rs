//! `aws-sdk-kms` behind [`AwsKms`]: one client per (credentials, region), the SDK's retries off (the engine's
//! policy is the only one), bounded timeouts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::types::Tag;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;

use super::errors::classify;
use super::{AliasEntry, AwsCredentials, AwsKms, AwsKmsConnector, KeyMetadata, Page};
use crate::error::{CloudError, ErrorKind, Receipt};

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
            credentials.secret_access_key.expose_secret().to_owned(),
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
            // A request whose send deadline passed while it was built and signed is not sent (`send_by.rs`).
            .interceptor(SendDeadline)
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

/// Checks the send deadline ([`crate::send_by`]) of the call around it right before a request is handed to the
/// HTTP connection: the last moment the SDK lets us look.
#[derive(Debug)]
struct SendDeadline;

#[aws_smithy_runtime_api::client::interceptors::dyn_dispatch_hint]
impl Intercept for SendDeadline {
    fn name(&self) -> &'static str {
        "keyfleet::SendDeadline"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(crate::send_by::check()?)
    }
}

struct SdkKms {
    client: aws_sdk_kms::Client,
}

/// The request id AWS answered a change with.
fn receipt(output: impl RequestId) -> Receipt {
    Receipt { request_id: output.request_id().map(str::to_string) }
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
            ..Default::default()
        })
    }

    async fn enable_key(&self, key: &str) -> Result<Receipt, CloudError> {
        self.client.enable_key().key_id(key).send().await.map(receipt).map_err(classify)
    }

    async fn disable_key(&self, key: &str) -> Result<Receipt, CloudError> {
        self.client.disable_key().key_id(key).send().await.map(receipt).map_err(classify)
    }

    async fn schedule_key_deletion(&self, key: &str, days: i32) -> Result<Receipt, CloudError> {
        let call = self.client.schedule_key_deletion().key_id(key).pending_window_in_days(days);
        call.send().await.map(receipt).map_err(classify)
    }

    async fn cancel_key_deletion(&self, key: &str) -> Result<Receipt, CloudError> {
        self.client.cancel_key_deletion().key_id(key).send().await.map(receipt).map_err(classify)
    }

    async fn get_key_policy(&self, key: &str) -> Result<String, CloudError> {
        let out = self.client.get_key_policy().key_id(key).policy_name("default").send().await.map_err(classify)?;
        Ok(out.policy().unwrap_or_default().to_string())
    }

    async fn put_key_policy(&self, key: &str, policy: &str) -> Result<Receipt, CloudError> {
        let call = self.client.put_key_policy().key_id(key).policy_name("default").policy(policy);
        call.send().await.map(receipt).map_err(classify)
    }

    async fn tag_resource(&self, key: &str, tags: &[(String, String)]) -> Result<Receipt, CloudError> {
        let mut req = self.client.tag_resource().key_id(key);
        for (k, v) in tags {
            let tag = Tag::builder()
                .tag_key(k)
                .tag_value(v)
                .build()
                .map_err(|e| CloudError::new(ErrorKind::Rejected, "InvalidTag", e.to_string()))?;
            req = req.tags(tag);
        }
        req.send().await.map(receipt).map_err(classify)
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
