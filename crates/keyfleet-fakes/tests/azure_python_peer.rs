//! The official Python client (azure-keyvault-keys), unmodified, against the fake over real
//! HTTPS: runs `tests/peers/azure_keyvault_keys.py`. Needs a Python that can import
//! `azure.keyvault.keys`: `KEYFLEET_TEST_PYTHON`, else `<workspace>/.venv-peers/bin/python`
//! (created by `scripts/test`). Fails, never skips, when neither is usable.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyfleet_fakes::FakeVault;
use tokio::process::Command;

const SETUP_HINT: &str = "run `scripts/test` (it creates .venv-peers from tests/peers/requirements.txt), or \
                          `.venv-peers/bin/pip install -r tests/peers/requirements.txt` for an existing venv, \
                          or set KEYFLEET_TEST_PYTHON to a Python that can `import azure.keyvault.keys`";

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
async fn azure_keyvault_keys_drives_the_fake_unmodified() {
    let python = python();
    let import = Command::new(&python)
        .args(["-c", "import azure.keyvault.keys"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}: {SETUP_HINT}", python.display()));
    assert!(
        import.status.success(),
        "azure.keyvault.keys is not importable by {}: {}\n{SETUP_HINT}",
        python.display(),
        String::from_utf8_lossy(&import.stderr)
    );

    let running = FakeVault::default().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, running.ca_pem()).unwrap();
    let script = workspace_root().join("tests/peers/azure_keyvault_keys.py");
    let run = Command::new(&python).arg(&script).arg(running.url()).arg(&ca).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the script finishes within 5 minutes")
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
    assert!(stdout.contains("azure-keyvault-keys fake-vault:") && stdout.contains("checks passed"), "{stdout}");

    let calls = running.fake.calls();
    assert!(calls.len() > 50, "the script's calls reached the fake: {}", calls.len());
    assert!(calls.iter().any(|c| c.status == 401), "the SDK went through the bearer challenge");
    assert!(calls.iter().any(|c| c.status == 429), "the SDK met throttling");
    assert!(running.fake.backup_count() >= 1);
    // The main client, two clients with other api-versions, and the wrong-secret client.
    assert!(running.fake.token_requests() <= 4, "tokens are cached: {}", running.fake.token_requests());
}
