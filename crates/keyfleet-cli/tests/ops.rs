//! Operating the real binary: one process per SQLite data directory; `keyfleet config check`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

mod support;

use support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_directory_exits_at_once_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start(&data, None, &[]).await;

    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn", "--data-dir"])
        .arg(&data)
        .env("KEYFLEET_ADMIN_PASSWORD", "lock-test-password-123")
        .kill_on_drop(true)
        .output();
    // It exits by itself; the limit only bounds a broken run (which would otherwise serve forever).
    let out = tokio::time::timeout(Duration::from_secs(60), second).await.expect("the second process exits").unwrap();
    assert!(!out.status.success(), "the second process must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("in use by another keyfleet process (pid {})", first.pid)), "{stderr}");
    assert!(stderr.contains("keyfleet.lock"), "{stderr}");
    assert!(out.stdout.is_empty(), "it never served: {}", String::from_utf8_lossy(&out.stdout));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("keyfleet.lock")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A killed holder leaves no stale lock: the kernel drops it with the process.
    first.kill().await;
    let again = Server::start(&data, None, &[]).await;
    assert_eq!(std::fs::read_to_string(data.join("keyfleet.lock")).unwrap().trim(), again.pid.to_string());
}

fn config_check(file: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
        .args(["config", "check"])
        .arg(file)
        .env_remove("KEYFLEET_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn the_shipped_configuration_is_valid_and_lists_every_setting() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/keyfleet.toml");
    let out = config_check(&shipped);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(stdout.contains("data_dir = \"/var/lib/keyfleet\"\n"), "the file's value: {stdout}");
    // Every setting the server knows is documented in the shipped file, set or commented out.
    let text = std::fs::read_to_string(&shipped).unwrap();
    let settings: Vec<&str> = stdout
        .lines()
        .filter(|l| !l.starts_with("# ") || l.ends_with("(not set)"))
        .filter_map(|l| l.trim_start_matches("# ").split(" = ").next())
        .collect();
    assert!(settings.len() >= 30, "{stdout}");
    for setting in settings {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{setting} = ")) || l.starts_with(&format!("# {setting} = "))),
            "deploy/keyfleet.toml does not document {setting}"
        );
    }
}

#[test]
fn config_check_rejects_an_unknown_key_naming_it_and_a_bad_value_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("k.toml");
    std::fs::write(&file, "workers = 8\nwrokers = 16\n").unwrap();
    let out = config_check(&file);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("wrokers"), "{stderr}");
    assert!(out.stdout.is_empty());

    std::fs::write(&file, "lease_ttl_secs = 1\n").unwrap();
    let out = config_check(&file);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lease_ttl_secs"));

    let out = config_check(&dir.path().join("missing.toml"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}
