//! The `keyfleet` binary: server, client and fakes behind one clap enum.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Bulk jobs on cloud keys, with a CipherTrust CCKM-compatible API.
#[derive(Parser)]
#[command(name = "keyfleet", version, about)]
struct Cli {
    #[command(flatten)]
    client: keyfleet_cli::ClientGlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (HTTPS on 127.0.0.1:8443, SQLite in ./keyfleet-data by default)
    Serve(keyfleet_server::ServeArgs),
    /// Apply database migrations and exit
    Migrate(keyfleet_server::ServeArgs),
    /// The server's configuration file: check it
    Config {
        #[command(subcommand)]
        command: keyfleet_server::ConfigCommand,
    },
    /// The audit trail: verify its hash chain
    Audit {
        #[command(subcommand)]
        command: keyfleet_cli::audit::AuditCommand,
    },
    /// Run a strict fake AWS KMS (for demos and tests)
    FakeAws(keyfleet_fakes::FakeAwsArgs),
    /// Run a fake Azure Key Vault with its token endpoint, over HTTPS (for demos and tests)
    FakeAzure(keyfleet_fakes::azure::FakeAzureArgs),
    /// Print a shell completion script: `keyfleet completions bash > /etc/bash_completion.d/keyfleet`
    Completions { shell: clap_complete::Shell },
    #[command(flatten)]
    Client(keyfleet_cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let result = match cli.command {
            Command::Serve(args) => keyfleet_server::serve(args).await.map(|()| ExitCode::SUCCESS),
            Command::Migrate(args) => keyfleet_server::migrate(args).await.map(|()| ExitCode::SUCCESS),
            Command::Config { command } => keyfleet_server::config_check::run(command).map(|()| ExitCode::SUCCESS),
            Command::Audit { command } => keyfleet_cli::audit::run(command).await,
            Command::FakeAws(args) => keyfleet_fakes::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::FakeAzure(args) => keyfleet_fakes::azure::run(args).await.map(|()| ExitCode::SUCCESS),
            Command::Completions { shell } => {
                clap_complete::generate(shell, &mut Cli::command(), "keyfleet", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
            Command::Client(cmd) => keyfleet_cli::run(cmd, &cli.client).await,
        };
        result.unwrap_or_else(|e| {
            if keyfleet_cli::exit::is_closed_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            keyfleet_cli::exit::of_error(&e)
        })
    })
}
