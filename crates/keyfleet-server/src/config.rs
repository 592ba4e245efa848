//! The server's settings: defaults < TOML file < `KEYFLEET_*` environment < command-line flags.
//!
//! [`Config`] is the one description of every setting; figment layers the sources over it. The flags
//! ([`ServeArgs`]) are all optional and override only when given; each flag `--some-name` also reads
//! `KEYFLEET_SOME_NAME` and is the key `some_name` of the TOML file. Secrets are [`SecretString`]s, so
//! `Debug` (and a stray log line) never shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// Every default that does not depend on another setting; `database_url` and `master_key_file` default to
/// files in `data_dir`.
const DEFAULTS: &str = r#"
data_dir = "keyfleet-data"
listen = "127.0.0.1:8443"
plain_http = false
workers = 64
partition_concurrency = 8
per_key_interval_ms = 250
item_deadline_secs = 3600
lease_ttl_secs = 30
quota_scale = 1.0
max_attempts = 8
log_format = "text"
log = "info"
header_read_timeout_secs = 10
idle_timeout_secs = 75
max_connections = 1024
login_failures_before_delay = 5
login_address_failures_before_delay = 20
login_delay_base_ms = 1000
login_delay_max_secs = 900
password_hash_queue = 64
safety_plan_ttl_secs = 3600
safety_confirm_above = 1000
safety_max_failure_percent = 50
"#;

/// Environment variable naming the TOML file (the `--config` flag).
pub const CONFIG_FILE_ENV: &str = "KEYFLEET_CONFIG";

/// `keyfleet serve` / `keyfleet migrate` flags. Every one is optional and overrides the environment and
/// the file only when given.
#[derive(Clone, Default, clap::Args, Serialize)]
#[command(after_help = "Every flag --some-name can also be set with the environment variable KEYFLEET_SOME_NAME \
                        (--config: KEYFLEET_CONFIG) or with the key some_name of the TOML file. Flags win over \
                        the environment, which wins over the file.")]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long = "config", value_name = "FILE")]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
    /// Directory for the database, the master key, the TLS certificate and the initial admin password.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: `sqlite://PATH` (default: keyfleet.db in the data directory) or `postgres://...` for a
    /// cluster of nodes sharing one PostgreSQL database.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Serve plain HTTP, for use behind a TLS-terminating proxy.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub plain_http: bool,
    /// PEM certificate chain; with --tls-key replaces the generated self-signed certificate.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// File holding the base64 master key that encrypts secrets at rest (generated if missing).
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// The master key itself, base64 (prefer the file or the environment; flags show in `ps`).
    #[arg(long, value_name = "BASE64", value_parser = secret)]
    #[serde(serialize_with = "expose")]
    pub master_key: Option<SecretString>,
    /// Password of `admin`, used only when the user is created on first start.
    #[arg(long, value_name = "PASSWORD", value_parser = secret)]
    #[serde(serialize_with = "expose")]
    pub admin_password: Option<SecretString>,
    /// Bulk-job items in flight at once on this node, over all rate-limit partitions.
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Items of one (account, region) partition in flight at once; pacing still spaces the calls.
    #[arg(long, value_name = "N")]
    pub partition_concurrency: Option<usize>,
    /// Minimum milliseconds between two state-changing calls on the same key.
    #[arg(long, value_name = "MS")]
    pub per_key_interval_ms: Option<u64>,
    /// Seconds after its first attempt that an item still failing with retryable errors fails for good.
    #[arg(long, value_name = "SECS")]
    pub item_deadline_secs: Option<u64>,
    /// Seconds a worker's claim on an item lasts without a heartbeat.
    #[arg(long, value_name = "SECS")]
    pub lease_ttl_secs: Option<u64>,
    /// Multiplier of AWS's default request quotas (0 disables pacing).
    #[arg(long, value_name = "X")]
    pub quota_scale: Option<f64>,
    /// Attempts per item before it fails (retryable errors only).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<i64>,
    /// Extra CA certificates (PEM) trusted for outbound HTTPS to Azure (Entra ID, Key Vault), besides the
    /// system's: an inspecting proxy's CA, a private endpoint's, or `keyfleet fake-azure --ca-out`'s.
    #[arg(long, value_name = "FILE")]
    pub trust_ca_file: Option<PathBuf>,
    /// Log format: `text` or `json`.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `keyfleet_engine=debug,info`.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// Seconds (1-30) a client has to send a request's header: on a new connection counted from the moment
    /// it connects (TLS handshake included), on a keep-alive connection from the header's first byte. A
    /// client that is slower is disconnected.
    #[arg(long, value_name = "SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds (1-3600) a keep-alive connection may wait for its next request before the server closes it.
    /// Clients that reuse connections should give them up sooner, or a request can cross the server's close.
    #[arg(long, value_name = "SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Client connections open at once; one over the limit is closed at once.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Failed logins of one username allowed before each further attempt must wait (429).
    #[arg(long, value_name = "N")]
    pub login_failures_before_delay: Option<u32>,
    /// Failed logins from one client address (over all usernames) allowed before it must wait.
    #[arg(long, value_name = "N")]
    pub login_address_failures_before_delay: Option<u32>,
    /// The first login delay in milliseconds; every further failure doubles it.
    #[arg(long, value_name = "MS")]
    pub login_delay_base_ms: Option<u64>,
    /// The longest login delay in seconds.
    #[arg(long, value_name = "SECS")]
    pub login_delay_max_secs: Option<u64>,
    /// Password hashes (argon2, ~19 MiB each) computed at once (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    pub password_hash_concurrency: Option<usize>,
    /// Logins waiting for a hashing slot beyond which more are refused with 503.
    #[arg(long, value_name = "N")]
    pub password_hash_queue: Option<usize>,
    /// Seconds a bulk-job plan (`dry_run`) can be confirmed.
    #[arg(long, value_name = "SECS")]
    pub safety_plan_ttl_secs: Option<u64>,
    /// Items a bulk-job request may resolve to without `max_items` (or a confirmed plan).
    #[arg(long, value_name = "N")]
    pub safety_confirm_above: Option<u64>,
    /// A bulk job stops once more than this percentage of its finished items failed (from 100 on), unless the
    /// request gives its own `max_failure_percent`.
    #[arg(long, value_name = "PERCENT")]
    pub safety_max_failure_percent: Option<u64>,
    /// Bearer token `GET /metrics` requires (`Authorization: Bearer TOKEN`); without one, /metrics is open
    /// to whoever reaches the listener.
    #[arg(long, value_name = "TOKEN", value_parser = secret)]
    #[serde(serialize_with = "expose")]
    pub metrics_token: Option<SecretString>,
    /// A second, plain-HTTP listener serving only /metrics, /healthz and /readyz (e.g. 127.0.0.1:9464, for a
    /// Prometheus agent on the host); they stay on the main listener too.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

fn redacted<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|_| "[REDACTED]").serialize(serializer)
}

fn url_redacted<S: Serializer>(url: &SecretString, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url.expose_secret()))
}

/// A database URL without its password (in the user part or a `password=` parameter), for logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(q) = query {
        let params: Vec<String> = q
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{out}?{}", params.join("&"));
    }
    out
}

fn expose<S: Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|s| s.expose_secret()).serialize(serializer)
}

impl ServeArgs {
    /// The setting names the flags cover (clap's ids are the field names), without `--config` itself.
    fn setting_names() -> Vec<String> {
        let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve"));
        cmd.get_arguments().map(|a| a.get_id().to_string()).filter(|id| id != "config_file").collect()
    }
}

/// The flags as a figment layer: only those given.
impl Provider for ServeArgs {
    fn metadata(&self) -> Metadata {
        Metadata::named("command-line flag").interpolater(|_, keys| format!("--{}", keys.join(".").replace('_', "-")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let Value::Dict(_, mut given) = Value::serialize(self)? else {
            return Err(figment::Error::from("the flags must serialize to a dictionary".to_owned()));
        };
        given.retain(|_, v| !matches!(v, Value::Empty(..)));
        Ok(Profile::Default.collect(given))
    }
}

/// The `KEYFLEET_*` variables that name settings, passed explicitly so that tests need not touch the
/// process environment. Values stay strings (a numeric password is still a password); numbers and
/// booleans are read from them when the setting is one.
#[derive(Clone, Default)]
pub struct Environment {
    vars: Vec<(String, String)>,
}

impl Environment {
    /// This process's environment.
    pub fn process() -> Environment {
        Environment::from_vars(
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// Variables given as `(name, value)` pairs; names that are not `KEYFLEET_*` settings are ignored.
    pub fn from_vars<K: Into<String>, V: Into<String>>(vars: impl IntoIterator<Item = (K, V)>) -> Environment {
        let vars = vars.into_iter().map(|(k, v)| (k.into(), v.into())).filter(|(k, _)| k.starts_with("KEYFLEET_"));
        Environment { vars: vars.collect() }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn var_name(setting: &str) -> String {
        format!("KEYFLEET_{}", setting.to_uppercase())
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").interpolater(|_, keys| Environment::var_name(&keys.join("_")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let dict = ServeArgs::setting_names()
            .into_iter()
            .filter_map(|setting| {
                let value = self.get(&Environment::var_name(&setting))?;
                Some((setting, Value::from(value.to_owned())))
            })
            .collect();
        Ok(Profile::Default.collect(dict))
    }
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting, resolved and validated. The TOML file has exactly these keys. It serializes with its
/// secrets redacted (`keyfleet config check`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; secret because it may carry a password
    /// ([`Config::database_url_redacted`] is the loggable form).
    #[serde(serialize_with = "url_redacted")]
    pub database_url: SecretString,
    pub listen: SocketAddr,
    pub plain_http: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub master_key_file: PathBuf,
    #[serde(serialize_with = "redacted")]
    pub master_key: Option<SecretString>,
    #[serde(serialize_with = "redacted")]
    pub admin_password: Option<SecretString>,
    pub workers: usize,
    pub partition_concurrency: usize,
    pub per_key_interval_ms: u64,
    pub item_deadline_secs: u64,
    pub lease_ttl_secs: u64,
    pub quota_scale: f64,
    pub max_attempts: i64,
    pub trust_ca_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log: String,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub max_connections: usize,
    pub login_failures_before_delay: u32,
    pub login_address_failures_before_delay: u32,
    pub login_delay_base_ms: u64,
    pub login_delay_max_secs: u64,
    /// `None`: the number of CPUs.
    pub password_hash_concurrency: Option<usize>,
    pub password_hash_queue: usize,
    pub safety_plan_ttl_secs: u64,
    pub safety_confirm_above: u64,
    pub safety_max_failure_percent: u64,
    #[serde(serialize_with = "redacted")]
    pub metrics_token: Option<SecretString>,
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    /// Defaults < the file named by `--config` < the flags; the process environment is not read (the
    /// binary uses [`Config::load`]).
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        Config::load(args, &Environment::default())
    }

    /// Defaults < TOML file (`--config`, else `KEYFLEET_CONFIG`) < `env` < flags.
    pub fn load(args: ServeArgs, env: &Environment) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(path) = args.config_file.clone().or_else(|| env.get(CONFIG_FILE_ENV).map(PathBuf::from)) {
            // figment reads a missing file as an empty one; a named file must exist.
            std::fs::File::open(&path).with_context(|| format!("reading config file {}", path.display()))?;
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment.merge(env).merge(args);
        let data_dir: PathBuf = figment.extract_inner("data_dir")?;
        let config: Config = figment
            .join(Serialized::default("database_url", format!("sqlite://{}", data_dir.join("keyfleet.db").display())))
            .join(Serialized::default("master_key_file", data_dir.join("master.key")))
            .extract_lossy()?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let url = self.database_url.expose_secret();
        if !["sqlite:", "postgres://", "postgresql://"].iter().any(|p| url.starts_with(p)) {
            bail!(
                "database_url: expected sqlite://PATH or postgres://USER@HOST:PORT/DB (got a {:?} URL)",
                url.split(':').next().unwrap_or("")
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            bail!("tls_cert and tls_key must be given together");
        }
        if self.workers == 0 || self.workers > 4096 {
            bail!("workers: must be between 1 and 4096");
        }
        if self.partition_concurrency == 0 || self.partition_concurrency > 1024 {
            bail!("partition_concurrency: must be between 1 and 1024");
        }
        if self.item_deadline_secs == 0 {
            bail!("item_deadline_secs: must be at least 1");
        }
        if !(2..=3600).contains(&self.lease_ttl_secs) {
            bail!("lease_ttl_secs: must be between 2 and 3600");
        }
        if !self.quota_scale.is_finite() || self.quota_scale < 0.0 {
            bail!("quota_scale: must be 0 or more");
        }
        if !(1..=100).contains(&self.max_attempts) {
            bail!("max_attempts: must be between 1 and 100");
        }
        if !(1..=30).contains(&self.header_read_timeout_secs) {
            bail!("header_read_timeout_secs: must be between 1 and 30");
        }
        if !(1..=3600).contains(&self.idle_timeout_secs) {
            bail!("idle_timeout_secs: must be between 1 and 3600");
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            bail!("max_connections: must be between 1 and 1000000");
        }
        if self.login_failures_before_delay == 0 || self.login_address_failures_before_delay == 0 {
            bail!("login_failures_before_delay and login_address_failures_before_delay: must be at least 1");
        }
        if self.password_hash_concurrency.is_some_and(|n| n == 0 || n > 1024) {
            bail!("password_hash_concurrency: must be between 1 and 1024");
        }
        if self.password_hash_queue > 100_000 {
            bail!("password_hash_queue: must be at most 100000");
        }
        if self.safety_plan_ttl_secs == 0 {
            bail!("safety_plan_ttl_secs: must be at least 1");
        }
        if self.safety_max_failure_percent > 100 {
            bail!("safety_max_failure_percent: must be between 0 and 100");
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.expose_secret().trim().is_empty()) {
            bail!("metrics_token: must not be empty (leave it unset for an open /metrics)");
        }
        if self.metrics_listen.is_some_and(|m| m == self.listen) {
            bail!("metrics_listen: must differ from listen");
        }
        Ok(())
    }

    /// The configured certificate and key, when both are given.
    pub fn tls(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert.clone().zip(self.tls_key.clone())
    }

    pub fn per_key_interval(&self) -> Duration {
        Duration::from_millis(self.per_key_interval_ms)
    }

    pub fn item_deadline(&self) -> Duration {
        Duration::from_secs(self.item_deadline_secs)
    }

    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs)
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// Login throttling and password-hashing limits for the services.
    pub fn login(&self) -> keyfleet_service::login_guard::LoginSettings {
        let defaults = keyfleet_service::login_guard::LoginSettings::default();
        keyfleet_service::login_guard::LoginSettings {
            failures_before_delay: self.login_failures_before_delay,
            address_failures_before_delay: self.login_address_failures_before_delay,
            base_delay: Duration::from_millis(self.login_delay_base_ms),
            max_delay: Duration::from_secs(self.login_delay_max_secs)
                .max(Duration::from_millis(self.login_delay_base_ms)),
            hash_concurrency: self.password_hash_concurrency.unwrap_or(defaults.hash_concurrency),
            hash_queue: self.password_hash_queue,
            ..defaults
        }
    }

    pub fn safety(&self) -> keyfleet_service::safety::SafetySettings {
        keyfleet_service::safety::SafetySettings {
            plan_ttl: Duration::from_secs(self.safety_plan_ttl_secs),
            confirm_above: self.safety_confirm_above,
            max_failure_percent: self.safety_max_failure_percent,
            ..Default::default()
        }
    }

    pub fn log_json(&self) -> bool {
        self.log_format == LogFormat::Json
    }

    /// The database URL without its password, for logs.
    pub fn database_url_redacted(&self) -> String {
        redact_url(self.database_url.expose_secret())
    }

    /// The settings as TOML, secrets redacted: what `keyfleet config check` prints. Unset optional settings
    /// are comments.
    pub fn effective_toml(&self) -> anyhow::Result<String> {
        let serde_json::Value::Object(map) = serde_json::to_value(self)? else {
            bail!("the configuration must serialize to a table");
        };
        let mut out = String::new();
        for (key, value) in map {
            match value {
                serde_json::Value::Null => out.push_str(&format!("# {key} = (not set)\n")),
                // A JSON string is a valid TOML basic string; numbers and booleans read the same.
                other => out.push_str(&format!("{key} = {other}\n")),
            }
        }
        Ok(out)
    }

    pub fn is_postgres(&self) -> bool {
        let url = self.database_url.expose_secret();
        url.starts_with("postgres://") || url.starts_with("postgresql://")
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        let url = self.database_url.expose_secret();
        let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        Some(Path::new(rest.split('?').next().unwrap_or(rest)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> (tempfile::TempDir, ServeArgs) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("keyfleet.toml");
        std::fs::write(&file, text).expect("write");
        (dir, ServeArgs { config_file: Some(file), ..Default::default() })
    }

    #[test]
    fn defaults() {
        let c = Config::resolve(ServeArgs::default()).expect("defaults");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.database_url.expose_secret(), "sqlite://keyfleet-data/keyfleet.db");
        assert_eq!(c.master_key_file, Path::new("keyfleet-data/master.key"));
        assert_eq!((c.workers, c.partition_concurrency, c.max_attempts), (64, 8, 8));
        assert_eq!((c.per_key_interval(), c.lease_ttl()), (Duration::from_millis(250), Duration::from_secs(30)));
        assert!(!c.plain_http && !c.log_json() && c.tls().is_none() && c.master_key.is_none());
        assert_eq!((c.header_read_timeout(), c.max_connections), (Duration::from_secs(10), 1024));
        assert_eq!(c.idle_timeout(), Duration::from_secs(75));
    }

    #[test]
    fn default_then_file_then_environment_then_flag() {
        // `workers` is set by all four layers, `partition_concurrency` by the first three, and so on.
        let (_dir, mut args) = with_file(
            "workers = 2\npartition_concurrency = 2\nper_key_interval_ms = 2\nlog = \"debug\"\nplain_http = true\n",
        );
        let env = Environment::from_vars([
            ("KEYFLEET_WORKERS", "3"),
            ("KEYFLEET_PARTITION_CONCURRENCY", "3"),
            ("KEYFLEET_LOG_FORMAT", "json"),
            ("KEYFLEET_PLAIN_HTTP", "false"),
            ("KEYFLEET_TEST_PYTHON", "not a setting"),
        ]);
        args.workers = Some(4);
        let c = Config::load(args, &env).expect("load");
        assert_eq!(c.workers, 4, "a flag beats the environment");
        assert_eq!(c.partition_concurrency, 3, "the environment beats the file");
        assert_eq!(c.per_key_interval_ms, 2, "the file beats the default");
        assert_eq!(c.item_deadline_secs, 3600, "the default when nobody says");
        assert_eq!(c.log, "debug");
        assert!(c.log_json());
        assert!(!c.plain_http, "KEYFLEET_PLAIN_HTTP=false overrides the file");

        let c = Config::load(ServeArgs { plain_http: true, ..Default::default() }, &env).expect("flag");
        assert!(c.plain_http, "--plain-http overrides the environment");
    }

    #[test]
    fn environment_names_the_file_and_data_dir_derived_defaults() {
        let (dir, args) = with_file("data_dir = \"/srv/kf\"\n");
        let path = args.config_file.clone().expect("file");
        let env = Environment::from_vars([(CONFIG_FILE_ENV, path.to_str().expect("utf-8"))]);
        let c = Config::load(ServeArgs::default(), &env).expect("load");
        assert_eq!(c.data_dir, Path::new("/srv/kf"));
        assert_eq!(c.database_url.expose_secret(), "sqlite:///srv/kf/keyfleet.db");
        assert_eq!(c.master_key_file, Path::new("/srv/kf/master.key"));
        drop(dir);
    }

    #[test]
    fn environment_values_keep_their_text() {
        let env = Environment::from_vars([
            ("KEYFLEET_ADMIN_PASSWORD", "123456"),
            ("KEYFLEET_LOG", "keyfleet_engine=debug,info"),
            ("KEYFLEET_QUOTA_SCALE", "0.5"),
        ]);
        let c = Config::load(ServeArgs::default(), &env).expect("load");
        assert_eq!(c.admin_password.as_ref().map(|p| p.expose_secret()), Some("123456"));
        assert_eq!(c.log, "keyfleet_engine=debug,info");
        assert_eq!(c.quota_scale, 0.5);

        let bad = Environment::from_vars([("KEYFLEET_WORKERS", "many")]);
        let err = Config::load(ServeArgs::default(), &bad).expect_err("not a number");
        assert!(format!("{err:#}").contains("KEYFLEET_WORKERS"), "{err:#}");
    }

    #[test]
    fn safety_settings_have_defaults_and_read_the_environment() {
        let s = Config::resolve(ServeArgs::default()).expect("defaults").safety();
        assert_eq!((s.plan_ttl, s.confirm_above, s.max_failure_percent), (Duration::from_secs(3600), 1000, 50));
        let env = Environment::from_vars([
            ("KEYFLEET_SAFETY_PLAN_TTL_SECS", "60"),
            ("KEYFLEET_SAFETY_CONFIRM_ABOVE", "20000"),
            ("KEYFLEET_SAFETY_MAX_FAILURE_PERCENT", "10"),
        ]);
        let s = Config::load(ServeArgs::default(), &env).expect("load").safety();
        assert_eq!((s.plan_ttl, s.confirm_above, s.max_failure_percent), (Duration::from_secs(60), 20000, 10));
        let bad = Environment::from_vars([("KEYFLEET_SAFETY_MAX_FAILURE_PERCENT", "101")]);
        let err = Config::load(ServeArgs::default(), &bad).expect_err("over 100");
        assert!(format!("{err:#}").contains("safety_max_failure_percent"), "{err:#}");
    }

    #[test]
    fn idle_and_header_timeouts_are_separate_settings() {
        let (_dir, args) = with_file("idle_timeout_secs = 300\n");
        let env = Environment::from_vars([("KEYFLEET_HEADER_READ_TIMEOUT_SECS", "5")]);
        let c = Config::load(args, &env).expect("load");
        assert_eq!((c.idle_timeout(), c.header_read_timeout()), (Duration::from_secs(300), Duration::from_secs(5)));
        for (setting, value) in
            [("IDLE_TIMEOUT_SECS", "0"), ("IDLE_TIMEOUT_SECS", "3601"), ("HEADER_READ_TIMEOUT_SECS", "31")]
        {
            let bad = Environment::from_vars([(format!("KEYFLEET_{setting}"), value)]);
            let err = Config::load(ServeArgs::default(), &bad).expect_err("out of range");
            assert!(format!("{err:#}").contains(&setting.to_lowercase()), "{setting}={value}: {err:#}");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let (_dir, mut args) = with_file("admin_password = \"from-file\"\n");
        args.master_key = Some("bWFzdGVyLWtleQ==".into());
        args.database_url = Some("postgres://kf:s3cret@db:5432/kf".into());
        let c = Config::resolve(args).expect("file");
        let shown = format!("{c:?}");
        for secret in ["from-file", "bWFzdGVyLWtleQ==", "s3cret"] {
            assert!(!shown.contains(secret), "{secret} shows in {shown}");
        }
        assert_eq!(c.database_url_redacted(), "postgres://kf:***@db:5432/kf");
    }

    #[test]
    fn unknown_file_keys_and_bad_values_are_errors_naming_them() {
        let (_dir, args) = with_file("wokers = 3\n");
        let err = Config::resolve(args).expect_err("typo");
        assert!(format!("{err:#}").contains("wokers"), "{err:#}");

        let (_dir, args) = with_file("log_format = \"xml\"\n");
        let err = Config::resolve(args).expect_err("bad format");
        assert!(format!("{err:#}").contains("log_format"), "{err:#}");

        let (_dir, args) = with_file("tls_cert = \"c.pem\"\n");
        let err = Config::resolve(args).expect_err("half a pair");
        assert!(format!("{err:#}").contains("tls_cert and tls_key"), "{err:#}");

        let missing = ServeArgs { config_file: Some("/nonexistent/k.toml".into()), ..Default::default() };
        let err = Config::resolve(missing).expect_err("missing file");
        assert!(format!("{err:#}").contains("/nonexistent/k.toml"), "{err:#}");
    }

    #[test]
    fn every_flag_is_a_setting() {
        let names = ServeArgs::setting_names();
        assert_eq!(names.len(), 33, "{names:?}");
        // deny_unknown_fields would refuse a flag without a Config field: give every flag at once.
        let all = ServeArgs {
            data_dir: Some("d".into()),
            database_url: Some("sqlite://d/x.db".into()),
            listen: Some("127.0.0.1:1".parse().expect("addr")),
            plain_http: true,
            tls_cert: Some("c".into()),
            tls_key: Some("k".into()),
            master_key_file: Some("m".into()),
            master_key: Some("k".into()),
            admin_password: Some("p".into()),
            workers: Some(1),
            partition_concurrency: Some(1),
            per_key_interval_ms: Some(1),
            item_deadline_secs: Some(1),
            lease_ttl_secs: Some(2),
            quota_scale: Some(0.0),
            max_attempts: Some(1),
            trust_ca_file: Some("t".into()),
            log_format: Some("json".into()),
            log: Some("warn".into()),
            header_read_timeout_secs: Some(1),
            idle_timeout_secs: Some(1),
            max_connections: Some(1),
            login_failures_before_delay: Some(1),
            login_address_failures_before_delay: Some(1),
            login_delay_base_ms: Some(1),
            login_delay_max_secs: Some(1),
            password_hash_concurrency: Some(1),
            password_hash_queue: Some(0),
            safety_plan_ttl_secs: Some(1),
            safety_confirm_above: Some(1),
            safety_max_failure_percent: Some(1),
            metrics_token: Some("t".into()),
            metrics_listen: Some("127.0.0.1:2".parse().expect("addr")),
            config_file: None,
        };
        let c = Config::resolve(all).expect("every flag");
        assert_eq!((c.listen.port(), c.tls().is_some(), c.log.as_str()), (1, true, "warn"));
        assert_eq!(c.database_url.expose_secret(), "sqlite://d/x.db", "a given URL beats the derived default");
    }
}
