//! Running an official Python SDK against a fake: find the interpreter, check the SDK imports, run a script
//! from `tests/peers/`. The interpreter is `KEYFLEET_TEST_PYTHON`, else `<workspace>/.venv-peers/bin/python`
//! (created by `scripts/test`); a missing interpreter or SDK fails the test, it never skips it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

const SETUP_HINT: &str = "run `scripts/test` (it creates .venv-peers from tests/peers/requirements.txt), or \
                          `.venv-peers/bin/pip install -r tests/peers/requirements.txt` for an existing venv, \
                          or set KEYFLEET_TEST_PYTHON to a Python with the packages of that file";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The interpreter, after checking that it can `import module`.
pub async fn python_with(module: &str) -> PathBuf {
    let (python, origin) = match std::env::var_os("KEYFLEET_TEST_PYTHON") {
        Some(python) => (PathBuf::from(python), "KEYFLEET_TEST_PYTHON"),
        None => (workspace_root().join(".venv-peers/bin/python"), "the default .venv-peers"),
    };
    assert!(python.exists(), "no Python interpreter at {} (from {origin}): {SETUP_HINT}", python.display());
    let import = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}: {SETUP_HINT}", python.display()));
    assert!(
        import.status.success(),
        "{module} is not importable by {}: {}\n{SETUP_HINT}",
        python.display(),
        String::from_utf8_lossy(&import.stderr)
    );
    python
}

/// Runs `tests/peers/<script>` with `args`; asserts it exits 0 and returns its stdout.
pub async fn run_peer_script(python: &Path, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let script = workspace_root().join("tests/peers").join(script);
    let run = Command::new(python).arg(&script).args(args).kill_on_drop(true).output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the peer script finishes within 5 minutes")
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        script.display(),
        output.status
    );
    stdout
}
