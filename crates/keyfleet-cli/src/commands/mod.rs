//! The `keyfleet` client commands: `login`, `bulkjob ...`, `aws ...`, `azure ...`, `api`.

mod api;
mod azure;
mod azure_inventory;
mod bulkjob;
mod inventory;
mod jobs;
mod login;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use secrecy::ExposeSecret;

use keyfleet_client::config::{CONFIG_ENV, ClientConfig, resolve_config_path};
use keyfleet_client::{Client, ClientOptions};

pub use api::ApiArgs;
pub use azure::{AzureBulkjobCommand, AzureBulkjobCreateArgs, AzureCommand};
pub use bulkjob::{BulkjobCommand, BulkjobCreateArgs, parse_keys_file};
pub use inventory::{ConnectionCommand, KeysCommand, KmsCommand, SyncCommand};
pub use jobs::{BulkjobListArgs, BulkjobWatchArgs, CreateFlags, FollowFlags, JobCommand, ReportArgs};
pub use login::LoginArgs;

/// Options every client command shares, given before the subcommand (`keyfleet --session FILE bulkjob list`).
/// The session file has a flag of its own: `--config` is only ever the server's TOML file (`serve --config`).
/// `KEYFLEET_CLIENT_CONFIG` works wherever the flag is not at hand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClientGlobalArgs {
    /// Client session file written by `login` [default: $XDG_CONFIG_HOME/keyfleet/client.json, else
    /// ~/.config/keyfleet/client.json]
    #[arg(long, env = CONFIG_ENV, value_name = "FILE")]
    pub session: Option<PathBuf>,
}

/// The client half of the `keyfleet` command line; the binary flattens it into its own subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Log in to a keyfleet (or CipherTrust CCKM) server and save the session
    Login(LoginArgs),
    /// Bulk jobs on AWS KMS keys (the same as `aws bulkjob`): create (plan, ask, run), confirm, report, ...
    #[command(subcommand)]
    Bulkjob(BulkjobCommand),
    /// AWS: bulk jobs, connections, KMS containers, key synchronization, keys
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
    /// Azure: bulk jobs on cloud key backups
    Azure {
        #[command(subcommand)]
        command: AzureCommand,
    },
    /// Call any API route and print the JSON answer
    Api(ApiArgs),
}

#[derive(Debug, clap::Subcommand)]
pub enum AwsCommand {
    /// Bulk jobs on AWS KMS keys: create (plan, ask, run), confirm, report, errors, retry-failed, revert, ...
    #[command(subcommand)]
    Bulkjob(BulkjobCommand),
    /// AWS connections (credentials keyfleet uses to reach KMS)
    #[command(subcommand)]
    Connection(ConnectionCommand),
    /// KMS containers: one AWS account, its regions, through one connection
    #[command(subcommand)]
    Kms(KmsCommand),
    /// Key synchronization jobs: read keys from KMS into keyfleet's inventory
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Keys in keyfleet's inventory
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Runs one client command. Errors are returned, not printed; print them as `error: {err:#}` (an API
/// error then reads `error: 400 NCERRInvalidParamValue: days: must be between 7 and 30`) and exit with
/// [`crate::exit::of_error`]. The exit code is 0, or 4 when a watched job failed, was cancelled or had failed
/// items.
pub async fn run(cmd: ClientCommand, global: &ClientGlobalArgs) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Login(args) => login::run(args, global).await,
        ClientCommand::Bulkjob(cmd) => bulkjob::run(&open_session(global)?, cmd).await,
        ClientCommand::Aws { command } => {
            let client = open_session(global)?;
            match command {
                AwsCommand::Bulkjob(cmd) => bulkjob::run(&client, cmd).await,
                AwsCommand::Connection(cmd) => inventory::connection(&client, cmd).await,
                AwsCommand::Kms(cmd) => inventory::kms(&client, cmd).await,
                AwsCommand::Sync(cmd) => inventory::sync(&client, cmd).await,
                AwsCommand::Keys(cmd) => inventory::keys(&client, cmd).await,
            }
        }
        ClientCommand::Azure { command } => azure::run(&open_session(global)?, command).await,
        ClientCommand::Api(args) => {
            let client = open_session(global)?;
            api::run(&client, args).await
        }
    }
}

/// A client for the saved session. Every refresh it makes (before a request when the JWT expires within
/// 30 s, or after a 401) is written back to the session file at once.
fn open_session(global: &ClientGlobalArgs) -> anyhow::Result<Client> {
    let path = resolve_config_path(global.session.as_deref())?;
    let config = ClientConfig::load(&path)?
        .with_context(|| format!("not logged in ({} does not exist): run `keyfleet login` first", path.display()))?;
    let opts = ClientOptions {
        base_url: config.url.clone(),
        insecure: config.insecure,
        ca_cert: config.ca_cert.clone(),
        ..ClientOptions::default()
    };
    let client = Client::new(&opts)?
        .with_tokens(config.jwt.expose_secret(), Some(config.refresh_token.expose_secret().to_owned()));
    let saved = Arc::new(Mutex::new(config));
    Ok(client.on_token_refresh(move |tokens| {
        let mut config = saved.lock().unwrap_or_else(|p| p.into_inner());
        config.jwt = tokens.jwt.as_str().into();
        config.refresh_token = tokens.refresh_token.as_str().into();
        if !tokens.refresh_token_id.is_empty() {
            config.refresh_token_id = tokens.refresh_token_id.clone();
        }
        // The command can go on with the token in memory; only the next command would have to refresh.
        if let Err(e) = config.save(&path) {
            eprintln!("warning: could not save the refreshed session: {e:#}");
        }
    }))
}
