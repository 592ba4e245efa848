//! The embedded SQLite backend.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::Result;
use crate::sql::{Backend, Dialect, ListMarks, Query};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite store: one writer connection (SQLite has one writer at a time), several readers (WAL).
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The auth epoch: only this process writes the file (`lock.rs`), so it sees every change it must count.
    auth_epoch: Arc<AtomicU64>,
    marks: Arc<ListMarks>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file. Does not migrate: call `migrate`.
    ///
    /// A new file is created readable by its owner only (0600) before SQLite opens it; SQLite gives its
    /// `-wal` and `-shm` files the database file's mode, so no moment exists at which the data is readable by
    /// others.
    pub async fn open(path: &Path) -> Result<Self> {
        create_private(path).map_err(sqlx::Error::Io)?;
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let writer =
            SqlitePoolOptions::new().max_connections(1).connect_with(base.clone().create_if_missing(true)).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(base.read_only(true)).await?;
        Ok(Self { writer, reader, auth_epoch: Default::default(), marks: Default::default() })
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

/// Creates `path` empty with mode 0600 unless it exists (an empty file is an empty SQLite database).
fn create_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
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

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn auth_epoch(&self) -> Result<u64> {
        Ok(self.auth_epoch.load(Ordering::Acquire))
    }

    fn auth_changed(&self) {
        self.auth_epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn list_marks(&self) -> &ListMarks {
        &self.marks
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
    const RETRIES_FROM: &'static str = "job_items INDEXED BY job_items_retries";
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
        q.push(&format!("{expr} IN (SELECT value FROM json_each("))
            .push_bind(serde_json::to_string(&values).unwrap_or_default())
            .push("))");
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

    const TAG_KEY: &'static str = "json_extract(value, '$[0]')";
    const TAG_VALUE: &'static str = "json_extract(value, '$[1]')";

    fn tag_rows(doc: &str) -> String {
        format!("json_each({doc}, '$.tags')")
    }
}
