use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::Pool;

use super::audit::{append, audited};
use super::{
    Backend, Columns, Db, Dialect, Fields, JsonParam, Query, conflict, everything, list_page, order_by, row_by, save,
};
use crate::audit::{AuditEvent, event};
use crate::{AwsRegionKeys, AwsWorkStore, InventoryStore, Result, StoreError};

fn connection<D: Db>(r: Fields<'_, D>) -> Result<AwsConnectionRecord> {
    Ok(AwsConnectionRecord {
        id: r.parse("id")?,
        name: r.text("name")?,
        description: r.text("description")?,
        access_key_id: r.text("access_key_id")?,
        secret_enc: r.bytes("secret_enc")?,
        aws_region: r.text("aws_region")?,
        assume_role_arn: r.opt_text("assume_role_arn")?,
        assume_role_external_id: r.opt_text("assume_role_external_id")?,
        endpoint_url: r.opt_text("endpoint_url")?,
        cloud_name: r.text("cloud_name")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn kms<D: Db>(r: Fields<'_, D>) -> Result<KmsRecord> {
    Ok(KmsRecord {
        id: r.parse("id")?,
        name: r.text("name")?,
        account_id: r.text("account_id")?,
        connection_id: r.parse("connection_id")?,
        regions: r.json("regions")?,
        quotas: r.json("quotas")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn key<D: Db>(r: Fields<'_, D>) -> Result<AwsKeyRecord> {
    Ok(AwsKeyRecord {
        id: r.parse("id")?,
        kms_id: r.parse("kms_id")?,
        region: r.text("region")?,
        material: r.json("material")?,
        gone: r.flag("gone")?,
        synced_at: r.ts("synced_at")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// The parts of a template kept in its JSON `body` column.
#[derive(serde::Serialize, serde::Deserialize)]
struct TemplateBody {
    policy: serde_json::Value,
    key_admins: Vec<String>,
    key_users: Vec<String>,
    key_admins_roles: Vec<String>,
    key_users_roles: Vec<String>,
    is_verified: bool,
}

fn template<D: Db>(r: Fields<'_, D>) -> Result<TemplateRecord> {
    let body: TemplateBody = r.json("body")?;
    Ok(TemplateRecord {
        id: r.parse("id")?,
        name: r.text("name")?,
        kms_id: r.opt_parse("kms_id")?,
        account_id: r.text("account_id")?,
        policy: body.policy,
        key_admins: body.key_admins,
        key_users: body.key_users,
        key_admins_roles: body.key_admins_roles,
        key_users_roles: body.key_users_roles,
        is_verified: body.is_verified,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
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

/// Every column of an AWS connection but `id` and `created_at`.
fn connection_columns<D: Db>(c: &AwsConnectionRecord) -> Columns<D> {
    Columns::new()
        .set("name", &c.name)
        .set("description", &c.description)
        .set("access_key_id", &c.access_key_id)
        .set("secret_enc", &c.secret_enc)
        .set("aws_region", &c.aws_region)
        .set("assume_role_arn", &c.assume_role_arn)
        .set("assume_role_external_id", &c.assume_role_external_id)
        .set("endpoint_url", &c.endpoint_url)
        .set("cloud_name", &c.cloud_name)
        .set("updated_at", c.updated_at)
}

/// Every column of a KMS container but `id` and `created_at`.
fn kms_columns<D: Db>(k: &KmsRecord) -> Columns<D> {
    Columns::new()
        .set("name", &k.name)
        .set("account_id", &k.account_id)
        .set("connection_id", k.connection_id.to_string())
        .set("regions", JsonParam(&k.regions))
        .set("quotas", JsonParam(&k.quotas))
        .set("updated_at", k.updated_at)
}

/// Every column of a template but `id` and `created_at`.
fn template_columns<D: Db>(t: &TemplateRecord) -> Columns<D> {
    Columns::new()
        .set("name", &t.name)
        .set("kms_id", t.kms_id.map(|k| k.to_string()))
        .set("account_id", &t.account_id)
        .set("body", JsonParam(&template_body(t)))
        .set("updated_at", t.updated_at)
}

fn acl_entry<D: Db>(r: Fields<'_, D>) -> Result<AclEntry> {
    let p = r.text("principal")?;
    let principal = if r.text("principal_kind")? == "user" {
        Principal::User(p.parse().map_err(|_| StoreError::Corrupt(format!("principal {p:?}")))?)
    } else {
        Principal::Group(p)
    };
    Ok(AclEntry { principal, actions: r.json("actions")? })
}

pub(super) fn acl_resource(r: AclResource) -> (&'static str, String) {
    match r {
        AclResource::AwsKms(id) => ("aws-kms", id.to_string()),
        AclResource::AzureVault(id) => ("azure-vault", id.to_string()),
    }
}

pub(super) const NAMED_COLUMNS: &[(&str, &str)] =
    &[("createdAt", "created_at"), ("updatedAt", "updated_at"), ("name", "name"), ("id", "id")];

/// A page of a table listed by name, creation or update (connections, containers, vaults, backups);
/// `filter` appends its `WHERE`.
pub(super) async fn list_named<D: Db, T>(
    pool: &Pool<D>,
    select: &str,
    table: &str,
    filter: impl Fn(&mut Query<D>),
    page: &Page,
    map: fn(Fields<'_, D>) -> Result<T>,
) -> Result<(Vec<T>, u64)> {
    let order = order_by(&page.sort, NAMED_COLUMNS, "created_at ASC", D::ROW_NO);
    let (select, count) = (format!("SELECT {select} FROM {table}"), format!("SELECT count(*) AS n FROM {table}"));
    list_page(pool, &select, &count, filter, order, page, map).await
}

/// Deletes a row with its audit record (none when there was no row), in one transaction.
pub(super) async fn delete_by_id<D: Db>(pool: &Pool<D>, table: &str, id: String, record: AuditEvent) -> Result<bool> {
    let query = Query::<D>::new(format!("DELETE FROM {table} WHERE id = $1")).bind(id);
    let deleted = audited(pool, query, record, true).await.map_err(|e| conflict(e, table))?;
    Ok(deleted > 0)
}

/// The audit record of a change to a named inventory record: `<kind>:<id>`, with the name.
pub(super) fn named_event(action: &str, kind: &str, id: impl std::fmt::Display, name: &str) -> AuditEvent {
    event(action, format!("{kind}:{id}")).details(serde_json::json!({"name": name}))
}

/// Rows of `table` by id, in lookups of [`Dialect::IDS_PER_LOOKUP`] ids.
pub(super) async fn by_ids<D: Db, T>(
    pool: &Pool<D>,
    select: &str,
    ids: &[impl ToString],
    map: fn(Fields<'_, D>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(D::IDS_PER_LOOKUP) {
        let mut q = Query::new(format!("{select} WHERE "));
        D::push_in_list(&mut q, "id", chunk.iter().map(|id| id.to_string()).collect());
        out.extend(q.all(pool, map).await?);
    }
    Ok(out)
}

/// `AND` conditions over the `[key, value]` pairs of a JSON document's `tags`.
pub(super) fn push_tags<D: Db>(q: &mut Query<D>, doc: &str, tags: &[(String, Option<String>)]) {
    for (k, v) in tags {
        q.push(&format!(" AND EXISTS (SELECT 1 FROM {} WHERE {} = ", D::tag_rows(doc), D::TAG_KEY)).push_bind(k);
        if let Some(v) = v {
            q.push(&format!(" AND {} = ", D::TAG_VALUE)).push_bind(v);
        }
        q.push(")");
    }
}

fn push_key_filter<D: Db>(q: &mut Query<D>, f: &AwsKeyFilter) {
    q.push(" WHERE true");
    if let Some(v) = f.kms_id {
        q.push(" AND kms_id = ").push_bind(v.to_string());
    }
    if let Some(v) = &f.region {
        q.push(" AND region = ").push_bind(v);
    }
    if let Some(v) = &f.aws_key_id {
        q.push(" AND aws_key_id = ").push_bind(v);
    }
    if let Some(v) = &f.arn {
        q.push(" AND arn = ").push_bind(v);
    }
    if let Some(v) = &f.key_state {
        q.push(" AND key_state = ").push_bind(v);
    }
    if let Some(v) = f.enabled {
        q.push(" AND enabled = ").push_bind(v);
    }
    if let Some(v) = f.gone {
        q.push(" AND gone = ").push_bind(v);
    }
    if let Some(v) = &f.alias {
        q.push(" AND ");
        D::push_has_alias(q, "material", v);
    }
    push_tags(q, "material", &f.tags);
}

/// `WHERE` for a selector over `aws_keys k JOIN aws_kms m`. Gone keys are never selected.
pub(super) fn push_selector<D: Db>(q: &mut Query<D>, s: &KeySelector) {
    q.push(" WHERE NOT k.gone");
    if !s.kms.is_empty() {
        q.push(" AND ");
        D::push_in_list(q, "k.kms_id", s.kms.iter().map(|id| id.to_string()).collect());
    }
    if !s.regions.is_empty() {
        q.push(" AND ");
        D::push_in_list(q, "k.region", s.regions.clone());
    }
    if let Some(state) = &s.key_state {
        q.push(" AND k.key_state = ").push_bind(state);
    }
    if let Some(prefix) = &s.alias_prefix {
        q.push(" AND ");
        D::push_alias_prefix(q, "k.material", prefix);
    }
    push_tags(q, "k.material", &s.tags);
}

/// Takes the transaction-scoped lock `name` where the dialect has one (see [`Dialect::NAMED_LOCK`]).
pub(super) async fn lock_named<D: Db>(tx: &mut sqlx::Transaction<'_, D>, name: String) -> Result<()> {
    if let Some(sql) = D::NAMED_LOCK {
        Query::<D>::new(sql).bind(name).fetch_all(tx).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> InventoryStore for B {
    async fn insert_aws_connection(&self, c: &AwsConnectionRecord) -> Result<()> {
        let query =
            connection_columns(c).set("id", c.id.to_string()).set("created_at", c.created_at).insert("aws_connections");
        save(
            self.writer(),
            query,
            format!("connection {:?}", c.name),
            named_event("connection.create", "connection", c.id, &c.name),
        )
        .await
    }

    async fn update_aws_connection(&self, c: &AwsConnectionRecord) -> Result<()> {
        let query = connection_columns(c).update("aws_connections", c.id.to_string());
        let record = named_event("connection.update", "connection", c.id, &c.name);
        save(self.writer(), query, format!("connection {:?}", c.name), record).await
    }

    async fn aws_connection_by_name(&self, name: &str) -> Result<Option<AwsConnectionRecord>> {
        row_by(self.reader(), "aws_connections", "name", name, connection).await
    }

    async fn list_aws_connections(&self, page: &Page) -> Result<(Vec<AwsConnectionRecord>, u64)> {
        list_named(self.reader(), "*", "aws_connections", |_| {}, page, connection).await
    }

    async fn delete_aws_connection(&self, id: ConnectionId) -> Result<bool> {
        let record = event("connection.delete", format!("connection:{id}"));
        delete_by_id(self.writer(), "aws_connections", id.to_string(), record).await
    }

    async fn insert_kms(&self, k: &KmsRecord) -> Result<()> {
        let query = kms_columns(k).set("id", k.id.to_string()).set("created_at", k.created_at).insert("aws_kms");
        save(self.writer(), query, format!("KMS {:?}", k.name), named_event("kms.create", "kms", k.id, &k.name)).await
    }

    async fn update_kms(&self, k: &KmsRecord) -> Result<()> {
        let query = kms_columns(k).update("aws_kms", k.id.to_string());
        save(self.writer(), query, format!("KMS {:?}", k.name), named_event("kms.update", "kms", k.id, &k.name)).await
    }

    async fn kms_by_name(&self, name: &str) -> Result<Option<KmsRecord>> {
        row_by(self.reader(), "aws_kms", "name", name, kms).await
    }

    async fn list_kms(&self, page: &Page) -> Result<(Vec<KmsRecord>, u64)> {
        list_named(self.reader(), "*", "aws_kms", |_| {}, page, kms).await
    }

    async fn delete_kms(&self, id: KmsId) -> Result<bool> {
        let mut tx = self.writer().begin().await?;
        let (kind, rid) = acl_resource(AclResource::AwsKms(id));
        Query::<B::Db>::new("DELETE FROM acls WHERE resource_kind = $1 AND resource_id = $2")
            .bind(kind)
            .bind(&rid)
            .execute(&mut tx)
            .await?;
        let deleted = Query::<B::Db>::new("DELETE FROM aws_kms WHERE id = $1")
            .bind(rid)
            .execute(&mut tx)
            .await
            .map_err(|e| conflict(e, "KMS"))?;
        if deleted > 0 {
            append(&mut tx, &event("kms.delete", format!("kms:{id}"))).await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn acls(&self, resource: AclResource) -> Result<Vec<AclEntry>> {
        let (kind, id) = acl_resource(resource);
        Query::new(
            "SELECT principal_kind, principal, actions FROM acls WHERE resource_kind = $1 AND resource_id = $2 \
             ORDER BY principal_kind DESC, principal",
        )
        .bind(kind)
        .bind(id)
        .all(self.reader(), acl_entry)
        .await
    }

    async fn set_acl(&self, resource: AclResource, principal: &Principal, actions: &[String]) -> Result<()> {
        let (kind, id) = acl_resource(resource);
        let (pk, p) = match principal {
            Principal::User(u) => ("user", u.to_string()),
            Principal::Group(g) => ("group", g.clone()),
        };
        let record = event("acl.update", format!("{kind}:{id}"))
            .details(serde_json::json!({"principal": format!("{pk}:{p}"), "actions": actions}));
        let q = if actions.is_empty() {
            Query::<B::Db>::new(
                "DELETE FROM acls WHERE resource_kind = $1 AND resource_id = $2 AND principal_kind = $3 \
                 AND principal = $4",
            )
            .bind(kind)
            .bind(id)
            .bind(pk)
            .bind(p)
        } else {
            Query::<B::Db>::new(
                "INSERT INTO acls (resource_kind, resource_id, principal_kind, principal, actions) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource_kind, resource_id, principal_kind, principal) \
                 DO UPDATE SET actions = excluded.actions",
            )
            .bind(kind)
            .bind(id)
            .bind(pk)
            .bind(p)
            .bind(JsonParam(&actions))
        };
        audited(self.writer(), q, record, false).await?;
        Ok(())
    }

    async fn aws_keys_by_ids(&self, ids: &[KeyId]) -> Result<Vec<AwsKeyRecord>> {
        by_ids(self.reader(), "SELECT * FROM aws_keys", ids, key).await
    }

    async fn list_aws_keys(&self, filter: &AwsKeyFilter, page: &Page) -> Result<(Vec<AwsKeyRecord>, u64)> {
        let columns = &[
            ("createdAt", "created_at"),
            ("updatedAt", "updated_at"),
            ("region", "region"),
            ("KeyID", "aws_key_id"),
            ("KeyState", "key_state"),
            ("synced_at", "synced_at"),
            ("id", "id"),
        ];
        let order = order_by(&page.sort, columns, "created_at ASC", B::Db::ROW_NO);
        let (select, count) = ("SELECT * FROM aws_keys", "SELECT count(*) AS n FROM aws_keys");
        list_page(self.reader(), select, count, |q| push_key_filter(q, filter), order, page, key).await
    }

    async fn update_aws_key_material(&self, id: KeyId, m: &AwsKeyMaterial, at: DateTime<Utc>) -> Result<()> {
        refresh_aws_key(self.writer(), id, m, at).await
    }

    async fn mark_aws_key_gone(&self, id: KeyId, at: DateTime<Utc>) -> Result<()> {
        Query::<B::Db>::new("UPDATE aws_keys SET gone = true, updated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn insert_template(&self, t: &TemplateRecord) -> Result<()> {
        let query =
            template_columns(t).set("id", t.id.to_string()).set("created_at", t.created_at).insert("aws_templates");
        save(
            self.writer(),
            query,
            format!("template {:?}", t.name),
            named_event("template.create", "template", t.id, &t.name),
        )
        .await
    }

    async fn update_template(&self, t: &TemplateRecord) -> Result<()> {
        let query = template_columns(t).update("aws_templates", t.id.to_string());
        let record = named_event("template.update", "template", t.id, &t.name);
        save(self.writer(), query, format!("template {:?}", t.name), record).await
    }

    async fn list_templates(&self, page: &Page) -> Result<(Vec<TemplateRecord>, u64)> {
        list_named(self.reader(), "*", "aws_templates", |_| {}, page, template).await
    }

    async fn delete_template(&self, id: TemplateId) -> Result<bool> {
        let record = event("template.delete", format!("template:{id}"));
        delete_by_id(self.writer(), "aws_templates", id.to_string(), record).await
    }
}

#[async_trait]
impl<B: Backend> AwsWorkStore for B {
    async fn all_kms(&self) -> Result<Vec<KmsRecord>> {
        Ok(self.list_kms(&everything()).await?.0)
    }

    async fn get_aws_connection(&self, id: ConnectionId) -> Result<Option<AwsConnectionRecord>> {
        row_by(self.reader(), "aws_connections", "id", id.to_string(), connection).await
    }
    async fn get_kms(&self, id: KmsId) -> Result<Option<KmsRecord>> {
        row_by(self.reader(), "aws_kms", "id", id.to_string(), kms).await
    }
    async fn get_aws_key(&self, id: KeyId) -> Result<Option<AwsKeyRecord>> {
        row_by(self.reader(), "aws_keys", "id", id.to_string(), key).await
    }
    async fn get_aws_keys(&self, ids: &[KeyId]) -> Result<Vec<AwsKeyRecord>> {
        self.aws_keys_by_ids(ids).await
    }
    async fn get_template(&self, id: TemplateId) -> Result<Option<TemplateRecord>> {
        row_by(self.reader(), "aws_templates", "id", id.to_string(), template).await
    }
    async fn sync_aws_region_part(&self, listed: &AwsRegionKeys<'_>, at: DateTime<Utc>) -> Result<(u64, u64)> {
        let mut tx = self.writer().begin().await?;
        let counts = upsert_aws_region(&mut tx, listed, at).await?;
        tx.commit().await?;
        Ok(counts)
    }
    async fn sync_aws_region(&self, listed: &AwsRegionKeys<'_>, at: DateTime<Utc>) -> Result<(u64, u64, u64)> {
        let mut tx = self.writer().begin().await?;
        let (added, updated) = upsert_aws_region(&mut tx, listed, at).await?;
        // Every key of this container and region that the sync did not write (its parts included) has left AWS.
        let gone = Query::<B::Db>::new(
            "UPDATE aws_keys SET gone = true, updated_at = $1 WHERE kms_id = $2 AND region = $3 AND NOT gone \
             AND synced_at < $1",
        )
        .bind(at)
        .bind(listed.kms_id.to_string())
        .bind(listed.region)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        Ok((added, updated, gone))
    }
}

/// Writes listed keys of a region at sync time `at`, many per statement: new keys added, known keys updated
/// (and no longer gone). Returns (added, updated).
async fn upsert_aws_region<D: Db>(
    tx: &mut sqlx::Transaction<'_, D>,
    listed: &AwsRegionKeys<'_>,
    at: DateTime<Utc>,
) -> Result<(u64, u64)> {
    let AwsRegionKeys { kms_id, region, keys } = *listed;
    // One sync of a region at a time (two sync jobs may cover the same one): two interleaved syncs could
    // otherwise deadlock, each marking gone what the other is writing.
    lock_named(tx, format!("keyfleet.sync_aws_region:{kms_id}/{region}")).await?;
    let created = || {
        Query::<D>::new("SELECT count(*) AS n FROM aws_keys WHERE kms_id = $1 AND region = $2 AND created_at = $3")
            .bind(kms_id.to_string())
            .bind(region)
            .bind(at)
    };
    let before = created().count(&mut *tx).await?;
    // A key listed twice is written once, as listed last (see `last_listed`). A key that a later sync of the
    // region wrote already keeps what that sync read: two syncs of one region may interleave their parts,
    // and the older one must neither bring back older material nor leave a key for the later one's end to
    // mark gone.
    let (keys, repeats) = last_listed(keys, |m| m.key_id.clone());
    for chunk in keys.chunks(KEYS_PER_UPSERT) {
        let mut q = Query::<D>::new(
            "INSERT INTO aws_keys (id, kms_id, region, aws_key_id, arn, key_state, enabled, material, gone, \
             synced_at, created_at, updated_at) VALUES ",
        )
        .bind(at)
        .bind(kms_id.to_string())
        .bind(region);
        for (k, m) in chunk.iter().enumerate() {
            q.push(if k == 0 { "(" } else { ", (" });
            q.push_bind(KeyId::new().to_string()).push(", $2, $3, ");
            q.push_bind(&m.key_id).push(", ");
            q.push_bind(&m.arn).push(", ");
            q.push_bind(&m.key_state).push(", ");
            q.push_bind(m.enabled).push(", ");
            q.push_bind(JsonParam(*m)).push(", false, $1, $1, $1)");
        }
        q.push(
            " ON CONFLICT (kms_id, region, aws_key_id) DO UPDATE SET arn = excluded.arn, \
             key_state = excluded.key_state, enabled = excluded.enabled, material = excluded.material, \
             gone = false, synced_at = excluded.synced_at, updated_at = excluded.updated_at \
             WHERE aws_keys.synced_at <= excluded.synced_at",
        );
        q.execute(&mut *tx).await?;
    }
    // Added: the rows this call created (created at `at`, and not before it); every other listing updated one.
    let added = created().count(&mut *tx).await? - before;
    Ok((added, keys.len() as u64 - added + repeats))
}

/// Refreshes the cached metadata of one AWS key after an effect (alone, or inside `finish_item_with`).
pub(super) async fn refresh_aws_key<'a, D: Db>(
    on: impl Into<super::On<'a, D>>,
    id: KeyId,
    m: &AwsKeyMaterial,
    at: DateTime<Utc>,
) -> Result<()> {
    refresh_aws_keys(on, &[(id, m)], at).await
}

/// [`refresh_aws_key`] for many keys in one statement (at most [`KEYS_PER_REFRESH`]).
pub(super) async fn refresh_aws_keys<'a, D: Db>(
    on: impl Into<super::On<'a, D>>,
    keys: &[(KeyId, &AwsKeyMaterial)],
    at: DateTime<Utc>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let mut q = Query::<D>::new(
        "UPDATE aws_keys SET key_state = v.column2, enabled = v.column3, material = v.column4, gone = false, \
         updated_at = $1 FROM (VALUES ",
    )
    .bind(at);
    for (k, (id, m)) in keys.iter().enumerate() {
        q.push(if k == 0 { "(" } else { ", (" });
        q.push_bind(id.to_string()).push(", ");
        q.push_bind(m.key_state.as_str()).push(", ");
        q.push_bind(m.enabled).push(", ");
        q.push_bind(JsonParam(*m)).push(")");
    }
    q.push(") AS v WHERE id = v.column1");
    q.execute(on).await?;
    Ok(())
}

/// Keys per multi-row upsert of a sync: 5 parameters each besides 3 shared, within SQLite's 999.
pub(super) const KEYS_PER_UPSERT: usize = 150;

/// A sync's listing with each key once, as listed last, in listing order, and how many listings that dropped.
/// One statement may write a row only once (PostgreSQL refuses an upsert that touches a row twice); written
/// one by one, a key listed twice was added, then updated to its last listing: the counts stay those.
pub(super) fn last_listed<T>(items: &[T], key: impl Fn(&T) -> String) -> (Vec<&T>, u64) {
    let mut seen = std::collections::HashSet::new();
    let mut once: Vec<&T> = items.iter().rev().filter(|m| seen.insert(key(m))).collect();
    once.reverse();
    let repeats = (items.len() - once.len()) as u64;
    (once, repeats)
}

/// Keys per [`refresh_aws_keys`] statement: 4 parameters each, within SQLite's 999.
pub(super) const KEYS_PER_REFRESH: usize = 200;
