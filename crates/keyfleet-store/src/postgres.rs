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

use std::str::FromStr;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::Result;
use crate::sql::{Backend, Dialect, ListMarks, Query};

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
    marks: std::sync::Arc<ListMarks>,
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
        Ok(Self { pool, jobs_notified: Default::default(), listener: Default::default(), marks: Default::default() })
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

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// Read on every authenticated request: one primary-key row, moved by the triggers of migration 0009 in
    /// the transaction of every change, so every node sees a change from its next request on.
    async fn auth_epoch(&self) -> Result<u64> {
        let row =
            Query::<sqlx::Postgres>::new("SELECT epoch FROM auth_epoch WHERE id = 1").fetch_one(&self.pool).await?;
        Ok(crate::sql::Fields::<sqlx::Postgres>(&row).int("epoch")? as u64)
    }

    fn list_marks(&self) -> &ListMarks {
        &self.marks
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
    const RETRIES_FROM: &'static str = "job_items";
    const NAMED_LOCK: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
    // On `JOBS_CHANNEL`; delivered at commit: other nodes wake at once instead of at their next poll.
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

    const TAG_KEY: &'static str = "t.tag ->> 0";
    const TAG_VALUE: &'static str = "t.tag ->> 1";

    fn tag_rows(doc: &str) -> String {
        format!("jsonb_array_elements({doc} -> 'tags') AS t(tag)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_jobs_are_announced_on_the_channel_nodes_listen_on() {
        let announce = <sqlx::Postgres as Dialect>::ANNOUNCE_JOB.unwrap_or_default();
        assert!(announce.contains(&format!("'{JOBS_CHANNEL}'")), "{announce}");
    }
}
