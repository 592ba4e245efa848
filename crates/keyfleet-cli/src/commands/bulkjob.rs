//! `keyfleet aws bulkjob create|get|list|cancel|watch`.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use keyfleet_api_types::bulkjob::{BulkJobListQuery, CreateAwsBulkJob};

use crate::commands::inventory::ListFlags;
use crate::commands::watch::{Progress, until_terminal};
use crate::output::{BULKJOB_HEADERS, bulkjob_row, note_paging, print_json, print_line, print_table};
use crate::summary::{JobState, exit_code, problem_lines, summary_line};
use keyfleet_client::Client;

#[derive(Debug, clap::Subcommand)]
pub enum BulkjobCommand {
    /// Start a job on up to 100 keys; prints the job
    Create(BulkjobCreateArgs),
    /// Print one job
    Get {
        /// Job id
        id: String,
    },
    /// List jobs as a table (or JSON)
    List(BulkjobListArgs),
    /// Ask a running job to stop: in-flight keys finish, pending ones are skipped
    Cancel {
        /// Job id
        id: String,
    },
    /// Follow a job until it ends; exit 1 if it failed, was cancelled or any key failed
    Watch(BulkjobWatchArgs),
}

#[derive(Debug, clap::Args)]
pub struct BulkjobCreateArgs {
    /// enablekey, disablekey, schedulekeydeletion, cancelkeydeletion or applypolicytemplate
    #[arg(long)]
    pub operation: String,
    /// A CCKM key id (the `id` of /v1/cckm/aws/keys); repeat for more keys
    #[arg(long = "key", value_name = "ID")]
    pub keys: Vec<String>,
    /// A file of key ids, one per line; `#` starts a comment; `-` reads stdin
    #[arg(long, value_name = "FILE")]
    pub keys_file: Option<PathBuf>,
    /// Pending window for schedulekeydeletion, 7-30 days
    #[arg(long)]
    pub days: Option<i64>,
    /// The template applypolicytemplate applies
    #[arg(long, value_name = "ID")]
    pub policy_template_id: Option<String>,
    /// After printing the job, follow it like `watch`
    #[arg(long)]
    pub watch: bool,
    /// Poll interval of --watch
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub interval_ms: u64,
}

#[derive(Debug, clap::Args)]
pub struct BulkjobListArgs {
    /// Only jobs in this overall_status (in_progress, completed, failed, cancelled)
    #[arg(long)]
    pub status: Option<String>,
    /// Only jobs of this operation
    #[arg(long)]
    pub operation: Option<String>,
    #[command(flatten)]
    pub list: ListFlags,
}

#[derive(Debug, clap::Args)]
pub struct BulkjobWatchArgs {
    /// Job id
    pub id: String,
    /// Poll interval
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub interval_ms: u64,
}

pub(crate) async fn run(client: &Client, cmd: BulkjobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BulkjobCommand::Create(args) => {
            let mut keys = args.keys;
            if let Some(file) = &args.keys_file {
                keys.extend(parse_keys_file(&read_keys_file(file)?));
            }
            let keys = dedup(keys);
            if keys.is_empty() {
                bail!("keys: give at least one --key or a --keys-file");
            }
            let req = CreateAwsBulkJob {
                operation: Some(args.operation),
                keys: Some(keys),
                days: args.days,
                policy_template_id: args.policy_template_id,
                selector: None,
                ..Default::default()
            };
            let job = client.create_aws_bulkjob(&req).await?;
            print_json(&job)?;
            if args.watch { watch(client, &job.id, args.interval_ms).await } else { Ok(ExitCode::SUCCESS) }
        }
        BulkjobCommand::Get { id } => {
            print_json(&client.get_aws_bulkjob(&id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        BulkjobCommand::List(args) => {
            let query = BulkJobListQuery {
                overall_status: args.status,
                operation: args.operation,
                skip: args.list.skip,
                limit: args.list.limit,
                ..BulkJobListQuery::default()
            };
            let list = client.list_aws_bulkjobs(&query).await?;
            if args.list.json {
                print_json(&list)?;
            } else {
                let rows: Vec<_> = list.resources.iter().map(bulkjob_row).collect();
                print_table(BULKJOB_HEADERS, &rows)?;
                note_paging(list.skip, rows.len(), list.total);
            }
            Ok(ExitCode::SUCCESS)
        }
        BulkjobCommand::Cancel { id } => {
            print_json(&client.cancel_aws_bulkjob(&id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        BulkjobCommand::Watch(args) => watch(client, &args.id, args.interval_ms).await,
    }
}

/// Follows a job, then prints the summary and every key that did not succeed.
async fn watch(client: &Client, id: &str, interval_ms: u64) -> anyhow::Result<ExitCode> {
    let progress = if std::io::stdout().is_terminal() { Progress::Bar } else { Progress::Stdout };
    let interval = Duration::from_millis(interval_ms.max(50));
    let job = until_terminal(|| client.get_aws_bulkjob(id), interval, progress).await?;
    let state = JobState::from(&job);
    print_line(&summary_line(&state))?;
    for line in problem_lines(&state) {
        print_line(&line)?;
    }
    Ok(ExitCode::from(exit_code(&state)))
}

fn read_keys_file(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading key ids from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Key ids from a keys file: one per line, surrounding blanks ignored, `#` to the end of the line is a
/// comment, empty lines skipped.
pub fn parse_keys_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.split_once('#').map_or(line, |(id, _)| id).trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Drops repeated ids, keeping the first occurrence: the server refuses duplicates, and a key listed on
/// the command line and in the file is meant once.
fn dedup(keys: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    keys.into_iter().filter(|k| seen.insert(k.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_file_skips_comments_and_blank_lines() {
        let text = "# keys to disable\n\
                    2387500d-1111-4c43-9a55-8e0c8f1f2a11\n\
                    \n\
                    \t 5d6c1e7a-2222-4c43-9a55-8e0c8f1f2a11   # the old one\r\n\
                    #3c0ffee0-3333-4c43-9a55-8e0c8f1f2a11\n\
                    9a8b7c6d-4444-4c43-9a55-8e0c8f1f2a11";
        assert_eq!(
            parse_keys_file(text),
            vec![
                "2387500d-1111-4c43-9a55-8e0c8f1f2a11",
                "5d6c1e7a-2222-4c43-9a55-8e0c8f1f2a11",
                "9a8b7c6d-4444-4c43-9a55-8e0c8f1f2a11",
            ]
        );
        assert!(parse_keys_file("").is_empty());
        assert!(parse_keys_file("# only\n\n   \n").is_empty());
    }

    #[test]
    fn duplicates_are_dropped_in_order() {
        let keys = vec!["b".into(), "a".into(), "b".into(), "c".into(), "a".into()];
        assert_eq!(dedup(keys), vec!["b", "a", "c"]);
    }
}
