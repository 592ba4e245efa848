use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::inventory::NAMED_COLUMNS;
use super::*;
use crate::{AzureStore, Result};

/// Every column of `azure_key_backups` but the blob: metadata reads never load it.
const BACKUP_COLUMNS: &str = "id, key_id, vault_id, key_name, key_version, name, description, size_bytes, \
                              created_by, created_at, updated_at";

fn connection(row: &SqliteRow) -> Result<AzureConnectionRecord> {
    Ok(AzureConnectionRecord {
        id: parse(row, "id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        client_id: row.try_get("client_id")?,
        tenant_id: row.try_get("tenant_id")?,
        secret_enc: row.try_get("secret_enc")?,
        cloud_name: row.try_get("cloud_name")?,
        active_directory_endpoint: row.try_get("active_directory_endpoint")?,
        vault_resource_url: row.try_get("vault_resource_url")?,
        key_vault_dns_suffix: row.try_get("key_vault_dns_suffix")?,
        vault_endpoint_url: row.try_get("vault_endpoint_url")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn vault(row: &SqliteRow) -> Result<VaultRecord> {
    Ok(VaultRecord {
        id: parse(row, "id")?,
        name: row.try_get("name")?,
        azure_vault_id: row.try_get("azure_vault_id")?,
        connection_id: parse(row, "connection_id")?,
        subscription_id: row.try_get("subscription_id")?,
        location: row.try_get("location")?,
        vault_type: row.try_get("vault_type")?,
        vault_uri: row.try_get("vault_uri")?,
        properties: json(row, "properties")?,
        tags: json(row, "tags")?,
        synced_at: get_opt_ts(row, "synced_at")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn key(row: &SqliteRow) -> Result<AzureKeyRecord> {
    Ok(AzureKeyRecord {
        id: parse(row, "id")?,
        vault_id: parse(row, "vault_id")?,
        material: json(row, "material")?,
        gone: row.try_get::<i64, _>("gone")? != 0,
        synced_at: get_ts(row, "synced_at")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn backup(row: &SqliteRow) -> Result<KeyBackupRecord> {
    Ok(KeyBackupRecord {
        id: parse(row, "id")?,
        key_id: parse(row, "key_id")?,
        vault_id: parse(row, "vault_id")?,
        key_name: row.try_get("key_name")?,
        key_version: row.try_get("key_version")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        size_bytes: row.try_get("size_bytes")?,
        created_by: parse(row, "created_by")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// Key Vault compares key names case-insensitively; keys are matched by this form (`name_lc`).
fn name_lc(name: &str) -> String {
    name.to_lowercase()
}

/// A JSON array of ids, for `IN (SELECT value FROM json_each(?))`: one bound variable however many ids
/// (SQLite limits a statement's variables).
fn id_list<T: ToString>(ids: &[T]) -> String {
    to_json(&ids.iter().map(|id| id.to_string()).collect::<Vec<_>>())
}

fn push_vault_filter(qb: &mut QueryBuilder<Sqlite>, f: &VaultFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(v) = &f.name {
        qb.push(" AND name = ").push_bind(v.clone());
    }
    if let Some(v) = f.connection_id {
        qb.push(" AND connection_id = ").push_bind(v.to_string());
    }
    if let Some(v) = &f.subscription_id {
        qb.push(" AND subscription_id = ").push_bind(v.clone());
    }
}

fn push_key_filter(qb: &mut QueryBuilder<Sqlite>, f: &AzureKeyFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(v) = f.vault_id {
        qb.push(" AND vault_id = ").push_bind(v.to_string());
    }
    if let Some(v) = &f.name {
        qb.push(" AND name_lc = ").push_bind(name_lc(v));
    }
    if let Some(v) = f.enabled {
        qb.push(" AND enabled = ").push_bind(v as i64);
    }
    if let Some(v) = f.gone {
        qb.push(" AND gone = ").push_bind(v as i64);
    }
}

fn push_backup_filter(qb: &mut QueryBuilder<Sqlite>, f: &KeyBackupFilter) {
    qb.push(" WHERE 1 = 1");
    if let Some(v) = f.key_id {
        qb.push(" AND key_id = ").push_bind(v.to_string());
    }
    if let Some(v) = f.vault_id {
        qb.push(" AND vault_id = ").push_bind(v.to_string());
    }
}

/// `WHERE` for a backup selector over `azure_key_backups b`: every condition given must hold.
pub(super) fn push_backup_selector(qb: &mut QueryBuilder<Sqlite>, s: &BackupSelector) {
    qb.push(" WHERE 1 = 1");
    if !s.backups.is_empty() {
        qb.push(" AND b.id IN (SELECT value FROM json_each(").push_bind(id_list(&s.backups)).push("))");
    }
    if !s.keys.is_empty() {
        qb.push(" AND b.key_id IN (SELECT value FROM json_each(").push_bind(id_list(&s.keys)).push("))");
    }
    if let Some(v) = s.vault {
        qb.push(" AND b.vault_id = ").push_bind(v.to_string());
    }
    if let Some(t) = s.created_after {
        qb.push(" AND b.created_at >= ").push_bind(ts(t));
    }
    if let Some(t) = s.created_before {
        qb.push(" AND b.created_at < ").push_bind(ts(t));
    }
}

#[async_trait]
impl AzureStore for SqliteStore {
    async fn insert_azure_connection(&self, c: &AzureConnectionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO azure_connections (id, name, description, client_id, tenant_id, secret_enc, cloud_name, \
             active_directory_endpoint, vault_resource_url, key_vault_dns_suffix, vault_endpoint_url, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.client_id)
        .bind(&c.tenant_id)
        .bind(&c.secret_enc)
        .bind(&c.cloud_name)
        .bind(&c.active_directory_endpoint)
        .bind(&c.vault_resource_url)
        .bind(&c.key_vault_dns_suffix)
        .bind(&c.vault_endpoint_url)
        .bind(ts(c.created_at))
        .bind(ts(c.updated_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, &format!("connection {:?}", c.name)))?;
        Ok(())
    }

    async fn update_azure_connection(&self, c: &AzureConnectionRecord) -> Result<()> {
        sqlx::query(
            "UPDATE azure_connections SET name = ?, description = ?, client_id = ?, tenant_id = ?, secret_enc = ?, \
             cloud_name = ?, active_directory_endpoint = ?, vault_resource_url = ?, key_vault_dns_suffix = ?, \
             vault_endpoint_url = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.client_id)
        .bind(&c.tenant_id)
        .bind(&c.secret_enc)
        .bind(&c.cloud_name)
        .bind(&c.active_directory_endpoint)
        .bind(&c.vault_resource_url)
        .bind(&c.key_vault_dns_suffix)
        .bind(&c.vault_endpoint_url)
        .bind(ts(c.updated_at))
        .bind(c.id.to_string())
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, &format!("connection {:?}", c.name)))?;
        Ok(())
    }

    async fn get_azure_connection(&self, id: ConnectionId) -> Result<Option<AzureConnectionRecord>> {
        sqlx::query("SELECT * FROM azure_connections WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(connection)
            .transpose()
    }

    async fn azure_connection_by_name(&self, name: &str) -> Result<Option<AzureConnectionRecord>> {
        sqlx::query("SELECT * FROM azure_connections WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(connection)
            .transpose()
    }

    async fn list_azure_connections(&self, page: &Page) -> Result<(Vec<AzureConnectionRecord>, u64)> {
        self.list_named("azure_connections", page, connection).await
    }

    async fn delete_azure_connection(&self, id: ConnectionId) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        // Name the vault in the way: the foreign key alone would only say "in use".
        let in_use: Option<String> =
            sqlx::query_scalar("SELECT name FROM azure_vaults WHERE connection_id = ? ORDER BY name LIMIT 1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(vault) = in_use {
            return Err(StoreError::Conflict(format!("connection is still used by vault {vault:?}")));
        }
        let done = sqlx::query("DELETE FROM azure_connections WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "connection"))?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_vault(&self, v: &VaultRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO azure_vaults (id, name, azure_vault_id, connection_id, subscription_id, location, \
             vault_type, vault_uri, properties, tags, synced_at, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(v.id.to_string())
        .bind(&v.name)
        .bind(&v.azure_vault_id)
        .bind(v.connection_id.to_string())
        .bind(&v.subscription_id)
        .bind(&v.location)
        .bind(&v.vault_type)
        .bind(&v.vault_uri)
        .bind(to_json(&v.properties))
        .bind(to_json(&v.tags))
        .bind(v.synced_at.map(ts))
        .bind(ts(v.created_at))
        .bind(ts(v.updated_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, &format!("vault {:?}", v.name)))?;
        Ok(())
    }

    async fn update_vault(&self, v: &VaultRecord) -> Result<()> {
        sqlx::query(
            "UPDATE azure_vaults SET name = ?, azure_vault_id = ?, connection_id = ?, subscription_id = ?, \
             location = ?, vault_type = ?, vault_uri = ?, properties = ?, tags = ?, synced_at = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(&v.name)
        .bind(&v.azure_vault_id)
        .bind(v.connection_id.to_string())
        .bind(&v.subscription_id)
        .bind(&v.location)
        .bind(&v.vault_type)
        .bind(&v.vault_uri)
        .bind(to_json(&v.properties))
        .bind(to_json(&v.tags))
        .bind(v.synced_at.map(ts))
        .bind(ts(v.updated_at))
        .bind(v.id.to_string())
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, &format!("vault {:?}", v.name)))?;
        Ok(())
    }

    async fn get_vault(&self, id: VaultId) -> Result<Option<VaultRecord>> {
        sqlx::query("SELECT * FROM azure_vaults WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(vault)
            .transpose()
    }

    async fn vault_by_name(&self, name: &str) -> Result<Option<VaultRecord>> {
        sqlx::query("SELECT * FROM azure_vaults WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(vault)
            .transpose()
    }

    async fn list_vaults(&self, filter: &VaultFilter, page: &Page) -> Result<(Vec<VaultRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM azure_vaults");
        push_vault_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;

        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM azure_vaults");
        push_vault_filter(&mut qb, filter);
        qb.push(order_by(&page.sort, NAMED_COLUMNS, "created_at ASC"));
        qb.push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.reader).await?;
        Ok((rows.iter().map(vault).collect::<Result<_>>()?, total as u64))
    }

    async fn sync_azure_vault(
        &self,
        vault_id: VaultId,
        keys: &[AzureKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        let mut tx = self.writer.begin().await?;
        let (mut added, mut updated) = (0, 0);
        // Key by key, as the AWS sync does: a name listed twice counts as added, then updated.
        for m in keys {
            let done = sqlx::query(
                "INSERT INTO azure_keys (id, vault_id, name, name_lc, enabled, material, gone, synced_at, \
                 created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
                 ON CONFLICT (vault_id, name_lc) DO NOTHING",
            )
            .bind(KeyId::new().to_string())
            .bind(vault_id.to_string())
            .bind(&m.name)
            .bind(name_lc(&m.name))
            .bind(m.enabled as i64)
            .bind(to_json(m))
            .bind(ts(at))
            .bind(ts(at))
            .bind(ts(at))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, &format!("key {:?} of vault {vault_id}", m.name)))?;
            if done.rows_affected() == 1 {
                added += 1;
                continue;
            }
            sqlx::query(
                "UPDATE azure_keys SET name = ?, enabled = ?, material = ?, gone = 0, synced_at = ?, updated_at = ? \
                 WHERE vault_id = ? AND name_lc = ?",
            )
            .bind(&m.name)
            .bind(m.enabled as i64)
            .bind(to_json(m))
            .bind(ts(at))
            .bind(ts(at))
            .bind(vault_id.to_string())
            .bind(name_lc(&m.name))
            .execute(&mut *tx)
            .await?;
            updated += 1;
        }
        // Every key of the vault that the listing did not name has left Key Vault.
        let names: Vec<String> = keys.iter().map(|m| name_lc(&m.name)).collect();
        let gone = sqlx::query(
            "UPDATE azure_keys SET gone = 1, updated_at = ? WHERE vault_id = ? AND gone = 0 \
             AND name_lc NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(ts(at))
        .bind(vault_id.to_string())
        .bind(to_json(&names))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE azure_vaults SET synced_at = ? WHERE id = ?")
            .bind(ts(at))
            .bind(vault_id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((added, updated, gone))
    }

    async fn upsert_azure_key(
        &self,
        vault_id: VaultId,
        m: &AzureKeyMaterial,
        at: DateTime<Utc>,
    ) -> Result<AzureKeyRecord> {
        let row = sqlx::query(
            "INSERT INTO azure_keys (id, vault_id, name, name_lc, enabled, material, gone, synced_at, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
             ON CONFLICT (vault_id, name_lc) DO UPDATE SET name = excluded.name, enabled = excluded.enabled, \
             material = excluded.material, gone = 0, synced_at = excluded.synced_at, \
             updated_at = excluded.updated_at \
             RETURNING *",
        )
        .bind(KeyId::new().to_string())
        .bind(vault_id.to_string())
        .bind(&m.name)
        .bind(name_lc(&m.name))
        .bind(m.enabled as i64)
        .bind(to_json(m))
        .bind(ts(at))
        .bind(ts(at))
        .bind(ts(at))
        .fetch_one(&self.writer)
        .await
        .map_err(|e| conflict(e, &format!("key {:?} of vault {vault_id}", m.name)))?;
        key(&row)
    }

    async fn get_azure_key(&self, id: KeyId) -> Result<Option<AzureKeyRecord>> {
        sqlx::query("SELECT * FROM azure_keys WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(key)
            .transpose()
    }

    async fn azure_keys_by_ids(&self, ids: &[KeyId]) -> Result<Vec<AzureKeyRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query("SELECT * FROM azure_keys WHERE id IN (SELECT value FROM json_each(?))")
            .bind(id_list(ids))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(key)
            .collect()
    }

    async fn list_azure_keys(&self, filter: &AzureKeyFilter, page: &Page) -> Result<(Vec<AzureKeyRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM azure_keys");
        push_key_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;

        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM azure_keys");
        push_key_filter(&mut qb, filter);
        qb.push(order_by(
            &page.sort,
            &[
                ("createdAt", "created_at"),
                ("updatedAt", "updated_at"),
                ("name", "name"),
                ("synced_at", "synced_at"),
                ("id", "id"),
            ],
            "created_at ASC",
        ));
        qb.push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.reader).await?;
        Ok((rows.iter().map(key).collect::<Result<_>>()?, total as u64))
    }

    async fn insert_key_backup(&self, b: &KeyBackupRecord, blob_enc: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO azure_key_backups (id, key_id, vault_id, key_name, key_version, name, description, \
             size_bytes, blob_enc, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .bind(ts(b.created_at))
        .bind(ts(b.updated_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, &format!("backup {}", b.id)))?;
        Ok(())
    }

    async fn get_key_backup(&self, id: BackupId) -> Result<Option<KeyBackupRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {BACKUP_COLUMNS} FROM azure_key_backups WHERE id = ?")))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(backup)
            .transpose()
    }

    async fn key_backups_by_ids(&self, ids: &[BackupId]) -> Result<Vec<KeyBackupRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql =
            format!("SELECT {BACKUP_COLUMNS} FROM azure_key_backups WHERE id IN (SELECT value FROM json_each(?))");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_list(ids))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(backup)
            .collect()
    }

    async fn key_backup_blob(&self, id: BackupId) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT blob_enc FROM azure_key_backups WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn list_key_backups(&self, filter: &KeyBackupFilter, page: &Page) -> Result<(Vec<KeyBackupRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM azure_key_backups");
        push_backup_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;

        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {BACKUP_COLUMNS} FROM azure_key_backups"));
        push_backup_filter(&mut qb, filter);
        qb.push(order_by(&page.sort, NAMED_COLUMNS, "created_at ASC"));
        qb.push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.reader).await?;
        Ok((rows.iter().map(backup).collect::<Result<_>>()?, total as u64))
    }

    async fn update_key_backup(&self, b: &KeyBackupRecord) -> Result<()> {
        sqlx::query("UPDATE azure_key_backups SET name = ?, description = ?, updated_at = ? WHERE id = ?")
            .bind(&b.name)
            .bind(&b.description)
            .bind(ts(b.updated_at))
            .bind(b.id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_key_backup(&self, id: BackupId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM azure_key_backups WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
