//! Where a benchmark's `keyfleet serve` keeps its data: the SQLite file in its data directory (the default), or
//! a fresh database on a PostgreSQL server — `--database-url`, else `KEYFLEET_TEST_DATABASE_URL`, else a
//! throwaway cluster the benchmark starts with `scripts/pg-test-cluster` and stops again.

use std::path::{Path, PathBuf};

use anyhow::Context;
use keyfleet_core::AwsKeyMaterial;
use keyfleet_fakes::BUILTIN_ACCOUNT_ID;
use keyfleet_store::{AwsRegionKeys, AwsWorkStore, InventoryStore, PgStore, SqliteStore};
use sqlx::{Connection, Executor};

/// Keys per `sync_aws_region` call (one transaction each).
pub const CHUNK: usize = 50_000;

/// The store of one keyfleet run.
pub enum Database {
    Sqlite,
    Postgres(PgDatabase),
}

impl Database {
    /// `keyfleet serve` flags that select this store.
    pub fn server_args(&self) -> Vec<String> {
        match self {
            Database::Sqlite => Vec::new(),
            Database::Postgres(pg) => vec!["--database-url".into(), pg.url.clone()],
        }
    }

    /// How the table names this store.
    pub fn label(&self) -> String {
        match self {
            Database::Sqlite => "SQLite file (WAL, `synchronous=FULL`: every commit fsynced)".into(),
            Database::Postgres(pg) => format!("PostgreSQL {} ({})", pg.version, pg.settings),
        }
    }

    /// Writes `keys` (KeyIds per region of the builtin account) into the inventory of container `kms`, as a
    /// sync would, straight through the store (the server must be stopped when the store is SQLite).
    pub async fn write_inventory(&self, data: &Path, kms: &str, keys: &[(&str, Vec<String>)]) -> anyhow::Result<()> {
        match self {
            Database::Sqlite => {
                let store = SqliteStore::open(&data.join("keyfleet.db")).await?;
                write_inventory(&store, kms, keys).await?;
                store.close().await;
            }
            Database::Postgres(pg) => {
                let store = PgStore::connect(&pg.url).await?;
                write_inventory(&store, kms, keys).await?;
            }
        }
        Ok(())
    }
}

/// One `sync_aws_region` call per chunk of a region, all with the same sync time (so that no chunk marks the
/// keys of an earlier one as gone).
async fn write_inventory<S: InventoryStore + AwsWorkStore>(
    store: &S,
    kms: &str,
    keys: &[(&str, Vec<String>)],
) -> anyhow::Result<()> {
    let kms = store.kms_by_name(kms).await?.with_context(|| format!("no KMS container {kms}"))?;
    let at = chrono::Utc::now();
    for (region, ids) in keys {
        for chunk in ids.chunks(CHUNK) {
            let materials: Vec<AwsKeyMaterial> = chunk
                .iter()
                .map(|id| AwsKeyMaterial {
                    key_id: id.clone(),
                    arn: format!("arn:aws:kms:{region}:{BUILTIN_ACCOUNT_ID}:key/{id}"),
                    account_id: BUILTIN_ACCOUNT_ID.to_owned(),
                    key_state: "Enabled".into(),
                    enabled: true,
                    description: String::new(),
                    key_usage: "ENCRYPT_DECRYPT".into(),
                    origin: "AWS_KMS".into(),
                    key_manager: "CUSTOMER".into(),
                    creation_date: Some(at),
                    ..Default::default()
                })
                .collect();
            store.sync_aws_region(&AwsRegionKeys { kms_id: kms.id, region, keys: &materials }, at).await?;
        }
    }
    Ok(())
}

/// A PostgreSQL server benchmarks create their databases on.
pub struct PgServer {
    admin_url: String,
    /// How it was found, for the table.
    pub origin: String,
    /// The cluster directory when this benchmark started the server (stopped by [`PgServer::stop`]).
    started: Option<PathBuf>,
}

impl PgServer {
    /// `url`, else `KEYFLEET_TEST_DATABASE_URL`, else a cluster started with `scripts/pg-test-cluster`.
    pub fn find(url: Option<&str>) -> anyhow::Result<PgServer> {
        if let Some(url) = url {
            return Ok(PgServer { admin_url: url.to_owned(), origin: "`--database-url`".into(), started: None });
        }
        if let Ok(url) = std::env::var("KEYFLEET_TEST_DATABASE_URL")
            && !url.is_empty()
        {
            return Ok(PgServer { admin_url: url, origin: "`KEYFLEET_TEST_DATABASE_URL`".into(), started: None });
        }
        // A path its `postgres` user can reach when we are root (see the script).
        let dir = PathBuf::from(format!("/tmp/keyfleet-bench-pg-{}", std::process::id()));
        let out = std::process::Command::new("scripts/pg-test-cluster")
            .arg("start")
            .arg(&dir)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running scripts/pg-test-cluster (run from the workspace root)")?;
        anyhow::ensure!(out.status.success(), "scripts/pg-test-cluster start failed");
        let url = String::from_utf8(out.stdout)?.trim().to_owned();
        Ok(PgServer {
            admin_url: url,
            origin: "a throwaway cluster (`scripts/pg-test-cluster`)".into(),
            started: Some(dir),
        })
    }

    /// A new empty database `name` (dropped first if a previous run left it).
    pub async fn database(&self, name: &str) -> anyhow::Result<PgDatabase> {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await.context("connecting to PostgreSQL")?;
        conn.execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await?;
        conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await?;
        let show = |what: &'static str| sqlx::query_scalar::<_, String>(what);
        let fsync = show("SHOW fsync").fetch_one(&mut conn).await?;
        let commit = show("SHOW synchronous_commit").fetch_one(&mut conn).await?;
        let version = show("SHOW server_version").fetch_one(&mut conn).await?;
        conn.close().await?;
        let base = self.admin_url.split('?').next().unwrap_or(&self.admin_url);
        let url = format!("{}/{name}", base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base));
        Ok(PgDatabase {
            url,
            admin_url: self.admin_url.clone(),
            name: name.to_owned(),
            version: version.split_whitespace().next().unwrap_or_default().to_owned(),
            settings: format!("`fsync={fsync}`, `synchronous_commit={commit}`; server: {}", self.origin),
        })
    }

    /// Stops the cluster if this benchmark started it.
    pub fn stop(self) {
        if let Some(dir) = self.started {
            let _ = std::process::Command::new("scripts/pg-test-cluster").arg("stop").arg(&dir).status();
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// A database a benchmark created; [`PgDatabase::drop_now`] removes it.
pub struct PgDatabase {
    pub url: String,
    admin_url: String,
    name: String,
    version: String,
    settings: String,
}

impl PgDatabase {
    pub async fn drop_now(&self) -> anyhow::Result<()> {
        let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
        conn.execute(sqlx::AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name))).await?;
        conn.close().await?;
        Ok(())
    }
}
