//! Secrets at rest and in logs.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn the_database_file_does_not_contain_the_aws_secret() {
    let mut app = TestApp::start().await;
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    // The secret works (a sync authenticates with it) ...
    let sync = app.sync("acct").await;
    assert_eq!(sync["overall_status"], "completed");
    // ... is never shown ...
    let conn = app.get("/api/v1/connectionmgmt/services/aws/connections/acct-conn").await.ok();
    assert!(!conn.to_string().contains(SECRET));
    assert!(conn.get("secret_access_key").is_none());
    // ... and is not stored in plain text anywhere in the database.
    app.stop().await;
    if app.is_postgres() {
        assert!(!postgres_contains(&app, SECRET).await, "secret in plain text in PostgreSQL");
        assert!(postgres_contains(&app, FAKE_ACCESS_KEY).await, "the check looks at the right database");
        return;
    }
    // SQLite: in no file of the data directory, WAL included.
    let mut found = Vec::new();
    for entry in std::fs::read_dir(app.dir.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()) {
                found.push(path);
            }
        }
    }
    assert!(found.is_empty(), "secret in plain text in {found:?}");
    let db = std::fs::read(app.db_path()).unwrap();
    assert!(
        db.windows(FAKE_ACCESS_KEY.len()).any(|w| w == FAKE_ACCESS_KEY.as_bytes()),
        "the check looks at the right file"
    );
}

#[tokio::test]
async fn patching_the_secret_keeps_it_encrypted_and_working() {
    let mut app = TestApp::start().await;
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1"]).await;
    let new_secret = "another-secret-value-1234567890";
    app.call(
        "PATCH",
        "/api/v1/connectionmgmt/services/aws/connections/acct-conn",
        Some(&app.admin.clone()),
        Some(json!({"secret_access_key": new_secret})),
    )
    .await
    .ok();
    assert_eq!(app.sync("acct").await["overall_status"], "completed");
    app.stop().await;
    if app.is_postgres() {
        assert!(!postgres_contains(&app, new_secret).await);
        return;
    }
    let db = std::fs::read(app.db_path()).unwrap();
    assert!(!db.windows(new_secret.len()).any(|w| w == new_secret.as_bytes()));
}

/// Does any row of any keyfleet table contain `needle` as text (bytea columns as their escaped text too)?
async fn postgres_contains(app: &TestApp, needle: &str) -> bool {
    use sqlx::{Connection, Row};
    let url = app.args().database_url.unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for t in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(r#"SELECT row_to_json(x)::text AS j FROM "{t}" x"#)))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for r in rows {
            let j: String = r.get("j");
            if j.contains(needle) || j.contains(&hex_of(needle)) {
                return true;
            }
        }
    }
    false
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_different_master_key_refuses_to_start() {
    let mut app = TestApp::start().await;
    app.stop().await;
    let other = keyfleet_core::crypto::MasterKey::generate().unwrap().to_base64();
    let config =
        keyfleet_server::Config::resolve(keyfleet_server::ServeArgs { master_key: Some(other.into()), ..app.args() })
            .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = keyfleet_server::start(config, listener, std::sync::Arc::new(keyfleet_clouds::SdkConnector::default()))
        .await
        .err()
        .expect("refuses to start");
    assert!(format!("{err:#}").contains("master key does not match"), "{err:#}");
}
