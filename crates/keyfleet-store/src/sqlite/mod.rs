//! The embedded SQLite backend.

mod azure;
mod inventory;
mod jobs;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use keyfleet_core::time::{from_micros, to_micros};
use keyfleet_core::{Page, SortKey};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::sql::{Backend, Dialect, Query};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite store: one writer connection (SQLite has one writer at a time), several readers (WAL).
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. Does not migrate: call `migrate`.
    pub async fn open(path: &Path) -> Result<Self> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(base.clone().create_if_missing(true)).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(base.read_only(true)).await?;
        Ok(Self { writer, reader })
    }

    /// Opens a `sqlite://path` or `sqlite:path` URL.
    pub async fn open_url(url: &str) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)?;
        Self::open(opts.get_filename()).await
    }

    /// Applies the embedded migrations that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.writer).await?;
        Ok(())
    }

    /// Closes both pools, flushing the WAL.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn job_announced(&self) {
        // One node per SQLite file: its own jobs wake it directly.
        std::future::pending().await
    }
}

impl Dialect for sqlx::Sqlite {
    const ROW_NO: &'static str = "rowid";
    const FOR_UPDATE: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const NAMED_LOCK: Option<&'static str> = None;
    const ANNOUNCE_JOB: Option<&'static str> = None;
    // 3 variables per row (plus 2 shared); far below SQLite's variable limit.
    const ITEMS_PER_INSERT: usize = 150;
    const IDS_PER_LOOKUP: usize = 10_000;

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// A JSON array bound as one variable, however many values (SQLite limits a statement's variables).
    fn push_in_list(q: &mut Query<Self>, expr: &str, values: Vec<String>) {
        q.push(&format!("{expr} IN (SELECT value FROM json_each(")).push_bind(to_json(&values)).push("))");
    }

    fn push_has_alias(q: &mut Query<Self>, doc: &str, alias: &str) {
        q.push(&format!("EXISTS (SELECT 1 FROM json_each({doc}, '$.aliases') WHERE value = "))
            .push_bind(alias)
            .push(")");
    }

    fn push_alias_prefix(q: &mut Query<Self>, doc: &str, prefix: &str) {
        q.push(&format!("EXISTS (SELECT 1 FROM json_each({doc}, '$.aliases') WHERE substr(value, 1, "))
            .push_bind(prefix.len() as i64)
            .push(") = ")
            .push_bind(prefix)
            .push(")");
    }

    fn push_has_tag(q: &mut Query<Self>, doc: &str, key: &str, value: Option<&str>) {
        q.push(&format!("EXISTS (SELECT 1 FROM json_each({doc}, '$.tags') WHERE json_extract(value, '$[0]') = "))
            .push_bind(key);
        if let Some(v) = value {
            q.push(" AND json_extract(value, '$[1]') = ").push_bind(v);
        }
        q.push(")");
    }
}

pub(crate) fn ts(t: DateTime<Utc>) -> i64 {
    to_micros(t)
}

pub(crate) fn get_ts(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<DateTime<Utc>> {
    Ok(from_micros(row.try_get::<i64, _>(col)?))
}

pub(crate) fn get_opt_ts(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

pub(crate) fn parse<T: FromStr>(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|_| StoreError::Corrupt(format!("{col} = {s:?}")))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising plain data to a string cannot fail.
    serde_json::to_string(v).unwrap_or_default()
}

/// `ORDER BY` clause from validated sort keys; `columns` maps API field names to SQL columns.
pub(crate) fn order_by(sort: &[SortKey], columns: &[(&str, &str)], default: &str) -> String {
    let mut parts: Vec<String> = sort
        .iter()
        .filter_map(|k| {
            columns
                .iter()
                .find(|(f, _)| *f == k.field)
                .map(|(_, col)| format!("{col} {}", if k.descending { "DESC" } else { "ASC" }))
        })
        .collect();
    if parts.is_empty() {
        parts.push(default.to_string());
    }
    // A unique tie-breaker keeps pages stable.
    parts.push("rowid ASC".to_string());
    format!(" ORDER BY {}", parts.join(", "))
}

pub(crate) fn limit_offset(page: &Page) -> String {
    format!(" LIMIT {} OFFSET {}", page.limit, page.skip)
}

/// Maps a unique-constraint violation to `Conflict` with a readable text.
pub(crate) fn conflict(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(format!("{what} already exists")),
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StoreError::Conflict(format!("{what} refers to something that does not exist or is still in use"))
        }
        _ => StoreError::Database(e),
    }
}
