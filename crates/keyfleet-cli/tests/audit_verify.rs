//! `keyfleet audit verify` against a real database: exit 0 while the trail is intact; exit 1 naming the first
//! broken record after a row is edited, deleted or moved directly in the database (SQLite by default, PostgreSQL
//! with `KEYFLEET_TEST_BACKEND=postgres`).
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::json;
use sqlx::{Connection, Executor};
use support::{Server, test_database};

/// Runs `keyfleet audit verify` on the database; (exit code, stdout).
async fn verify(data: &std::path::Path, url: Option<&str>) -> (i32, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"));
    cmd.args(["audit", "verify", "--log", "warn", "--data-dir"]).arg(data);
    if let Some(url) = url {
        cmd.arg("--database-url").arg(url);
    }
    let out = cmd.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), stdout)
}

/// Runs SQL on the database behind the server's back.
async fn tamper(data: &std::path::Path, url: Option<&str>, sql: &str) {
    match url {
        Some(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            c.execute(sqlx::AssertSqlSafe(sql.to_string())).await.unwrap();
            c.close().await.unwrap();
        }
        None => {
            let path = data.join("keyfleet.db");
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
            c.execute(sqlx::AssertSqlSafe(sql.to_string())).await.unwrap();
            c.close().await.unwrap();
        }
    }
}

/// A stopped server's data directory and database, after it created `users`: (tempdir, data dir, URL).
async fn trail_of(users: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = test_database().await;
    let server = Server::start(&data, url.as_deref(), &[]).await;
    for name in users {
        let body = json!({"username": name, "password": format!("{name}-password-1")});
        server.call("POST", "/api/v1/usermgmt/users", body).await;
    }
    server.kill().await;
    (dir, data, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_passes_an_intact_trail_and_names_the_first_edited_deleted_or_moved_record() {
    let (_dir, data, url) = trail_of(&["ann", "bob", "cat", "dan"]).await;
    let url = url.as_deref();

    let (code, out) = verify(&data, url).await;
    assert_eq!(code, 0, "{out}");
    // The first start's built-in groups, admin and its membership; the admin's login; the four users.
    assert!(out.starts_with("audit trail intact: 10 records, head "), "{out}");

    // Edited: a record's resource rewritten.
    tamper(&data, url, "UPDATE audit_records SET resource = 'user:someone-else' WHERE seq = 3").await;
    let (code, out) = verify(&data, url).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("record 3") && out.contains("edited"), "{out}");

    // Moved: records 2 and 4 swap places (the edit of 3 is still there, but 2 comes first).
    tamper(&data, url, "UPDATE audit_records SET seq = -2 WHERE seq = 2").await;
    tamper(&data, url, "UPDATE audit_records SET seq = 2 WHERE seq = 4").await;
    tamper(&data, url, "UPDATE audit_records SET seq = 4 WHERE seq = -2").await;
    let (code, out) = verify(&data, url).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at record 2:"), "{out}");

    // Deleted: with the first record gone, the chain breaks where it starts.
    tamper(&data, url, "DELETE FROM audit_records WHERE seq = 1").await;
    let (code, out) = verify(&data, url).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at record 2:") && out.contains("expected record 1"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_a_deleted_record_in_the_middle_by_the_one_after_it() {
    let (_dir, data, url) = trail_of(&["eve", "fay", "gus"]).await;
    let url = url.as_deref();
    assert_eq!(verify(&data, url).await.0, 0);
    tamper(&data, url, "DELETE FROM audit_records WHERE seq = 3").await;
    let (code, out) = verify(&data, url).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BROKEN at record 4:") && out.contains("deleted"), "{out}");
}
