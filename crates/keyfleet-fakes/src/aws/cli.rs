//! `keyfleet fake-aws`: the fake as a standalone server for demos and manual testing.

use anyhow::Context as _;
use tokio::net::TcpListener;

use std::time::Duration;

use crate::common::{CallFaultArgs, parse_probability};

use super::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, DEFAULT_REGION, FakeKms, FakeKmsConfig, Faults, QuotaConfig};

/// Serve a strict fake AWS KMS (JSON 1.1 protocol) over plain HTTP.
///
/// Faults (all off by default) apply to KMS calls only, never to the /_fake control routes,
/// and can be changed while running with PUT /_fake/faults.
#[derive(clap::Args, Debug, Clone, PartialEq)]
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
    /// Enforce AWS KMS's default request quotas per account, region and operation (EnableKey,
    /// DisableKey 5/s, ScheduleKeyDeletion 15/s, DescribeKey 2000/s, ...): ThrottlingException above.
    #[arg(long, help_heading = "Faults")]
    pub quotas: bool,
    /// Multiply every default quota by X (implies --quotas).
    #[arg(long, value_name = "X", value_parser = parse_scale, help_heading = "Faults")]
    pub quota_scale: Option<f64>,
    /// Set one operation's quota in requests per second, unscaled (repeatable; implies --quotas).
    #[arg(long = "quota", value_name = "OP=RATE", value_parser = parse_quota, help_heading = "Faults")]
    pub quota_overrides: Vec<(String, f64)>,
    /// Throttle a change to a key (Enable/Disable/ScheduleDeletion/CancelDeletion/PutKeyPolicy/
    /// Tag/Untag) sooner than N ms after the previous change to the same key.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub per_key_interval_ms: Option<u64>,
    /// Server errors (500 KMSInternalException, 503 ServiceUnavailableException), latency and jitter.
    #[command(flatten)]
    pub calls: CallFaultArgs,
    /// Probability that a call is delayed, when --latency-ms or --latency-jitter-ms is set.
    #[arg(long, value_name = "P", default_value_t = 1.0, value_parser = parse_probability, help_heading = "Faults")]
    pub latency_rate: f64,
    /// Probability that the connection is closed without an answer, before the call is applied.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Faults")]
    pub drop_rate: f64,
    /// Probability that a successful call is applied and then its connection closed without an
    /// answer (the client cannot know that the change happened).
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Faults")]
    pub drop_after_apply_rate: f64,
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
            quotas: false,
            quota_scale: None,
            quota_overrides: Vec::new(),
            per_key_interval_ms: None,
            calls: CallFaultArgs::default(),
            latency_rate: 1.0,
            drop_rate: 0.0,
            drop_after_apply_rate: 0.0,
        }
    }
}

impl FakeAwsArgs {
    /// The faults these flags ask for.
    pub fn faults(&self) -> Faults {
        let quotas = (self.quotas || self.quota_scale.is_some() || !self.quota_overrides.is_empty())
            .then(|| QuotaConfig { scale: self.quota_scale.unwrap_or(1.0), overrides: self.quota_overrides.clone() });
        let calls = &self.calls;
        Faults {
            quotas,
            per_key_min_interval: self.per_key_interval_ms.map(Duration::from_millis),
            error_5xx: calls.error_rate,
            latency: if calls.delays() { self.latency_rate } else { 0.0 },
            latency_ms: calls.latency_ms,
            latency_jitter_ms: calls.latency_jitter_ms,
            drop_connection: self.drop_rate,
            drop_after_apply: self.drop_after_apply_rate,
            seed: calls.fault_seed,
        }
    }
}

fn parse_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!("'{value}' is not a number >= 0")),
    }
}

fn parse_scale(value: &str) -> Result<f64, String> {
    parse_rate(value)
}

fn parse_quota(value: &str) -> Result<(String, f64), String> {
    let (operation, rate) = value.split_once('=').ok_or_else(|| format!("'{value}' is not OP=RATE"))?;
    if operation.is_empty() || !operation.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(format!("'{operation}' is not a KMS operation name (e.g. DisableKey)"));
    }
    Ok((operation.to_owned(), parse_rate(rate)?))
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
    let faults = args.faults();
    faults.validate().map_err(|e| anyhow::anyhow!("invalid fault flags: {e}"))?;
    let config = FakeKmsConfig {
        accounts: FakeKmsConfig::default().accounts.into_iter().chain(args.accounts).collect(),
        faults: faults.clone(),
    };
    let fake = FakeKms::new(config);
    let seeded: usize =
        args.seed_regions.iter().map(|region| fake.create_keys(&args.seed_account, region, args.seed_keys).len()).sum();

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr().context("listener has no address")?;
    println!(
        "fake AWS KMS listening on http://{addr} | credentials: access key {BUILTIN_ACCESS_KEY_ID}, \
         any secret -> account {BUILTIN_ACCOUNT_ID} | seeded {seeded} keys in account {} region(s) {} | \
         faults: {faults}",
        args.seed_account,
        args.seed_regions.join(",")
    );
    tracing::info!(url = %format!("http://{addr}"), seeded, %faults, "fake AWS KMS started");

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
    use super::*;
    use crate::common::parse_args;

    #[test]
    fn flags_parse() {
        let args: FakeAwsArgs = parse_args(&[
            "fake-aws",
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
        assert_eq!(args.seed_keys, 5);
        assert_eq!(args.seed_regions, ["us-east-1", "eu-west-1", "ap-south-1"]);
        assert_eq!(
            args.accounts,
            [("AKIAOTHER".to_owned(), "444455556666".to_owned()), ("AKIATHIRD".to_owned(), "777788889999".to_owned())]
        );
        assert!(parse_args::<FakeAwsArgs>(&["fake-aws", "--account", "AKIA=12"]).is_err());
        assert!(parse_args::<FakeAwsArgs>(&["fake-aws", "--seed-account", "x"]).is_err());
    }

    #[test]
    fn no_fault_flags_means_no_faults() {
        let args: FakeAwsArgs = parse_args(&["fake-aws"]).unwrap();
        assert_eq!(args.faults(), Faults::default());
    }

    #[test]
    fn fault_flags_parse() {
        let args: FakeAwsArgs = parse_args(&[
            "fake-aws",
            "--quota-scale",
            "0.5",
            "--quota",
            "DisableKey=2",
            "--quota",
            "ListKeys=0.5",
            "--per-key-interval-ms",
            "300",
            "--error-rate",
            "0.1",
            "--latency-ms",
            "20",
            "--latency-jitter-ms",
            "10",
            "--drop-rate",
            "0.01",
            "--drop-after-apply-rate",
            "0.02",
            "--fault-seed",
            "7",
        ])
        .unwrap();
        let faults = args.faults();
        assert_eq!(
            faults,
            Faults {
                quotas: Some(QuotaConfig::scaled(0.5).with_override("DisableKey", 2.0).with_override("ListKeys", 0.5)),
                per_key_min_interval: Some(Duration::from_millis(300)),
                error_5xx: 0.1,
                latency: 1.0,
                latency_ms: 20,
                latency_jitter_ms: 10,
                drop_connection: 0.01,
                drop_after_apply: 0.02,
                seed: Some(7),
            }
        );
        assert!(faults.validate().is_ok());

        let quotas = parse_args::<FakeAwsArgs>(&["fake-aws", "--quotas"]).unwrap().faults();
        assert_eq!(quotas, Faults::aws_quotas());
        assert_eq!(quotas.to_string(), "AWS quotas");

        for bad in [
            ["--error-rate", "1.5"],
            ["--drop-rate", "2"],
            ["--quota", "DisableKey"],
            ["--quota", "DisableKey=-1"],
            ["--quota", "=5"],
            ["--quota-scale", "NaN"],
        ] {
            let args = ["fake-aws", bad[0], bad[1]];
            assert!(parse_args::<FakeAwsArgs>(&args).is_err(), "{bad:?} should be refused");
        }
    }
}
