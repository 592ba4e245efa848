use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;

use super::audit::{append, audited};
use super::inventory::{KEYS_PER_UPSERT, by_ids, last_listed, list_named, lock_named, named_event};
use super::{
    Backend, Columns, Db, Dialect, Fields, JsonParam, Query, conflict, everything, list_page, order_by, row_by, save,
};
use crate::audit::event;
use crate::{AzureStore, AzureWorkStore, Result, StoreError};

/// Every column of `azure_key_backups` but the blob: metadata reads never load it.
const BACKUP_COLUMNS: &str = "id, key_id, vault_id, key_name, key_version, name, description, size_bytes, \
                              created_by, created_at, updated_at";

fn connection<D: Db>(r: Fields<'_, D>) -> Result<AzureConnectionRecord> {
    Ok(AzureConnectionRecord {
        id: r.parse("id")?,
        name: r.text("name")?,
        description: r.text("description")?,
        client_id: r.text("client_id")?,
        tenant_id: r.text("tenant_id")?,
        secret_enc: r.bytes("secret_enc")?,
        cloud_name: r.text("cloud_name")?,
        active_directory_endpoint: r.opt_text("active_directory_endpoint")?,
        vault_resource_url: r.opt_text("vault_resource_url")?,
        key_vault_dns_suffix: r.opt_text("key_vault_dns_suffix")?,
        vault_endpoint_url: r.opt_text("vault_endpoint_url")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn vault<D: Db>(r: Fields<'_, D>) -> Result<VaultRecord> {
    Ok(VaultRecord {
        id: r.parse("id")?,
        name: r.text("name")?,
        azure_vault_id: r.text("azure_vault_id")?,
        connection_id: r.parse("connection_id")?,
        subscription_id: r.text("subscription_id")?,
        location: r.text("location")?,
        vault_type: r.text("vault_type")?,
        vault_uri: r.text("vault_uri")?,
        properties: r.json("properties")?,
        tags: r.json("tags")?,
        synced_at: r.opt_ts("synced_at")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn key<D: Db>(r: Fields<'_, D>) -> Result<AzureKeyRecord> {
    Ok(AzureKeyRecord {
        id: r.parse("id")?,
        vault_id: r.parse("vault_id")?,
        material: r.json("material")?,
        gone: r.flag("gone")?,
        synced_at: r.ts("synced_at")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn backup<D: Db>(r: Fields<'_, D>) -> Result<KeyBackupRecord> {
    Ok(KeyBackupRecord {
        id: r.parse("id")?,
        key_id: r.parse("key_id")?,
        vault_id: r.parse("vault_id")?,
        key_name: r.text("key_name")?,
        key_version: r.text("key_version")?,
        name: r.text("name")?,
        description: r.text("description")?,
        size_bytes: r.int("size_bytes")?,
        created_by: r.parse("created_by")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Every column of an Azure connection but `id` and `created_at`.
fn connection_columns<D: Db>(c: &AzureConnectionRecord) -> Columns<D> {
    Columns::new()
        .set("name", &c.name)
        .set("description", &c.description)
        .set("client_id", &c.client_id)
        .set("tenant_id", &c.tenant_id)
        .set("secret_enc", &c.secret_enc)
        .set("cloud_name", &c.cloud_name)
        .set("active_directory_endpoint", &c.active_directory_endpoint)
        .set("vault_resource_url", &c.vault_resource_url)
        .set("key_vault_dns_suffix", &c.key_vault_dns_suffix)
        .set("vault_endpoint_url", &c.vault_endpoint_url)
        .set("updated_at", c.updated_at)
}

/// Every column of a vault but `id` and `created_at`.
fn vault_columns<D: Db>(v: &VaultRecord) -> Columns<D> {
    Columns::new()
        .set("name", &v.name)
        .set("azure_vault_id", &v.azure_vault_id)
        .set("connection_id", v.connection_id.to_string())
        .set("subscription_id", &v.subscription_id)
        .set("location", &v.location)
        .set("vault_type", &v.vault_type)
        .set("vault_uri", &v.vault_uri)
        .set("properties", JsonParam(&v.properties))
        .set("tags", JsonParam(&v.tags))
        .set("synced_at", v.synced_at)
        .set("updated_at", v.updated_at)
}

/// Key Vault compares key names case-insensitively; keys are matched by this form (`name_lc`).
fn name_lc(name: &str) -> String {
    name.to_lowercase()
}

fn id_list<T: ToString>(ids: &[T]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn push_vault_filter<D: Db>(q: &mut Query<D>, f: &VaultFilter) {
    q.push(" WHERE true");
    if let Some(v) = &f.name {
        q.push(" AND name = ").push_bind(v);
    }
    if let Some(v) = f.connection_id {
        q.push(" AND connection_id = ").push_bind(v.to_string());
    }
    if let Some(v) = &f.subscription_id {
        q.push(" AND subscription_id = ").push_bind(v);
    }
}

fn push_key_filter<D: Db>(q: &mut Query<D>, f: &AzureKeyFilter) {
    q.push(" WHERE true");
    if let Some(v) = f.vault_id {
        q.push(" AND vault_id = ").push_bind(v.to_string());
    }
    if let Some(v) = &f.name {
        q.push(" AND name_lc = ").push_bind(name_lc(v));
    }
    if let Some(v) = f.enabled {
        q.push(" AND enabled = ").push_bind(v);
    }
    if let Some(v) = f.gone {
        q.push(" AND gone = ").push_bind(v);
    }
}

fn push_backup_filter<D: Db>(q: &mut Query<D>, f: &KeyBackupFilter) {
    q.push(" WHERE true");
    if let Some(v) = f.key_id {
        q.push(" AND key_id = ").push_bind(v.to_string());
    }
    if let Some(v) = f.vault_id {
        q.push(" AND vault_id = ").push_bind(v.to_string());
    }
}

/// `WHERE` for a backup selector over `azure_key_backups b`: every condition given must hold.
pub(super) fn push_backup_selector<D: Db>(q: &mut Query<D>, s: &BackupSelector) {
    q.push(" WHERE true");
    if !s.backups.is_empty() {
        q.push(" AND ");
        D::push_in_list(q, "b.id", id_list(&s.backups));
    }
    if !s.keys.is_empty() {
        q.push(" AND ");
        D::push_in_list(q, "b.key_id", id_list(&s.keys));
    }
    if let Some(v) = s.vault {
        q.push(" AND b.vault_id = ").push_bind(v.to_string());
    }
    if let Some(t) = s.created_after {
        q.push(" AND b.created_at >= ").push_bind(t);
    }
    if let Some(t) = s.created_before {
        q.push(" AND b.created_at < ").push_bind(t);
    }
}

#[async_trait]
impl<B: Backend> AzureStore for B {
    async fn insert_azure_connection(&self, c: &AzureConnectionRecord) -> Result<()> {
        let query = connection_columns(c)
            .set("id", c.id.to_string())
            .set("created_at", c.created_at)
            .insert("azure_connections");
        let record = named_event("connection.create", "connection", c.id, &c.name);
        save(self.writer(), query, format!("connection {:?}", c.name), record).await
    }

    async fn update_azure_connection(&self, c: &AzureConnectionRecord) -> Result<()> {
        let query = connection_columns(c).update("azure_connections", c.id.to_string());
        let record = named_event("connection.update", "connection", c.id, &c.name);
        save(self.writer(), query, format!("connection {:?}", c.name), record).await
    }

    async fn azure_connection_by_name(&self, name: &str) -> Result<Option<AzureConnectionRecord>> {
        row_by(self.reader(), "azure_connections", "name", name, connection).await
    }

    async fn list_azure_connections(&self, page: &Page) -> Result<(Vec<AzureConnectionRecord>, u64)> {
        list_named(self.reader(), "*", "azure_connections", |_| {}, page, connection).await
    }

    async fn delete_azure_connection(&self, id: ConnectionId) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        // Name the vault in the way: the foreign key alone would only say "in use".
        let in_use = Query::new("SELECT name FROM azure_vaults WHERE connection_id = $1 ORDER BY name LIMIT 1")
            .bind(id.to_string())
            .optional(&mut tx, |r| r.text("name"))
            .await?;
        if let Some(vault) = in_use {
            return Err(StoreError::Conflict(format!("connection is still used by vault {vault:?}")));
        }
        let deleted = Query::<B::Db>::new("DELETE FROM azure_connections WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut tx)
            .await
            .map_err(|e| conflict(e, "connection"))?;
        if deleted > 0 {
            append(&mut tx, &event("connection.delete", format!("connection:{id}"))).await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn insert_vault(&self, v: &VaultRecord) -> Result<()> {
        let query = vault_columns(v).set("id", v.id.to_string()).set("created_at", v.created_at).insert("azure_vaults");
        save(self.writer(), query, format!("vault {:?}", v.name), named_event("vault.create", "vault", v.id, &v.name))
            .await
    }

    async fn update_vault(&self, v: &VaultRecord) -> Result<()> {
        let query = vault_columns(v).update("azure_vaults", v.id.to_string());
        save(self.writer(), query, format!("vault {:?}", v.name), named_event("vault.update", "vault", v.id, &v.name))
            .await
    }

    async fn vault_by_name(&self, name: &str) -> Result<Option<VaultRecord>> {
        row_by(self.reader(), "azure_vaults", "name", name, vault).await
    }

    async fn list_vaults(&self, filter: &VaultFilter, page: &Page) -> Result<(Vec<VaultRecord>, u64)> {
        list_named(self.reader(), "*", "azure_vaults", |q| push_vault_filter(q, filter), page, vault).await
    }

    async fn upsert_azure_key(
        &self,
        vault_id: VaultId,
        m: &AzureKeyMaterial,
        at: DateTime<Utc>,
    ) -> Result<AzureKeyRecord> {
        let mut tx = self.writer().begin().await?;
        let row = Query::<B::Db>::new(
            "INSERT INTO azure_keys (id, vault_id, name, name_lc, enabled, material, gone, synced_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, false, $7, $7, $7) \
             ON CONFLICT (vault_id, name_lc) DO UPDATE SET name = excluded.name, enabled = excluded.enabled, \
             material = excluded.material, gone = false, synced_at = excluded.synced_at, \
             updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(KeyId::new().to_string())
        .bind(vault_id.to_string())
        .bind(&m.name)
        .bind(name_lc(&m.name))
        .bind(m.enabled)
        .bind(JsonParam(m))
        .bind(at)
        .fetch_one(&mut tx)
        .await
        .map_err(|e| conflict(e, &format!("key {:?} of vault {vault_id}", m.name)))?;
        let k = key(Fields::<B::Db>(&row))?;
        // The key a restore (a state-changing Key Vault call) put into the vault.
        let record = event("azure.RestoreKey", format!("azure-key:{}", k.id))
            .details(serde_json::json!({"vault_id": vault_id.to_string(), "key_name": m.name}));
        append(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(k)
    }

    async fn get_azure_key(&self, id: KeyId) -> Result<Option<AzureKeyRecord>> {
        row_by(self.reader(), "azure_keys", "id", id.to_string(), key).await
    }

    async fn azure_keys_by_ids(&self, ids: &[KeyId]) -> Result<Vec<AzureKeyRecord>> {
        by_ids(self.reader(), "SELECT * FROM azure_keys", ids, key).await
    }

    async fn list_azure_keys(&self, filter: &AzureKeyFilter, page: &Page) -> Result<(Vec<AzureKeyRecord>, u64)> {
        let columns = &[
            ("createdAt", "created_at"),
            ("updatedAt", "updated_at"),
            ("name", "name"),
            ("synced_at", "synced_at"),
            ("id", "id"),
        ];
        let order = order_by(&page.sort, columns, "created_at ASC", B::Db::ROW_NO);
        let (select, count) = ("SELECT * FROM azure_keys", "SELECT count(*) AS n FROM azure_keys");
        list_page(self.reader(), select, count, |q| push_key_filter(q, filter), order, page, key).await
    }

    async fn key_backups_by_ids(&self, ids: &[BackupId]) -> Result<Vec<KeyBackupRecord>> {
        by_ids(self.reader(), &format!("SELECT {BACKUP_COLUMNS} FROM azure_key_backups"), ids, backup).await
    }

    async fn key_backup_blob(&self, id: BackupId) -> Result<Option<Vec<u8>>> {
        Query::new("SELECT blob_enc FROM azure_key_backups WHERE id = $1")
            .bind(id.to_string())
            .optional(self.reader(), |r| r.bytes("blob_enc"))
            .await
    }

    async fn list_key_backups(&self, filter: &KeyBackupFilter, page: &Page) -> Result<(Vec<KeyBackupRecord>, u64)> {
        let filter = |q: &mut Query<B::Db>| push_backup_filter(q, filter);
        list_named(self.reader(), BACKUP_COLUMNS, "azure_key_backups", filter, page, backup).await
    }

    async fn update_key_backup(&self, b: &KeyBackupRecord) -> Result<()> {
        let query = Query::<B::Db>::new(
            "UPDATE azure_key_backups SET name = $1, description = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&b.name)
        .bind(&b.description)
        .bind(b.updated_at)
        .bind(b.id.to_string());
        audited(self.writer(), query, named_event("backup.update", "backup", b.id, &b.name), true).await?;
        Ok(())
    }

    async fn delete_key_backup(&self, id: BackupId) -> Result<bool> {
        let query = Query::<B::Db>::new("DELETE FROM azure_key_backups WHERE id = $1").bind(id.to_string());
        Ok(audited(self.writer(), query, event("backup.delete", format!("backup:{id}")), true).await? > 0)
    }
}

#[async_trait]
impl<B: Backend> AzureWorkStore for B {
    async fn all_vaults(&self) -> Result<Vec<VaultRecord>> {
        Ok(self.list_vaults(&VaultFilter::default(), &everything()).await?.0)
    }

    async fn live_azure_keys(&self, vault: VaultId, skip: u64, limit: u64) -> Result<Vec<AzureKeyRecord>> {
        let filter = AzureKeyFilter { vault_id: Some(vault), gone: Some(false), ..Default::default() };
        Ok(self.list_azure_keys(&filter, &Page { skip, limit, sort: vec![] }).await?.0)
    }

    async fn get_key_backups(&self, ids: &[BackupId]) -> Result<Vec<KeyBackupRecord>> {
        self.key_backups_by_ids(ids).await
    }

    async fn get_azure_connection(&self, id: ConnectionId) -> Result<Option<AzureConnectionRecord>> {
        row_by(self.reader(), "azure_connections", "id", id.to_string(), connection).await
    }
    async fn get_vault(&self, id: VaultId) -> Result<Option<VaultRecord>> {
        row_by(self.reader(), "azure_vaults", "id", id.to_string(), vault).await
    }
    async fn get_key_backup(&self, id: BackupId) -> Result<Option<KeyBackupRecord>> {
        Query::new(format!("SELECT {BACKUP_COLUMNS} FROM azure_key_backups WHERE id = $1"))
            .bind(id.to_string())
            .optional(self.reader(), backup)
            .await
    }
    async fn sync_azure_vault_part(
        &self,
        vault_id: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let mut tx = self.writer().begin().await?;
        let counts = upsert_azure_vault(&mut tx, vault_id, keys, at).await?;
        tx.commit().await?;
        Ok(counts)
    }
    async fn sync_azure_vault(
        &self,
        vault_id: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        let mut tx = self.writer().begin().await?;
        let (added, updated) = upsert_azure_vault(&mut tx, vault_id, keys, at).await?;
        // Every key of the vault that the listing did not name has left Key Vault (this sync wrote `at` on
        // every key it named, in its parts too).
        let gone = Query::<B::Db>::new(
            "UPDATE azure_keys SET gone = true, updated_at = $1 WHERE vault_id = $2 AND NOT gone AND synced_at < $1",
        )
        .bind(at)
        .bind(vault_id.to_string())
        .execute(&mut tx)
        .await?;
        Query::<B::Db>::new("UPDATE azure_vaults SET synced_at = $1 WHERE id = $2")
            .bind(at)
            .bind(vault_id.to_string())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok((added, updated, gone))
    }
    async fn insert_key_backup(&self, b: &KeyBackupRecord, blob_enc: &[u8]) -> Result<()> {
        let query = Query::<B::Db>::new(
            "INSERT INTO azure_key_backups (id, key_id, vault_id, key_name, key_version, name, description, \
             size_bytes, blob_enc, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(b.id.to_string())
        .bind(b.key_id.to_string())
        .bind(b.vault_id.to_string())
        .bind(&b.key_name)
        .bind(&b.key_version)
        .bind(&b.name)
        .bind(&b.description)
        .bind(b.size_bytes)
        .bind(blob_enc)
        .bind(b.created_by.to_string())
        .bind(b.created_at)
        .bind(b.updated_at);
        let record = named_event("backup.create", "backup", b.id, &b.name).details(
            serde_json::json!({"name": b.name, "key_id": b.key_id.to_string(), "vault_id": b.vault_id.to_string()}),
        );
        audited(self.writer(), query, record, false).await.map_err(|e| conflict(e, &format!("backup {}", b.id)))?;
        Ok(())
    }
}

/// Writes listed keys of a vault at sync time `at`, many per statement, as the AWS sync writes a region's
/// (`upsert_aws_region`): new keys (by name, case-insensitive) added, known keys updated and no longer gone.
/// Returns (added, updated).
async fn upsert_azure_vault<D: Db>(
    tx: &mut sqlx::Transaction<'_, D>,
    vault_id: VaultId,
    keys: &[AzureKeyMaterial],
    at: DateTime<Utc>,
) -> Result<(u64, u64)> {
    // One sync of a vault at a time (see `upsert_aws_region`).
    lock_named(tx, format!("keyfleet.sync_azure_vault:{vault_id}")).await?;
    let created = || {
        Query::<D>::new("SELECT count(*) AS n FROM azure_keys WHERE vault_id = $1 AND created_at = $2")
            .bind(vault_id.to_string())
            .bind(at)
    };
    let before = created().count(&mut *tx).await?;
    // A key a later sync of the vault wrote already keeps what that sync read (see `upsert_aws_region`).
    let (listed, repeats) = last_listed(keys, |m| name_lc(&m.name));
    for chunk in listed.chunks(KEYS_PER_UPSERT) {
        let mut q = Query::<D>::new(
            "INSERT INTO azure_keys (id, vault_id, name, name_lc, enabled, material, gone, synced_at, \
             created_at, updated_at) VALUES ",
        )
        .bind(at)
        .bind(vault_id.to_string());
        for (k, m) in chunk.iter().enumerate() {
            q.push(if k == 0 { "(" } else { ", (" });
            q.push_bind(KeyId::new().to_string()).push(", $2, ");
            q.push_bind(&m.name).push(", ");
            q.push_bind(name_lc(&m.name)).push(", ");
            q.push_bind(m.enabled).push(", ");
            q.push_bind(JsonParam(*m)).push(", false, $1, $1, $1)");
        }
        q.push(
            " ON CONFLICT (vault_id, name_lc) DO UPDATE SET name = excluded.name, enabled = excluded.enabled, \
             material = excluded.material, gone = false, synced_at = excluded.synced_at, \
             updated_at = excluded.updated_at WHERE azure_keys.synced_at <= excluded.synced_at",
        );
        q.execute(&mut *tx).await.map_err(|e| conflict(e, &format!("a key of vault {vault_id}")))?;
    }
    let added = created().count(&mut *tx).await? - before;
    Ok((added, listed.len() as u64 - added + repeats))
}
