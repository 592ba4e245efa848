//! Azure connections, vaults and their ACLs, and synced Azure keys.

use std::collections::BTreeMap;

use keyfleet_api_types::azure::{AddVaultsRequest, AzureConnectionRequest, AzureKeyQuery, VaultQuery};
use keyfleet_api_types::common::UpdateAclsRequest;
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::validate::{check_name, check_url, parse_bool, require};
use crate::{Caller, Result, ServiceError, Services};

/// A vault as its view shows it: the record, its ACL, and its connection's name.
pub type VaultEntry = (VaultRecord, Vec<AclEntry>, String);

const AZURE_CLOUDS: &[&str] = &["AzureCloud", "AzureChinaCloud", "AzureUSGovernment", "AzureStack"];

/// Azure endpoints receive the client secret or bearer tokens: HTTPS only.
fn check_https(field: &str, url: &str) -> Result<()> {
    check_url(field, url)?;
    if url.starts_with("https://") { Ok(()) } else { Err(ServiceError::invalid(field, "must be an https:// URL")) }
}

/// Tenant and client ids: GUIDs, or for tenants also a domain (`contoso.onmicrosoft.com`).
fn check_directory_id(field: &str, v: &str) -> Result<()> {
    let ok = v.len() <= 128 && !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
    if ok { Ok(()) } else { Err(ServiceError::invalid(field, "must be a GUID or a domain name")) }
}

/// Key Vault names: 3-24 characters, letters, digits and '-', starting with a letter; case-insensitive.
fn check_vault_name(field: &str, name: &str) -> Result<String> {
    let ok = (3..=24).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(ServiceError::invalid(field, format!("{name:?} is not a Key Vault name (3-24 letters, digits and '-')")))
    }
}

fn optional_https(field: &str, v: Option<String>) -> Result<Option<String>> {
    match v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
        Some(u) => {
            check_https(field, &u)?;
            Ok(Some(u.trim_end_matches('/').to_string()))
        }
        None => Ok(None),
    }
}

fn check_endpoint_template(v: Option<String>) -> Result<Option<String>> {
    let v = optional_https("vault_endpoint_url", v)?;
    if let Some(t) = &v
        && !t.contains("{vault}")
    {
        return Err(ServiceError::invalid(
            "vault_endpoint_url",
            "must contain {vault}, which stands for each vault's name (e.g. https://127.0.0.1:4600/vaults/{vault})",
        ));
    }
    Ok(v)
}

impl Services {
    // --- connections -------------------------------------------------------------------------------

    /// `POST /v1/connectionmgmt/services/azure/connections`.
    pub async fn create_azure_connection(
        &self,
        caller: &Caller,
        req: AzureConnectionRequest,
    ) -> Result<AzureConnectionRecord> {
        caller.require_cckm_admin()?;
        let name = require("name", req.name)?;
        check_name("name", &name)?;
        let client_id = require("client_id", req.client_id)?;
        check_directory_id("client_id", &client_id)?;
        let tenant_id = require("tenant_id", req.tenant_id)?;
        check_directory_id("tenant_id", &tenant_id)?;
        let secret = require("client_secret", req.client_secret)?;
        let cloud_name = req.cloud_name.filter(|c| !c.is_empty()).unwrap_or_else(|| AZURE_CLOUD_NAME.into());
        if !AZURE_CLOUDS.contains(&cloud_name.as_str()) {
            return Err(ServiceError::invalid("cloud_name", format!("must be one of {}", AZURE_CLOUDS.join(", "))));
        }
        let id = ConnectionId::new();
        let at = now();
        let record = AzureConnectionRecord {
            id,
            name,
            description: req.description.unwrap_or_default(),
            client_id,
            tenant_id,
            secret_enc: self.master.encrypt(secret.as_bytes(), &id.secret_aad())?,
            cloud_name,
            active_directory_endpoint: optional_https("active_directory_endpoint", req.active_directory_endpoint)?,
            vault_resource_url: optional_https("vault_resource_url", req.vault_resource_url)?,
            key_vault_dns_suffix: req.key_vault_dns_suffix.filter(|s| !s.trim().is_empty()),
            vault_endpoint_url: check_endpoint_template(req.vault_endpoint_url)?,
            created_at: at,
            updated_at: at,
        };
        if self.store.aws_connection_by_name(&record.name).await?.is_some() {
            return Err(ServiceError::Conflict(format!("a connection named {} already exists", record.name)));
        }
        self.store.insert_azure_connection(&record).await?;
        tracing::info!(connection.id = %record.id, connection.name = %record.name, "Azure connection created");
        Ok(record)
    }

    /// By id or by name.
    pub async fn find_azure_connection(&self, id_or_name: &str) -> Result<Option<AzureConnectionRecord>> {
        if let Ok(id) = id_or_name.parse::<ConnectionId>()
            && let Some(c) = self.store.get_azure_connection(id).await?
        {
            return Ok(Some(c));
        }
        Ok(self.store.azure_connection_by_name(id_or_name).await?)
    }

    pub async fn get_azure_connection(&self, caller: &Caller, id: &str) -> Result<AzureConnectionRecord> {
        caller.require_cckm_admin()?;
        self.find_azure_connection(id).await?.ok_or_else(|| ServiceError::not_found("connection", id))
    }

    /// `PATCH .../azure/connections/{id}`: only the fields given change; an empty endpoint resets it.
    pub async fn update_azure_connection(
        &self,
        caller: &Caller,
        id: &str,
        req: AzureConnectionRequest,
    ) -> Result<AzureConnectionRecord> {
        let mut c = self.get_azure_connection(caller, id).await?;
        if let Some(name) = req.name {
            check_name("name", &name)?;
            c.name = name;
        }
        if let Some(d) = req.description {
            c.description = d;
        }
        if let Some(v) = req.client_id {
            let v = require("client_id", Some(v))?;
            check_directory_id("client_id", &v)?;
            c.client_id = v;
        }
        if let Some(v) = req.tenant_id {
            let v = require("tenant_id", Some(v))?;
            check_directory_id("tenant_id", &v)?;
            c.tenant_id = v;
        }
        if let Some(s) = req.client_secret {
            let s = require("client_secret", Some(s))?;
            c.secret_enc = self.master.encrypt(s.as_bytes(), &c.id.secret_aad())?;
        }
        if let Some(cloud) = req.cloud_name {
            if !AZURE_CLOUDS.contains(&cloud.as_str()) {
                return Err(ServiceError::invalid("cloud_name", format!("must be one of {}", AZURE_CLOUDS.join(", "))));
            }
            c.cloud_name = cloud;
        }
        if req.active_directory_endpoint.is_some() {
            c.active_directory_endpoint = optional_https("active_directory_endpoint", req.active_directory_endpoint)?;
        }
        if req.vault_resource_url.is_some() {
            c.vault_resource_url = optional_https("vault_resource_url", req.vault_resource_url)?;
        }
        if req.key_vault_dns_suffix.is_some() {
            c.key_vault_dns_suffix = req.key_vault_dns_suffix.filter(|s| !s.trim().is_empty());
        }
        if req.vault_endpoint_url.is_some() {
            c.vault_endpoint_url = check_endpoint_template(req.vault_endpoint_url)?;
        }
        c.updated_at = now();
        self.store.update_azure_connection(&c).await?;
        Ok(c)
    }

    pub async fn list_azure_connections(
        &self,
        caller: &Caller,
        page: &Page,
    ) -> Result<(Vec<AzureConnectionRecord>, u64)> {
        caller.require_cckm_admin()?;
        Ok(self.store.list_azure_connections(page).await?)
    }

    pub async fn delete_azure_connection(&self, caller: &Caller, id: &str) -> Result<()> {
        let c = self.get_azure_connection(caller, id).await?;
        self.store.delete_azure_connection(c.id).await?;
        tracing::info!(connection.id = %c.id, connection.name = %c.name, "Azure connection deleted");
        Ok(())
    }

    // --- vaults --------------------------------------------------------------------------------------

    /// `POST /v1/cckm/azure/add-vaults`: every vault is checked before any is added.
    pub async fn add_vaults(&self, caller: &Caller, req: AddVaultsRequest) -> Result<Vec<VaultEntry>> {
        caller.require_cckm_admin()?;
        let conn_ref = require("connection", req.connection)?;
        let conn = self
            .find_azure_connection(&conn_ref)
            .await?
            .ok_or_else(|| ServiceError::invalid("connection", format!("no Azure connection {conn_ref:?}")))?;
        let subscription_id = require("subscription_id", req.subscription_id)?;
        check_directory_id("subscription_id", &subscription_id)?;
        let entries = req.vaults.unwrap_or_default();
        if entries.is_empty() {
            return Err(ServiceError::invalid("vaults", "name at least one vault"));
        }
        let at = now();
        let mut records: Vec<VaultRecord> = Vec::with_capacity(entries.len());
        for (i, v) in entries.into_iter().enumerate() {
            let field = |f: &str| format!("vaults[{i}].{f}");
            let name = require(&field("name"), v.name)?;
            let name = check_vault_name(&field("name"), &name)?;
            if records.iter().any(|r| r.name == name) {
                return Err(ServiceError::invalid(&field("name"), format!("vault {name} is listed twice")));
            }
            if self.store.vault_by_name(&name).await?.is_some() {
                return Err(ServiceError::Conflict(format!("vault {name} was already added")));
            }
            let properties = v.properties.unwrap_or_else(|| serde_json::json!({}));
            if !properties.is_object() {
                return Err(ServiceError::invalid(&field("properties"), "must be an object"));
            }
            let vault_uri = match properties.get("vaultUri") {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(u)) => {
                    check_https(&field("properties.vaultUri"), u)?;
                    u.clone()
                }
                Some(_) => return Err(ServiceError::invalid(&field("properties.vaultUri"), "must be a string")),
            };
            let vault_type =
                v.vault_type.filter(|t| !t.is_empty()).unwrap_or_else(|| "Microsoft.KeyVault/vaults".into());
            if vault_type != "Microsoft.KeyVault/vaults" {
                return Err(ServiceError::invalid(
                    &field("type"),
                    format!("{vault_type:?} is not supported; only Microsoft.KeyVault/vaults"),
                ));
            }
            let azure_vault_id = v.azure_vault_id.filter(|s| !s.is_empty()).unwrap_or_else(|| {
                format!("/subscriptions/{subscription_id}/providers/Microsoft.KeyVault/vaults/{name}")
            });
            records.push(VaultRecord {
                id: VaultId::new(),
                name,
                azure_vault_id,
                connection_id: conn.id,
                subscription_id: subscription_id.clone(),
                location: v.location.unwrap_or_default(),
                vault_type,
                vault_uri,
                properties,
                tags: v.tags.unwrap_or_default(),
                synced_at: None,
                created_at: at,
                updated_at: at,
            });
        }
        for r in &records {
            self.store.insert_vault(r).await?;
            tracing::info!(vault.id = %r.id, vault.name = %r.name, connection.name = %conn.name, "vault added");
        }
        Ok(records.into_iter().map(|r| (r, Vec::new(), conn.name.clone())).collect())
    }

    /// By id or by (case-insensitive) name.
    pub async fn find_vault(&self, id_or_name: &str) -> Result<Option<VaultRecord>> {
        if let Ok(id) = id_or_name.parse::<VaultId>()
            && let Some(v) = self.store.get_vault(id).await?
        {
            return Ok(Some(v));
        }
        Ok(self.store.vault_by_name(&id_or_name.to_ascii_lowercase()).await?)
    }

    pub async fn get_vault(&self, caller: &Caller, id: &str) -> Result<VaultEntry> {
        caller.require_cckm_user()?;
        let v = self.find_vault(id).await?.ok_or_else(|| ServiceError::not_found("vault", id))?;
        self.vault_view(v).await
    }

    async fn vault_view(&self, v: VaultRecord) -> Result<VaultEntry> {
        let acls = self.store.acls(AclResource::AzureVault(v.id)).await?;
        let conn = self.store.get_azure_connection(v.connection_id).await?.map(|c| c.name).unwrap_or_default();
        Ok((v, acls, conn))
    }

    pub async fn list_vaults(&self, caller: &Caller, q: VaultQuery, page: &Page) -> Result<(Vec<VaultEntry>, u64)> {
        caller.require_cckm_user()?;
        let mut filter = VaultFilter {
            name: q.name.filter(|s| !s.is_empty()).map(|s| s.to_ascii_lowercase()),
            subscription_id: q.subscription_id.filter(|s| !s.is_empty()),
            ..Default::default()
        };
        if let Some(c) = q.connection.filter(|s| !s.is_empty()) {
            let conn = self
                .find_azure_connection(&c)
                .await?
                .ok_or_else(|| ServiceError::invalid("connection", format!("no Azure connection {c:?}")))?;
            filter.connection_id = Some(conn.id);
        }
        let (vaults, total) = self.store.list_vaults(&filter, page).await?;
        let mut out = Vec::with_capacity(vaults.len());
        for v in vaults {
            out.push(self.vault_view(v).await?);
        }
        Ok((out, total))
    }

    /// `POST /v1/cckm/azure/vaults/{id}/update-acls`.
    pub async fn update_vault_acls(&self, caller: &Caller, id: &str, req: UpdateAclsRequest) -> Result<VaultEntry> {
        caller.require_cckm_admin()?;
        let v = self.find_vault(id).await?.ok_or_else(|| ServiceError::not_found("vault", id))?;
        self.apply_acl_changes(AclResource::AzureVault(v.id), req).await?;
        self.vault_view(v).await
    }

    /// 403 unless `caller` holds `action` on the vault.
    pub(crate) async fn require_on_vault(&self, caller: &Caller, vault: &VaultRecord, action: &str) -> Result<()> {
        caller.require_cckm_user()?;
        if self.holds(caller, AclResource::AzureVault(vault.id), action).await? {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!("user {} lacks {action} on vault {}", caller.username, vault.name)))
        }
    }

    // --- keys ----------------------------------------------------------------------------------------

    pub async fn list_azure_keys(
        &self,
        caller: &Caller,
        q: AzureKeyQuery,
        page: &Page,
    ) -> Result<(Vec<(AzureKeyRecord, VaultRecord)>, u64)> {
        caller.require_cckm_user()?;
        let mut filter = AzureKeyFilter::default();
        if let Some(v) = q.key_vault.filter(|s| !s.is_empty()) {
            let vault = self
                .find_vault(&v)
                .await?
                .ok_or_else(|| ServiceError::invalid("key_vault", format!("no vault {v:?}")))?;
            filter.vault_id = Some(vault.id);
        }
        filter.name = q.key_name.filter(|s| !s.is_empty());
        filter.enabled = q.enabled.as_deref().map(|v| parse_bool("enabled", v)).transpose()?;
        filter.gone = q.gone.as_deref().map(|v| parse_bool("gone", v)).transpose()?;
        let (keys, total) = self.store.list_azure_keys(&filter, page).await?;
        let mut vaults: BTreeMap<VaultId, VaultRecord> = BTreeMap::new();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if !vaults.contains_key(&k.vault_id)
                && let Some(v) = self.store.get_vault(k.vault_id).await?
            {
                vaults.insert(v.id, v);
            }
            if let Some(v) = vaults.get(&k.vault_id) {
                out.push((k, v.clone()));
            }
        }
        Ok((out, total))
    }

    pub async fn get_azure_key(&self, caller: &Caller, id: &str) -> Result<(AzureKeyRecord, VaultRecord)> {
        caller.require_cckm_user()?;
        let kid: KeyId = id.parse().map_err(|_| ServiceError::not_found("Azure key", id))?;
        let key = self.store.get_azure_key(kid).await?.ok_or_else(|| ServiceError::not_found("Azure key", id))?;
        let vault = self
            .store
            .get_vault(key.vault_id)
            .await?
            .ok_or_else(|| ServiceError::Internal(format!("vault {} of key {id} is missing", key.vault_id)))?;
        Ok((key, vault))
    }
}
