//! Files the server creates are private from the start: the data directory 0700, the database, the master
//! key, the TLS key and the generated admin password 0600.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn a_fresh_data_directory_holds_only_private_files() {
    let mut app = TestApp::start().await;
    // Something written, so that SQLite's WAL and shared-memory files exist.
    app.user("someone", None).await;
    let data = app.dir.path().join("data");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("tls")), 0o700, "tls directory");
    let mut private = vec!["master.key", "tls/key.pem"];
    if !app.is_postgres() {
        private.extend(["keyfleet.db", "keyfleet.db-wal", "keyfleet.db-shm"]);
    }
    for f in &private {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    // Nothing in the directory is readable by group or others.
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().is_some_and(|n| n != "tls") {
            assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
        }
    }
    app.stop().await;
}
