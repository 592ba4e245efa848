//! A deadline for a request to leave: checked as late as the client allows, once the request is built and
//! signed, right before it is handed to the HTTP connection.
//!
//! The engine sends a state-changing call only while it holds the item's lease, and checks that right
//! before the call. A process frozen after that check (SIGSTOP, a stalled VM) and woken after its lease ran
//! out would still send, after another node may have taken the item and made the change. Checking again at
//! the last moment the client gives us narrows that gap to the HTTP connection's own hand-off; it cannot
//! close it (no check can: the process may stop between any two instructions), so the engine's other
//! defence stays: a retried item reads the key's state before it acts.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::time::Instant;

tokio::task_local! {
    static SEND_BY: Deadline;
}

struct Deadline {
    by: Instant,
    missed: AtomicBool,
}

/// The request was not sent: its deadline had passed when it was ready to leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed;

impl std::fmt::Display for Missed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request was ready after its send deadline and was not sent")
    }
}

impl std::error::Error for Missed {}

/// Runs `call`, whose requests must leave by `by`: `Err(Missed)` when one was ready only later and was not
/// sent (the call's own result is then dropped). It needs a client that checks the deadline before it
/// sends: the AWS SDK client of this crate does.
pub async fn send_by<F: Future>(by: Instant, call: F) -> Result<F::Output, Missed> {
    let deadline = Deadline { by, missed: AtomicBool::new(false) };
    let (output, missed) = SEND_BY
        .scope(deadline, async move {
            let output = call.await;
            (output, SEND_BY.with(|d| d.missed.load(Ordering::Relaxed)))
        })
        .await;
    if missed { Err(Missed) } else { Ok(output) }
}

/// Called by a client right before a request leaves: `Err` once the deadline of the [`send_by`] around it
/// has passed (no deadline: always `Ok`).
pub(crate) fn check() -> Result<(), Missed> {
    SEND_BY
        .try_with(|d| {
            if Instant::now() > d.by {
                d.missed.store(true, Ordering::Relaxed);
                Err(Missed)
            } else {
                Ok(())
            }
        })
        .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_ready_after_its_deadline_is_not_sent() {
        let by = Instant::now() + Duration::from_secs(1);
        assert_eq!(send_by(by, async { check() }).await, Ok(Ok(())));
        let late = send_by(by, async {
            tokio::time::sleep(Duration::from_secs(2)).await; // frozen between the lease check and the send
            check()
        });
        assert_eq!(late.await, Err(Missed));
        assert_eq!(check(), Ok(()), "no deadline outside send_by");
    }
}
