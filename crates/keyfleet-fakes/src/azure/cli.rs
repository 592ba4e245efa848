//! `keyfleet fake-azure`: the fake as a standalone HTTPS server for demos and manual testing.

use std::net::ToSocketAddrs as _;
use std::path::PathBuf;

use anyhow::Context as _;

use super::{
    BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET, BUILTIN_TENANT_ID, DEFAULT_VAULT, FakeVault, FakeVaultConfig,
    ThrottleConfig,
};
use crate::common::CallFaultArgs;

/// Serve a strict fake Azure Key Vault (keys data plane) and Entra ID token endpoint over HTTPS.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct FakeAzureArgs {
    /// Address to listen on; the server certificate also covers it.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks any free port.
    #[arg(long, default_value_t = 4600)]
    pub port: u16,
    /// Vault(s) to announce and seed; repeat the flag or give a comma-separated list. Other
    /// vault names work too: a vault exists as soon as a request names it.
    #[arg(long = "vault", value_name = "NAME", value_delimiter = ',', default_value = DEFAULT_VAULT,
          value_parser = parse_vault_name)]
    pub vaults: Vec<String>,
    /// RSA-2048 keys to create at start in each vault (`key-0001`, `key-0002`...).
    #[arg(long, default_value_t = 0)]
    pub seed_keys: usize,
    /// Write the PEM of the generated CA here: clients must trust it.
    #[arg(long, value_name = "PATH")]
    pub ca_out: Option<PathBuf>,
    /// Admit at most N requests per vault in any 10-second window (Key Vault's limit for software
    /// keys is 4000); the rest answer 429 with Retry-After.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub vault_limit_per_10s: Option<u32>,
    /// Server errors (500 InternalServerError, 503 ServiceUnavailable), latency and jitter.
    #[command(flatten)]
    pub calls: CallFaultArgs,
}

impl Default for FakeAzureArgs {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 4600,
            vaults: vec![DEFAULT_VAULT.to_owned()],
            seed_keys: 0,
            ca_out: None,
            vault_limit_per_10s: None,
            calls: CallFaultArgs::default(),
        }
    }
}

impl FakeAzureArgs {
    /// The throttling and faults these flags ask for.
    pub fn throttle(&self) -> ThrottleConfig {
        ThrottleConfig {
            vault_limit_per_10s: self.vault_limit_per_10s,
            error_5xx: self.calls.error_rate,
            latency_ms: self.calls.latency_ms,
            latency_jitter_ms: self.calls.latency_jitter_ms,
            seed: self.calls.fault_seed,
            ..ThrottleConfig::default()
        }
    }
}

fn parse_vault_name(value: &str) -> Result<String, String> {
    super::protocol::check_vault_name(value).map(|()| value.to_ascii_lowercase()).map_err(|err| err.message)
}

/// Serves until Ctrl-C. Prints one line to stdout with the URL, the built-in Entra ID client,
/// the token URL and the vault URLs.
pub async fn run(args: FakeAzureArgs) -> anyhow::Result<()> {
    let config = FakeVaultConfig { tls_names: vec![args.host.clone()], ..FakeVaultConfig::default() };
    let fake = FakeVault::new(config);
    let throttle = args.throttle();
    fake.set_throttle(throttle.clone());
    for vault in &args.vaults {
        fake.create_keys(vault, args.seed_keys);
    }

    let addr = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", args.host))?
        .next()
        .with_context(|| format!("{} has no address", args.host))?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let running = fake.spawn_on(listener).await.context("cannot start the fake Azure Key Vault")?;
    if let Some(path) = &args.ca_out {
        std::fs::write(path, running.ca_pem()).with_context(|| format!("cannot write the CA to {}", path.display()))?;
    }

    let vault_urls: Vec<String> = args.vaults.iter().map(|v| running.vault_url(v)).collect();
    println!(
        "fake Azure Key Vault listening on {} | Entra ID: tenant {BUILTIN_TENANT_ID}, client {BUILTIN_CLIENT_ID}, \
         secret {BUILTIN_CLIENT_SECRET}, token URL {} | vaults: {} ({} keys each) | CA: {} | faults: {throttle:?}",
        running.url(),
        running.token_url(BUILTIN_TENANT_ID),
        vault_urls.join(" "),
        args.seed_keys,
        args.ca_out.as_ref().map_or_else(|| "not written (use --ca-out)".to_owned(), |p| p.display().to_string()),
    );
    tracing::info!(url = %running.url(), vaults = args.vaults.len(), seeded = args.seed_keys, "fake Azure Key Vault started");

    // If the signal handler cannot be installed, serve until killed instead.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    drop(running);
    tracing::info!("fake Azure Key Vault stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::common::parse_args;

    #[test]
    fn flags_parse() {
        let args: FakeAzureArgs = parse_args(&[
            "fake-azure",
            "--vault",
            "Prod-1,staging",
            "--vault",
            "dev",
            "--seed-keys",
            "3",
            "--ca-out",
            "/tmp/ca.pem",
        ])
        .unwrap();
        assert_eq!(args.vaults, ["prod-1", "staging", "dev"]);
        assert_eq!(args.seed_keys, 3);
        assert_eq!(args.ca_out.as_deref(), Some(std::path::Path::new("/tmp/ca.pem")));
        assert!(parse_args::<FakeAzureArgs>(&["fake-azure", "--vault", "x"]).is_err());
        assert!(parse_args::<FakeAzureArgs>(&["fake-azure", "--vault", "bad_name"]).is_err());
        assert_eq!(args.throttle(), ThrottleConfig::default());
    }

    #[test]
    fn fault_flags_parse() {
        let args: FakeAzureArgs = parse_args(&[
            "fake-azure",
            "--vault-limit-per-10s",
            "4000",
            "--error-rate",
            "0.05",
            "--latency-jitter-ms",
            "50",
            "--fault-seed",
            "3",
        ])
        .unwrap();
        let expected = ThrottleConfig {
            vault_limit_per_10s: Some(4000),
            error_5xx: 0.05,
            latency_jitter_ms: 50,
            seed: Some(3),
            ..ThrottleConfig::default()
        };
        assert_eq!(args.throttle(), expected);
        assert!(parse_args::<FakeAzureArgs>(&["fake-azure", "--error-rate", "2"]).is_err());
    }
}
