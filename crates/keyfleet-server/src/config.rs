//! The server's settings: defaults < TOML file < `KEYFLEET_*` environment < command-line flags.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

/// `keyfleet serve` / `keyfleet migrate` flags. Every flag also reads a `KEYFLEET_*` variable; every
/// setting can also come from the TOML file given by `--config` (same names, with `_` for `-`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long = "config", env = "KEYFLEET_CONFIG", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Directory for the database, the master key, the TLS certificate and the initial admin password.
    #[arg(long, env = "KEYFLEET_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` (default: keyfleet.db in the data directory) or `postgres://...` for a
    /// cluster of nodes sharing one PostgreSQL database.
    #[arg(long, env = "KEYFLEET_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "KEYFLEET_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve plain HTTP, for use behind a TLS-terminating proxy.
    #[arg(long, env = "KEYFLEET_PLAIN_HTTP")]
    pub plain_http: bool,
    /// PEM certificate chain; with --tls-key replaces the generated self-signed certificate.
    #[arg(long, env = "KEYFLEET_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "KEYFLEET_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// File holding the base64 master key that encrypts secrets at rest (generated if missing).
    #[arg(long, env = "KEYFLEET_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself, base64 (prefer the file or the environment; flags show in `ps`).
    #[arg(long, env = "KEYFLEET_MASTER_KEY", value_name = "BASE64", hide_env_values = true)]
    pub master_key: Option<String>,
    /// Password of `admin`, used only when the user is created on first start.
    #[arg(long, env = "KEYFLEET_ADMIN_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Bulk-job items in flight at once on this node, over all rate-limit partitions.
    #[arg(long, env = "KEYFLEET_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Items of one (account, region) partition in flight at once; pacing still spaces the calls.
    #[arg(long, env = "KEYFLEET_PARTITION_CONCURRENCY", value_name = "N")]
    pub partition_concurrency: Option<usize>,
    /// Minimum milliseconds between two state-changing calls on the same key.
    #[arg(long, env = "KEYFLEET_PER_KEY_INTERVAL_MS", value_name = "MS")]
    pub per_key_interval_ms: Option<u64>,
    /// Seconds after its first attempt that an item still failing with retryable errors fails for good.
    #[arg(long, env = "KEYFLEET_ITEM_DEADLINE_SECS", value_name = "SECS")]
    pub item_deadline_secs: Option<u64>,
    /// Seconds a worker's claim on an item lasts without a heartbeat.
    #[arg(long, env = "KEYFLEET_LEASE_TTL_SECS", value_name = "SECS")]
    pub lease_ttl_secs: Option<u64>,
    /// Multiplier of AWS's default request quotas (0 disables pacing).
    #[arg(long, env = "KEYFLEET_QUOTA_SCALE", value_name = "X")]
    pub quota_scale: Option<f64>,
    /// Attempts per item before it fails (retryable errors only).
    #[arg(long, env = "KEYFLEET_MAX_ATTEMPTS", value_name = "N")]
    pub max_attempts: Option<i64>,
    /// Extra CA certificates (PEM) trusted for outbound HTTPS to Azure (Entra ID, Key Vault), besides the
    /// system's: an inspecting proxy's CA, a private endpoint's, or `keyfleet fake-azure --ca-out`'s.
    #[arg(long, env = "KEYFLEET_TRUST_CA_FILE", value_name = "FILE")]
    pub trust_ca_file: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "KEYFLEET_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `keyfleet_engine=debug,info`.
    #[arg(long, env = "KEYFLEET_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

/// The TOML file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    plain_http: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    master_key_file: Option<PathBuf>,
    master_key: Option<String>,
    admin_password: Option<String>,
    workers: Option<usize>,
    partition_concurrency: Option<usize>,
    per_key_interval_ms: Option<u64>,
    item_deadline_secs: Option<u64>,
    lease_ttl_secs: Option<u64>,
    quota_scale: Option<f64>,
    max_attempts: Option<i64>,
    trust_ca_file: Option<PathBuf>,
    log_format: Option<String>,
    log: Option<String>,
}

/// Resolved, validated settings.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub listen: SocketAddr,
    pub plain_http: bool,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub master_key_file: PathBuf,
    pub master_key: Option<String>,
    pub admin_password: Option<String>,
    pub workers: usize,
    pub partition_concurrency: usize,
    pub per_key_interval: Duration,
    pub item_deadline: Duration,
    pub lease_ttl: Duration,
    pub quota_scale: f64,
    pub max_attempts: i64,
    pub trust_ca_file: Option<PathBuf>,
    pub log_json: bool,
    pub log: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |o: &Option<String>| o.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url_redacted())
            .field("listen", &self.listen)
            .field("plain_http", &self.plain_http)
            .field("tls", &self.tls)
            .field("master_key_file", &self.master_key_file)
            .field("master_key", &redacted(&self.master_key))
            .field("admin_password", &redacted(&self.admin_password))
            .field("workers", &self.workers)
            .field("lease_ttl", &self.lease_ttl)
            .field("quota_scale", &self.quota_scale)
            .field("max_attempts", &self.max_attempts)
            .field("trust_ca_file", &self.trust_ca_file)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

impl Config {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config_file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str::<FileConfig>(&text).with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from("keyfleet-data"));
        let database_url = args
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("keyfleet.db").display()));
        if !["sqlite:", "postgres://", "postgresql://"].iter().any(|p| database_url.starts_with(p)) {
            bail!(
                "database_url: expected sqlite://PATH or postgres://USER@HOST:PORT/DB (got a {:?} URL)",
                database_url.split(':').next().unwrap_or("")
            );
        }
        let listen = match args.listen.or(file.listen) {
            Some(l) => l,
            None => DEFAULT_LISTEN.parse()?,
        };
        let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("tls_cert and tls_key must be given together"),
        };
        let workers = args.workers.or(file.workers).unwrap_or(64);
        if workers == 0 || workers > 4096 {
            bail!("workers: must be between 1 and 4096");
        }
        let partition_concurrency = args.partition_concurrency.or(file.partition_concurrency).unwrap_or(8);
        if partition_concurrency == 0 || partition_concurrency > 1024 {
            bail!("partition_concurrency: must be between 1 and 1024");
        }
        let per_key_interval_ms = args.per_key_interval_ms.or(file.per_key_interval_ms).unwrap_or(250);
        let item_deadline_secs = args.item_deadline_secs.or(file.item_deadline_secs).unwrap_or(3600);
        if item_deadline_secs == 0 {
            bail!("item_deadline_secs: must be at least 1");
        }
        let lease_ttl_secs = args.lease_ttl_secs.or(file.lease_ttl_secs).unwrap_or(30);
        if !(2..=3600).contains(&lease_ttl_secs) {
            bail!("lease_ttl_secs: must be between 2 and 3600");
        }
        let quota_scale = args.quota_scale.or(file.quota_scale).unwrap_or(1.0);
        if !quota_scale.is_finite() || quota_scale < 0.0 {
            bail!("quota_scale: must be 0 or more");
        }
        let max_attempts = args.max_attempts.or(file.max_attempts).unwrap_or(8);
        if !(1..=100).contains(&max_attempts) {
            bail!("max_attempts: must be between 1 and 100");
        }
        let log_format = args.log_format.or(file.log_format).unwrap_or_else(|| "text".into());
        let log_json = match log_format.as_str() {
            "text" => false,
            "json" => true,
            other => bail!("log_format: must be text or json, got {other:?}"),
        };
        Ok(Config {
            master_key_file: args
                .master_key_file
                .or(file.master_key_file)
                .unwrap_or_else(|| data_dir.join("master.key")),
            master_key: args.master_key.or(file.master_key),
            admin_password: args.admin_password.or(file.admin_password),
            plain_http: args.plain_http || file.plain_http.unwrap_or(false),
            log: args.log.or(file.log).unwrap_or_else(|| "info".into()),
            data_dir,
            database_url,
            listen,
            tls,
            workers,
            partition_concurrency,
            per_key_interval: Duration::from_millis(per_key_interval_ms),
            item_deadline: Duration::from_secs(item_deadline_secs),
            lease_ttl: Duration::from_secs(lease_ttl_secs),
            quota_scale,
            max_attempts,
            trust_ca_file: args.trust_ca_file.or(file.trust_ca_file),
            log_json,
        })
    }

    /// The database URL without its password, for logs.
    pub fn database_url_redacted(&self) -> String {
        match (self.database_url.find("://"), self.database_url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &self.database_url[scheme + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        format!("{}{user}:***{}", &self.database_url[..scheme + 3], &self.database_url[at..])
                    }
                    None => self.database_url.clone(),
                }
            }
            _ => self.database_url.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://")
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        let rest = self.database_url.strip_prefix("sqlite://").or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        Some(Path::new(rest.split('?').next().unwrap_or(rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_flags() {
        let c = Config::resolve(ServeArgs::default()).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database_url, "sqlite://keyfleet-data/keyfleet.db");
        assert!(!c.plain_http);

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("k.toml");
        std::fs::write(&file, "workers = 3\nlisten = \"127.0.0.1:9000\"\nadmin_password = \"from-file\"\n")
            .expect("write");
        let args = ServeArgs { config_file: Some(file.clone()), workers: Some(5), ..Default::default() };
        let c = Config::resolve(args).expect("file");
        assert_eq!((c.workers, c.listen.port()), (5, 9000));
        assert!(!format!("{c:?}").contains("from-file"), "secrets are redacted in Debug");
        let pg = ServeArgs { database_url: Some("postgres://kf:s3cret@db:5432/kf".into()), ..Default::default() };
        let c = Config::resolve(pg).expect("postgres");
        assert_eq!(c.database_url_redacted(), "postgres://kf:***@db:5432/kf");
        assert!(!format!("{c:?}").contains("s3cret"));

        std::fs::write(&file, "wokers = 3\n").expect("write");
        let err = Config::resolve(ServeArgs { config_file: Some(file), ..Default::default() }).expect_err("typo");
        assert!(format!("{err:#}").contains("wokers"));
    }
}
