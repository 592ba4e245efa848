//! Polling a job until it is terminal, with a progress bar or plain progress lines.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::summary::{JobState, Tally, is_terminal, progress_line, progress_message};
use keyfleet_client::ClientError;

/// How long a watch keeps polling through transport failures (connection refused or reset, timeout): a long
/// watch survives a server restart or a failover; an API error ends it at once.
const RECONNECT_FOR: Duration = Duration::from_secs(120);
/// The longest pause between two polls while the server cannot be reached.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);

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
/// the terminal job. While the server cannot be reached it keeps trying, backing off, for [`RECONNECT_FOR`].
pub(crate) async fn until_terminal<V>(
    mut fetch: impl AsyncFnMut() -> Result<V, ClientError>,
    interval: Duration,
    progress: Progress,
) -> anyhow::Result<V>
where
    for<'a> JobState<'a>: From<&'a V>,
{
    let mut bar: Option<ProgressBar> = None;
    let mut last_line = String::new();
    // Since when the server has not answered, and how long the next pause is.
    let mut unreachable: Option<(Instant, Duration)> = None;
    loop {
        let job = match fetch().await {
            Ok(job) => {
                if unreachable.take().is_some() {
                    say(&bar, "reconnected".into());
                }
                job
            }
            Err(ClientError::Http(e)) if unreachable.is_none_or(|(since, _)| since.elapsed() < RECONNECT_FOR) => {
                if unreachable.is_none() {
                    let secs = RECONNECT_FOR.as_secs();
                    say(
                        &bar,
                        format!("warning: cannot reach the server, retrying for {secs} s: {}", ClientError::Http(e)),
                    );
                }
                let (since, pause) = unreachable.unwrap_or((Instant::now(), interval.max(Duration::from_millis(500))));
                tokio::time::sleep(pause).await;
                unreachable = Some((since, (pause * 2).min(RECONNECT_BACKOFF_MAX)));
                continue;
            }
            Err(e) => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(e.into());
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
                        // An error, not a panic, when stdout is a closed pipe (`| head`).
                        crate::output::print_line(&line)?;
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

/// Items done of all, their rate and the time left at that rate.
const BAR_TEMPLATE: &str = "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} ETA {eta} {msg}";

fn new_bar(len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(BAR_TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A line on stderr, above the progress bar when there is one.
fn say(bar: &Option<ProgressBar>, msg: String) {
    match bar {
        Some(b) => b.println(msg),
        None => eprintln!("{msg}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_template_is_valid_and_shows_rate_and_eta() {
        assert!(indicatif::ProgressStyle::with_template(super::BAR_TEMPLATE).is_ok());
        assert!(super::BAR_TEMPLATE.contains("{per_sec}") && super::BAR_TEMPLATE.contains("{eta}"));
    }
}
