//! Polling a job until it is terminal, with a progress bar or plain progress lines.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::summary::{JobState, Tally, is_terminal, progress_line, progress_message};
use keyfleet_client::ClientError;

/// Consecutive transport failures (connection reset, timeout) tolerated while watching: a long watch
/// should survive a server restart, an API error ends it at once.
const MAX_TRANSPORT_RETRIES: u32 = 5;

/// How progress is shown while the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// An indicatif bar on stderr (stdout is a terminal).
    Bar,
    /// A line on stdout whenever the counts change (stdout is a file or a pipe).
    Stdout,
    /// A line on stderr whenever the counts change (stdout carries the final JSON).
    Stderr,
}

/// Calls `fetch` every `interval` until the job's `overall_status` is no longer `in_progress`, and returns
/// the terminal job.
pub(crate) async fn until_terminal<V>(
    mut fetch: impl AsyncFnMut() -> Result<V, ClientError>,
    interval: Duration,
    progress: Progress,
) -> Result<V, ClientError>
where
    for<'a> JobState<'a>: From<&'a V>,
{
    let mut bar: Option<ProgressBar> = None;
    let mut last_line = String::new();
    let mut transport_failures = 0;
    loop {
        let job = match fetch().await {
            Ok(job) => {
                transport_failures = 0;
                job
            }
            Err(ClientError::Http(e)) if transport_failures < MAX_TRANSPORT_RETRIES => {
                transport_failures += 1;
                let msg = format!("warning: polling failed, retrying: {}", ClientError::Http(e));
                match &bar {
                    Some(b) => b.println(msg),
                    None => eprintln!("{msg}"),
                }
                tokio::time::sleep(interval.max(Duration::from_secs(1))).await;
                continue;
            }
            Err(e) => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(e);
            }
        };
        let state = JobState::from(&job);
        let done = is_terminal(state.overall_status);
        match progress {
            Progress::Bar => {
                let t = Tally::of(&state);
                let b = bar.get_or_insert_with(|| new_bar(t.total));
                b.set_length(t.total);
                b.set_position(t.done);
                b.set_message(progress_message(&t));
            }
            Progress::Stdout | Progress::Stderr => {
                let line = progress_line(&state);
                if line != last_line {
                    if progress == Progress::Stdout {
                        println!("{line}");
                    } else {
                        eprintln!("{line}");
                    }
                    last_line = line;
                }
            }
        }
        if done {
            if let Some(b) = &bar {
                // The summary printed next says it all; a stale bar above it would only repeat it.
                b.finish_and_clear();
            }
            return Ok(job);
        }
        tokio::time::sleep(interval).await;
    }
}

fn new_bar(len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
