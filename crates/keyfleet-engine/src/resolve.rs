//! From an item's key id to a ready SDK client: key → KMS container → connection (secret decrypted) → client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use keyfleet_clouds::{AwsCredentials, AwsKms, AwsKmsConnector};
use keyfleet_core::crypto::MasterKey;
use keyfleet_core::*;
use keyfleet_store::Store;

use crate::EngineError;

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

type ClientKey = (ConnectionId, i64, String);

pub struct Resolver {
    store: Arc<dyn Store>,
    master: MasterKey,
    connector: Arc<dyn AwsKmsConnector>,
    /// Clients are reused across items; the connection's `updated_at` is part of the key, so an edited
    /// connection gets a fresh client.
    clients: Mutex<HashMap<ClientKey, Arc<dyn AwsKms>>>,
}

impl Resolver {
    pub fn new(store: Arc<dyn Store>, master: MasterKey, connector: Arc<dyn AwsKmsConnector>) -> Self {
        Self { store, master, connector, clients: Mutex::new(HashMap::new()) }
    }

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
        if let Some(c) = self.clients.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
            return Ok((c.clone(), conn.name));
        }
        let secret = self.master.decrypt(&conn.secret_enc, &conn.id.secret_aad())?;
        let creds = AwsCredentials {
            access_key_id: conn.access_key_id.clone(),
            secret_access_key: String::from_utf8(secret)
                .map_err(|_| EngineError::Missing("connection secret is not UTF-8".into()))?,
            endpoint_url: conn.endpoint_url.clone(),
        };
        let client = self.connector.connect(&creds, region);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|(c, updated, _), _| *c != conn.id || *updated == cache_key.1);
        clients.insert(cache_key, client.clone());
        Ok((client, conn.name))
    }
}
