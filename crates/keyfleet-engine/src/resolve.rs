//! From an item's key id to a ready client: AWS key → KMS container → connection (secret decrypted) → SDK
//! client; Azure vault → connection → Key Vault client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use keyfleet_clouds::azure::{PUBLIC_AUTHORITY, VAULT_RESOURCE};
use keyfleet_clouds::{AwsCredentials, AwsKms, AwsKmsConnector, AzureCredentials, KeyVault, KeyVaultConnector};
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
    azure: Arc<dyn KeyVaultConnector>,
    /// Clients are reused across items; the connection's `updated_at` is part of the key, so an edited
    /// connection gets a fresh client.
    clients: Mutex<HashMap<ClientKey, Arc<dyn AwsKms>>>,
    vault_clients: Mutex<HashMap<ClientKey, Arc<dyn KeyVault>>>,
}

impl Resolver {
    pub fn new(
        store: Arc<dyn Store>,
        master: MasterKey,
        connector: Arc<dyn AwsKmsConnector>,
        azure: Arc<dyn KeyVaultConnector>,
    ) -> Self {
        Self {
            store,
            master,
            connector,
            azure,
            clients: Mutex::new(HashMap::new()),
            vault_clients: Mutex::new(HashMap::new()),
        }
    }

    /// A Key Vault client for `vault`, through its connection (token cached by the connector).
    pub async fn key_vault(&self, vault: &VaultRecord) -> Result<Arc<dyn KeyVault>, EngineError> {
        let conn = self
            .store
            .get_azure_connection(vault.connection_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("connection of vault {} was deleted", vault.name)))?;
        let url = vault_url(&conn, vault);
        let cache_key = (conn.id, conn.updated_at.timestamp_micros(), url.clone());
        if let Some(c) = self.vault_clients.lock().unwrap_or_else(|e| e.into_inner()).get(&cache_key) {
            return Ok(c.clone());
        }
        let secret = self.master.decrypt(&conn.secret_enc, &conn.id.secret_aad())?;
        let creds = AzureCredentials {
            tenant_id: conn.tenant_id.clone(),
            client_id: conn.client_id.clone(),
            client_secret: String::from_utf8(secret)
                .map_err(|_| EngineError::Missing("connection secret is not UTF-8".into()))?,
            authority: conn.active_directory_endpoint.clone().unwrap_or_else(|| PUBLIC_AUTHORITY.to_string()),
            resource: conn.vault_resource_url.clone().unwrap_or_else(|| VAULT_RESOURCE.to_string()),
        };
        let client = self.azure.connect(&creds, &url);
        let mut clients = self.vault_clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.retain(|(c, updated, _), _| *c != conn.id || *updated == cache_key.1);
        clients.insert(cache_key, client.clone());
        Ok(client)
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

/// Where a vault's data plane is: the connection's `vault_endpoint_url` template (`{vault}` replaced by the
/// vault's name) when it has one, else the vault's own URI, else `https://<name>.<dns suffix>`.
pub fn vault_url(conn: &AzureConnectionRecord, vault: &VaultRecord) -> String {
    let url = if let Some(t) = conn.vault_endpoint_url.as_deref().filter(|t| !t.is_empty()) {
        t.replace("{vault}", &vault.name)
    } else if !vault.vault_uri.is_empty() {
        vault.vault_uri.clone()
    } else {
        let suffix = conn.key_vault_dns_suffix.as_deref().filter(|s| !s.is_empty()).unwrap_or("vault.azure.net");
        format!("https://{}.{}", vault.name, suffix.trim_start_matches('.'))
    };
    url.trim_end_matches('/').to_string()
}
