//! `keyfleet completions SHELL` prints a completion script the shell accepts, covering the client commands.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn completions(shell: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_keyfleet")).args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_is_valid_bash_and_knows_the_commands() {
    let script = completions("bash");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keyfleet.bash");
    std::fs::write(&file, &script).unwrap();
    let check =
        Command::new("bash").arg("-n").arg(&file).output().expect("bash is needed to check the bash completion script");
    assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
    for word in ["bulkjob", "retry-failed", "revert", "confirm", "--session", "--output"] {
        assert!(script.contains(word), "no {word} in the bash completion");
    }
}

#[test]
fn zsh_and_fish_completions_name_the_commands_and_an_unknown_shell_is_refused() {
    for shell in ["zsh", "fish"] {
        let script = completions(shell);
        assert!(script.contains("bulkjob") && script.contains("revert"), "{shell}: {script:.200}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_keyfleet")).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
