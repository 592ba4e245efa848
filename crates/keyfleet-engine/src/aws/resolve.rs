//! From an AWS key id to a ready client: key → KMS container → connection (secret decrypted) → SDK client.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyfleet_clouds::{AwsCredentials, AwsKms};
use keyfleet_core::*;

use crate::EngineError;
use crate::resolve::Resolver;

/// A key and the means to act on it.
pub struct AwsTarget {
    pub key: AwsKeyRecord,
    pub account: String,
    /// The container's quota overrides (requests/s per action).
    pub quotas: BTreeMap<String, f64>,
    pub connection_id: ConnectionId,
    pub connection_name: String,
    pub client: Arc<dyn AwsKms>,
}

impl Resolver {
    pub async fn aws_key(&self, id: KeyId) -> Result<AwsTarget, EngineError> {
        let key = self
            .store
            .get_aws_key(id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("key {id} is not in the inventory")))?;
        let kms = self
            .store
            .get_kms(key.kms_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("KMS container {} of key {id} was deleted", key.kms_id)))?;
        let (client, connection_name) = self.aws_client_named(&kms, &key.region).await?;
        Ok(AwsTarget {
            account: kms.account_id,
            quotas: kms.quotas,
            connection_id: kms.connection_id,
            connection_name,
            key,
            client,
        })
    }

    pub async fn aws_client(&self, kms: &KmsRecord, region: &str) -> Result<Arc<dyn AwsKms>, EngineError> {
        Ok(self.aws_client_named(kms, region).await?.0)
    }

    /// The client, and the connection's name for messages.
    async fn aws_client_named(&self, kms: &KmsRecord, region: &str) -> Result<(Arc<dyn AwsKms>, String), EngineError> {
        let conn = self
            .store
            .get_aws_connection(kms.connection_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("connection of KMS container {} was deleted", kms.name)))?;
        let cache_key = (conn.id, conn.updated_at.timestamp_micros(), region.to_string());
        if let Some(c) = self.clients.get(&cache_key) {
            return Ok((c, conn.name));
        }
        let creds = AwsCredentials {
            access_key_id: conn.access_key_id.clone(),
            secret_access_key: self.secret(conn.id, &conn.secret_enc)?,
            endpoint_url: conn.endpoint_url.clone(),
        };
        let client = self.connector.connect(&creds, region);
        self.clients.insert(cache_key, client.clone());
        Ok((client, conn.name))
    }
}
