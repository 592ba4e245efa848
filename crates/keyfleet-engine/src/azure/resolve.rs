//! From an Azure vault to a ready client: vault → connection (secret decrypted) → Key Vault client.

use std::sync::Arc;

use keyfleet_clouds::azure::{PUBLIC_AUTHORITY, VAULT_RESOURCE};
use keyfleet_clouds::{AzureCredentials, KeyVault};
use keyfleet_core::*;

use crate::EngineError;
use crate::resolve::Resolver;

impl Resolver {
    /// A Key Vault client for `vault`, through its connection (token cached by the connector).
    pub async fn key_vault(&self, vault: &VaultRecord) -> Result<Arc<dyn KeyVault>, EngineError> {
        let conn = self
            .store
            .get_azure_connection(vault.connection_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("connection of vault {} was deleted", vault.name)))?;
        let url = vault_url(&conn, vault);
        let cache_key = (conn.id, conn.updated_at.timestamp_micros(), url.clone());
        if let Some(c) = self.vault_clients.get(&cache_key) {
            return Ok(c);
        }
        let creds = AzureCredentials {
            tenant_id: conn.tenant_id.clone(),
            client_id: conn.client_id.clone(),
            client_secret: self.secret(conn.id, &conn.secret_enc)?,
            authority: conn.active_directory_endpoint.clone().unwrap_or_else(|| PUBLIC_AUTHORITY.to_string()),
            resource: conn.vault_resource_url.clone().unwrap_or_else(|| VAULT_RESOURCE.to_string()),
        };
        let client = self.azure.connect(&creds, &url);
        self.vault_clients.insert(cache_key, client.clone());
        Ok(client)
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
