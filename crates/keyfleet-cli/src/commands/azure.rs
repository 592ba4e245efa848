//! `keyfleet azure bulkjob ...`: Azure's create flags (cloud key backup deletion); every other command is the
//! cloud-generic one of `jobs.rs`. The inventory commands (`vault`, `keys`, `backups`, `sync`) are in
//! `azure_inventory.rs`.

use std::process::ExitCode;

use anyhow::bail;
use keyfleet_api_types::azure::{AzureKeyQuery, CreateAzureBulkJob, DeleteKeyBackupsParam, OneOrMany};
use keyfleet_client::{Client, Cloud};

use crate::commands::azure_inventory::{self, AzureKeysCommand, AzureSyncCommand, BackupsCommand, VaultCommand};
use crate::commands::jobs::{self, CreateFlags, JobCommand};

#[derive(Debug, clap::Subcommand)]
pub enum AzureCommand {
    /// Bulk jobs on cloud key backups: create (plan, ask, run), confirm, report, errors, retry-failed, revert, ...
    #[command(subcommand)]
    Bulkjob(AzureBulkjobCommand),
    /// Key Vaults keyfleet manages
    #[command(subcommand)]
    Vault(VaultCommand),
    /// Azure keys in keyfleet's inventory
    #[command(subcommand)]
    Keys(AzureKeysCommand),
    /// Cloud key backups of a key
    #[command(subcommand)]
    Backups(BackupsCommand),
    /// Key synchronization jobs: read vaults' keys into keyfleet's inventory
    #[command(subcommand)]
    Sync(AzureSyncCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum AzureBulkjobCommand {
    /// Plan the deletion of the cloud key backups that match every condition given, ask, then run it
    Create(Box<AzureBulkjobCreateArgs>),
    #[command(flatten)]
    Job(JobCommand),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("conditions").required(true).multiple(true)
    .args(["vault", "keys", "backups", "created_before", "created_after"])))]
pub struct AzureBulkjobCreateArgs {
    /// The job's operation
    #[arg(long, default_value = "delete-key-backups")]
    pub operation: String,
    /// Backups of keys in this vault (id or name); with --key, only where the key names are looked up
    #[arg(long, value_name = "VAULT")]
    pub vault: Option<String>,
    /// Backups of this Azure key (keyfleet key id, or key name); repeatable
    #[arg(long = "key", value_name = "NAME|ID")]
    pub keys: Vec<String>,
    /// This backup (id); repeatable
    #[arg(long = "backup", value_name = "ID")]
    pub backups: Vec<String>,
    /// Backups created before this time (RFC 3339, exclusive)
    #[arg(long, value_name = "TIME")]
    pub created_before: Option<String>,
    /// Backups created at or after this time (RFC 3339)
    #[arg(long, value_name = "TIME")]
    pub created_after: Option<String>,
    #[command(flatten)]
    pub safety: CreateFlags,
}

pub(crate) async fn run(client: &Client, cmd: AzureCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AzureCommand::Bulkjob(AzureBulkjobCommand::Create(args)) => {
            let mut keys = Vec::with_capacity(args.keys.len());
            for key in &args.keys {
                keys.push(key_id(client, key, args.vault.as_deref()).await?);
            }
            let param = DeleteKeyBackupsParam {
                backups: (!args.backups.is_empty()).then(|| OneOrMany::Many(args.backups.clone())),
                // The service takes one of keys and vault: the vault only narrowed the name lookup.
                vault_id: if keys.is_empty() { args.vault.clone() } else { None },
                keys: (!keys.is_empty()).then_some(keys),
                key_id: None,
                created_after: args.created_after.clone(),
                created_before: args.created_before.clone(),
            };
            let req = CreateAzureBulkJob {
                operation: Some(args.operation),
                delete_key_backups_param: Some(param),
                ..Default::default()
            };
            jobs::create(client, Cloud::Azure, serde_json::to_value(&req)?, &args.safety).await
        }
        AzureCommand::Bulkjob(AzureBulkjobCommand::Job(cmd)) => jobs::run(client, Cloud::Azure, cmd).await,
        AzureCommand::Vault(cmd) => azure_inventory::vault(client, cmd).await,
        AzureCommand::Keys(cmd) => azure_inventory::keys(client, cmd).await,
        AzureCommand::Backups(cmd) => azure_inventory::backups(client, cmd).await,
        AzureCommand::Sync(cmd) => azure_inventory::sync(client, cmd).await,
    }
}

/// A key id as given, or the id of the one key named so (in `vault` when given).
pub(crate) async fn key_id(client: &Client, key: &str, vault: Option<&str>) -> anyhow::Result<String> {
    if is_uuid(key) {
        return Ok(key.to_owned());
    }
    let query = AzureKeyQuery {
        key_name: Some(key.to_owned()),
        key_vault: vault.map(str::to_owned),
        limit: Some(2),
        ..AzureKeyQuery::default()
    };
    let found = client.list_azure_keys(&query).await?;
    let matching: Vec<_> = found.resources.iter().filter(|k| k.key_name == key).collect();
    let place = vault.map(|v| format!(" in vault {v}")).unwrap_or_default();
    match matching.as_slice() {
        [one] if found.total == 1 => Ok(one.id.clone()),
        [] => bail!("--key {key}: no Azure key of that name{place}"),
        _ => bail!("--key {key}: {} Azure keys have that name{place}: give --vault or the key's id", found.total),
    }
}

/// `8-4-4-4-12` hex digits: a keyfleet id rather than a key name.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: AzureCommand,
    }

    fn parse(args: &[&str]) -> Result<AzureCommand, clap::Error> {
        Ok(Cli::try_parse_from(["azure", "bulkjob"].iter().chain(args))?.cmd)
    }

    #[test]
    fn create_needs_a_condition_and_takes_the_safety_flags() {
        assert!(parse(&["create"]).is_err(), "no condition: no implicit delete-everything");
        assert!(parse(&["create", "--dry-run"]).is_err());
        let Ok(AzureCommand::Bulkjob(AzureBulkjobCommand::Create(args))) = parse(&[
            "create",
            "--vault",
            "kv-a",
            "--created-before",
            "2026-01-01T00:00:00Z",
            "--max-items",
            "7",
            "--yes",
            "--idempotency-key",
            "ret-1",
        ]) else {
            panic!("create");
        };
        assert_eq!(args.operation, "delete-key-backups");
        assert_eq!(
            (args.vault.as_deref(), args.created_before.as_deref()),
            (Some("kv-a"), Some("2026-01-01T00:00:00Z"))
        );
        assert!(args.safety.yes && args.safety.max_items == Some(7));
        assert!(parse(&["create", "--key", "k", "--key", "l", "--backup", "b", "--created-after", "x"]).is_ok());
    }

    #[test]
    fn the_job_commands_are_the_shared_ones() {
        for argv in [
            vec!["confirm", "j1"],
            vec!["report", "j1", "--format", "csv"],
            vec!["errors", "j1"],
            vec!["retry-failed", "j1"],
            vec!["revert", "j1"],
            vec!["get", "j1"],
            vec!["watch", "j1"],
        ] {
            let cmd = parse(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert!(matches!(cmd, AzureCommand::Bulkjob(AzureBulkjobCommand::Job(_))), "{argv:?}");
        }
    }

    #[test]
    fn ids_are_told_from_names() {
        assert!(is_uuid("e612b64f-6364-48ce-92ec-c6dd608d7ad0"));
        assert!(!is_uuid("payments-key"));
        assert!(!is_uuid("e612b64f-6364-48ce-92ec-c6dd608d7adz"));
        assert!(!is_uuid("e612b64f636448ce92ecc6dd608d7ad0"));
    }
}
