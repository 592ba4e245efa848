//! `keyfleet bulkjob ...` (also `keyfleet aws bulkjob ...`): AWS's create flags; every other command is the
//! cloud-generic one of `jobs.rs`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use keyfleet_api_types::bulkjob::{CreateAwsBulkJob, KeySelectorRequest};
use keyfleet_client::{Client, Cloud};
use keyfleet_service::aws::MAX_KEYS;

use crate::commands::jobs::{self, CreateFlags, JobCommand};

#[derive(Debug, clap::Subcommand)]
pub enum BulkjobCommand {
    /// Plan a job on keys (--key, --keys-file) or a selection (--kms, --region, --tag, ...), ask, then run it
    Create(Box<BulkjobCreateArgs>),
    #[command(flatten)]
    Job(JobCommand),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("filters").multiple(true)
    .args(["kms", "regions", "tags", "alias_prefix", "key_state", "all"])))]
pub struct BulkjobCreateArgs {
    /// enablekey, disablekey, schedulekeydeletion, cancelkeydeletion or applypolicytemplate
    #[arg(long)]
    pub operation: String,
    /// A key: CCKM id, AWS KeyId, ARN or alias/NAME; repeat for more keys
    #[arg(long = "key", value_name = "KEY", conflicts_with = "filters")]
    pub keys: Vec<String>,
    /// A file of key references, one per line, any number; `#` starts a comment; `-` reads stdin
    #[arg(long, value_name = "FILE", conflicts_with = "filters")]
    pub keys_file: Option<PathBuf>,
    /// Select the keys of this KMS container (name or id); repeatable
    #[arg(long, value_name = "NAME")]
    pub kms: Vec<String>,
    /// Select keys in this AWS region; repeatable
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// Select keys with this tag (and value); repeatable, all must hold
    #[arg(long = "tag", value_name = "KEY[=VALUE]")]
    pub tags: Vec<String>,
    /// Select keys with an alias starting so (`payments` or `alias/payments`)
    #[arg(long, value_name = "PREFIX")]
    pub alias_prefix: Option<String>,
    /// Select keys in this state (Enabled, Disabled, PendingDeletion, ...)
    #[arg(long, value_name = "STATE")]
    pub key_state: Option<String>,
    /// Select every key of the inventory
    #[arg(long)]
    pub all: bool,
    /// Pending window for schedulekeydeletion, 7-30 days
    #[arg(long)]
    pub days: Option<i64>,
    /// The template applypolicytemplate applies
    #[arg(long, value_name = "ID")]
    pub policy_template_id: Option<String>,
    #[command(flatten)]
    pub safety: CreateFlags,
}

pub(crate) async fn run(client: &Client, cmd: BulkjobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BulkjobCommand::Create(args) => {
            let mut keys = args.keys.clone();
            if let Some(file) = &args.keys_file {
                keys.extend(parse_keys_file(&read_keys_file(file)?));
            }
            let (keys, selector) = selection(dedup(keys), &args)?;
            let req = CreateAwsBulkJob {
                operation: Some(args.operation),
                keys,
                days: args.days,
                policy_template_id: args.policy_template_id,
                selector,
                ..Default::default()
            };
            jobs::create(client, Cloud::Aws, serde_json::to_value(&req)?, &args.safety).await
        }
        BulkjobCommand::Job(cmd) => jobs::run(client, Cloud::Aws, cmd).await,
    }
}

/// What the job acts on: up to CCKM's 100 `keys`; more key references as `selector.ids`; the filter flags as
/// a selector (clap keeps them apart from keys).
fn selection(
    keys: Vec<String>,
    args: &BulkjobCreateArgs,
) -> anyhow::Result<(Option<Vec<String>>, Option<KeySelectorRequest>)> {
    let some = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let filters = KeySelectorRequest {
        ids: None,
        kms: some(&args.kms),
        regions: some(&args.regions),
        tags: if args.tags.is_empty() { None } else { Some(parse_tags(&args.tags)?) },
        alias_prefix: args.alias_prefix.clone(),
        key_state: args.key_state.clone(),
        all: args.all.then_some(true),
    };
    if filters != KeySelectorRequest::default() {
        return Ok((None, Some(filters)));
    }
    if keys.is_empty() {
        bail!(
            "no keys: give --key or --keys-file, or select keys with --kms, --region, --tag, --alias-prefix, \
             --key-state or --all"
        );
    }
    if keys.len() > MAX_KEYS {
        return Ok((None, Some(KeySelectorRequest { ids: Some(keys), ..KeySelectorRequest::default() })));
    }
    Ok((Some(keys), None))
}

/// `--tag team=blue` requires the value, `--tag team` only the tag.
fn parse_tags(tags: &[String]) -> anyhow::Result<BTreeMap<String, Option<String>>> {
    let mut out = BTreeMap::new();
    for tag in tags {
        let (key, value) = match tag.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (tag.as_str(), None),
        };
        if key.is_empty() {
            bail!("--tag {tag:?}: expected KEY=VALUE or KEY");
        }
        if out.insert(key.to_owned(), value).is_some() {
            bail!("--tag: tag {key:?} given twice");
        }
    }
    Ok(out)
}

fn read_keys_file(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading key ids from stdin")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Key references from a keys file: one per line, surrounding blanks ignored, `#` to the end of the line is a
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

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: BulkjobCommand,
    }

    fn create_args(args: &[&str]) -> Result<BulkjobCreateArgs, clap::Error> {
        use clap::Parser;
        let argv = ["bulkjob", "create", "--operation", "disablekey"].iter().chain(args);
        match Cli::try_parse_from(argv)?.cmd {
            BulkjobCommand::Create(a) => Ok(*a),
            BulkjobCommand::Job(_) => unreachable!("create"),
        }
    }

    #[test]
    fn filter_flags_make_a_selector() {
        let args = create_args(&[
            "--kms",
            "prod",
            "--kms",
            "dev",
            "--region",
            "eu-west-1",
            "--tag",
            "team=blue",
            "--tag",
            "pci",
            "--alias-prefix",
            "payments",
            "--key-state",
            "enabled",
            "--max-items",
            "40",
            "--yes",
        ])
        .expect("parse");
        assert!(args.safety.yes && args.safety.max_items == Some(40));
        let (keys, selector) = selection(Vec::new(), &args).expect("selection");
        assert_eq!(keys, None);
        let selector = selector.expect("selector");
        assert_eq!(
            serde_json::to_value(&selector).expect("json"),
            serde_json::json!({"kms": ["prod", "dev"], "regions": ["eu-west-1"],
                               "tags": {"pci": null, "team": "blue"}, "alias_prefix": "payments",
                               "key_state": "enabled"})
        );
        let (_, all) = selection(Vec::new(), &create_args(&["--all"]).expect("parse")).expect("all");
        assert_eq!(all.and_then(|s| s.all), Some(true));
    }

    #[test]
    fn keys_stay_keys_up_to_100_then_become_selector_ids() {
        let args = create_args(&["--key", "k1"]).expect("parse");
        assert_eq!(selection(vec!["k1".into()], &args).expect("keys"), (Some(vec!["k1".to_owned()]), None));
        let many: Vec<String> = (0..=MAX_KEYS).map(|i| format!("alias/k{i}")).collect();
        let (keys, selector) = selection(many.clone(), &args).expect("many");
        assert_eq!((keys, selector.and_then(|s| s.ids)), (None, Some(many)));
        let err = selection(Vec::new(), &create_args(&[]).expect("parse")).expect_err("nothing");
        assert!(err.to_string().contains("--all"), "{err}");
    }

    #[test]
    fn keys_and_filters_exclude_each_other_and_yes_excludes_dry_run() {
        assert!(create_args(&["--key", "k1", "--kms", "prod"]).is_err());
        assert!(create_args(&["--keys-file", "f", "--all"]).is_err());
        assert!(create_args(&["--all", "--yes", "--dry-run"]).is_err());
        assert!(create_args(&["--all", "--max-failure-percent", "101"]).is_err());
        let args = create_args(&["--all", "--dry-run", "--idempotency-key", "k-1", "--max-failures", "0"]).expect("ok");
        assert!(args.safety.dry_run);
        assert_eq!((args.safety.idempotency_key.as_deref(), args.safety.max_failures), (Some("k-1"), Some(0)));
    }

    #[test]
    fn tags_are_key_value_or_key() {
        assert!(parse_tags(&["=x".into()]).is_err());
        assert!(parse_tags(&["a=1".into(), "a=2".into()]).is_err());
        let tags = parse_tags(&["a=b=c".into(), "d=".into()]).expect("tags");
        assert_eq!(tags.get("a"), Some(&Some("b=c".to_owned())));
        assert_eq!(tags.get("d"), Some(&Some(String::new())));
    }

    #[test]
    fn job_commands_parse_for_every_id_command() {
        use clap::Parser;
        for argv in [
            vec!["bulkjob", "confirm", "j1", "--watch"],
            vec!["bulkjob", "report", "j1", "--format", "ndjson", "--file", "r.ndjson"],
            vec!["bulkjob", "errors", "j1", "--json"],
            vec!["bulkjob", "errors", "j1", "-o", "csv"],
            vec!["bulkjob", "get", "j1", "-o", "table"],
            vec!["bulkjob", "retry-failed", "j1"],
            vec!["bulkjob", "revert", "j1", "--yes"],
        ] {
            let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert!(matches!(cli.cmd, BulkjobCommand::Job(_)), "{argv:?}");
        }
        assert!(Cli::try_parse_from(["bulkjob", "report", "j1", "--format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["bulkjob", "retry-failed"]).is_err());
        let Ok(Cli { cmd: BulkjobCommand::Job(JobCommand::Revert { id, yes, .. }) }) =
            Cli::try_parse_from(["bulkjob", "revert", "j9"])
        else {
            panic!("revert");
        };
        assert_eq!((id.as_str(), yes), ("j9", false));
    }

    #[test]
    fn duplicates_are_dropped_in_order() {
        let keys = vec!["b".into(), "a".into(), "b".into(), "c".into(), "a".into()];
        assert_eq!(dedup(keys), vec!["b", "a", "c"]);
    }
}
