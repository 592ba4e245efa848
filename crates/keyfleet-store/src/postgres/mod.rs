//! The PostgreSQL backend: several keyfleet nodes share one database.
//!
//! Written for PostgreSQL's default READ COMMITTED isolation, where nodes never retry a transaction. Two
//! rules keep that free of double work and of deadlocks:
//! - Work is claimed, reaped and renewed with `FOR UPDATE SKIP LOCKED`: those statements take disjoint rows
//!   and never wait for anyone.
//! - A transaction that changes a job together with its items locks the job row first (`cancel_job`,
//!   `fail_pending_for_connection`, and `finish_item` when the outcome counts). Whoever holds a job lock
//!   may still wait for an item row (a multi-row UPDATE waits even for a row that stopped matching after
//!   its snapshot), but that row's holder is then a claim, a reap, a renewal or a retry (`finish_item`
//!   without a count), none of which waits for anything while it holds rows: no cycle can form.
//!   `tests/nodes.rs` races these paths on two nodes; without the job-first order they deadlock.
//!
//! Counters are incremented in SQL and completion is decided by one `UPDATE ... WHERE status =
//! 'in_progress' AND <every item counted>` under the job row's lock, so exactly one writer ends a job.

mod azure;
mod inventory;
mod jobs;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use keyfleet_core::time::{from_micros, to_micros};
use keyfleet_core::{Page, SortKey};
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::sql::{Backend, Dialect, Query};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per node. Claims and item writes are short single statements or short transactions.
const POOL_SIZE: u32 = 16;

/// PostgreSQL store, shared by every node of a cluster.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Woken by `NOTIFY keyfleet_jobs` from any node; the listener starts on first use.
    jobs_notified: std::sync::Arc<tokio::sync::Notify>,
    listener: std::sync::Arc<tokio::sync::OnceCell<()>>,
}

/// The channel every node's new jobs are announced on.
pub(crate) const JOBS_CHANNEL: &str = "keyfleet_jobs";

impl PgStore {
    /// Connects to a `postgres://` URL with a pool of 10 connections. Does not migrate: call `migrate`.
    pub async fn connect(url: &str) -> Result<Self> {
        // A node that is paused (or cut off) inside a transaction keeps its row locks until its session ends;
        // without a limit, one frozen node would freeze every job it touched on every node.
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?
            .options([("idle_in_transaction_session_timeout", "5000"), ("lock_timeout", "10000")]);
        let pool = PgPoolOptions::new().max_connections(POOL_SIZE).connect_with(options).await?;
        Ok(Self { pool, jobs_notified: Default::default(), listener: Default::default() })
    }

    /// Resolves when some node announces a new job (`LISTEN keyfleet_jobs`). The listener runs in the
    /// background from the first call on and reconnects after errors; callers keep polling as a fallback.
    pub(crate) async fn listen_jobs(&self) {
        self.listener
            .get_or_init(|| async {
                let pool = self.pool.clone();
                let notified = self.jobs_notified.clone();
                tokio::spawn(async move {
                    loop {
                        match sqlx::postgres::PgListener::connect_with(&pool).await {
                            Ok(mut listener) => {
                                if listener.listen(JOBS_CHANNEL).await.is_ok() {
                                    while listener.recv().await.is_ok() {
                                        notified.notify_waiters();
                                    }
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "LISTEN for new jobs failed; polling meanwhile"),
                        }
                        if pool.is_closed() {
                            return;
                        }
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                });
            })
            .await;
        self.jobs_notified.notified().await;
    }

    /// Applies the embedded migrations that have not run yet. Safe when several nodes start at once: sqlx
    /// holds an advisory lock while it migrates.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl Backend for PgStore {
    type Db = sqlx::Postgres;

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    async fn job_announced(&self) {
        self.listen_jobs().await
    }
}

impl Dialect for sqlx::Postgres {
    /// `row_no BIGINT GENERATED ALWAYS AS IDENTITY`: SQLite's `rowid`, made explicit.
    const ROW_NO: &'static str = "row_no";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const NAMED_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
    // Delivered at commit: other nodes wake at once instead of at their next poll.
    const ANNOUNCE_JOB: Option<&'static str> = Some("SELECT pg_notify('keyfleet_jobs', '')");
    // One round trip for a CCKM-sized job, bounded statements for a key list without the limit.
    const ITEMS_PER_INSERT: usize = 5_000;
    // A million-key list is many moderate statements rather than one huge one.
    const IDS_PER_LOOKUP: usize = 10_000;

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    /// One `text[]` parameter.
    fn push_in_list(q: &mut Query<Self>, expr: &str, values: Vec<String>) {
        q.push(&format!("{expr} = ANY(")).push_bind_with(|args| sqlx::Arguments::add(args, values)).push(")");
    }

    /// Containment of a one-string array: the aliases list holds exactly this string.
    fn push_has_alias(q: &mut Query<Self>, doc: &str, alias: &str) {
        q.push(&format!("({doc} -> 'aliases') @> jsonb_build_array(")).push_bind(alias).push("::text)");
    }

    fn push_alias_prefix(q: &mut Query<Self>, doc: &str, prefix: &str) {
        q.push(&format!(
            "EXISTS (SELECT 1 FROM jsonb_array_elements_text({doc} -> 'aliases') AS a(alias) WHERE starts_with(a.alias, "
        ))
        .push_bind(prefix)
        .push("))");
    }

    fn push_has_tag(q: &mut Query<Self>, doc: &str, key: &str, value: Option<&str>) {
        q.push(&format!("EXISTS (SELECT 1 FROM jsonb_array_elements({doc} -> 'tags') AS t(tag) WHERE t.tag ->> 0 = "))
            .push_bind(key);
        if let Some(v) = value {
            q.push(" AND t.tag ->> 1 = ").push_bind(v);
        }
        q.push(")");
    }
}

pub(crate) fn ts(t: DateTime<Utc>) -> i64 {
    to_micros(t)
}

pub(crate) fn get_ts(row: &PgRow, col: &str) -> Result<DateTime<Utc>> {
    Ok(from_micros(row.try_get::<i64, _>(col)?))
}

pub(crate) fn get_opt_ts(row: &PgRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

pub(crate) fn parse<T: FromStr>(row: &PgRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    s.parse().map_err(|_| StoreError::Corrupt(format!("{col} = {s:?}")))
}

/// Reads a jsonb column. A value of the wrong shape is `Corrupt`, as on SQLite, not a driver error.
pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<T> {
    let Json(v): Json<serde_json::Value> = row.try_get(col)?;
    serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// Binds a value as jsonb.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Json<&T> {
    Json(v)
}

/// `ORDER BY` clause from validated sort keys; `columns` maps API field names to SQL columns; `tie_breaker`
/// is the table's `row_no`, which keeps pages stable (SQLite's rowid). NULLs sort as SQLite sorts them:
/// before everything ascending, after everything descending.
pub(crate) fn order_by(sort: &[SortKey], columns: &[(&str, &str)], default: &str, tie_breaker: &str) -> String {
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
    parts.push(format!("{tie_breaker} ASC"));
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
            order_by(&[key("completed_at", false), key("createdAt", true), key("bogus", false)], cols, "x", "g.row_no"),
            " ORDER BY completed_at ASC NULLS FIRST, created_at DESC NULLS LAST, g.row_no ASC"
        );
    }
}
