//! The real `keyfleet` binary's bulk-job commands against the real server and the fakes (issue 10 section 6):
//! a create without `--yes` off a terminal only plans and prints the confirm command, nothing reaches the
//! cloud until `confirm`; `--dry-run`, `--yes`, `--keys-file` with many references, `report`, `errors`, and
//! `retry-failed` and `revert`, and the same for Azure backup deletion.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use keyfleet_fakes::{BUILTIN_TENANT_ID, FakeKms, FakeKmsConfig, FakeVault, FakeVaultConfig, Faults};
use serde_json::{Value, json};
use support::{PASSWORD, Server, test_database};

const ACCOUNT: &str = keyfleet_fakes::aws::BUILTIN_ACCOUNT_ID;
const ACCESS_KEY: &str = keyfleet_fakes::aws::BUILTIN_ACCESS_KEY_ID;
const REGION: &str = "us-east-1";
const SUBSCRIPTION: &str = "00000000-0000-0000-0000-0000000000b1";
const AZURE_SECRET: &str = "safety-cli-azure-secret";

/// The client side: `keyfleet --session <file> ...`, stdin not a terminal (as in a script or CI).
struct Cli {
    session: PathBuf,
}

impl Cli {
    async fn login(dir: &Path, server: &Server) -> Cli {
        let cli = Cli { session: dir.join("client.json") };
        let out = cli.run(&["login", "--url", server.url(), "--insecure", "--password", PASSWORD]).await;
        assert!(out.status.success(), "login: {}", String::from_utf8_lossy(&out.stderr));
        cli
    }

    async fn run(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
            .arg("--session")
            .arg(&self.session)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// Runs a command that must exit 0; its stdout as JSON and its stderr.
    async fn json(&self, args: &[&str]) -> (Value, String) {
        let out = self.run(args).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{args:?}: {:?}\n{stderr}", out.status);
        let job = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: stdout is not one JSON job ({e}): {}", String::from_utf8_lossy(&out.stdout))
        });
        (job, stderr)
    }
}

/// A server with a KMS container `acct` over 150 keys of the fake AWS KMS in one region, and a logged-in CLI.
struct AwsEnv {
    dir: tempfile::TempDir,
    server: Server,
    fake: keyfleet_fakes::RunningFake,
    /// The keys' KeyIds.
    ids: Vec<String>,
    cli: Cli,
    /// The fake's state-changing calls before the test.
    before: usize,
    /// The PostgreSQL database of the server, when the tests run on PostgreSQL.
    database: Option<String>,
}

async fn aws_env() -> AwsEnv {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeKms::new(FakeKmsConfig::default()).spawn().await.unwrap();
    let ids = fake.fake.create_keys(ACCOUNT, REGION, 150);
    let database = test_database().await;
    let server = Server::start(&dir.path().join("data"), database.as_deref(), &[]).await;
    server
        .call(
            "POST",
            "/api/v1/connectionmgmt/services/aws/connections",
            json!({"name": "conn", "access_key_id": ACCESS_KEY, "secret_access_key": "x", "endpoint_url": fake.url()}),
        )
        .await;
    server
        .call(
            "POST",
            "/api/v1/cckm/aws/kms",
            json!({"name": "acct", "account_id": ACCOUNT, "connection": "conn", "regions": [REGION]}),
        )
        .await;
    let sync = server.call("POST", "/api/v1/cckm/aws/synchronization-jobs", json!({"kms": ["acct"]})).await;
    let path = format!("/api/v1/cckm/aws/synchronization-jobs/{}", sync["id"].as_str().unwrap());
    assert_eq!(server.wait_done(&path, Duration::from_secs(60)).await["overall_status"], "completed");
    let cli = Cli::login(dir.path(), &server).await;
    let before = state_changes(&fake);
    AwsEnv { dir, server, fake, ids, cli, before, database }
}

/// Calls that change a key (the five operations' calls).
fn state_changes(fake: &keyfleet_fakes::RunningFake) -> usize {
    let changes = ["DisableKey", "EnableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy"];
    fake.fake.calls().iter().filter(|c| changes.contains(&c.operation.as_str())).count()
}

fn states(fake: &keyfleet_fakes::RunningFake, ids: &[String]) -> Vec<String> {
    ids.iter().map(|id| fake.fake.key_state(ACCOUNT, REGION, id).unwrap_or_else(|| "absent".into())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_off_a_terminal_plans_and_only_confirm_runs_it() {
    let AwsEnv { dir, server, fake, ids, cli, before, .. } = aws_env().await;

    // 150 references (more than CCKM's 100 `keys`), as KeyIds and ARNs, with a comment and a blank line.
    let mut file = String::from("# keys to disable\n\n");
    for (i, id) in ids.iter().enumerate() {
        let line = if i % 2 == 0 { id.clone() } else { format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}") };
        file.push_str(&line);
        file.push('\n');
    }
    let keys_file = dir.path().join("keys.txt");
    std::fs::write(&keys_file, file).unwrap();

    let (plan, stderr) =
        cli.json(&["bulkjob", "create", "--operation", "disablekey", "--keys-file", keys_file.to_str().unwrap()]).await;
    let id = plan["id"].as_str().unwrap().to_string();
    assert_eq!(plan["overall_status"], "planned", "{plan}");
    assert_eq!(plan["plan"]["items"], 150, "{plan}");
    assert!(stderr.contains(&format!("keyfleet bulkjob confirm {id}")), "{stderr}");
    assert!(stderr.contains("disablekey on 150 keys") && stderr.contains("by KMS container: acct 150"), "{stderr}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(state_changes(&fake), before, "nothing sent to the cloud before confirm");
    assert!(states(&fake, &ids).iter().all(|s| s == "Enabled"));

    // Three keys vanish from AWS before the confirm: their items fail, the others are disabled.
    for gone in &ids[..3] {
        assert!(fake.fake.delete_key_now(ACCOUNT, REGION, gone));
    }
    let out = cli.run(&["bulkjob", "confirm", &id, "--watch", "--interval-ms", "100"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "a failed item exits 4: {stdout}");
    assert!(stdout.contains(&format!("job {id} completed: 150 keys, 147 succeeded, 3 failed")), "{stdout}");
    assert!(states(&fake, &ids[3..]).iter().all(|s| s == "Disabled"));

    // errors: the three failures in one group.
    let out = cli.run(&["bulkjob", "errors", &id]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(table.starts_with("3 failed items\nERROR CODE"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("NotFoundException") && l.contains("  3  ")), "{table}");
    let (errors, _) = cli.json(&["bulkjob", "errors", &id, "-o", "json"]).await;
    assert_eq!(errors["failed"], 3, "{errors}");
    let out = cli.run(&["bulkjob", "errors", &id, "-o", "csv"]).await;
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(csv.starts_with("ERROR CODE,COUNT,SAMPLE ITEMS,FIRST MESSAGE\r\nNotFoundException,3,"), "{csv}");

    // -o on the read commands: json is the API's JSON, csv the table's columns.
    let (job, _) = cli.json(&["bulkjob", "get", &id]).await;
    assert_eq!(job["id"], id.as_str(), "get prints the job's JSON by default");
    let (list, _) = cli.json(&["bulkjob", "list", "-o", "json"]).await;
    assert_eq!(list["resources"][0]["id"], id.as_str(), "{list}");
    let out = cli.run(&["bulkjob", "list", "-o", "csv"]).await;
    let csv = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = csv.split("\r\n").collect();
    assert_eq!(lines[0], "ID,OPERATION,STATUS,KEYS,DONE,CREATED");
    assert!(lines[1].starts_with(&format!("{id},disablekey,completed,150,150,")), "{csv}");
    let out = cli.run(&["bulkjob", "get", &id, "-o", "table"]).await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ID "), "{}", String::from_utf8_lossy(&out.stdout));
    let (keys, _) = cli.json(&["aws", "keys", "list", "--kms", "acct", "--limit", "2", "-o", "json"]).await;
    assert_eq!(keys["resources"].as_array().unwrap().len(), 2, "{keys}");
    let out = cli.run(&["aws", "kms", "list", "-o", "yaml"]).await;
    assert_eq!(out.status.code(), Some(2), "an unknown format is a usage error");

    // report: CSV to a file, a header and one line per item.
    let report = dir.path().join("report.csv");
    let out = cli.run(&["bulkjob", "report", &id, "--file", report.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("key_id,key_ref,"), "{}", lines[0]);
    assert_eq!(lines.len(), 151);
    assert_eq!(lines.iter().filter(|l| l.contains(",failed,")).count(), 3);
    assert_eq!(lines.iter().filter(|l| l.contains(",succeeded,")).count(), 147);
    // ndjson to stdout.
    let out = cli.run(&["bulkjob", "report", &id, "--format", "ndjson"]).await;
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 150);
    assert_eq!(rows.iter().filter(|r| r["state_after"] == "Disabled").count(), 147);
    // A report of an unknown job is an error, and leaves no file behind.
    let missing = dir.path().join("missing.csv");
    let out = cli
        .run(&["bulkjob", "report", "00000000-0000-4000-8000-000000000000", "--file", missing.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(1), "the server refused: exit 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!missing.exists());
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_only_plans_and_yes_runs_at_once() {
    let AwsEnv { dir: _dir, server, fake, ids, cli, before, .. } = aws_env().await;

    // --dry-run with selector flags: a plan of every key of the container, nothing sent.
    let (plan, stderr) = cli
        .json(&["bulkjob", "create", "--operation", "disablekey", "--kms", "acct", "--region", REGION, "--dry-run"])
        .await;
    assert_eq!((&plan["overall_status"], &plan["plan"]["items"]), (&json!("planned"), &json!(150)), "{plan}");
    assert_eq!(plan["selector"], json!({"kms": ["acct"], "regions": [REGION]}));
    assert!(stderr.contains(&format!("keyfleet bulkjob confirm {}", plan["id"].as_str().unwrap())), "{stderr}");
    // Planning again with the server's cap in view: --max-items below the match is refused, nothing created.
    let out = cli.run(&["bulkjob", "create", "--operation", "disablekey", "--all", "--max-items", "10"]).await;
    assert_eq!(out.status.code(), Some(1), "the server refused: exit 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"), "{}", String::from_utf8_lossy(&out.stderr));

    // --yes: created and run directly, no plan; the same idempotency key answers the same job.
    let args =
        ["bulkjob", "create", "--operation", "disablekey", "--key", &ids[0], "--yes", "--idempotency-key", "cli-k1"];
    let (job, _) = cli.json(&args).await;
    assert_ne!(job["overall_status"], "planned", "{job}");
    assert!(job.get("plan").is_none(), "{job}");
    let (again, _) = cli.json(&args).await;
    assert_eq!(again["id"], job["id"]);
    let out = cli.run(&["bulkjob", "watch", job["id"].as_str().unwrap(), "--interval-ms", "100"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(states(&fake, &ids[..1]), vec!["Disabled"]);
    assert!(states(&fake, &ids[1..]).iter().all(|s| s == "Enabled"), "the plan never ran");
    assert_eq!(state_changes(&fake), before + 1, "one DisableKey, for the --yes job only");

    // An idempotent create without --yes: a plan; once confirmed, the repeat answers the running job, no warning.
    let args = ["bulkjob", "create", "--operation", "disablekey", "--key", &ids[1], "--idempotency-key", "cli-k2"];
    let (plan, _) = cli.json(&args).await;
    let id = plan["id"].as_str().unwrap();
    assert_eq!(plan["overall_status"], "planned", "{plan}");
    cli.json(&["bulkjob", "confirm", id]).await;
    let (again, stderr) = cli.json(&args).await;
    assert_eq!(again["id"], plan["id"]);
    assert_ne!(again["overall_status"], "planned", "{again}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let out = cli.run(&["bulkjob", "watch", id, "--interval-ms", "100"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(states(&fake, &ids[..2]), vec!["Disabled", "Disabled"]);
    assert_eq!(state_changes(&fake), before + 2);

    // `aws bulkjob` is the same command.
    let (listed, _) = cli.json(&["aws", "bulkjob", "list", "--status", "planned", "--json"]).await;
    assert_eq!(listed["total"], 1, "{listed}");
    server.kill().await;
}

/// Runs `create ... --key K1 --key K2 ... --yes` and follows the job; its id and exit code.
async fn run_job(cli: &Cli, operation: &str, keys: &[String]) -> (String, Option<i32>) {
    let mut args = vec!["bulkjob", "create", "--operation", operation, "--yes"];
    for key in keys {
        args.extend(["--key", key.as_str()]);
    }
    let (job, _) = cli.json(&args).await;
    let id = job["id"].as_str().unwrap().to_string();
    let out = cli.run(&["bulkjob", "watch", &id, "--interval-ms", "100"]).await;
    (id, out.status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_and_revert_from_the_cli() {
    let AwsEnv { dir, server, fake, ids, cli, before: _, .. } = aws_env().await;
    let (ten, pending) = (&ids[..10], &ids[..2]);

    // Two of the ten keys are pending deletion: disabling them fails (KMSInvalidStateException).
    assert_eq!(run_job(&cli, "schedulekeydeletion", pending).await.1, Some(0));
    let (job, code) = run_job(&cli, "disablekey", ten).await;
    assert_eq!(code, Some(4), "failed items exit 4");
    assert_eq!(states(&fake, &ten[2..]), vec!["Disabled"; 8]);

    // retry-failed: a new job over exactly the two failed keys, carrying retry_of; after the deletion is
    // cancelled (which leaves a key Disabled, as in AWS) it succeeds.
    assert_eq!(run_job(&cli, "cancelkeydeletion", pending).await.1, Some(0));
    let (retry, _) = cli.json(&["bulkjob", "retry-failed", &job]).await;
    assert_eq!(retry["retry_of"], job.as_str(), "{retry}");
    let retry_id = retry["id"].as_str().unwrap();
    let out = cli.run(&["bulkjob", "watch", retry_id, "--interval-ms", "100"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let (retried, _) = cli.json(&["bulkjob", "get", retry_id]).await;
    assert_eq!((&retried["overall_status"], &retried["progress"]["total"]), (&json!("completed"), &json!(2)));

    // revert: a plan over the eight keys the job changed (not the two that failed in it), only run on confirm.
    let (plan, stderr) = cli.json(&["bulkjob", "revert", &job]).await;
    let undo = plan["id"].as_str().unwrap();
    assert_eq!((&plan["overall_status"], &plan["revert_of"]), (&json!("planned"), &json!(job)), "{plan}");
    assert_eq!(plan["plan"]["items"], 8, "{plan}");
    assert!(stderr.contains(&format!("keyfleet bulkjob confirm {undo}")), "{stderr}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(states(&fake, &ten[2..]), vec!["Disabled"; 8], "a revert plan changes nothing before confirm");
    let out = cli.run(&["bulkjob", "confirm", undo, "--watch", "--interval-ms", "100"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(states(&fake, &ten[2..]), vec!["Enabled"; 8], "the eight keys are back as they were");
    assert_eq!(states(&fake, pending), vec!["Disabled"; 2], "keys the job did not change are left alone");

    // Nothing failed in the revert: retrying it is refused (409), and so is reverting a plan.
    let out = cli.run(&["bulkjob", "retry-failed", undo]).await;
    assert_eq!(out.status.code(), Some(1), "the server refused: exit 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"), "{}", String::from_utf8_lossy(&out.stderr));

    // The other exit codes a script branches on: 2 for a usage error, 3 when the server cannot be reached.
    let out = cli.run(&["bulkjob", "create", "--operation", "disablekey", "--key", &ids[20], "--all"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let stranger = Cli { session: dir.path().join("no-session.json") };
    let out = stranger.run(&["bulkjob", "list"]).await;
    assert_eq!(out.status.code(), Some(2), "not logged in: {}", String::from_utf8_lossy(&out.stderr));
    server.kill().await;
    let out = cli.run(&["bulkjob", "list"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_rides_out_a_server_restart_and_a_closed_pipe_ends_quietly() {
    let AwsEnv { dir, server, fake, ids, cli, database, .. } = aws_env().await;

    // `keyfleet ... | head`: the reader is gone before the command writes; no panic, no error, exit 0.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
        .arg("--session")
        .arg(&cli.session)
        .args(["aws", "keys", "list", "--kms", "acct", "--limit", "150"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));

    // Every call takes 300 ms: the job of 40 keys runs for seconds, across a restart of the server.
    fake.fake.set_faults(Faults { latency: 1.0, latency_ms: 300, ..Faults::default() });
    let mut args = vec!["bulkjob", "create", "--operation", "disablekey", "--yes"];
    for id in &ids[..40] {
        args.extend(["--key", id.as_str()]);
    }
    let (job, _) = cli.json(&args).await;
    let id = job["id"].as_str().unwrap().to_string();
    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
        .arg("--session")
        .arg(&cli.session)
        .args(["bulkjob", "watch", &id, "--interval-ms", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let listen = server.url().trim_start_matches("https://").to_string();
    server.kill().await;
    // Down for longer than the old watch's five retries lasted.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let server = Server::start(&dir.path().join("data"), database.as_deref(), &["--listen", &listen]).await;
    let out = tokio::time::timeout(Duration::from_secs(180), watch.wait_with_output()).await.unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("cannot reach the server") && stderr.contains("reconnected"), "{stderr}");
    assert!(stdout.contains(&format!("job {id} completed: 40 keys, 40 succeeded")), "{stdout}");
    assert_eq!(states(&fake, &ids[..40]), vec!["Disabled"; 40]);
    server.kill().await;
}

/// Runs the binary with stdin and stdout on a pseudo-terminal (util-linux `script`), typing `answer`; all it
/// printed (stdout and stderr share the terminal).
async fn on_a_terminal(cli: &Cli, args: &[&str], answer: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let mut command = format!("{} --session {}", env!("CARGO_BIN_EXE_keyfleet"), cli.session.display());
    for a in args {
        command.push(' ');
        command.push_str(a);
    }
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("util-linux `script`, for a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    // stdin stays open until the command is done: `script` would end the session at its EOF.
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?}: {:?}\n{text}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_terminal_create_asks_and_runs_only_on_yes() {
    let AwsEnv { dir: _dir, server, fake, ids, cli, before, .. } = aws_env().await;

    // No: the plan stays, with the command that runs it later; nothing reaches AWS.
    let out = on_a_terminal(&cli, &["bulkjob", "create", "--operation", "disablekey", "--key", &ids[0]], "n\n").await;
    assert!(out.contains("Plan ") && out.contains("disablekey on 1 key"), "{out}");
    assert!(out.contains("Run this job on 1 key? [y/N]"), "{out}");
    assert!(out.contains("Not run. To run it") && out.contains("keyfleet bulkjob confirm "), "{out}");
    let (planned, _) = cli.json(&["bulkjob", "list", "--status", "planned", "--json"]).await;
    assert_eq!(planned["total"], 1, "{planned}");

    // Yes: confirmed and followed.
    let args = ["bulkjob", "create", "--operation", "disablekey", "--key", &ids[1], "--watch", "--interval-ms", "100"];
    let out = on_a_terminal(&cli, &args, "y\n").await;
    assert!(out.contains("Run this job on 1 key? [y/N]"), "{out}");
    assert!(out.contains("completed: 1 keys, 1 succeeded"), "{out}");
    assert_eq!(states(&fake, &ids[..2]), vec!["Enabled", "Disabled"]);
    assert_eq!(state_changes(&fake), before + 1);
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_backup_deletion_plans_by_vault_and_runs_on_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let config = FakeVaultConfig::default().with_client(BUILTIN_TENANT_ID, "keyfleet-app", AZURE_SECRET);
    let vault = FakeVault::new(config).spawn().await.unwrap();
    vault.fake.create_keys("kv-a", 3);
    vault.fake.create_keys("kv-b", 2);
    let ca = dir.path().join("vault-ca.pem");
    std::fs::write(&ca, vault.ca_pem()).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        test_database().await.as_deref(),
        &["--trust-ca-file", ca.to_str().unwrap()],
    )
    .await;
    server
        .call(
            "POST",
            "/api/v1/connectionmgmt/services/azure/connections",
            json!({"name": "az", "client_id": "keyfleet-app", "tenant_id": BUILTIN_TENANT_ID,
                   "client_secret": AZURE_SECRET, "active_directory_endpoint": vault.authority(),
                   "vault_endpoint_url": format!("{}/vaults/{{vault}}", vault.url())}),
        )
        .await;
    let vaults = json!([{"name": "kv-a", "location": "westeurope"}, {"name": "kv-b", "location": "westeurope"}]);
    server
        .call(
            "POST",
            "/api/v1/cckm/azure/add-vaults",
            json!({"connection": "az", "subscription_id": SUBSCRIPTION, "vaults": vaults}),
        )
        .await;
    let sync = server
        .call(
            "POST",
            "/api/v1/cckm/azure/synchronization-jobs",
            json!({"key_vaults": ["kv-a", "kv-b"], "take_cloud_key_backup": true}),
        )
        .await;
    let path = format!("/api/v1/cckm/azure/synchronization-jobs/{}", sync["id"].as_str().unwrap());
    assert_eq!(server.wait_done(&path, Duration::from_secs(60)).await["overall_status"], "completed");
    let backups = |vault: &'static str| {
        let server = &server;
        async move {
            let keys = server.call("GET", &format!("/api/v1/cckm/azure/keys?key_vault={vault}"), Value::Null).await;
            let mut n = 0;
            for k in keys["resources"].as_array().unwrap() {
                let path = format!("/api/v1/cckm/azure/keys/{}/backups", k["id"].as_str().unwrap());
                n += server.call("GET", &path, Value::Null).await["total"].as_u64().unwrap();
            }
            n
        }
    };
    assert_eq!((backups("kv-a").await, backups("kv-b").await), (3, 2));
    let cli = Cli::login(dir.path(), &server).await;

    // The Azure inventory from the CLI, as for AWS: vaults, keys, a key's backups, a synchronization.
    let (vaults, _) = cli.json(&["azure", "vault", "list", "-o", "json"]).await;
    assert_eq!(vaults["total"], 2, "{vaults}");
    let out = cli.run(&["azure", "vault", "list"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("ID ") && table.contains("kv-b"), "{table}");
    let (keys, _) = cli.json(&["azure", "keys", "list", "--vault", "kv-a", "-o", "json"]).await;
    assert_eq!(keys["total"], 3, "{keys}");
    let (kept, _) = cli.json(&["azure", "backups", "list", "--vault", "kv-a", "--key", "key-0001", "-o", "json"]).await;
    assert_eq!((&kept["total"], &kept["resources"][0]["key_name"]), (&json!(1), &json!("key-0001")), "{kept}");
    let out = cli.run(&["azure", "sync", "create", "--vault", "kv-b", "--watch"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("completed"), "{stdout}");
    assert_eq!(backups("kv-b").await, 2, "a sync without --backup takes no backup");

    let cutoff = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    // A key named in the vault: its one backup, resolved by name.
    let (plan, _) =
        cli.json(&["azure", "bulkjob", "create", "--vault", "kv-a", "--key", "key-0002", "--dry-run"]).await;
    assert_eq!(plan["plan"]["items"], 1, "{plan}");
    let out = cli.run(&["azure", "bulkjob", "create", "--key", "no-such-key"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Azure key of that name"), "{out:?}");

    // The vault's backups before the cutoff: planned, nothing deleted until confirm.
    let (plan, stderr) =
        cli.json(&["azure", "bulkjob", "create", "--vault", "kv-a", "--created-before", &cutoff]).await;
    let id = plan["id"].as_str().unwrap().to_string();
    assert_eq!(plan["overall_status"], "planned", "{plan}");
    assert_eq!(plan["plan"]["by_container"], json!({"kv-a": 3}), "{plan}");
    assert!(stderr.contains("delete-key-backups on 3 backups"), "{stderr}");
    assert!(stderr.contains(&format!("keyfleet azure bulkjob confirm {id}")), "{stderr}");
    assert_eq!(backups("kv-a").await, 3);

    let out = cli.run(&["azure", "bulkjob", "confirm", &id, "--watch", "--interval-ms", "100"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("job {id} completed: 3 backups, 3 succeeded")), "{stdout}");
    assert_eq!((backups("kv-a").await, backups("kv-b").await), (0, 2), "only kv-a's backups are deleted");

    let out = cli.run(&["azure", "bulkjob", "report", &id, "--format", "ndjson"]).await;
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["status"] == "succeeded" && r["location"] == "kv-a"), "{rows:?}");
    let (errors, _) = cli.json(&["azure", "bulkjob", "errors", &id, "--json"]).await;
    assert_eq!(errors["failed"], 0, "{errors}");
    server.kill().await;
}
