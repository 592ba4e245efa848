//! Extension `GET .../bulkjob(s)/{id}/events`: a job's progress as server-sent events, for `keyfleet bulkjob watch`
//! and the web console. The stream reads the job's counters a few times a second and sends a `progress` event
//! whenever they changed, then one `end` event with the terminal status, and closes.
//!
//! A stream is authorized when it starts, like any request, and closes by itself after [`STREAM_FOR`]: the client
//! reconnects (EventSource does so on its own) with `Last-Event-ID` and its credentials are checked again, so a
//! revoked token stops being served within that bound. The state named by `Last-Event-ID` is not sent again.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use keyfleet_api_types::bulkjob::ProgressEvent;
use keyfleet_core::{Cloud, JobId};
use keyfleet_service::progress::ProgressTracker;
use keyfleet_service::{Caller, Services};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::routes::table::{Methods, get};

/// How often the job's counters are read: at most this many events a second.
const POLL_EVERY: Duration = Duration::from_millis(300);
/// How long one stream lasts before the client reconnects (and is authenticated again).
const STREAM_FOR: Duration = Duration::from_secs(300);
/// What EventSource waits before reconnecting.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The route, mounted for each cloud by `routes::jobs::shared`.
pub(crate) fn bulkjob_events(cloud: Cloud) -> Methods {
    get(move |State(s): State<Arc<AppState>>, Auth(c): Auth, Path(id): Path<String>, headers: HeaderMap| async move {
        job_events(s, c, cloud, id, last_event_id(&headers)).await
    })
}

/// The `Last-Event-ID` header of a reconnecting client.
pub(crate) fn last_event_id(headers: &HeaderMap) -> Option<String> {
    headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The events of job `id` for `caller`: a 404 (or 403) before the stream starts when the caller may not read
/// the job, `text/event-stream` otherwise. Shared by the API route and the console.
pub(crate) async fn job_events(
    state: Arc<AppState>,
    caller: Caller,
    cloud: Cloud,
    id: String,
    last_event_id: Option<String>,
) -> Result<Response, ApiError> {
    let job = state.services.watch_bulkjob(&caller, cloud, &id).await?;
    let stream = progress_events(state.services.clone(), job.id, last_event_id);
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Where a stream is.
struct Cursor {
    services: Arc<Services>,
    job: JobId,
    tracker: ProgressTracker,
    /// The id of the last state the client has (sent here, or named by `Last-Event-ID`).
    sent: Option<String>,
    started: Instant,
    first: bool,
    ended: bool,
}

fn progress_events(
    services: Arc<Services>,
    job: JobId,
    last_event_id: Option<String>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let cursor = Cursor {
        services,
        job,
        tracker: ProgressTracker::new(),
        sent: last_event_id,
        started: Instant::now(),
        first: true,
        ended: false,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if c.ended || c.started.elapsed() >= STREAM_FOR {
                return None;
            }
            if !std::mem::take(&mut c.first) {
                tokio::time::sleep(POLL_EVERY).await;
            }
            let snapshot = match c.services.bulkjob_progress(c.job).await {
                Ok(Some(s)) => s,
                // Deleted while watched: nothing more will happen to it.
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(bulkjob.id = %c.job, error = %e, "progress stream: reading the job failed");
                    continue;
                }
            };
            let event = c.tracker.event(&snapshot, Instant::now());
            let terminal = snapshot.job.status.is_terminal();
            if !terminal && c.sent.as_deref() == Some(event.id.as_str()) {
                continue;
            }
            c.ended = terminal;
            c.sent = Some(event.id.clone());
            return Some((Ok(sse_event(if terminal { "end" } else { "progress" }, &event)), c));
        }
    })
}

fn sse_event(kind: &'static str, e: &ProgressEvent) -> Event {
    let data = serde_json::to_string(e).unwrap_or_default();
    Event::default().event(kind).id(e.id.clone()).retry(RECONNECT_AFTER).data(data)
}
