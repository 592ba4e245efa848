//! From configuration to a serving process: data directory, master key, database, admin, TLS, engine.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use keyfleet_clouds::{AwsKmsConnector, RestConnector, SdkConnector};
use keyfleet_core::crypto::{MasterKey, random_token};
use keyfleet_engine::retry::RetryPolicy;
use keyfleet_engine::{Engine, EngineConfig, EngineHandle};
use keyfleet_service::{ServiceSettings, Services};
use keyfleet_store::{PgStore, SqliteStore, Store};
use secrecy::ExposeSecret;
use tokio::task::JoinHandle;

use crate::config::{Config, Environment, ServeArgs};
use crate::lock::DataDirLock;
use crate::tls::{ensure_certificate, write_private};
use crate::{AppState, router};

const MASTER_KEY_CHECK: &str = "master_key_check";
const MASTER_KEY_CHECK_PLAIN: &[u8] = b"keyfleet master key check v1";
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Sets up `tracing` once per process: text (coloured only on a terminal) or JSON lines on stderr.
pub fn init_logging(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: a journal or a log file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// `keyfleet serve`: runs until Ctrl-C or SIGTERM, then finishes in-flight items and stops.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args, &Environment::process())?;
    init_logging(&config.log, config.log_json());
    if !config.is_postgres() {
        // Before binding: a second process on the same data directory usually asks for the same port too, and
        // "in use by pid N" says more than "address in use". `start` takes the lock for good.
        prepare_data_dir(&config.data_dir)?;
        drop(DataDirLock::acquire(&config.data_dir)?);
    }
    let listener =
        std::net::TcpListener::bind(config.listen).with_context(|| format!("listening on {}", config.listen))?;
    let data_dir = config.data_dir.clone();
    let server = start(config, listener, Arc::new(SdkConnector::default())).await?;
    // One plain line on stdout for people and scripts (logs go to stderr): the real address, also when
    // --listen asked for port 0.
    println!("keyfleet serving on {} (data directory {})", server.url(), data_dir.display());
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight work");
    server.shutdown().await;
    Ok(())
}

/// `keyfleet migrate`: applies the database migrations and exits.
pub async fn migrate(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(args, &Environment::process())?;
    init_logging(&config.log, config.log_json());
    prepare_data_dir(&config.data_dir)?;
    let store = open_store(&config).await?;
    store.migrate().await?;
    store.close().await;
    tracing::info!(database = %config.database_url_redacted(), "database is up to date");
    Ok(())
}

/// The configured database, migrated, for offline tools (`keyfleet audit verify`).
pub async fn open_database(args: ServeArgs) -> anyhow::Result<Arc<dyn Store>> {
    let config = Config::load(args, &Environment::process())?;
    init_logging(&config.log, config.log_json());
    let store = open_store(&config).await?;
    store.migrate().await?;
    Ok(store.shared())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// A started server: its address and what is needed to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The `metrics_listen` address, when one is configured (the real port when it asked for port 0).
    pub metrics_addr: Option<SocketAddr>,
    pub https: bool,
    pub state: Arc<AppState>,
    stop: Box<dyn Fn() + Send + Sync>,
    http: JoinHandle<std::io::Result<()>>,
    /// The `metrics_listen` server: its stop signal and task.
    ops: Option<(tokio::sync::oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
    engine: EngineHandle,
    store: Database,
    /// The data directory's lock (SQLite), released after the database is closed.
    lock: Option<DataDirLock>,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.addr)
    }

    /// Stops accepting requests, lets the engine record in-flight items, closes the database.
    pub async fn shutdown(self) {
        (self.stop)();
        let _ = self.http.await;
        if let Some((stop, task)) = self.ops {
            let _ = stop.send(());
            let _ = task.await;
        }
        self.engine.shutdown().await;
        self.store.close().await;
        drop(self.lock);
    }
}

fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let existed = dir.is_dir();
    create_private_dir(dir).with_context(|| format!("creating data directory {}", dir.display()))?;
    #[cfg(unix)]
    if existed {
        // A directory made by someone else (an installer, an older keyfleet) is tightened too.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// Creates `dir` and any missing parents with mode 0700 (owner only) from the start; an existing directory is
/// left as it is.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// The configured backend: the embedded SQLite file (one node) or a PostgreSQL database (any number).
#[derive(Clone)]
enum Database {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Database {
    async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Database::Sqlite(s) => s.migrate().await?,
            Database::Postgres(s) => s.migrate().await?,
        }
        Ok(())
    }

    async fn close(&self) {
        match self {
            Database::Sqlite(s) => s.close().await,
            Database::Postgres(s) => s.close().await,
        }
    }

    fn shared(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(s) => Arc::new(s.clone()),
            Database::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// SQLite allows one writer per file, so exactly one node runs on it: leases left by its previous run
    /// are dead and can be reclaimed at once. On PostgreSQL other nodes may hold live leases.
    fn single_node(&self) -> bool {
        matches!(self, Database::Sqlite(_))
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Database> {
    if config.is_postgres() {
        let store = PgStore::connect(config.database_url.expose_secret()).await.context("connecting to PostgreSQL")?;
        return Ok(Database::Postgres(store));
    }
    let path = config.sqlite_path().context("database_url: expected sqlite://PATH or postgres://...")?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let store = SqliteStore::open(path).await.with_context(|| format!("opening database {}", path.display()))?;
    Ok(Database::Sqlite(store))
}

fn load_master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(inline) = &config.master_key {
        return MasterKey::from_base64(inline.expose_secret()).context("KEYFLEET_MASTER_KEY");
    }
    let path = &config.master_key_file;
    if path.exists() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        return MasterKey::from_base64(&text).with_context(|| format!("master key file {}", path.display()));
    }
    let key = MasterKey::generate()?;
    write_private(path, key.to_base64().as_bytes())?;
    tracing::info!(path = %path.display(), "generated a new master key; back it up: secrets stored in the database need it");
    Ok(key)
}

/// The database remembers a value encrypted under its master key; another key cannot decrypt it, and then
/// starting would write secrets that no node could read.
async fn check_master_key(store: &dyn Store, key: &MasterKey) -> anyhow::Result<()> {
    let fresh = base64::engine::general_purpose::STANDARD
        .encode(key.encrypt(MASTER_KEY_CHECK_PLAIN, MASTER_KEY_CHECK.as_bytes())?);
    let stored = store.put_meta_if_absent(MASTER_KEY_CHECK, &fresh).await?;
    let blob = base64::engine::general_purpose::STANDARD.decode(stored).context("stored master key check")?;
    match key.decrypt(&blob, MASTER_KEY_CHECK.as_bytes()) {
        Ok(plain) if plain == MASTER_KEY_CHECK_PLAIN => Ok(()),
        _ => bail!(
            "the master key does not match the one this database was set up with; refusing to start \
             (every node must use the same master key)"
        ),
    }
}

async fn bootstrap_admin(services: &Services, config: &Config) -> anyhow::Result<()> {
    if services.store.user_by_name("admin").await?.is_some() {
        services.bootstrap("").await?; // built-in groups only
        return Ok(());
    }
    let (password, generated) = match &config.admin_password {
        Some(p) if !p.expose_secret().is_empty() => (p.expose_secret().to_owned(), false),
        _ => (random_token(24)?, true),
    };
    if generated {
        let file = config.data_dir.join(INITIAL_PASSWORD_FILE);
        write_private(&file, format!("{password}\n").as_bytes())
            .with_context(|| format!("writing the generated admin password to {}", file.display()))?;
        tracing::warn!(path = %file.display(), "created user admin with a generated password, written to this file");
    } else {
        tracing::info!("created user admin with the password from KEYFLEET_ADMIN_PASSWORD");
    }
    services.bootstrap(&password).await.map_err(|e| match e {
        keyfleet_service::ServiceError::Invalid { message, .. } => anyhow::anyhow!(
            "KEYFLEET_ADMIN_PASSWORD (admin_password) {message}: refusing to create user admin with a weak \
             password; set a stronger one, or unset it to have one generated"
        ),
        other => other.into(),
    })?;
    Ok(())
}

/// Starts serving on `listener` with the given cloud connector (tests pass the real SDK connector too;
/// only the endpoints differ).
pub async fn start(
    config: Config,
    listener: std::net::TcpListener,
    connector: Arc<dyn AwsKmsConnector>,
) -> anyhow::Result<RunningServer> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    prepare_data_dir(&config.data_dir)?;
    // SQLite allows one writer: a second process on the same data directory would fight the first for it
    // (and reclaim the first one's leases as its own leftovers). PostgreSQL nodes share the database by design.
    let lock = if config.is_postgres() { None } else { Some(DataDirLock::acquire(&config.data_dir)?) };
    let master = load_master_key(&config)?;
    let store = open_store(&config).await?;
    store.migrate().await.context("migrating the database")?;
    let shared = store.shared();
    check_master_key(shared.as_ref(), &master).await?;

    let extra_roots = match &config.trust_ca_file {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading trust_ca_file {}", path.display()))?),
        None => None,
    };
    let azure = RestConnector::new(extra_roots.as_deref())
        .map_err(|e| anyhow::anyhow!("trust_ca_file: {}", e.message))
        .context("setting up the Azure Key Vault client")?;
    let engine = Engine::builder(
        shared.clone(),
        master.clone(),
        connector,
        Arc::new(azure),
        EngineConfig {
            workers: config.workers,
            partition_concurrency: config.partition_concurrency,
            per_key_interval: config.per_key_interval(),
            item_deadline: config.item_deadline(),
            reclaim_all_on_start: store.single_node(),
            lease_ttl: config.lease_ttl(),
            quota_scale: config.quota_scale,
            retry: RetryPolicy { max_attempts: config.max_attempts, ..Default::default() },
            ..Default::default()
        },
    )
    .build();
    let settings = ServiceSettings { login: config.login(), safety: config.safety(), ..ServiceSettings::default() };
    let services = Arc::new(Services::new(shared, engine.clone(), master, settings));
    bootstrap_admin(&services, &config).await?;
    let engine_handle = engine.start().await?;

    let state =
        Arc::new(AppState { services, rendered: Default::default(), metrics_token: config.metrics_token.clone() });
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let https = !config.plain_http;
    let mut app = router(state.clone());
    if https {
        app = app.layer(axum::middleware::map_response(crate::limits::strict_transport_security));
    }
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let capped = crate::limits::Capped::new(config.max_connections);
    let handle = axum_server::Handle::new();
    let stop = {
        let handle = handle.clone();
        move || handle.graceful_shutdown(Some(Duration::from_secs(10)))
    };
    // hyper's header-read timer starts whenever a connection waits for a request, so it is set to the idle
    // keep-alive timeout; the header timeout proper runs from a head's first byte (`HeadTimeout`, on the
    // plaintext after TLS). A new connection's first request, protocol detection (h1 or h2) included, and
    // its TLS handshake are each bounded by the header timeout as well.
    let header_timeout = config.header_read_timeout();
    let idle_timeout = config.idle_timeout();
    let http = if https {
        let (cert, key) = ensure_certificate(config.tls(), &config.data_dir, addr)?;
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
            .await
            .with_context(|| format!("loading TLS certificate {} and key {}", cert.display(), key.display()))?;
        let acceptor =
            axum_server::tls_rustls::RustlsAcceptor::new(tls).handshake_timeout(header_timeout).acceptor(capped);
        let acceptor = crate::limits::HeadTimeout::new(acceptor, header_timeout);
        let mut server =
            axum_server::from_tcp(listener)?.acceptor(acceptor).handle(handle).first_request_timeout(header_timeout);
        server.http_builder().http1().header_read_timeout(idle_timeout);
        tokio::spawn(server.serve(app))
    } else {
        let acceptor = crate::limits::HeadTimeout::new(capped, header_timeout);
        let mut server =
            axum_server::from_tcp(listener)?.acceptor(acceptor).handle(handle).first_request_timeout(header_timeout);
        server.http_builder().http1().header_read_timeout(idle_timeout);
        tokio::spawn(server.serve(app))
    };
    let mut metrics_addr = None;
    let ops = match config.metrics_listen {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at).await.with_context(|| format!("metrics_listen {at}"))?;
            metrics_addr = Some(listener.local_addr()?);
            tracing::info!(url = %format!("http://{}/metrics", listener.local_addr()?), "serving metrics");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let app = crate::ops::listener_router(state.clone());
            let task = tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
            });
            Some((tx, task))
        }
        None => None,
    };
    let stop: Box<dyn Fn() + Send + Sync> = Box::new(stop);
    tracing::info!(
        url = %format!("{}://{addr}", if https { "https" } else { "http" }),
        data_dir = %config.data_dir.display(),
        "keyfleet is serving"
    );
    Ok(RunningServer { addr, metrics_addr, https, state, stop, http, ops, engine: engine_handle, store, lock })
}
