//! Every store test runs on both backends: `sqlite::<name>` on a fresh SQLite file and `postgres::<name>` in a
//! fresh PostgreSQL database created from `KEYFLEET_TEST_DATABASE_URL` (dropped afterwards, even when the
//! test fails). Without that variable the PostgreSQL variants fail; they never pass by skipping.
#![allow(dead_code)] // each test binary uses part of this module

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::{PgStore, SqliteStore, Store};
use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

pub const DATABASE_URL_ENV: &str = "KEYFLEET_TEST_DATABASE_URL";

/// Declares each listed scenario, an `async fn(&TestDb)`, as two tests: `sqlite::<name>` and
/// `postgres::<name>` (so `cargo test -p keyfleet-store sqlite::` runs one backend).
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    let db = crate::common::TestDb::sqlite().await;
                    super::$scenario(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scenario() {
                    let db = crate::common::TestDb::postgres().await;
                    super::$scenario(&db).await;
                }
            )+
        }
    };
}

/// A migrated, empty store of its own.
pub struct TestDb {
    store: Box<dyn Store>,
    place: Place,
}

enum Place {
    Sqlite { _dir: tempfile::TempDir, store: SqliteStore },
    Postgres { admin_url: String, url: String, name: String },
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).await.expect("open SQLite");
        store.migrate().await.expect("migrate SQLite");
        Self { store: Box::new(store.clone()), place: Place::Sqlite { _dir: dir, store } }
    }

    pub async fn postgres() -> Self {
        let admin_url = std::env::var(DATABASE_URL_ENV).unwrap_or_default();
        if admin_url.is_empty() {
            panic!(
                "{DATABASE_URL_ENV} is not set, so this PostgreSQL test cannot run. Start a throwaway server \
                 with\n    export {DATABASE_URL_ENV}=$(scripts/pg-test-cluster start /tmp/kf-pg)\n\
                 and run the tests again (scripts/pg-test-cluster stop /tmp/kf-pg ends it), or run only the \
                 SQLite variants: cargo test -p keyfleet-store sqlite::"
            );
        }
        let name = format!("kf_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {DATABASE_URL_ENV}={admin_url}: {e}"));
        create_database(&mut admin, &name).await;
        admin.close().await.expect("close admin connection");
        let url = with_database(&admin_url, &name);
        // From here on, Drop removes the database whatever happens.
        let place = Place::Postgres { admin_url, url: url.clone(), name };
        let store = PgStore::connect(&url).await.expect("connect PostgreSQL");
        store.migrate().await.expect("migrate PostgreSQL");
        Self { store: Box::new(store), place }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// A store acting as one more keyfleet node on the same database: a connection pool of its own on
    /// PostgreSQL. SQLite is single-node (one writer per file), so there a "node" is another handle on the
    /// same pools, as two workers of one process have.
    pub async fn node(&self) -> Arc<dyn Store> {
        match &self.place {
            Place::Sqlite { store, .. } => Arc::new(store.clone()),
            Place::Postgres { url, .. } => Arc::new(PgStore::connect(url).await.expect("connect PostgreSQL")),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Place::Postgres { admin_url, name, .. } = &self.place else { return };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop cannot await, and the test's runtime cannot be blocked on: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                // FORCE ends the store's pooled connections, which are still open.
                admin.execute(AssertSqlSafe(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))).await?;
                admin.close().await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database: {e}"),
            Err(_) => eprintln!("could not drop test database: the dropping thread panicked"),
        }
    }
}

async fn create_database(admin: &mut PgConnection, name: &str) {
    // A linguistic default collation, in which "a" sorts before "B": the tests then prove that lists sort
    // byte-wise like SQLite because the schema says so, not because the test server runs in the C locale.
    let icu = format!(
        r#"CREATE DATABASE "{name}" TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"#
    );
    if let Err(e) = admin.execute(AssertSqlSafe(icu)).await {
        eprintln!("note: no ICU collation ({e}); the test database uses the server's default collation");
        admin.execute(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.expect("CREATE DATABASE");
    }
}

/// The URL with its database name replaced: `postgres://u@h:p/base?x=y` → `postgres://u@h:p/<db>?x=y`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    format!("{}/{db}{query}", &base[..path])
}

#[test]
fn with_database_replaces_only_the_database_name() {
    assert_eq!(with_database("postgres://u@h:1/base", "kf_x"), "postgres://u@h:1/kf_x");
    assert_eq!(with_database("postgres://u@h:1", "kf_x"), "postgres://u@h:1/kf_x");
    assert_eq!(with_database("postgres://u:p@h/base?sslmode=disable", "kf_x"), "postgres://u:p@h/kf_x?sslmode=disable");
}

// ---- fixtures ----

/// The partition most job tests use.
pub const P: &str = "111122223333/us-east-1";

pub fn job(total: i64) -> JobRecord {
    JobRecord {
        total,
        ..JobRecord::started(Cloud::Aws, Operation::DisableKey, JobParams::default(), UserId::new(), now())
    }
}

/// An in-progress sync job of `cloud` over nothing yet (callers set what it covers).
pub fn sync_job(cloud: &str, created_at: DateTime<Utc>) -> SyncJobRecord {
    SyncJobRecord {
        id: SyncJobId::new(),
        cloud: cloud.into(),
        kms: vec![],
        regions: vec![],
        vaults: vec![],
        take_cloud_key_backup: false,
        synchronize_all: false,
        status: JobStatus::InProgress,
        abort: false,
        detailed_status: std::collections::BTreeMap::new(),
        created_by: UserId::new(),
        created_at,
        updated_at: created_at,
        completed_at: None,
    }
}

pub fn items(n: usize) -> Vec<NewItem> {
    items_in(P, n)
}

pub fn items_in(partition: &str, n: usize) -> Vec<NewItem> {
    (0..n).map(|_| NewItem { key_id: KeyId::new(), partition: partition.to_string() }).collect()
}

pub fn success() -> ItemOutcome {
    ItemOutcome::Succeeded {
        detail: "Success".into(),
        state_before: Some("Enabled".into()),
        state_after: Some("Disabled".into()),
    }
}

pub fn later(t: DateTime<Utc>, seconds: i64) -> DateTime<Utc> {
    t + chrono::Duration::seconds(seconds)
}

/// A page of up to 100 rows sorted by `sort` (`"-field"` for descending).
pub fn page(skip: u64, limit: u64, sort: &[&str]) -> Page {
    Page {
        skip,
        limit,
        sort: sort
            .iter()
            .map(|s| match s.strip_prefix('-') {
                Some(f) => SortKey { field: f.to_string(), descending: true },
                None => SortKey { field: s.to_string(), descending: false },
            })
            .collect(),
    }
}

pub fn connection(name: &str) -> AwsConnectionRecord {
    let at = now();
    AwsConnectionRecord {
        id: ConnectionId::new(),
        name: name.into(),
        description: String::new(),
        access_key_id: "AKIAEXAMPLE".into(),
        secret_enc: vec![0, 1, 2, 254, 255],
        aws_region: "us-east-1".into(),
        assume_role_arn: None,
        assume_role_external_id: None,
        endpoint_url: Some("http://127.0.0.1:4599".into()),
        cloud_name: "aws".into(),
        created_at: at,
        updated_at: at,
    }
}

pub fn kms(name: &str, account: &str, connection: ConnectionId, regions: &[&str]) -> KmsRecord {
    let at = now();
    KmsRecord {
        id: KmsId::new(),
        name: name.into(),
        account_id: account.into(),
        connection_id: connection,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        quotas: Default::default(),
        created_at: at,
        updated_at: at,
    }
}

/// Key metadata as a sync reports it.
pub fn material(key_id: &str, state: &str, tags: &[(&str, &str)], aliases: &[&str]) -> AwsKeyMaterial {
    AwsKeyMaterial {
        key_id: key_id.into(),
        arn: format!("arn:aws:kms:us-east-1:111122223333:key/{key_id}"),
        account_id: "111122223333".into(),
        key_state: state.into(),
        enabled: state == "Enabled",
        description: String::new(),
        key_usage: "ENCRYPT_DECRYPT".into(),
        origin: "AWS_KMS".into(),
        key_manager: "CUSTOMER".into(),
        creation_date: Some(now()),
        deletion_date: None,
        multi_region: false,
        policy: "{}".into(),
        tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
    }
}
