//! The client commands end to end against a small axum server speaking CCKM's wire format (the client
//! library's own test server), session file included.

#[path = "../../keyfleet-client/tests/support/cckm.rs"]
mod cckm;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use clap::Parser;
use keyfleet_cli::{ClientCommand, ClientGlobalArgs};
use keyfleet_client::ClientConfig;
use secrecy::ExposeSecret;

use cckm::*;

/// The binary's shape: global args plus the flattened client commands.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    global: ClientGlobalArgs,
    #[command(subcommand)]
    command: Top,
}

#[derive(clap::Subcommand)]
enum Top {
    #[command(flatten)]
    Client(ClientCommand),
    /// Stands for the server's own subcommand, whose `--config` must not collide with ours.
    Serve {
        #[arg(long)]
        config: Option<String>,
    },
}

async fn cli(config: &Path, args: &[&str]) -> anyhow::Result<std::process::ExitCode> {
    let mut argv = vec!["keyfleet", "--session", config.to_str().expect("utf-8 path")];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv)?;
    match cli.command {
        Top::Client(cmd) => keyfleet_cli::run(cmd, &cli.global).await,
        Top::Serve { .. } => unreachable!("not a client command"),
    }
}

fn code(c: std::process::ExitCode) -> String {
    format!("{c:?}")
}

#[test]
fn the_command_line_is_well_formed() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}

#[tokio::test]
async fn cli_login_saves_a_private_session_and_commands_use_it() {
    let (url, s) = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("keyfleet").join("client.json");

    let err = cli(&config, &["aws", "bulkjob", "get", JOB_ID]).await.expect_err("not logged in");
    assert!(format!("{err:#}").contains("keyfleet login"), "{err:#}");

    let status = cli(&config, &["login", "--url", &url, "--password", "secret"]).await.expect("login");
    assert_eq!(code(status), code(std::process::ExitCode::SUCCESS));
    let mode = std::fs::metadata(&config).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved = ClientConfig::load(&config).expect("load").expect("saved");
    assert_eq!((saved.url.as_str(), saved.username.as_str()), (url.as_str(), "admin"));
    assert!(!std::fs::read_to_string(&config).expect("read").contains("secret"));

    let status = cli(&config, &["aws", "bulkjob", "list", "--status", "completed"]).await.expect("list");
    assert_eq!(code(status), code(std::process::ExitCode::SUCCESS));

    // The job ends with a failed key: watch exits 4.
    let status = cli(&config, &["aws", "bulkjob", "watch", JOB_ID, "--interval-ms", "50"]).await.expect("watch");
    assert_eq!(code(status), code(std::process::ExitCode::from(4)));
    assert!(s.lock().expect("lock").polls >= 3);

    let err =
        cli(&config, &["aws", "bulkjob", "create", "--operation", "schedulekeydeletion", "--key", "k1", "--days", "3"])
            .await
            .expect_err("400");
    assert_eq!(format!("error: {err:#}"), "error: 400 NCERRInvalidParamValue: days: must be between 7 and 30");
}

#[tokio::test]
async fn watch_follows_the_server_sent_events_and_polls_without_them() {
    let (url, s) = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("client.json");
    cli(&config, &["login", "--url", &url, "--password", "secret"]).await.expect("login");
    // The server runs on this test's runtime: the binary is awaited, not waited for.
    let watch = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfleet"))
            .arg("--session")
            .arg(&config)
            .args(["aws", "bulkjob", "watch", JOB_ID, "--interval-ms", "50"])
            .output()
    };

    // With events: the progress lines are the events' (the polled job never has a lone skip), and one GET
    // reads the job at the end.
    s.lock().expect("lock").events = true;
    let out = watch().await.expect("keyfleet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "a failed key: {stdout}");
    assert!(stdout.contains("in_progress: 1/3 done (0 succeeded, 0 failed, 1 skipped)"), "{stdout}");
    assert!(stdout.contains("in_progress: 2/3 done (1 succeeded, 0 failed, 1 skipped)"), "{stdout}");
    assert!(stdout.contains("completed: 3 keys, 1 succeeded, 1 failed, 1 skipped"), "{stdout}");
    assert!(log(&s).contains(&"GET events ok".to_string()), "{:?}", log(&s));
    assert_eq!(s.lock().expect("lock").polls, 1, "one read after the end");

    // A server without events: polling, to the same end.
    {
        let mut fake = s.lock().expect("lock");
        (fake.events, fake.polls) = (false, 0);
    }
    let out = watch().await.expect("keyfleet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(!stdout.contains("0 succeeded, 0 failed, 1 skipped"), "{stdout}");
    assert!(stdout.contains("completed: 3 keys, 1 succeeded, 1 failed, 1 skipped"), "{stdout}");
    assert!(s.lock().expect("lock").polls >= 3);
}

#[tokio::test]
async fn cli_saves_refreshed_tokens_at_once() {
    let (url, s) = start().await;
    age_session(&s, "rt-saved");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("client.json");
    let stale = jwt(now() - 5, 0);
    ClientConfig {
        url,
        insecure: false,
        ca_cert: None,
        username: "admin".into(),
        jwt: stale.clone().into(),
        refresh_token: "rt-saved".into(),
        refresh_token_id: "old-id".into(),
    }
    .save(&config)
    .expect("save");

    cli(&config, &["aws", "bulkjob", "get", JOB_ID]).await.expect("get");
    assert_eq!(log(&s), vec!["refresh", "GET bulkjob ok"]);
    let saved = ClientConfig::load(&config).expect("load").expect("saved");
    assert_eq!(saved.jwt.expose_secret(), s.lock().expect("lock").valid_jwt);
    assert_ne!(saved.jwt.expose_secret(), stale);
    assert_eq!(saved.refresh_token.expose_secret(), "rt-saved");
    assert_eq!(saved.refresh_token_id, "22222222-2222-4222-8222-000000000001");
    let mode = std::fs::metadata(&config).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}
