//! The official Python SDK (boto3), unmodified, against the fake over real HTTP:
//! runs `tests/peers/boto3_fake_kms.py`. Needs a Python with boto3: `KEYFLEET_TEST_PYTHON`,
//! else `<workspace>/.venv-peers/bin/python` (created by `scripts/test`). Fails, never skips,
//! when neither is usable.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyfleet_fakes::FakeKms;
use tokio::process::Command;

const SETUP_HINT: &str = "run `scripts/test` (it creates .venv-peers with boto3 and moto), or \
                          set KEYFLEET_TEST_PYTHON to a Python that can `import boto3`";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let (python, origin) = match std::env::var_os("KEYFLEET_TEST_PYTHON") {
        Some(python) => (PathBuf::from(python), "KEYFLEET_TEST_PYTHON"),
        None => (workspace_root().join(".venv-peers/bin/python"), "the default .venv-peers"),
    };
    assert!(python.exists(), "no Python interpreter at {} (from {origin}): {SETUP_HINT}", python.display());
    python
}

#[tokio::test]
async fn boto3_drives_the_fake_unmodified() {
    let python = python();
    let import = Command::new(&python)
        .args(["-c", "import boto3"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}: {SETUP_HINT}", python.display()));
    assert!(
        import.status.success(),
        "boto3 is not importable by {}: {}\n{SETUP_HINT}",
        python.display(),
        String::from_utf8_lossy(&import.stderr)
    );

    let running = FakeKms::default().spawn().await.unwrap();
    let script = workspace_root().join("tests/peers/boto3_fake_kms.py");
    let run = Command::new(&python).arg(&script).arg(running.url()).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the boto3 script finishes within 5 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        script.display(),
        output.status
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(running.fake.calls().len() > 50, "the script's calls reached the fake");
}
