//! `keyfleet config check FILE`: validates a configuration file the way `keyfleet serve --config FILE` reads it
//! (with the `KEYFLEET_*` environment over it) and prints the effective settings, secrets redacted.

use std::path::PathBuf;

use crate::config::{Config, Environment, ServeArgs};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE (unknown keys, types, ranges) and print the effective settings with secrets redacted;
    /// exits non-zero naming the problem when it is not valid
    Check {
        /// The TOML file `keyfleet serve --config` would read.
        file: PathBuf,
    },
}

/// Runs a `keyfleet config` command; the report goes to stdout.
pub fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Check { file } => {
            print!("{}", check(file, &Environment::process())?);
            Ok(())
        }
    }
}

/// The report of `config check`: a header naming the sources, then the effective settings as TOML.
pub fn check(file: PathBuf, env: &Environment) -> anyhow::Result<String> {
    let shown = file.display().to_string();
    let config = Config::load(ServeArgs { config_file: Some(file), ..Default::default() }, env)?;
    Ok(format!(
        "# {shown} is valid. Effective settings (defaults < file < KEYFLEET_* environment), secrets redacted:\n{}",
        config.effective_toml()?
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prints_the_effective_settings_with_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.toml");
        std::fs::write(
            &file,
            "database_url = \"postgres://kf:db-secret@db:5432/kf?password=q-secret\"\nmetrics_token = \"m-secret\"\n",
        )
        .unwrap();
        let env = Environment::from_vars([("KEYFLEET_MASTER_KEY", "k-secret"), ("KEYFLEET_WORKERS", "7")]);
        let out = check(file, &env).unwrap();
        for secret in ["db-secret", "q-secret", "m-secret", "k-secret"] {
            assert!(!out.contains(secret), "{secret} shown:\n{out}");
        }
        assert!(out.contains("database_url = \"postgres://kf:***@db:5432/kf?password=***\"\n"), "{out}");
        assert!(out.contains("metrics_token = \"[REDACTED]\"\n"), "{out}");
        assert!(out.contains("master_key = \"[REDACTED]\"\n"), "{out}");
        assert!(out.contains("workers = 7\n"), "the environment applies:\n{out}");
        assert!(out.contains("# admin_password = (not set)\n"), "{out}");
    }
}
