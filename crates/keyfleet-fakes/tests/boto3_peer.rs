//! The official Python SDK (boto3), unmodified, against the fake over real HTTP:
//! runs `tests/peers/boto3_fake_kms.py`. Needs a Python with boto3: `KEYFLEET_TEST_PYTHON`,
//! else `<workspace>/.venv-peers/bin/python` (created by `scripts/test`). Fails, never skips,
//! when neither is usable.
#![allow(clippy::unwrap_used)]

mod python;

use keyfleet_fakes::FakeKms;

#[tokio::test]
async fn boto3_drives_the_fake_unmodified() {
    let python = python::python_with("boto3").await;

    let running = FakeKms::default().spawn().await.unwrap();
    let stdout = python::run_peer_script(&python, "boto3_fake_kms.py", &[running.url().as_ref()]).await;
    assert!(stdout.contains("checks passed"), "{stdout}");
    assert!(running.fake.calls().len() > 50, "the script's calls reached the fake");
}
