//! The exit codes of the client commands, one per kind of outcome, so that a script can branch on them:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | the server refused the request (an HTTP 4xx/5xx answer: the message is on stderr) |
//! | 2 | usage error: bad flags or arguments, not logged in, an unreadable file |
//! | 3 | cannot reach or trust the server (connect, TLS, timeout, an answer that is not keyfleet's) |
//! | 4 | the awaited job ended but not cleanly: failed items, or the job failed or was cancelled |

use std::process::ExitCode;

use keyfleet_client::ClientError;

pub const REFUSED: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const JOB_NOT_CLEAN: u8 = 4;

/// The exit code of a command that failed with `err`: by the first [`ClientError`] in its chain, else a usage
/// error (what went wrong happened on this side, before or without a request).
pub fn of_error(err: &anyhow::Error) -> ExitCode {
    let client = err.chain().find_map(|cause| cause.downcast_ref::<ClientError>());
    ExitCode::from(match client {
        Some(e) => of_client_error(e),
        None => USAGE,
    })
}

/// Whether `err` is a write to a closed stdout: the reader stopped reading (`keyfleet bulkjob list | head`),
/// which ends the command quietly, not as an error (nor, as `println!` would, as a panic).
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        let kind = match cause.downcast_ref::<std::io::Error>() {
            Some(io) => Some(io.kind()),
            None => cause.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn of_client_error(err: &ClientError) -> u8 {
    match err {
        ClientError::Api { .. } | ClientError::Status { .. } | ClientError::SessionExpired(_) => REFUSED,
        ClientError::Http(_) | ClientError::Decode { .. } => UNREACHABLE,
        ClientError::Local(_) => USAGE,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_their_codes_wherever_they_are_in_the_chain() {
        let refused = ClientError::Status { status: 404, text: String::new() };
        let wrapped = anyhow::Error::new(refused).context("downloading the report");
        assert_eq!(of_error(&wrapped), ExitCode::from(REFUSED));
        let decode = serde_json::from_str::<u8>("x").unwrap_err();
        let untrusted = ClientError::Decode { path: "/x".into(), source: decode };
        assert_eq!(of_error(&anyhow::Error::new(untrusted)), ExitCode::from(UNREACHABLE));
        assert_eq!(of_error(&anyhow::anyhow!("not logged in")), ExitCode::from(USAGE));
        let local = ClientError::Local("bad URL".into());
        assert_eq!(of_error(&anyhow::Error::new(local)), ExitCode::from(USAGE));
    }

    #[test]
    fn a_closed_stdout_is_recognised_however_it_was_written() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_closed_pipe(&anyhow::Error::new(pipe()).context("printing")));
        assert!(is_closed_pipe(&anyhow::Error::new(serde_json::Error::io(pipe()))));
        assert!(!is_closed_pipe(&anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::NotFound))));
    }
}
