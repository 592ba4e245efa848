//! The official Python client (azure-keyvault-keys), unmodified, against the fake over real
//! HTTPS: runs `tests/peers/azure_keyvault_keys.py`. Needs a Python that can import
//! `azure.keyvault.keys`: `KEYFLEET_TEST_PYTHON`, else `<workspace>/.venv-peers/bin/python`
//! (created by `scripts/test`). Fails, never skips, when neither is usable.
#![allow(clippy::unwrap_used)]

mod python;

use keyfleet_fakes::FakeVault;

#[tokio::test]
async fn azure_keyvault_keys_drives_the_fake_unmodified() {
    let python = python::python_with("azure.keyvault.keys").await;

    let running = FakeVault::default().spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, running.ca_pem()).unwrap();
    let stdout =
        python::run_peer_script(&python, "azure_keyvault_keys.py", &[running.url().as_ref(), ca.as_os_str()]).await;
    assert!(stdout.contains("azure-keyvault-keys fake-vault:") && stdout.contains("checks passed"), "{stdout}");

    let calls = running.fake.calls();
    assert!(calls.len() > 50, "the script's calls reached the fake: {}", calls.len());
    assert!(calls.iter().any(|c| c.status == 401), "the SDK went through the bearer challenge");
    assert!(calls.iter().any(|c| c.status == 429), "the SDK met throttling");
    assert!(running.fake.backup_count() >= 1);
    // The main client, two clients with other api-versions, and the wrong-secret client.
    assert!(running.fake.token_requests() <= 4, "tokens are cached: {}", running.fake.token_requests());
}
