//! Following a job until it is terminal (its server-sent events, or polling), with a progress bar or plain
//! progress lines.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::summary::{JobState, Tally, is_terminal, progress_line, progress_message};
use keyfleet_api_types::bulkjob::{BulkJobView, ProgressEvent};
use keyfleet_client::{Client, ClientError, Cloud};

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

/// Follows a bulk job through its server-sent events (`.../events`) until it is no longer running, then reads
/// it once and returns it. A stream that closes early is reopened with the last event's id; when the events
/// are not available (an older server, a proxy that buffers) or break, it polls like [`until_terminal`].
pub(crate) async fn bulkjob_until_terminal(
    client: &Client,
    cloud: Cloud,
    id: &str,
    interval: Duration,
    progress: Progress,
) -> anyhow::Result<BulkJobView> {
    let mut display = Display::new(progress);
    let mut last_id: Option<String> = None;
    'streams: while let Ok(mut events) = client.bulkjob_events(cloud, id, last_id.as_deref()).await {
        let mut any = false;
        loop {
            let event = match events.next().await {
                Ok(Some(e)) => e,
                // Closed by the server (a stream lasts minutes) or cut: reopen where it was; a stream that
                // ends without a single event is not working here, so poll.
                Ok(None) | Err(_) if any => continue 'streams,
                Ok(None) | Err(_) => break 'streams,
            };
            let Ok(p) = serde_json::from_str::<ProgressEvent>(&event.data) else { break 'streams };
            any = true;
            last_id = event.id;
            display.show(&p.overall_status, &Tally::of_event(&p))?;
            if event.event == "end" || is_terminal(&p.overall_status) {
                break 'streams;
            }
        }
    }
    // The final read (at once, the job being over), or polling when the events did not work.
    poll(|| client.get_bulkjob(cloud, id), interval, display).await
}

/// Calls `fetch` every `interval` until the job's `overall_status` is no longer `in_progress`, and returns
/// the terminal job. While the server cannot be reached it keeps trying, backing off, for [`RECONNECT_FOR`].
pub(crate) async fn until_terminal<V>(
    fetch: impl AsyncFnMut() -> Result<V, ClientError>,
    interval: Duration,
    progress: Progress,
) -> anyhow::Result<V>
where
    for<'a> JobState<'a>: From<&'a V>,
{
    poll(fetch, interval, Display::new(progress)).await
}

async fn poll<V>(
    mut fetch: impl AsyncFnMut() -> Result<V, ClientError>,
    interval: Duration,
    mut display: Display,
) -> anyhow::Result<V>
where
    for<'a> JobState<'a>: From<&'a V>,
{
    // Since when the server has not answered, and how long the next pause is.
    let mut unreachable: Option<(Instant, Duration)> = None;
    loop {
        let job = match fetch().await {
            Ok(job) => {
                if unreachable.take().is_some() {
                    display.say("reconnected".into());
                }
                job
            }
            Err(ClientError::Http(e)) if unreachable.is_none_or(|(since, _)| since.elapsed() < RECONNECT_FOR) => {
                if unreachable.is_none() {
                    let secs = RECONNECT_FOR.as_secs();
                    display.say(format!(
                        "warning: cannot reach the server, retrying for {secs} s: {}",
                        ClientError::Http(e)
                    ));
                }
                let (since, pause) = unreachable.unwrap_or((Instant::now(), interval.max(Duration::from_millis(500))));
                tokio::time::sleep(pause).await;
                unreachable = Some((since, (pause * 2).min(RECONNECT_BACKOFF_MAX)));
                continue;
            }
            Err(e) => {
                display.abandon();
                return Err(e.into());
            }
        };
        let state = JobState::from(&job);
        display.show(state.overall_status, &Tally::of(&state))?;
        if is_terminal(state.overall_status) {
            display.finish();
            return Ok(job);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Where progress goes while a job runs: the bar, or the last line printed.
struct Display {
    progress: Progress,
    bar: Option<ProgressBar>,
    last_line: String,
}

impl Display {
    fn new(progress: Progress) -> Self {
        Display { progress, bar: None, last_line: String::new() }
    }

    fn show(&mut self, overall_status: &str, t: &Tally) -> anyhow::Result<()> {
        match self.progress {
            Progress::Bar => {
                let b = self.bar.get_or_insert_with(|| new_bar(t.total));
                b.set_length(t.total);
                b.set_position(t.done);
                b.set_message(progress_message(t));
            }
            Progress::Stdout | Progress::Stderr => {
                let line = progress_line(overall_status, t);
                if line != self.last_line {
                    if self.progress == Progress::Stdout {
                        // An error, not a panic, when stdout is a closed pipe (`| head`).
                        crate::output::print_line(&line)?;
                    } else {
                        eprintln!("{line}");
                    }
                    self.last_line = line;
                }
            }
        }
        Ok(())
    }

    /// A line on stderr, above the progress bar when there is one.
    fn say(&self, msg: String) {
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            // The summary printed next says it all; a stale bar above it would only repeat it.
            b.finish_and_clear();
        }
    }

    fn abandon(&self) {
        if let Some(b) = &self.bar {
            b.abandon();
        }
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_bar_template_is_valid_and_shows_rate_and_eta() {
        assert!(indicatif::ProgressStyle::with_template(super::BAR_TEMPLATE).is_ok());
        assert!(super::BAR_TEMPLATE.contains("{per_sec}") && super::BAR_TEMPLATE.contains("{eta}"));
    }
}
