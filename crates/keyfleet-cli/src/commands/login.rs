//! `keyfleet login`: get tokens with the password grant and save the session.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};

use crate::commands::ClientGlobalArgs;
use crate::output::print_line;
use keyfleet_client::ClientError;
use keyfleet_client::config::{ClientConfig, resolve_config_path};
use keyfleet_client::{Client, ClientOptions, DEFAULT_URL};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Server URL
    #[arg(long, env = "KEYFLEET_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Accept the server's certificate unchecked (self-signed), like `curl -k`
    #[arg(long, short = 'k')]
    pub insecure: bool,
    /// Trust the CA certificates in this PEM file, in addition to the system's
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Option<PathBuf>,
    /// User to log in as
    #[arg(long, short = 'u', default_value = "admin")]
    pub username: String,
    /// Password; asked on the terminal when neither this nor the environment gives it. Never saved.
    #[arg(long, env = "KEYFLEET_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

pub(crate) async fn run(args: LoginArgs, global: &ClientGlobalArgs) -> anyhow::Result<ExitCode> {
    let path = resolve_config_path(global.session.as_deref())?;
    // Later commands may run from another directory.
    let ca_cert = args
        .ca_cert
        .map(|p| std::path::absolute(&p).with_context(|| format!("resolving {}", p.display())))
        .transpose()?;
    let opts = ClientOptions { base_url: args.url, insecure: args.insecure, ca_cert, ..ClientOptions::default() };
    let client = Client::new(&opts)?;
    let password = match args.password {
        Some(p) => p,
        None => read_password(&format!("Password for {} at {}: ", args.username, client.base_url()))?,
    };
    let tokens = client.login(&args.username, &password).await.map_err(|e| {
        let untrusted = matches!(e, ClientError::Http(_)) && e.to_string().contains("certificate");
        let e = anyhow::Error::from(e);
        if untrusted {
            e.context("the server's certificate is not trusted (pass --ca-cert PEM, or -k to accept it)")
        } else {
            e
        }
    })?;

    let config = ClientConfig {
        url: client.base_url().to_owned(),
        insecure: opts.insecure,
        ca_cert: opts.ca_cert,
        username: args.username,
        jwt: tokens.jwt.into(),
        refresh_token: tokens.refresh_token.into(),
        refresh_token_id: tokens.refresh_token_id,
    };
    config.save(&path)?;
    print_line(&format!("logged in to {} as {}", config.url, config.username))?;
    Ok(ExitCode::SUCCESS)
}

/// One line from stdin, with the terminal's echo off when stdin is a terminal. `stty` does the switching:
/// no terminal crate for one prompt.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{prompt}");
    let _ = stderr.flush();
    let echo_off = stdin.is_terminal() && stty("-echo");
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        stty("echo");
        let _ = writeln!(stderr);
    }
    let n = read.context("reading the password")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if n == 0 || password.is_empty() {
        bail!("no password given (use --password, KEYFLEET_PASSWORD or type it when asked)");
    }
    Ok(password.to_owned())
}

fn stty(arg: &str) -> bool {
    Command::new("stty")
        .arg(arg)
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
