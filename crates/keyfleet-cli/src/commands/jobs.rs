//! What bulk jobs of both clouds share on the command line: the safety flags of `create`, the plan-then-confirm
//! flow, and the commands on one job (`get`, `list`, `cancel`, `watch`, `confirm`, `report`, `errors`,
//! `retry-failed`, `revert`). `keyfleet bulkjob ...` (AWS) and `keyfleet azure bulkjob ...` differ only in their
//! create flags and in the [`Cloud`] they pass here.
//!
//! Output: stdout carries the job as JSON, as it is when the command ends (planned, or running), so scripts
//! read `.id` whatever happened; the plan summary, the question and how to confirm later go to stderr.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use keyfleet_api_types::bulkjob::{BulkJobListQuery, BulkJobView, Plan};
use serde_json::{Map, Value};

use crate::commands::inventory::ListFlags;
use crate::commands::watch::{Progress, bulkjob_until_terminal};
use crate::output::{
    BULKJOB_HEADERS, Format, OutputFlags, bulkjob_row, print_json, print_line, print_list, render_csv, render_table,
    short_time,
};
use crate::summary::{JobState, exit_code, problem_lines, summary_line};
use keyfleet_client::{Client, Cloud};

/// The status of a job created with `dry_run` that waits for `confirm`.
const PLANNED: &str = "planned";

/// The safety flags every bulk-job create takes, whichever cloud.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CreateFlags {
    /// Only plan: resolve the job, print what it would do, run nothing
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Run at once, without planning and asking first
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The most items the job may resolve to (needed above the server's safety_confirm_above without a plan)
    #[arg(long, value_name = "N")]
    pub max_items: Option<u64>,
    /// Stop the job once more than N items failed (0: at the first failure)
    #[arg(long, value_name = "N")]
    pub max_failures: Option<u64>,
    /// Stop the job once more than P percent of its finished items failed (from 100 finished items on)
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u64).range(0..=100))]
    pub max_failure_percent: Option<u64>,
    /// Create at most once: repeating the command with the same key answers the first job
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(flatten)]
    pub follow: FollowFlags,
}

impl CreateFlags {
    /// The request's safety fields, `dry_run` as given.
    fn fields(&self, dry_run: bool) -> Map<String, Value> {
        let mut fields = Map::new();
        if dry_run {
            fields.insert("dry_run".into(), Value::Bool(true));
        }
        for (name, value) in [
            ("max_items", self.max_items),
            ("max_failures", self.max_failures),
            ("max_failure_percent", self.max_failure_percent),
        ] {
            if let Some(n) = value {
                fields.insert(name.into(), n.into());
            }
        }
        fields
    }
}

/// `--watch` and its poll interval, on every command that starts a job.
#[derive(Debug, Clone, clap::Args)]
pub struct FollowFlags {
    /// Once the job runs, follow it like `watch` (and exit as `watch` does)
    #[arg(long, visible_alias = "wait")]
    pub watch: bool,
    /// Poll interval of --watch
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub interval_ms: u64,
}

impl Default for FollowFlags {
    fn default() -> Self {
        FollowFlags { watch: false, interval_ms: 500 }
    }
}

/// The commands on existing jobs, the same for both clouds.
#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Print one job
    /// A job: its JSON (the default), or its table row with -o table|csv
    Get {
        /// Job id
        id: String,
        #[command(flatten)]
        output: OutputFlags,
    },
    /// List jobs as a table (or JSON)
    List(BulkjobListArgs),
    /// Ask a running job to stop: in-flight items finish, pending ones are skipped
    Cancel {
        /// Job id
        id: String,
    },
    /// Follow a job until it ends; exit 4 if it failed, was cancelled or any item failed
    Watch(BulkjobWatchArgs),
    /// Run a planned job (from `create` without --yes, or `revert`) on exactly its planned items
    Confirm {
        /// Job id
        id: String,
        #[command(flatten)]
        follow: FollowFlags,
    },
    /// Download the job's report, one line per item, as CSV or NDJSON
    Report(ReportArgs),
    /// The job's failed items, grouped by error code
    Errors {
        /// Job id
        id: String,
        #[command(flatten)]
        output: OutputFlags,
    },
    /// A new job (same operation and options) over the failed and not-attempted items of a finished job
    RetryFailed {
        /// Job id of the finished job
        id: String,
        #[command(flatten)]
        follow: FollowFlags,
    },
    /// Plan a job that puts back what a finished job changed; asks (or prints how) to confirm it
    Revert {
        /// Job id of the finished job
        id: String,
        /// Confirm the revert plan at once, without asking
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        follow: FollowFlags,
    },
}

#[derive(Debug, clap::Args)]
pub struct BulkjobListArgs {
    /// Only jobs in this overall_status (planned, in_progress, completed, failed, cancelled)
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

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Job id
    pub id: String,
    /// csv (RFC 4180, a header line) or ndjson (one JSON object per line)
    #[arg(long, default_value = "csv", value_parser = ["csv", "ndjson"])]
    pub format: String,
    /// Write the report to FILE instead of stdout (removed again if the download fails)
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// How the CLI names a cloud's jobs to people.
fn command_prefix(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::Aws => "keyfleet bulkjob",
        Cloud::Azure => "keyfleet azure bulkjob",
    }
}

/// `n` of a cloud's job items: `1 key`, `10 keys`, `3 backups`.
fn items(cloud: Cloud, n: i64) -> String {
    let noun = match cloud {
        Cloud::Aws => "key",
        Cloud::Azure => "backup",
    };
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// The exact command that confirms a plan later.
pub(crate) fn confirm_command(cloud: Cloud, id: &str) -> String {
    format!("{} confirm {id}", command_prefix(cloud))
}

/// What to do with a plan once it is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnPlan {
    /// Confirm it at once (`--yes`).
    Confirm,
    /// Ask on the terminal, confirm on yes.
    Ask,
    /// Leave it planned and print how to confirm it (`--dry-run`, or stdin is not a terminal).
    Leave,
}

impl OnPlan {
    fn unless_confirmed(yes: bool, dry_run: bool) -> OnPlan {
        if yes {
            OnPlan::Confirm
        } else if dry_run || !std::io::stdin().is_terminal() {
            OnPlan::Leave
        } else {
            OnPlan::Ask
        }
    }
}

/// Creates a job from `body` (a cloud's create request, as JSON) with the safety flags: with `--yes` directly;
/// otherwise as a plan first, then confirmed on the terminal's yes, or left planned.
pub(crate) async fn create(
    client: &Client,
    cloud: Cloud,
    body: Value,
    flags: &CreateFlags,
) -> anyhow::Result<ExitCode> {
    let plan_first = !flags.yes; // clap refuses --yes with --dry-run
    let Value::Object(mut body) = body else { anyhow::bail!("a create request must be a JSON object") };
    body.extend(flags.fields(plan_first));
    let job = client.create_bulkjob(cloud, &body, flags.idempotency_key.as_deref()).await?;
    if !plan_first {
        print_json(&job)?;
        return follow(client, cloud, &job, &flags.follow).await;
    }
    settle_plan(client, cloud, job, OnPlan::unless_confirmed(false, flags.dry_run), &flags.follow).await
}

/// Runs one command on existing jobs.
pub(crate) async fn run(client: &Client, cloud: Cloud, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        JobCommand::Get { id, output } => {
            let job = client.get_bulkjob(cloud, &id).await?;
            print_list(output.or(Format::Json), &job, BULKJOB_HEADERS, &[bulkjob_row(&job)], (0, 1))?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::List(args) => {
            let query = BulkJobListQuery {
                overall_status: args.status,
                operation: args.operation,
                skip: args.list.skip,
                limit: args.list.limit,
                ..BulkJobListQuery::default()
            };
            let list = client.list_bulkjobs(cloud, &query).await?;
            let rows: Vec<_> = list.resources.iter().map(bulkjob_row).collect();
            print_list(args.list.output.or(Format::Table), &list, BULKJOB_HEADERS, &rows, (list.skip, list.total))?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Cancel { id } => {
            print_json(&client.cancel_bulkjob(cloud, &id).await?)?;
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Watch(args) => watch(client, cloud, &args.id, args.interval_ms).await,
        JobCommand::Confirm { id, follow: f } => {
            let job = client.confirm_bulkjob(cloud, &id).await?;
            print_json(&job)?;
            follow(client, cloud, &job, &f).await
        }
        JobCommand::Report(args) => report(client, cloud, &args).await,
        JobCommand::Errors { id, output } => {
            let errors = client.bulkjob_errors(cloud, &id).await?;
            match output.or(Format::Table) {
                Format::Json => print_json(&errors)?,
                Format::Table => std::io::stdout().lock().write_all(render_errors(&errors).as_bytes())?,
                Format::Csv => {
                    std::io::stdout().lock().write_all(render_csv(ERROR_HEADERS, &error_rows(&errors)).as_bytes())?
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::RetryFailed { id, follow: f } => {
            let job = client.retry_failed_bulkjob(cloud, &id).await?;
            print_json(&job)?;
            follow(client, cloud, &job, &f).await
        }
        JobCommand::Revert { id, yes, follow: f } => {
            let job = client.revert_bulkjob(cloud, &id).await?;
            settle_plan(client, cloud, job, OnPlan::unless_confirmed(yes, false), &f).await
        }
    }
}

/// Shows a job that may be a plan and confirms, asks or leaves it; prints the job as it ends up.
async fn settle_plan(
    client: &Client,
    cloud: Cloud,
    job: BulkJobView,
    on_plan: OnPlan,
    f: &FollowFlags,
) -> anyhow::Result<ExitCode> {
    if job.overall_status != PLANNED {
        // Not a plan: an idempotent repeat of a create that was confirmed since, or a server that ignored
        // `dry_run` and started the job at once.
        if let Some(warning) = unplanned_warning(cloud, &job) {
            eprintln!("{warning}");
        }
        print_json(&job)?;
        return follow(client, cloud, &job, f).await;
    }
    let plan = plan_of(&job)?;
    eprint!("{}", render_plan(cloud, &job, &plan));
    let run = match on_plan {
        _ if plan.items == 0 => {
            eprintln!("Nothing to run: the plan has {}.", items(cloud, 0));
            false
        }
        OnPlan::Confirm => true,
        OnPlan::Leave => false,
        OnPlan::Ask => ask(&format!("Run this job on {}? [y/N] ", items(cloud, plan.items)))?,
    };
    if !run {
        if plan.items > 0 {
            let until = job.plan_expires_at.as_ref().map(|t| format!(" (until {})", short_time(t))).unwrap_or_default();
            eprintln!("Not run. To run it{until}: {}", confirm_command(cloud, &job.id));
        }
        print_json(&job)?;
        return Ok(ExitCode::SUCCESS);
    }
    let job = client.confirm_bulkjob(cloud, &job.id).await?;
    print_json(&job)?;
    follow(client, cloud, &job, f).await
}

/// A job asked for as a plan that came back without one: the server does not plan (CipherTrust CCKM has no
/// `dry_run`) and the job runs already. Said loudly, since the user meant to be asked first.
fn unplanned_warning(cloud: Cloud, job: &BulkJobView) -> Option<String> {
    job.plan.is_none().then(|| {
        format!(
            "warning: the server did not plan job {} but started it ({}): it does not support dry_run; if that \
             was not meant, `{} cancel {}`; use --yes with this server",
            job.id,
            job.overall_status,
            command_prefix(cloud),
            job.id
        )
    })
}

fn plan_of(job: &BulkJobView) -> anyhow::Result<Plan> {
    let plan = job.plan.clone().with_context(|| format!("planned job {} shows no plan", job.id))?;
    serde_json::from_value(plan).with_context(|| format!("the plan of job {} is not readable", job.id))
}

/// Asks on stderr, reads one line of stdin: yes on `y` or `yes`, in any case.
fn ask(question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    read_answer(std::io::stdin().lock())
}

fn read_answer(mut input: impl BufRead) -> anyhow::Result<bool> {
    let mut line = String::new();
    input.read_line(&mut line).context("reading the answer")?;
    Ok(matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The plan as people read it: counts by container, region and state, the no-ops and the sample.
fn render_plan(cloud: Cloud, job: &BulkJobView, plan: &Plan) -> String {
    let counts = |m: &std::collections::BTreeMap<String, i64>| {
        m.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    };
    let (container, region) = match cloud {
        Cloud::Aws => ("KMS container", "region"),
        Cloud::Azure => ("vault", "location"),
    };
    let mut text = format!("Plan {}: {} on {}\n", job.id, job.operation, items(cloud, plan.items));
    text.push_str(&format!("  by {container}: {}\n", counts(&plan.by_container)));
    text.push_str(&format!("  by {region}: {}\n", counts(&plan.by_region)));
    text.push_str(&format!("  by current state: {}\n", counts(&plan.by_state)));
    text.push_str(&format!("  no-ops (already in the target state): {}\n", plan.no_ops));
    if !plan.sample.is_empty() {
        text.push_str(&format!("  sample ({} of {}):\n", plan.sample.len(), plan.items));
        let rows: Vec<Vec<String>> = plan
            .sample
            .iter()
            .map(|s| vec![s.key_id.clone(), s.current_state.clone().unwrap_or_default(), s.action.clone()])
            .collect();
        for line in render_table(&["ITEM", "CURRENT STATE", "ACTION"], &rows).lines() {
            text.push_str(&format!("    {line}\n"));
        }
    }
    text
}

/// `errors` as a table: one line per error code, largest group first.
const ERROR_HEADERS: &[&str] = &["ERROR CODE", "COUNT", "SAMPLE ITEMS", "FIRST MESSAGE"];

/// One row per error group of `.../errors`.
fn error_rows(errors: &Value) -> Vec<Vec<String>> {
    let groups = errors["groups"].as_array().map(Vec::as_slice).unwrap_or_default();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    groups
        .iter()
        .map(|g| {
            let samples: Vec<String> =
                g["sample_keys"].as_array().map(Vec::as_slice).unwrap_or_default().iter().map(text).collect();
            vec![text(&g["error_code"]), g["count"].to_string(), samples.join(","), text(&g["error_message"])]
        })
        .collect()
}

fn render_errors(errors: &Value) -> String {
    let rows = error_rows(errors);
    let mut out = format!("{} failed items\n", errors["failed"].as_u64().unwrap_or_default());
    if !rows.is_empty() {
        out.push_str(&render_table(ERROR_HEADERS, &rows));
    }
    out
}

/// Streams the report to stdout or `--file`; a file is removed again when the download breaks off.
async fn report(client: &Client, cloud: Cloud, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    match &args.file {
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            client.download_bulkjob_report(cloud, &args.id, &args.format, &mut out).await?;
        }
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let result = client.download_bulkjob_report(cloud, &args.id, &args.format, &mut out).await;
            drop(out);
            match result {
                Ok(bytes) => eprintln!("wrote {bytes} bytes to {}", path.display()),
                Err(e) => {
                    let _ = std::fs::remove_file(path);
                    return Err(e.into());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// After a job starts: follow it with `--watch`, else done.
async fn follow(client: &Client, cloud: Cloud, job: &BulkJobView, f: &FollowFlags) -> anyhow::Result<ExitCode> {
    if f.watch { watch(client, cloud, &job.id, f.interval_ms).await } else { Ok(ExitCode::SUCCESS) }
}

/// Follows a job, then prints the summary and every item that did not succeed.
async fn watch(client: &Client, cloud: Cloud, id: &str, interval_ms: u64) -> anyhow::Result<ExitCode> {
    let progress = if std::io::stdout().is_terminal() { Progress::Bar } else { Progress::Stdout };
    let interval = Duration::from_millis(interval_ms.max(50));
    let job = bulkjob_until_terminal(client, cloud, id, interval, progress).await?;
    let state = JobState::from(&job);
    print_line(&summary_line(&state))?;
    for line in problem_lines(&state) {
        print_line(&line)?;
    }
    Ok(ExitCode::from(exit_code(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn planned_job() -> BulkJobView {
        serde_json::from_value(json!({
            "id": "e612b64f", "uri": "kylo:kylo:cckm:bulkjob:e612b64f", "account": "kylo:kylo:admin:accounts:kylo",
            "createdAt": "2023-02-10T08:19:48.558869Z", "updatedAt": "2023-02-10T08:19:48.558869Z",
            "overall_status": "planned", "detailed_status": {}, "abort": false, "cloud": "aws",
            "keys": ["k1", "k2", "k3"], "operation": "disablekey",
            "plan": {"items": 3, "by_container": {"prod": 3}, "by_region": {"eu-west-1": 2, "us-east-1": 1},
                     "by_state": {"Disabled": 1, "Enabled": 2}, "no_ops": 1,
                     "sample": [{"key_id": "k1", "current_state": "Enabled", "action": "disablekey"},
                                {"key_id": "k2", "current_state": "Disabled", "action": "none (already Disabled)"}]}
        }))
        .expect("job")
    }

    #[test]
    fn a_plan_shows_counts_no_ops_and_the_sample() {
        let job = planned_job();
        let plan = plan_of(&job).expect("plan");
        assert_eq!(
            render_plan(Cloud::Aws, &job, &plan),
            "Plan e612b64f: disablekey on 3 keys\n\
             \x20 by KMS container: prod 3\n\
             \x20 by region: eu-west-1 2, us-east-1 1\n\
             \x20 by current state: Disabled 1, Enabled 2\n\
             \x20 no-ops (already in the target state): 1\n\
             \x20 sample (2 of 3):\n\
             \x20   ITEM  CURRENT STATE  ACTION\n\
             \x20   k1    Enabled        disablekey\n\
             \x20   k2    Disabled       none (already Disabled)\n"
        );
        assert!(render_plan(Cloud::Azure, &job, &plan).contains("on 3 backups\n  by vault: prod 3\n  by location:"));
    }

    #[test]
    fn a_job_that_should_have_been_a_plan_is_warned_about() {
        let mut job = planned_job();
        job.overall_status = "in_progress".into();
        assert_eq!(unplanned_warning(Cloud::Aws, &job), None, "a confirmed plan keeps its plan: an idempotent repeat");
        job.plan = None;
        let warning = unplanned_warning(Cloud::Aws, &job).expect("warning");
        assert!(warning.contains("did not plan job e612b64f but started it (in_progress)"), "{warning}");
        assert!(warning.contains("`keyfleet bulkjob cancel e612b64f`"), "{warning}");
    }

    #[test]
    fn items_are_counted_in_words() {
        assert_eq!(items(Cloud::Aws, 1), "1 key");
        assert_eq!(items(Cloud::Aws, 0), "0 keys");
        assert_eq!(items(Cloud::Azure, 3), "3 backups");
    }

    #[test]
    fn the_confirm_command_names_the_cloud() {
        assert_eq!(confirm_command(Cloud::Aws, "j1"), "keyfleet bulkjob confirm j1");
        assert_eq!(confirm_command(Cloud::Azure, "j1"), "keyfleet azure bulkjob confirm j1");
    }

    #[test]
    fn only_yes_confirms() {
        for yes in ["y\n", "Y\n", "yes\n", " YES \r\n"] {
            assert!(read_answer(yes.as_bytes()).expect("read"), "{yes:?}");
        }
        for no in ["\n", "", "n\n", "no\n", "yep\n", "ja\n"] {
            assert!(!read_answer(no.as_bytes()).expect("read"), "{no:?}");
        }
    }

    #[test]
    fn safety_flags_become_request_fields() {
        let flags = CreateFlags { max_items: Some(5), max_failure_percent: Some(0), ..CreateFlags::default() };
        assert_eq!(
            Value::Object(flags.fields(true)),
            json!({"dry_run": true, "max_items": 5, "max_failure_percent": 0})
        );
        assert_eq!(Value::Object(CreateFlags::default().fields(false)), json!({}));
        assert_eq!(OnPlan::unless_confirmed(true, false), OnPlan::Confirm);
        assert_eq!(OnPlan::unless_confirmed(false, true), OnPlan::Leave);
    }

    #[test]
    fn errors_render_as_a_table() {
        let errors = json!({"job_id": "j", "failed": 3, "groups": [
            {"error_code": "NotFoundException", "count": 2, "error_message": "gone", "sample_keys": ["a", "b"]},
            {"error_code": "", "count": 1, "error_message": "x", "sample_keys": ["c"]}]});
        assert_eq!(
            render_errors(&errors),
            "3 failed items\n\
             ERROR CODE         COUNT  SAMPLE ITEMS  FIRST MESSAGE\n\
             NotFoundException  2      a,b           gone\n\
             \x20                  1      c             x\n"
        );
        assert_eq!(render_errors(&json!({"failed": 0, "groups": []})), "0 failed items\n");
    }
}
