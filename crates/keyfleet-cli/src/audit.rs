//! `keyfleet audit verify`: reads the audit trail straight from the database and follows its hash chain.

use std::process::ExitCode;

use keyfleet_store::Store;
use keyfleet_store::audit::{ChainBreak, ChainVerifier};

/// Records read per query.
const PAGE: u64 = 1000;

/// The audit subcommands (no `Debug`: the database options may hold secrets).
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain in the database: exit 0 when intact, 1 naming the first broken
    /// record when one was edited, deleted or moved. Takes `serve`'s database options.
    Verify(keyfleet_server::ServeArgs),
}

/// What a verification found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Every record links to the one before; `head` is the last record's hash.
    Intact {
        records: i64,
        head: String,
    },
    Broken(ChainBreak),
}

/// Follows the whole chain, page by page.
pub async fn verify_store(store: &dyn Store) -> anyhow::Result<Verdict> {
    let mut verifier = ChainVerifier::default();
    let mut after = 0;
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in &page {
            if let Err(broken) = verifier.check(record) {
                return Ok(Verdict::Broken(broken));
            }
        }
    }
    Ok(Verdict::Intact { records: verifier.count(), head: verifier.head().to_string() })
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify(args) => {
            let store = keyfleet_server::open_database(args).await?;
            Ok(match verify_store(store.as_ref()).await? {
                Verdict::Intact { records, head } => {
                    crate::output::print_line(&format!("audit trail intact: {records} records, head {head}"))?;
                    ExitCode::SUCCESS
                }
                Verdict::Broken(b) => {
                    crate::output::print_line(&format!("audit trail BROKEN at record {}: {}", b.seq, b.why))?;
                    ExitCode::from(1)
                }
            })
        }
    }
}
