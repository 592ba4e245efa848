//! What bulk jobs act on: `keyfleet aws connection|kms|sync|keys ...`.

use std::process::ExitCode;
use std::time::Duration;

use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::aws::{AwsConnectionRequest, AwsKeyView, CreateAwsSyncJob, KmsRequest};
use keyfleet_api_types::common::ListParams;

use crate::commands::watch::{Progress, until_terminal};
use crate::output::{
    CONNECTION_HEADERS, Format, KEY_HEADERS, KMS_HEADERS, OutputFlags, connection_row, key_row, kms_row, print_json,
    print_line, print_list,
};
use crate::summary::{JobState, exit_code, summary_line};
use keyfleet_client::{AwsKeyListQuery, Client};

/// Page size of `keys list --all`: the server's maximum.
const ALL_PAGE: u64 = 1000;

/// Paging and output flags shared by the inventory lists.
#[derive(Debug, clap::Args)]
pub struct ListFlags {
    /// Leave out this many first entries
    #[arg(long)]
    pub skip: Option<u64>,
    /// At most this many entries (server default 10, maximum 1000)
    #[arg(long)]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub output: OutputFlags,
}

impl ListFlags {
    fn params(&self) -> ListParams {
        ListParams { skip: self.skip, limit: self.limit, sort: None }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ConnectionCommand {
    /// Register AWS credentials; prints the connection (never the secret)
    Create(ConnectionCreateArgs),
    /// List connections
    List(ListFlags),
}

#[derive(Debug, clap::Args)]
pub struct ConnectionCreateArgs {
    /// Unique connection name, used by `kms create --connection`
    #[arg(long)]
    pub name: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    pub access_key_id: String,
    /// Write-only: the server stores it encrypted and never shows it again
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub secret_access_key: String,
    /// Region used to reach AWS with these credentials
    #[arg(long)]
    pub region: Option<String>,
    /// A KMS-compatible endpoint instead of AWS's (a fake, moto, a VPC endpoint)
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    #[arg(long)]
    pub description: Option<String>,
    /// A role to assume with these credentials
    #[arg(long, value_name = "ARN")]
    pub assume_role_arn: Option<String>,
    #[arg(long, value_name = "ID")]
    pub assume_role_external_id: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum KmsCommand {
    /// Add a KMS container: one AWS account and its regions, reached through a connection
    Create(KmsCreateArgs),
    /// List KMS containers
    List(ListFlags),
}

#[derive(Debug, clap::Args)]
pub struct KmsCreateArgs {
    /// Unique container name
    #[arg(long)]
    pub name: String,
    /// The 12-digit AWS account id
    #[arg(long)]
    pub account_id: String,
    /// Connection name or id
    #[arg(long)]
    pub connection: String,
    /// A region to manage; repeat for more
    #[arg(long = "region", value_name = "REGION", required = true)]
    pub regions: Vec<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum SyncCommand {
    /// Start reading keys from KMS; prints the job
    Create(SyncCreateArgs),
    /// Print one synchronization job
    Get {
        /// Job id
        id: String,
    },
    /// Follow a synchronization job until it ends, then print it
    Watch {
        /// Job id
        id: String,
        /// Poll interval
        #[arg(long, default_value_t = 500, value_name = "MS")]
        interval_ms: u64,
    },
}

#[derive(Debug, clap::Args)]
pub struct SyncCreateArgs {
    /// KMS container name or id; repeat for more
    #[arg(long = "kms", value_name = "NAME_OR_ID")]
    pub kms: Vec<String>,
    /// Only these regions; repeat for more
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Every KMS container
    #[arg(long, conflicts_with = "kms")]
    pub all: bool,
    /// After printing the job, follow it like `watch`
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List keys: a table, JSON, or just the ids to feed `bulkjob create --keys-file`
    List(KeysListArgs),
}

#[derive(Debug, clap::Args)]
pub struct KeysListArgs {
    /// KMS container name
    #[arg(long)]
    pub kms: Option<String>,
    /// KMS container id
    #[arg(long)]
    pub kms_id: Option<String>,
    /// AWS region, e.g. eu-west-1
    #[arg(long)]
    pub region: Option<String>,
    /// AWS KeyState: Enabled, Disabled, PendingDeletion, ...
    #[arg(long)]
    pub keystate: Option<String>,
    /// An alias of the key, e.g. alias/payments
    #[arg(long)]
    pub alias: Option<String>,
    /// AWS key id
    #[arg(long)]
    pub keyid: Option<String>,
    /// Leave out this many first keys
    #[arg(long)]
    pub skip: Option<u64>,
    /// At most this many keys (server default 10, maximum 1000)
    #[arg(long)]
    pub limit: Option<u64>,
    /// Fetch every page, not just one
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    #[command(flatten)]
    pub output: OutputFlags,
    /// Print only the keyfleet key ids, one per line
    #[arg(long, conflicts_with_all = ["format", "json"])]
    pub ids_only: bool,
}

pub(crate) async fn connection(client: &Client, cmd: ConnectionCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConnectionCommand::Create(a) => {
            let req = AwsConnectionRequest {
                name: Some(a.name),
                description: a.description,
                access_key_id: Some(a.access_key_id),
                secret_access_key: Some(a.secret_access_key),
                aws_region: a.region,
                assume_role_arn: a.assume_role_arn,
                assume_role_external_id: a.assume_role_external_id,
                cloud_name: None,
                endpoint_url: a.endpoint_url,
            };
            print_json(&client.create_aws_connection(&req).await?)?;
        }
        ConnectionCommand::List(flags) => {
            let list = client.list_aws_connections(&flags.params()).await?;
            let rows: Vec<_> = list.resources.iter().map(connection_row).collect();
            print_list(flags.output.or(Format::Table), &list, CONNECTION_HEADERS, &rows, (list.skip, list.total))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn kms(client: &Client, cmd: KmsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KmsCommand::Create(a) => {
            let req = KmsRequest {
                name: Some(a.name),
                account_id: Some(a.account_id),
                connection: Some(a.connection),
                regions: Some(a.regions),
                quotas: None,
            };
            print_json(&client.create_aws_kms(&req).await?)?;
        }
        KmsCommand::List(flags) => {
            let list = client.list_aws_kms(&flags.params()).await?;
            let rows: Vec<_> = list.resources.iter().map(kms_row).collect();
            print_list(flags.output.or(Format::Table), &list, KMS_HEADERS, &rows, (list.skip, list.total))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn sync(client: &Client, cmd: SyncCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SyncCommand::Create(a) => {
            let req = CreateAwsSyncJob {
                kms: (!a.kms.is_empty()).then_some(a.kms),
                regions: (!a.regions.is_empty()).then_some(a.regions),
                synchronize_all: a.all.then_some(true),
            };
            let job = client.create_aws_sync_job(&req).await?;
            print_json(&job)?;
            if a.watch {
                return watch_sync(client, &job.id, 500).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        SyncCommand::Get { id } => {
            print_json(&client.get_aws_sync_job(&id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        SyncCommand::Watch { id, interval_ms } => watch_sync(client, &id, interval_ms).await,
    }
}

/// Follows a sync job with progress on stderr, then prints it and its summary on stdout.
async fn watch_sync(client: &Client, id: &str, interval_ms: u64) -> anyhow::Result<ExitCode> {
    let interval = Duration::from_millis(interval_ms.max(50));
    let job = until_terminal(|| client.get_aws_sync_job(id), interval, Progress::Stderr).await?;
    print_json(&job)?;
    let state = JobState::from(&job);
    print_line(&summary_line(&state))?;
    Ok(ExitCode::from(exit_code(&state)))
}

pub(crate) async fn keys(client: &Client, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::List(a) = cmd;
    let mut query = AwsKeyListQuery {
        kms: a.kms,
        kms_id: a.kms_id,
        region: a.region,
        keyid: a.keyid,
        alias: a.alias,
        keystate: a.keystate,
        skip: a.skip,
        limit: if a.all { Some(ALL_PAGE) } else { a.limit },
        sort: None,
        ..Default::default()
    };
    let mut list = client.list_aws_keys(&query).await?;
    if a.all {
        list = fetch_rest(client, &mut query, list).await?;
    }
    if a.ids_only {
        let ids: Vec<&str> = list.resources.iter().map(|k| k.id.as_str()).collect();
        if !ids.is_empty() {
            print_line(&ids.join("\n"))?;
        }
    } else {
        let rows: Vec<_> = list.resources.iter().map(key_row).collect();
        print_list(a.output.or(Format::Table), &list, KEY_HEADERS, &rows, (list.skip, list.total))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends the following pages to `first` until `total` is reached (or a page comes back empty).
async fn fetch_rest(
    client: &Client,
    query: &mut AwsKeyListQuery,
    mut all: ListEnvelope<AwsKeyView>,
) -> anyhow::Result<ListEnvelope<AwsKeyView>> {
    let start = all.skip;
    loop {
        let have = all.resources.len() as u64;
        if start + have >= all.total {
            break;
        }
        query.skip = Some(start + have);
        let page = client.list_aws_keys(query).await?;
        if page.resources.is_empty() {
            break;
        }
        all.total = page.total;
        all.resources.extend(page.resources);
    }
    all.limit = all.resources.len() as u64;
    Ok(all)
}
