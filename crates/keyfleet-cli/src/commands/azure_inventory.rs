//! `keyfleet azure vault|keys|backups|sync ...`: Azure's inventory, mirroring `keyfleet aws kms|keys|sync`.
//! Vaults are added and connections created through the API (`keyfleet api`); these commands read the
//! inventory and keep it in sync.

use std::process::ExitCode;
use std::time::Duration;

use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::azure::{
    AzureKeyQuery, AzureKeyView, AzureSyncJobView as SyncJobView, CreateAzureSyncJob, KeyBackupView, VaultView,
};
use keyfleet_client::{Client, ClientError, Method};
use serde::de::DeserializeOwned;

use crate::commands::azure::key_id;
use crate::commands::inventory::ListFlags;
use crate::commands::watch::{Progress, until_terminal};
use crate::output::{Format, print_json, print_line, print_list, short_time};
use crate::summary::{JobState, exit_code, summary_line};

#[derive(Debug, clap::Subcommand)]
pub enum VaultCommand {
    /// List the Key Vaults keyfleet manages
    List(ListFlags),
}

#[derive(Debug, clap::Subcommand)]
pub enum AzureKeysCommand {
    /// List Azure keys in keyfleet's inventory
    List(AzureKeysListArgs),
}

#[derive(Debug, clap::Args)]
pub struct AzureKeysListArgs {
    /// Only keys of this vault (name or id)
    #[arg(long)]
    pub vault: Option<String>,
    #[command(flatten)]
    pub list: ListFlags,
}

#[derive(Debug, clap::Subcommand)]
pub enum BackupsCommand {
    /// List the cloud key backups of one key
    List(BackupsListArgs),
}

#[derive(Debug, clap::Args)]
pub struct BackupsListArgs {
    /// The key: keyfleet key id, or key name (with --vault when the name is in several vaults)
    #[arg(long)]
    pub key: String,
    #[arg(long)]
    pub vault: Option<String>,
    #[command(flatten)]
    pub list: ListFlags,
}

#[derive(Debug, clap::Subcommand)]
pub enum AzureSyncCommand {
    /// Read vaults' keys into keyfleet's inventory (and back each key up with --backup)
    Create {
        /// A vault (name or id); repeatable
        #[arg(long = "vault", value_name = "VAULT", required = true)]
        vaults: Vec<String>,
        /// Take a cloud key backup of every synchronized key
        #[arg(long)]
        backup: bool,
        /// Follow the job until it ends (exit 4 if it failed)
        #[arg(long, visible_alias = "wait")]
        watch: bool,
    },
    /// Show a synchronization job
    Get { id: String },
}

pub const VAULT_HEADERS: &[&str] = &["ID", "NAME", "AZURE NAME", "CONNECTION", "LOCATION", "SYNCED"];
pub const AZURE_KEY_HEADERS: &[&str] = &["ID", "VAULT", "NAME", "ENABLED", "GONE"];
pub const BACKUP_HEADERS: &[&str] = &["ID", "NAME", "KEY", "SIZE", "CREATED"];

pub(crate) async fn vault(client: &Client, cmd: VaultCommand) -> anyhow::Result<ExitCode> {
    let VaultCommand::List(flags) = cmd;
    let list: ListEnvelope<VaultView> = get(client, &format!("/v1/cckm/azure/vaults{}", paging(&flags))).await?;
    let rows: Vec<_> = list
        .resources
        .iter()
        .map(|v| {
            let synced = v.synced_at.as_ref().map(short_time).unwrap_or_default();
            vec![v.id.clone(), v.name.clone(), v.azure_name.clone(), v.connection.clone(), v.location.clone(), synced]
        })
        .collect();
    print_list(flags.output.or(Format::Table), &list, VAULT_HEADERS, &rows, (list.skip, list.total))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn keys(client: &Client, cmd: AzureKeysCommand) -> anyhow::Result<ExitCode> {
    let AzureKeysCommand::List(a) = cmd;
    let query =
        AzureKeyQuery { key_vault: a.vault, skip: a.list.skip, limit: a.list.limit, ..AzureKeyQuery::default() };
    let list: ListEnvelope<AzureKeyView> = client.list_azure_keys(&query).await?;
    let rows: Vec<_> = list
        .resources
        .iter()
        .map(|k| {
            let enabled = k.azure_param.attributes.enabled.to_string();
            vec![k.id.clone(), k.key_vault.clone(), k.key_name.clone(), enabled, k.gone.to_string()]
        })
        .collect();
    print_list(a.list.output.or(Format::Table), &list, AZURE_KEY_HEADERS, &rows, (list.skip, list.total))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn backups(client: &Client, cmd: BackupsCommand) -> anyhow::Result<ExitCode> {
    let BackupsCommand::List(a) = cmd;
    let key = key_id(client, &a.key, a.vault.as_deref()).await?;
    let path = format!("/v1/cckm/azure/keys/{key}/backups{}", paging(&a.list));
    let list: ListEnvelope<KeyBackupView> = get(client, &path).await?;
    let rows: Vec<_> = list
        .resources
        .iter()
        .map(|b| {
            vec![b.id.clone(), b.name.clone(), b.key_name.clone(), b.size_bytes.to_string(), short_time(&b.created_at)]
        })
        .collect();
    print_list(a.list.output.or(Format::Table), &list, BACKUP_HEADERS, &rows, (list.skip, list.total))?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn sync(client: &Client, cmd: AzureSyncCommand) -> anyhow::Result<ExitCode> {
    const SYNC: &str = "/v1/cckm/azure/synchronization-jobs";
    match cmd {
        AzureSyncCommand::Create { vaults, backup, watch } => {
            let req = CreateAzureSyncJob {
                key_vaults: Some(vaults),
                take_cloud_key_backup: backup.then_some(true),
                ..CreateAzureSyncJob::default()
            };
            let job: SyncJobView =
                decode(SYNC, client.request(Method::POST, SYNC, Some(serde_json::to_value(&req)?)).await?)?;
            if !watch {
                print_json(&job)?;
                return Ok(ExitCode::SUCCESS);
            }
            let path = format!("{SYNC}/{}", job.id);
            let fetch = || async { get::<SyncJobView>(client, &path).await };
            let job = until_terminal(fetch, Duration::from_millis(500), Progress::Stderr).await?;
            print_json(&job)?;
            let state = JobState::from(&job);
            print_line(&summary_line(&state))?;
            Ok(ExitCode::from(exit_code(&state)))
        }
        AzureSyncCommand::Get { id } => {
            print_json(&get::<SyncJobView>(client, &format!("{SYNC}/{id}")).await?)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `?skip=..&limit=..` of a list's paging flags (numbers: nothing to escape).
fn paging(flags: &ListFlags) -> String {
    let pairs: Vec<String> = [("skip", flags.skip), ("limit", flags.limit)]
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

async fn get<T: DeserializeOwned>(client: &Client, path: &str) -> Result<T, ClientError> {
    decode(path, client.request(Method::GET, path, None).await?)
}

/// An answer of the expected shape, or the client's `Decode` error (exit 3: not an answer keyfleet gives).
fn decode<T: DeserializeOwned>(path: &str, value: serde_json::Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|source| ClientError::Decode { path: path.to_owned(), source })
}
