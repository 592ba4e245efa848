//! The SQL both backends share: every query and row mapping is written once here, generic over the driver,
//! and each backend (`SqliteStore`, `PgStore`) supplies its pools and the few [`Dialect`] hooks where SQLite
//! and PostgreSQL differ (insertion order column, row locks, advisory locks, JSON and list predicates).
//!
//! Parameters are numbered (`$1`, `$2`, ...), which sqlx accepts on both drivers; [`Query::push_bind`]
//! numbers the ones a filter appends. Booleans bind as `bool` (SQLite stores 0/1), JSON as `jsonb` on
//! PostgreSQL and text on SQLite, timestamps as integer microseconds.

mod audit;
mod auth;
mod azure;
mod idempotency;
mod inventory;
mod jobs;
mod monitor;
mod sync_jobs;

pub use jobs::ListMarks;

use std::future::Future;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use keyfleet_core::time::{from_micros, to_micros};
use keyfleet_core::{Page, SortKey};
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::types::Json;
use sqlx::{
    Arguments as _, ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row as _, Transaction, Type,
};

use crate::audit::AuditEvent;
use crate::{Result, StoreError};

/// Where SQLite and PostgreSQL differ; implemented for `sqlx::Sqlite` and `sqlx::Postgres`.
pub trait Dialect: Database {
    /// The insertion order of a table's rows: the tie-breaker of every sorted list and the claim order.
    const ROW_NO: &'static str;
    /// Appended to a `SELECT` whose rows the transaction must hold until it ends (PostgreSQL's lock order,
    /// see `postgres.rs`); empty on SQLite, whose single writer already serializes write transactions.
    const FOR_UPDATE: &'static str;
    /// Appended to the `SELECT` of a claim, reap or renewal: rows another node is writing are passed over.
    const SKIP_LOCKED: &'static str;
    /// How a claim reads the items attempted before: through `job_items_retries` (SQLite's planner, without
    /// statistics, prefers `job_items_pending` and its longer equality prefix, which scans every due item).
    const RETRIES_FROM: &'static str;
    /// A statement taking a transaction-scoped lock named by `$1`, so that two syncs of the same region or
    /// vault take turns; `None` where transactions never interleave.
    const NAMED_LOCK: Option<&'static str>;
    /// A statement announcing a new job to other nodes at commit; `None` on a single-node backend.
    const ANNOUNCE_JOB: Option<&'static str>;
    /// Items per multi-row `INSERT` of `create_job` (bounded by the driver's variable limit).
    const ITEMS_PER_INSERT: usize;
    /// Ids per [`Dialect::push_in_list`] lookup of `*_by_ids`.
    const IDS_PER_LOOKUP: usize;

    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// `expr` is one of `values`, bound as one parameter.
    fn push_in_list(q: &mut Query<Self>, expr: &str, values: Vec<String>);
    /// The JSON array `doc -> 'aliases'` holds `alias`.
    fn push_has_alias(q: &mut Query<Self>, doc: &str, alias: &str);
    /// An entry of the JSON array `doc -> 'aliases'` starts with `prefix`.
    fn push_alias_prefix(q: &mut Query<Self>, doc: &str, prefix: &str);
    /// One row per `[key, value]` pair of the JSON array `doc -> 'tags'`, its parts named by
    /// [`Dialect::TAG_KEY`] and [`Dialect::TAG_VALUE`].
    fn tag_rows(doc: &str) -> String;
    const TAG_KEY: &'static str;
    const TAG_VALUE: &'static str;
}

/// The driver operations shared code uses, so that it needs no driver bounds of its own: the blanket impl
/// below states them once, and holds for every [`Dialect`] whose driver supports them.
pub trait Db: Dialect {
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'c;
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'c;
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: String,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;

    fn add_i64(args: &mut Self::Arguments, v: Option<i64>) -> Result<(), BoxDynError>;
    fn add_bool(args: &mut Self::Arguments, v: bool) -> Result<(), BoxDynError>;
    fn add_text(args: &mut Self::Arguments, v: Option<String>) -> Result<(), BoxDynError>;
    fn add_bytes(args: &mut Self::Arguments, v: Vec<u8>) -> Result<(), BoxDynError>;
    fn add_json(args: &mut Self::Arguments, v: serde_json::Value) -> Result<(), BoxDynError>;

    fn get_i64(row: &Self::Row, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn get_bool(row: &Self::Row, col: &str) -> Result<bool, sqlx::Error>;
    fn get_text(row: &Self::Row, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn get_bytes(row: &Self::Row, col: &str) -> Result<Vec<u8>, sqlx::Error>;
    fn get_json(row: &Self::Row, col: &str) -> Result<serde_json::Value, sqlx::Error>;
    fn get_opt_json(row: &Self::Row, col: &str) -> Result<Option<serde_json::Value>, sqlx::Error>;
}

impl<D> Db for D
where
    D: Dialect,
    D::Arguments: IntoArguments<D>,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'a> &'a str: ColumnIndex<D::Row>,
    for<'q> i64: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> Option<i64>: Encode<'q, D>,
    for<'q> Option<String>: Encode<'q, D>,
    for<'q> bool: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> String: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> Vec<u8>: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> Json<serde_json::Value>: Encode<'q, D> + Decode<'q, D> + Type<D>,
{
    fn fetch_all<'c>(
        conn: &'c mut D::Connection,
        sql: String,
        args: D::Arguments,
    ) -> impl Future<Output = Result<Vec<D::Row>, sqlx::Error>> + Send + 'c {
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args).fetch_all(conn)
    }

    fn fetch_optional<'c>(
        conn: &'c mut D::Connection,
        sql: String,
        args: D::Arguments,
    ) -> impl Future<Output = Result<Option<D::Row>, sqlx::Error>> + Send + 'c {
        sqlx::query_with(sqlx::AssertSqlSafe(sql), args).fetch_optional(conn)
    }

    fn execute<'c>(
        conn: &'c mut D::Connection,
        sql: String,
        args: D::Arguments,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c {
        let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), args).execute(conn);
        async move { Ok(D::rows_affected(&done.await?)) }
    }

    fn add_i64(args: &mut D::Arguments, v: Option<i64>) -> Result<(), BoxDynError> {
        args.add(v)
    }
    fn add_bool(args: &mut D::Arguments, v: bool) -> Result<(), BoxDynError> {
        args.add(v)
    }
    fn add_text(args: &mut D::Arguments, v: Option<String>) -> Result<(), BoxDynError> {
        args.add(v)
    }
    fn add_bytes(args: &mut D::Arguments, v: Vec<u8>) -> Result<(), BoxDynError> {
        args.add(v)
    }
    fn add_json(args: &mut D::Arguments, v: serde_json::Value) -> Result<(), BoxDynError> {
        args.add(Json(v))
    }

    fn get_i64(row: &D::Row, col: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(col)
    }
    fn get_bool(row: &D::Row, col: &str) -> Result<bool, sqlx::Error> {
        row.try_get(col)
    }
    fn get_text(row: &D::Row, col: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(col)
    }
    fn get_bytes(row: &D::Row, col: &str) -> Result<Vec<u8>, sqlx::Error> {
        row.try_get(col)
    }
    fn get_json(row: &D::Row, col: &str) -> Result<serde_json::Value, sqlx::Error> {
        row.try_get::<Json<serde_json::Value>, _>(col).map(|Json(v)| v)
    }
    fn get_opt_json(row: &D::Row, col: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
        row.try_get::<Option<Json<serde_json::Value>>, _>(col).map(|v| v.map(|Json(v)| v))
    }
}

/// Both backends are the whole [`crate::Store`]: each of its traits is implemented once, for every backend.
impl<B: Backend> crate::Store for B {}

/// A backend: its driver and its pools. Every store trait is implemented once, for every `Backend`.
pub trait Backend: Send + Sync + 'static {
    type Db: Db;
    /// Connections for reads.
    fn reader(&self) -> &Pool<Self::Db>;
    /// Connections for writes: the readers' pool, unless the backend has its own (SQLite's single writer).
    fn writer(&self) -> &Pool<Self::Db> {
        self.reader()
    }
    /// Resolves when another node may have created a job (see `JobStore::job_announced`).
    fn job_announced(&self) -> impl Future<Output = ()> + Send;
    /// The migrations embedded for this backend.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator;
    /// The current epoch of authentication state ([`crate::AuthStore::auth_epoch`]).
    fn auth_epoch(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Called once a change that moves the auth epoch has committed: a backend that keeps its epoch in the
    /// process (SQLite, one node) moves it here; one that keeps it in the database moves it in the change's
    /// own transaction (PostgreSQL's triggers) and does nothing here.
    fn auth_changed(&self) {}
    /// The positions this node remembers in job lists (`list_jobs`).
    fn list_marks(&self) -> &jobs::ListMarks;
}

/// A value that can be bound as a parameter.
pub trait Param {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError>;
}

impl Param for i64 {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_i64(args, Some(self))
    }
}

impl Param for Option<i64> {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_i64(args, self)
    }
}

impl Param for bool {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_bool(args, self)
    }
}

impl Param for String {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_text(args, Some(self))
    }
}

impl Param for &String {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_text(args, Some(self.clone()))
    }
}

impl Param for &str {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_text(args, Some(self.to_owned()))
    }
}

impl Param for Option<String> {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_text(args, self)
    }
}

impl Param for &Option<String> {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_text(args, self.clone())
    }
}

impl Param for &Vec<u8> {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_bytes(args, self.clone())
    }
}

impl Param for &[u8] {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_bytes(args, self.to_vec())
    }
}

impl Param for DateTime<Utc> {
    /// Integer microseconds.
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_i64(args, Some(to_micros(self)))
    }
}

impl Param for Option<DateTime<Utc>> {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_i64(args, self.map(to_micros))
    }
}

/// A value bound as JSON (`jsonb` on PostgreSQL, text on SQLite).
pub struct JsonParam<'a, T>(pub &'a T);

impl<T: serde::Serialize> Param for JsonParam<'_, T> {
    fn add_to<D: Db>(self, args: &mut D::Arguments) -> Result<(), BoxDynError> {
        D::add_json(args, serde_json::to_value(self.0)?)
    }
}

/// The columns of one record with their values, for the record's `INSERT` and its `UPDATE` alike.
pub struct Columns<D: Database> {
    names: Vec<&'static str>,
    query: Query<D>,
}

impl<D: Db> Columns<D> {
    pub fn new() -> Self {
        Self { names: Vec::new(), query: Query::new(String::new()) }
    }

    pub fn set(mut self, name: &'static str, value: impl Param) -> Self {
        self.names.push(name);
        self.query = self.query.bind(value);
        self
    }

    /// `INSERT INTO {table} (...) VALUES ($1, ...)`.
    pub fn insert(mut self, table: &str) -> Query<D> {
        let values: Vec<String> = (1..=self.names.len()).map(|n| format!("${n}")).collect();
        self.query.sql = format!("INSERT INTO {table} ({}) VALUES ({})", self.names.join(", "), values.join(", "));
        self.query
    }

    /// `UPDATE {table} SET ... WHERE id = {id}`.
    pub fn update(self, table: &str, id: String) -> Query<D> {
        let set: Vec<String> = self.names.iter().enumerate().map(|(i, name)| format!("{name} = ${}", i + 1)).collect();
        let mut query = self.query.bind(id);
        query.sql = format!("UPDATE {table} SET {} WHERE id = ${}", set.join(", "), self.names.len() + 1);
        query
    }
}

/// Runs a record's `INSERT` or `UPDATE` with its audit record, in one transaction; a broken uniqueness or
/// reference rule is a `Conflict` naming `what`. An `UPDATE` of no row writes no record.
pub(crate) async fn save<D: Db>(pool: &Pool<D>, query: Query<D>, what: String, record: AuditEvent) -> Result<()> {
    audit::audited(pool, query, record, true).await.map_err(|e| conflict(e, &what))?;
    Ok(())
}

/// The row of `table` whose `column` equals `value`, mapped.
pub(crate) async fn row_by<D: Db, T>(
    pool: &Pool<D>,
    table: &str,
    column: &str,
    value: impl Param,
    map: fn(Fields<'_, D>) -> Result<T>,
) -> Result<Option<T>> {
    Query::new(format!("SELECT * FROM {table} WHERE {column} = $1")).bind(value).optional(pool, map).await
}

/// Where a query runs: on a connection taken from a pool for it, or on a connection or transaction held.
pub enum On<'a, D: Database> {
    Pool(&'a Pool<D>),
    Conn(&'a mut D::Connection),
}

impl<'a, D: Database> From<&'a Pool<D>> for On<'a, D> {
    fn from(pool: &'a Pool<D>) -> Self {
        On::Pool(pool)
    }
}

impl<'a, D: Database> From<&'a mut Transaction<'_, D>> for On<'a, D> {
    fn from(tx: &'a mut Transaction<'_, D>) -> Self {
        On::Conn(tx.as_mut())
    }
}

impl<'a, D: Database> From<&'a mut PoolConnection<D>> for On<'a, D> {
    fn from(conn: &'a mut PoolConnection<D>) -> Self {
        On::Conn(conn.as_mut())
    }
}

/// SQL text and its parameters: a fixed statement (`$n` in the text, [`Query::bind`] in order), or one a
/// filter extends ([`Query::push`], [`Query::push_bind`], which numbers the parameter itself).
pub struct Query<D: Database> {
    sql: String,
    args: D::Arguments,
    count: usize,
    error: Option<BoxDynError>,
}

impl<D: Db> Query<D> {
    pub fn new(sql: impl Into<String>) -> Self {
        Self { sql: sql.into(), args: Default::default(), count: 0, error: None }
    }

    /// Binds the next parameter (`$1`, then `$2`, ...).
    pub fn bind(mut self, value: impl Param) -> Self {
        self.add(value);
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next parameter's placeholder and binds it.
    pub fn push_bind(&mut self, value: impl Param) -> &mut Self {
        self.add(value);
        self.sql.push_str(&format!("${}", self.count));
        self
    }

    /// [`Query::push_bind`] for a driver-specific type (PostgreSQL's arrays).
    pub fn push_bind_with(&mut self, add: impl FnOnce(&mut D::Arguments) -> Result<(), BoxDynError>) -> &mut Self {
        let error = add(&mut self.args).err();
        self.record(error);
        self.sql.push_str(&format!("${}", self.count));
        self
    }

    fn add(&mut self, value: impl Param) {
        let error = value.add_to::<D>(&mut self.args).err();
        self.record(error);
    }

    fn record(&mut self, error: Option<BoxDynError>) {
        self.count += 1;
        if self.error.is_none() {
            self.error = error;
        }
    }

    fn parts(self) -> Result<(String, D::Arguments)> {
        match self.error {
            Some(e) => Err(StoreError::Database(sqlx::Error::Encode(e))),
            None => Ok((self.sql, self.args)),
        }
    }

    pub async fn fetch_all(self, on: impl Into<On<'_, D>>) -> Result<Vec<D::Row>> {
        let (sql, args) = self.parts()?;
        Ok(match on.into() {
            On::Pool(pool) => D::fetch_all(pool.acquire().await?.as_mut(), sql, args).await?,
            On::Conn(conn) => D::fetch_all(conn, sql, args).await?,
        })
    }

    pub async fn fetch_optional(self, on: impl Into<On<'_, D>>) -> Result<Option<D::Row>> {
        let (sql, args) = self.parts()?;
        Ok(match on.into() {
            On::Pool(pool) => D::fetch_optional(pool.acquire().await?.as_mut(), sql, args).await?,
            On::Conn(conn) => D::fetch_optional(conn, sql, args).await?,
        })
    }

    pub async fn fetch_one(self, on: impl Into<On<'_, D>>) -> Result<D::Row> {
        self.fetch_optional(on).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Runs the statement; returns how many rows it changed.
    pub async fn execute(self, on: impl Into<On<'_, D>>) -> Result<u64> {
        let (sql, args) = self.parts()?;
        Ok(match on.into() {
            On::Pool(pool) => D::execute(pool.acquire().await?.as_mut(), sql, args).await?,
            On::Conn(conn) => D::execute(conn, sql, args).await?,
        })
    }

    /// Every row, mapped.
    pub async fn all<T>(self, on: impl Into<On<'_, D>>, map: fn(Fields<'_, D>) -> Result<T>) -> Result<Vec<T>> {
        self.fetch_all(on).await?.iter().map(|row| map(Fields(row))).collect()
    }

    /// The row, if any, mapped.
    pub async fn optional<T>(self, on: impl Into<On<'_, D>>, map: fn(Fields<'_, D>) -> Result<T>) -> Result<Option<T>> {
        self.fetch_optional(on).await?.as_ref().map(|row| map(Fields(row))).transpose()
    }

    /// The integer in column `n` of the one row (`count(*)`).
    pub async fn count(self, on: impl Into<On<'_, D>>) -> Result<u64> {
        let row = self.fetch_one(on).await?;
        Ok(Fields::<D>(&row).int("n")? as u64)
    }
}

/// Typed reads of a row's columns. A value of the wrong shape is `Corrupt`, on both backends.
pub struct Fields<'r, D: Database>(pub &'r D::Row);

impl<D: Db> Fields<'_, D> {
    pub fn int(&self, col: &str) -> Result<i64> {
        self.opt_int(col)?.ok_or_else(|| StoreError::Corrupt(format!("{col} is NULL")))
    }
    pub fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(D::get_i64(self.0, col)?)
    }
    pub fn flag(&self, col: &str) -> Result<bool> {
        Ok(D::get_bool(self.0, col)?)
    }
    pub fn text(&self, col: &str) -> Result<String> {
        self.opt_text(col)?.ok_or_else(|| StoreError::Corrupt(format!("{col} is NULL")))
    }
    pub fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(D::get_text(self.0, col)?)
    }
    pub fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        Ok(D::get_bytes(self.0, col)?)
    }
    pub fn ts(&self, col: &str) -> Result<DateTime<Utc>> {
        Ok(from_micros(self.int(col)?))
    }
    pub fn opt_ts(&self, col: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.opt_int(col)?.map(from_micros))
    }
    /// A text column parsed with `FromStr` (ids, enums).
    pub fn parse<T: FromStr>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        s.parse().map_err(|_| StoreError::Corrupt(format!("{col} = {s:?}")))
    }
    pub fn opt_parse<T: FromStr>(&self, col: &str) -> Result<Option<T>> {
        self.opt_text(col)?.map(|s| s.parse().map_err(|_| StoreError::Corrupt(format!("{col} = {s:?}")))).transpose()
    }
    pub fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        serde_json::from_value(D::get_json(self.0, col)?).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
    }
    /// A nullable JSON column, as it is stored.
    pub fn opt_json(&self, col: &str) -> Result<Option<serde_json::Value>> {
        Ok(D::get_opt_json(self.0, col)?)
    }
}

/// `ORDER BY` clause from validated sort keys; `columns` maps API field names to SQL columns; `row_no` is
/// the table's insertion order, a unique tie-breaker that keeps pages stable. NULLs sort as SQLite sorts
/// them by default: before everything ascending, after everything descending.
pub fn order_by(sort: &[SortKey], columns: &[(&str, &str)], default: &str, row_no: &str) -> String {
    let mut parts: Vec<String> =
        sort.iter()
            .filter_map(|k| {
                columns.iter().find(|(f, _)| *f == k.field).map(|(_, col)| {
                    format!("{col} {}", if k.descending { "DESC NULLS LAST" } else { "ASC NULLS FIRST" })
                })
            })
            .collect();
    if parts.is_empty() {
        parts.push(default.to_string());
    }
    parts.push(format!("{row_no} ASC"));
    format!(" ORDER BY {}", parts.join(", "))
}

/// Every row: for the lists the engine reads whole, which are small (containers, vaults).
pub fn everything() -> Page {
    Page { skip: 0, limit: u64::MAX >> 1, sort: vec![] }
}

pub fn limit_offset(page: &Page) -> String {
    format!(" LIMIT {} OFFSET {}", page.limit, page.skip)
}

/// A page of `select` (which ends before its `WHERE`/`ORDER BY`), with the total `count` counts; `filter`
/// appends the same conditions to both.
pub(crate) async fn list_page<D: Db, T>(
    pool: &Pool<D>,
    select: &str,
    count: &str,
    filter: impl Fn(&mut Query<D>),
    order: String,
    page: &Page,
    map: fn(Fields<'_, D>) -> Result<T>,
) -> Result<(Vec<T>, u64)> {
    let mut total = Query::new(count);
    filter(&mut total);
    let total = total.count(pool).await?;
    let mut q = Query::new(select);
    filter(&mut q);
    q.push(&order).push(&limit_offset(page));
    Ok((q.all(pool, map).await?, total))
}

/// Maps a unique-constraint violation to `Conflict` with a readable text.
pub(crate) fn conflict(e: StoreError, what: &str) -> StoreError {
    match &e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!("{what} refers to something that does not exist or is still in use"))
        }
        _ => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(field: &str, descending: bool) -> SortKey {
        SortKey { field: field.into(), descending }
    }

    #[test]
    fn order_by_maps_fields_places_nulls_like_sqlite_and_ends_with_the_row_order() {
        let cols = &[("createdAt", "created_at"), ("completed_at", "completed_at")];
        assert_eq!(order_by(&[], cols, "created_at DESC", "row_no"), " ORDER BY created_at DESC, row_no ASC");
        assert_eq!(
            order_by(&[key("completed_at", false), key("createdAt", true), key("bogus", false)], cols, "x", "g.rowid"),
            " ORDER BY completed_at ASC NULLS FIRST, created_at DESC NULLS LAST, g.rowid ASC"
        );
    }
}
