use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::*;
use crate::{InventoryStore, Result};

/// Ids per `= ANY($1)` lookup, so a million-key list is many moderate statements rather than one huge one.
const IDS_PER_LOOKUP: usize = 10_000;

fn connection(row: &PgRow) -> Result<AwsConnectionRecord> {
    Ok(AwsConnectionRecord {
        id: parse(row, "id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        access_key_id: row.try_get("access_key_id")?,
        secret_enc: row.try_get("secret_enc")?,
        aws_region: row.try_get("aws_region")?,
        assume_role_arn: row.try_get("assume_role_arn")?,
        assume_role_external_id: row.try_get("assume_role_external_id")?,
        endpoint_url: row.try_get("endpoint_url")?,
        cloud_name: row.try_get("cloud_name")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn kms(row: &PgRow) -> Result<KmsRecord> {
    Ok(KmsRecord {
        id: parse(row, "id")?,
        name: row.try_get("name")?,
        account_id: row.try_get("account_id")?,
        connection_id: parse(row, "connection_id")?,
        regions: json(row, "regions")?,
        quotas: json(row, "quotas")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn key(row: &PgRow) -> Result<AwsKeyRecord> {
    Ok(AwsKeyRecord {
        id: parse(row, "id")?,
        kms_id: parse(row, "kms_id")?,
        region: row.try_get("region")?,
        material: json(row, "material")?,
        gone: row.try_get("gone")?,
        synced_at: get_ts(row, "synced_at")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

/// The parts of a template kept in its jsonb `body` column (the same document as on SQLite).
#[derive(serde::Serialize, serde::Deserialize)]
struct TemplateBody {
    policy: serde_json::Value,
    key_admins: Vec<String>,
    key_users: Vec<String>,
    key_admins_roles: Vec<String>,
    key_users_roles: Vec<String>,
    is_verified: bool,
}

fn template(row: &PgRow) -> Result<TemplateRecord> {
    let body: TemplateBody = json(row, "body")?;
    let kms_id: Option<String> = row.try_get("kms_id")?;
    Ok(TemplateRecord {
        id: parse(row, "id")?,
        name: row.try_get("name")?,
        kms_id: kms_id.map(|s| s.parse().map_err(|_| StoreError::Corrupt(format!("kms_id = {s:?}")))).transpose()?,
        account_id: row.try_get("account_id")?,
        policy: body.policy,
        key_admins: body.key_admins,
        key_users: body.key_users,
        key_admins_roles: body.key_admins_roles,
        key_users_roles: body.key_users_roles,
        is_verified: body.is_verified,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn template_body(t: &TemplateRecord) -> TemplateBody {
    TemplateBody {
        policy: t.policy.clone(),
        key_admins: t.key_admins.clone(),
        key_users: t.key_users.clone(),
        key_admins_roles: t.key_admins_roles.clone(),
        key_users_roles: t.key_users_roles.clone(),
        is_verified: t.is_verified,
    }
}

fn acl_resource(r: AclResource) -> (&'static str, String) {
    match r {
        AclResource::AwsKms(id) => ("aws-kms", id.to_string()),
        AclResource::AzureVault(id) => ("azure-vault", id.to_string()),
    }
}

pub(super) const NAMED_COLUMNS: &[(&str, &str)] =
    &[("createdAt", "created_at"), ("updatedAt", "updated_at"), ("name", "name"), ("id", "id")];

impl PgStore {
    pub(super) async fn list_named<T>(
        &self,
        table: &str,
        page: &Page,
        map: fn(&PgRow) -> Result<T>,
    ) -> Result<(Vec<T>, u64)> {
        let order = order_by(&page.sort, NAMED_COLUMNS, "created_at ASC", "row_no");
        let sql = format!("SELECT * FROM {table}{order}{}", limit_offset(page));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool).await?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(map).collect::<Result<_>>()?, total as u64))
    }

    async fn delete_by_id(&self, table: &str, id: String) -> Result<bool> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE id = $1")))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, table))?;
        Ok(done.rows_affected() > 0)
    }
}

/// `EXISTS` over the `[key, value]` pairs of a key's `material -> 'tags'`.
fn push_tag_condition(qb: &mut QueryBuilder<Postgres>, material: &str, key: &str, value: Option<&str>) {
    qb.push(format!(
        " AND EXISTS (SELECT 1 FROM jsonb_array_elements({material} -> 'tags') AS t(tag) WHERE t.tag ->> 0 = "
    ))
    .push_bind(key.to_string());
    if let Some(v) = value {
        qb.push(" AND t.tag ->> 1 = ").push_bind(v.to_string());
    }
    qb.push(")");
}

fn push_key_filter(qb: &mut QueryBuilder<Postgres>, f: &AwsKeyFilter) {
    qb.push(" WHERE true");
    if let Some(v) = f.kms_id {
        qb.push(" AND kms_id = ").push_bind(v.to_string());
    }
    if let Some(v) = &f.region {
        qb.push(" AND region = ").push_bind(v.clone());
    }
    if let Some(v) = &f.aws_key_id {
        qb.push(" AND aws_key_id = ").push_bind(v.clone());
    }
    if let Some(v) = &f.arn {
        qb.push(" AND arn = ").push_bind(v.clone());
    }
    if let Some(v) = &f.key_state {
        qb.push(" AND key_state = ").push_bind(v.clone());
    }
    if let Some(v) = f.enabled {
        qb.push(" AND enabled = ").push_bind(v);
    }
    if let Some(v) = f.gone {
        qb.push(" AND gone = ").push_bind(v);
    }
    if let Some(v) = &f.alias {
        // Containment of a one-string array: the aliases list holds exactly this string.
        qb.push(" AND (material -> 'aliases') @> jsonb_build_array(").push_bind(v.clone()).push("::text)");
    }
    for (k, v) in &f.tags {
        push_tag_condition(qb, "material", k, v.as_deref());
    }
}

/// `WHERE` for a selector over `aws_keys k JOIN aws_kms m`. Gone keys are never selected.
pub(super) fn push_selector(qb: &mut QueryBuilder<Postgres>, s: &KeySelector) {
    qb.push(" WHERE NOT k.gone");
    if !s.kms.is_empty() {
        qb.push(" AND k.kms_id = ANY(").push_bind(s.kms.iter().map(|id| id.to_string()).collect::<Vec<_>>()).push(")");
    }
    if !s.regions.is_empty() {
        qb.push(" AND k.region = ANY(").push_bind(s.regions.clone()).push(")");
    }
    if let Some(state) = &s.key_state {
        qb.push(" AND k.key_state = ").push_bind(state.clone());
    }
    if let Some(prefix) = &s.alias_prefix {
        qb.push(
            " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(k.material -> 'aliases') AS a(alias) \
             WHERE starts_with(a.alias, ",
        )
        .push_bind(prefix.clone())
        .push("))");
    }
    for (key, value) in &s.tags {
        push_tag_condition(qb, "k.material", key, value.as_deref());
    }
}

#[async_trait]
impl InventoryStore for PgStore {
    async fn insert_aws_connection(&self, c: &AwsConnectionRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO aws_connections (id, name, description, access_key_id, secret_enc, aws_region, \
             assume_role_arn, assume_role_external_id, endpoint_url, cloud_name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(c.id.to_string())
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.access_key_id)
        .bind(&c.secret_enc)
        .bind(&c.aws_region)
        .bind(&c.assume_role_arn)
        .bind(&c.assume_role_external_id)
        .bind(&c.endpoint_url)
        .bind(&c.cloud_name)
        .bind(ts(c.created_at))
        .bind(ts(c.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("connection {:?}", c.name)))?;
        Ok(())
    }

    async fn update_aws_connection(&self, c: &AwsConnectionRecord) -> Result<()> {
        sqlx::query(
            "UPDATE aws_connections SET name = $1, description = $2, access_key_id = $3, secret_enc = $4, \
             aws_region = $5, assume_role_arn = $6, assume_role_external_id = $7, endpoint_url = $8, \
             cloud_name = $9, updated_at = $10 WHERE id = $11",
        )
        .bind(&c.name)
        .bind(&c.description)
        .bind(&c.access_key_id)
        .bind(&c.secret_enc)
        .bind(&c.aws_region)
        .bind(&c.assume_role_arn)
        .bind(&c.assume_role_external_id)
        .bind(&c.endpoint_url)
        .bind(&c.cloud_name)
        .bind(ts(c.updated_at))
        .bind(c.id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("connection {:?}", c.name)))?;
        Ok(())
    }

    async fn get_aws_connection(&self, id: ConnectionId) -> Result<Option<AwsConnectionRecord>> {
        sqlx::query("SELECT * FROM aws_connections WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection)
            .transpose()
    }

    async fn aws_connection_by_name(&self, name: &str) -> Result<Option<AwsConnectionRecord>> {
        sqlx::query("SELECT * FROM aws_connections WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(connection)
            .transpose()
    }

    async fn list_aws_connections(&self, page: &Page) -> Result<(Vec<AwsConnectionRecord>, u64)> {
        self.list_named("aws_connections", page, connection).await
    }

    async fn delete_aws_connection(&self, id: ConnectionId) -> Result<bool> {
        self.delete_by_id("aws_connections", id.to_string()).await
    }

    async fn insert_kms(&self, k: &KmsRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO aws_kms (id, name, account_id, connection_id, regions, quotas, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(k.id.to_string())
        .bind(&k.name)
        .bind(&k.account_id)
        .bind(k.connection_id.to_string())
        .bind(to_json(&k.regions))
        .bind(to_json(&k.quotas))
        .bind(ts(k.created_at))
        .bind(ts(k.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("KMS {:?}", k.name)))?;
        Ok(())
    }

    async fn update_kms(&self, k: &KmsRecord) -> Result<()> {
        sqlx::query(
            "UPDATE aws_kms SET name = $1, account_id = $2, connection_id = $3, regions = $4, quotas = $5, \
             updated_at = $6 WHERE id = $7",
        )
        .bind(&k.name)
        .bind(&k.account_id)
        .bind(k.connection_id.to_string())
        .bind(to_json(&k.regions))
        .bind(to_json(&k.quotas))
        .bind(ts(k.updated_at))
        .bind(k.id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("KMS {:?}", k.name)))?;
        Ok(())
    }

    async fn get_kms(&self, id: KmsId) -> Result<Option<KmsRecord>> {
        sqlx::query("SELECT * FROM aws_kms WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(kms)
            .transpose()
    }

    async fn kms_by_name(&self, name: &str) -> Result<Option<KmsRecord>> {
        sqlx::query("SELECT * FROM aws_kms WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(kms)
            .transpose()
    }

    async fn list_kms(&self, page: &Page) -> Result<(Vec<KmsRecord>, u64)> {
        self.list_named("aws_kms", page, kms).await
    }

    async fn delete_kms(&self, id: KmsId) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let (kind, rid) = acl_resource(AclResource::AwsKms(id));
        sqlx::query("DELETE FROM acls WHERE resource_kind = $1 AND resource_id = $2")
            .bind(kind)
            .bind(&rid)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM aws_kms WHERE id = $1")
            .bind(&rid)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "KMS"))?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn acls(&self, resource: AclResource) -> Result<Vec<AclEntry>> {
        let (kind, id) = acl_resource(resource);
        let rows = sqlx::query(
            "SELECT principal_kind, principal, actions FROM acls WHERE resource_kind = $1 AND resource_id = $2 \
             ORDER BY principal_kind DESC, principal",
        )
        .bind(kind)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let pk: String = row.try_get("principal_kind")?;
                let p: String = row.try_get("principal")?;
                let principal = if pk == "user" {
                    Principal::User(p.parse().map_err(|_| StoreError::Corrupt(format!("principal {p:?}")))?)
                } else {
                    Principal::Group(p)
                };
                Ok(AclEntry { principal, actions: json(row, "actions")? })
            })
            .collect()
    }

    async fn set_acl(&self, resource: AclResource, principal: &Principal, actions: &[String]) -> Result<()> {
        let (kind, id) = acl_resource(resource);
        let (pk, p) = match principal {
            Principal::User(u) => ("user", u.to_string()),
            Principal::Group(g) => ("group", g.clone()),
        };
        if actions.is_empty() {
            sqlx::query(
                "DELETE FROM acls WHERE resource_kind = $1 AND resource_id = $2 AND principal_kind = $3 \
                 AND principal = $4",
            )
            .bind(kind)
            .bind(id)
            .bind(pk)
            .bind(p)
            .execute(&self.pool)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO acls (resource_kind, resource_id, principal_kind, principal, actions) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource_kind, resource_id, principal_kind, principal) \
                 DO UPDATE SET actions = excluded.actions",
            )
            .bind(kind)
            .bind(id)
            .bind(pk)
            .bind(p)
            .bind(to_json(&actions))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    async fn sync_aws_region(
        &self,
        kms_id: KmsId,
        region: &str,
        keys: &[AwsKeyMaterial],
        at: DateTime<Utc>,
    ) -> Result<(u64, u64, u64)> {
        let mut tx = self.pool.begin().await?;
        // One sync of a region at a time (two sync jobs may cover the same one), as SQLite's single writer
        // gives: two interleaved syncs could otherwise deadlock, each marking gone what the other is writing.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("keyfleet.sync_aws_region:{kms_id}/{region}"))
            .execute(&mut *tx)
            .await?;
        let (mut added, mut updated) = (0, 0);
        // Key by key, as on SQLite, so that a key listed twice counts as added then updated (an upsert
        // of a whole batch could touch a row only once). The statements are prepared once per connection.
        for m in keys {
            let done = sqlx::query(
                "INSERT INTO aws_keys (id, kms_id, region, aws_key_id, arn, key_state, enabled, material, gone, \
                 synced_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, false, $9, $9, $9) \
                 ON CONFLICT (kms_id, region, aws_key_id) DO NOTHING",
            )
            .bind(KeyId::new().to_string())
            .bind(kms_id.to_string())
            .bind(region)
            .bind(&m.key_id)
            .bind(&m.arn)
            .bind(&m.key_state)
            .bind(m.enabled)
            .bind(to_json(m))
            .bind(ts(at))
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() == 1 {
                added += 1;
                continue;
            }
            sqlx::query(
                "UPDATE aws_keys SET arn = $1, key_state = $2, enabled = $3, material = $4, gone = false, \
                 synced_at = $5, updated_at = $5 WHERE kms_id = $6 AND region = $7 AND aws_key_id = $8",
            )
            .bind(&m.arn)
            .bind(&m.key_state)
            .bind(m.enabled)
            .bind(to_json(m))
            .bind(ts(at))
            .bind(kms_id.to_string())
            .bind(region)
            .bind(&m.key_id)
            .execute(&mut *tx)
            .await?;
            updated += 1;
        }
        // Every key of this container and region that the sync did not see has left AWS.
        let gone = sqlx::query(
            "UPDATE aws_keys SET gone = true, updated_at = $1 WHERE kms_id = $2 AND region = $3 AND NOT gone \
             AND synced_at < $1",
        )
        .bind(ts(at))
        .bind(kms_id.to_string())
        .bind(region)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok((added, updated, gone))
    }

    async fn get_aws_key(&self, id: KeyId) -> Result<Option<AwsKeyRecord>> {
        sqlx::query("SELECT * FROM aws_keys WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(key)
            .transpose()
    }

    async fn aws_keys_by_ids(&self, ids: &[KeyId]) -> Result<Vec<AwsKeyRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let chunk: Vec<String> = chunk.iter().map(|id| id.to_string()).collect();
            for row in
                sqlx::query("SELECT * FROM aws_keys WHERE id = ANY($1)").bind(chunk).fetch_all(&self.pool).await?
            {
                out.push(key(&row)?);
            }
        }
        Ok(out)
    }

    async fn list_aws_keys(&self, filter: &AwsKeyFilter, page: &Page) -> Result<(Vec<AwsKeyRecord>, u64)> {
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM aws_keys");
        push_key_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM aws_keys");
        push_key_filter(&mut qb, filter);
        qb.push(order_by(
            &page.sort,
            &[
                ("createdAt", "created_at"),
                ("updatedAt", "updated_at"),
                ("region", "region"),
                ("KeyID", "aws_key_id"),
                ("KeyState", "key_state"),
                ("synced_at", "synced_at"),
                ("id", "id"),
            ],
            "created_at ASC",
            "row_no",
        ));
        qb.push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.pool).await?;
        Ok((rows.iter().map(key).collect::<Result<_>>()?, total as u64))
    }

    async fn update_aws_key_material(&self, id: KeyId, m: &AwsKeyMaterial, at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE aws_keys SET key_state = $1, enabled = $2, material = $3, gone = false, updated_at = $4 \
             WHERE id = $5",
        )
        .bind(&m.key_state)
        .bind(m.enabled)
        .bind(to_json(m))
        .bind(ts(at))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_aws_key_gone(&self, id: KeyId, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE aws_keys SET gone = true, updated_at = $1 WHERE id = $2")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_template(&self, t: &TemplateRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO aws_templates (id, name, kms_id, account_id, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(t.id.to_string())
        .bind(&t.name)
        .bind(t.kms_id.map(|k| k.to_string()))
        .bind(&t.account_id)
        .bind(to_json(&template_body(t)))
        .bind(ts(t.created_at))
        .bind(ts(t.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("template {:?}", t.name)))?;
        Ok(())
    }

    async fn update_template(&self, t: &TemplateRecord) -> Result<()> {
        sqlx::query(
            "UPDATE aws_templates SET name = $1, kms_id = $2, account_id = $3, body = $4, updated_at = $5 \
             WHERE id = $6",
        )
        .bind(&t.name)
        .bind(t.kms_id.map(|k| k.to_string()))
        .bind(&t.account_id)
        .bind(to_json(&template_body(t)))
        .bind(ts(t.updated_at))
        .bind(t.id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, &format!("template {:?}", t.name)))?;
        Ok(())
    }

    async fn get_template(&self, id: TemplateId) -> Result<Option<TemplateRecord>> {
        sqlx::query("SELECT * FROM aws_templates WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(template)
            .transpose()
    }

    async fn list_templates(&self, page: &Page) -> Result<(Vec<TemplateRecord>, u64)> {
        self.list_named("aws_templates", page, template).await
    }

    async fn delete_template(&self, id: TemplateId) -> Result<bool> {
        self.delete_by_id("aws_templates", id.to_string()).await
    }
}
