//! `keyfleet fake-aws`: the fake as a standalone server for demos and manual testing.

use anyhow::Context as _;
use tokio::net::TcpListener;

use super::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, DEFAULT_REGION, FakeKms, FakeKmsConfig};

/// Serve a strict fake AWS KMS (JSON 1.1 protocol) over plain HTTP.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct FakeAwsArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks any free port.
    #[arg(long, default_value_t = 4599)]
    pub port: u16,
    /// Keys to create at start, in each seed region.
    #[arg(long, default_value_t = 0)]
    pub seed_keys: usize,
    /// Account the seed keys belong to.
    #[arg(long, default_value = BUILTIN_ACCOUNT_ID, value_parser = parse_account_id)]
    pub seed_account: String,
    /// Region(s) to seed keys in; repeat the flag or give a comma-separated list.
    #[arg(long = "seed-region", value_name = "REGION", value_delimiter = ',', default_value = DEFAULT_REGION)]
    pub seed_regions: Vec<String>,
    /// Map an access key id to an account (repeatable), in addition to the built-in
    /// AKIAFAKEKMS000000001=111122223333.
    #[arg(long = "account", value_name = "AKID=ACCOUNT", value_parser = parse_account_mapping)]
    pub accounts: Vec<(String, String)>,
}

impl Default for FakeAwsArgs {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 4599,
            seed_keys: 0,
            seed_account: BUILTIN_ACCOUNT_ID.to_owned(),
            seed_regions: vec![DEFAULT_REGION.to_owned()],
            accounts: Vec::new(),
        }
    }
}

fn parse_account_id(value: &str) -> Result<String, String> {
    if value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value.to_owned())
    } else {
        Err(format!("'{value}' is not a 12-digit AWS account id"))
    }
}

fn parse_account_mapping(value: &str) -> Result<(String, String), String> {
    let (access_key_id, account) = value.split_once('=').ok_or_else(|| format!("'{value}' is not AKID=ACCOUNT"))?;
    if access_key_id.is_empty() {
        return Err(format!("'{value}' has an empty access key id"));
    }
    Ok((access_key_id.to_owned(), parse_account_id(account)?))
}

/// Serves until Ctrl-C. Prints one line to stdout with the URL, the built-in credentials and
/// the number of seeded keys.
pub async fn run(args: FakeAwsArgs) -> anyhow::Result<()> {
    let config =
        FakeKmsConfig { accounts: FakeKmsConfig::default().accounts.into_iter().chain(args.accounts).collect() };
    let fake = FakeKms::new(config);
    let seeded: usize =
        args.seed_regions.iter().map(|region| fake.create_keys(&args.seed_account, region, args.seed_keys).len()).sum();

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr().context("listener has no address")?;
    println!(
        "fake AWS KMS listening on http://{addr} | credentials: access key {BUILTIN_ACCESS_KEY_ID}, \
         any secret -> account {BUILTIN_ACCOUNT_ID} | seeded {seeded} keys in account {} region(s) {}",
        args.seed_account,
        args.seed_regions.join(",")
    );
    tracing::info!(url = %format!("http://{addr}"), seeded, "fake AWS KMS started");

    axum::serve(listener, fake.router())
        .with_graceful_shutdown(async {
            // If the signal handler cannot be installed, serve until killed instead.
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("fake AWS KMS server failed")?;
    tracing::info!("fake AWS KMS stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: FakeAwsArgs,
    }

    #[test]
    fn defaults_match_default_impl() {
        let cli = Cli::try_parse_from(["fake-aws"]).unwrap();
        assert_eq!(cli.args, FakeAwsArgs::default());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "fake-aws",
            "--port",
            "0",
            "--seed-keys",
            "5",
            "--seed-region",
            "us-east-1,eu-west-1",
            "--seed-region",
            "ap-south-1",
            "--account",
            "AKIAOTHER=444455556666",
            "--account",
            "AKIATHIRD=777788889999",
        ])
        .unwrap();
        assert_eq!(cli.args.port, 0);
        assert_eq!(cli.args.seed_keys, 5);
        assert_eq!(cli.args.seed_regions, ["us-east-1", "eu-west-1", "ap-south-1"]);
        assert_eq!(
            cli.args.accounts,
            [("AKIAOTHER".to_owned(), "444455556666".to_owned()), ("AKIATHIRD".to_owned(), "777788889999".to_owned())]
        );
        assert!(Cli::try_parse_from(["fake-aws", "--account", "AKIA=12"]).is_err());
        assert!(Cli::try_parse_from(["fake-aws", "--seed-account", "x"]).is_err());
    }
}
