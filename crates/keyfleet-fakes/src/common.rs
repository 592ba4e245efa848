//! What the AWS and Azure fakes share: the `/_fake/` control routes' error and call log, paging, the sliding
//! window that enforces a quota, and the faults any call may meet (latency with jitter, transient 5xx).

use std::collections::VecDeque;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rand::Rng as _;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// Parses a fake's command line (program name first) into its flags, as its binary does (tests).
#[cfg(test)]
pub(crate) fn parse_args<A: clap::Args>(argv: &[&str]) -> Result<A, clap::Error> {
    let matches = A::augment_args(clap::Command::new("fake")).try_get_matches_from(argv)?;
    A::from_arg_matches(&matches)
}

/// A control request's failure: `{"error": "..."}` with status 400.
#[derive(Debug)]
pub(crate) struct ControlError(pub(crate) String);

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0 });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

impl From<QueryRejection> for ControlError {
    fn from(rejection: QueryRejection) -> Self {
        Self(rejection.body_text())
    }
}

impl From<JsonRejection> for ControlError {
    fn from(rejection: JsonRejection) -> Self {
        Self(rejection.body_text())
    }
}

/// A fake that records the cloud calls it answered, numbered from 1.
pub(crate) trait CallLog: Clone + Send + Sync + 'static {
    type Record: Serialize;
    /// The calls numbered above `since`.
    fn calls_since(&self, since: u64) -> Vec<Self::Record>;
}

#[derive(Debug, Deserialize)]
pub(crate) struct CallsQuery {
    since: Option<u64>,
}

/// `GET /_fake/calls?since=N`: the calls after the N-th.
pub(crate) async fn list_calls<F: CallLog>(
    State(fake): State<F>,
    query: Result<Query<CallsQuery>, QueryRejection>,
) -> Result<Json<Vec<F::Record>>, ControlError> {
    let Query(query) = query?;
    Ok(Json(fake.calls_since(query.since.unwrap_or(0))))
}

/// One page of `items` (already positioned at the page start) and the position of the first
/// item of the next page, if there is one.
pub(crate) fn take_page<P, T>(mut items: impl Iterator<Item = (P, T)>, limit: usize) -> (Vec<T>, Option<P>) {
    let page = items.by_ref().take(limit).map(|(_, item)| item).collect();
    let next = items.next().map(|(position, _)| position);
    (page, next)
}

/// The command-line flags of the faults both fakes inject into every call (all off by default).
#[derive(clap::Args, Debug, Clone, PartialEq, Default)]
pub struct CallFaultArgs {
    /// Probability that a call answers a server error (500 or 503, half each) without being applied.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, help_heading = "Faults")]
    pub error_rate: f64,
    /// Delay calls by N ms before the service sees them.
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Faults")]
    pub latency_ms: u64,
    /// Add a uniform random delay of 0 to N ms to every call (network jitter).
    #[arg(long, value_name = "N", default_value_t = 0, help_heading = "Faults")]
    pub latency_jitter_ms: u64,
    /// Seed of the random faults, to repeat a run's faults.
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub fault_seed: Option<u64>,
}

impl CallFaultArgs {
    /// Whether the flags delay calls at all.
    pub(crate) fn delays(&self) -> bool {
        self.latency_ms > 0 || self.latency_jitter_ms > 0
    }
}

pub(crate) fn parse_probability(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{value}' is not a probability between 0 and 1")),
    }
}

/// The seeded generator of a fake's random faults; from the OS without a seed.
pub(crate) fn fault_rng(seed: Option<u64>) -> StdRng {
    use rand::SeedableRng as _;
    seed.map_or_else(StdRng::from_os_rng, StdRng::seed_from_u64)
}

/// The transient faults a call draws on arrival, the same way in both fakes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Transient {
    /// How long the call is held before the service sees it (and counts it against a quota).
    pub delay: Duration,
    /// `Some(unavailable)`: the call answers a server error without being applied — 503 when `unavailable`,
    /// else 500.
    pub server_error: Option<bool>,
}

/// The probabilities behind [`Transient`]: a call is delayed with probability `latency` by `latency_ms` plus a
/// uniform jitter of 0..=`latency_jitter_ms`, and fails with a 500 or 503 (half each) with probability
/// `error_5xx`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TransientRates {
    pub latency: f64,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    pub error_5xx: f64,
}

impl TransientRates {
    /// Draws one call's faults. Always four draws, so that a seed gives the same faults to the same
    /// sequence of calls whatever the rates.
    pub(crate) fn draw(&self, rng: &mut StdRng) -> Transient {
        let delayed = rng.random::<f64>() < self.latency;
        let jitter = rng.random_range(0..=self.latency_jitter_ms);
        let failed = rng.random::<f64>() < self.error_5xx;
        let unavailable = rng.random::<bool>();
        Transient {
            delay: if delayed { Duration::from_millis(self.latency_ms.saturating_add(jitter)) } else { Duration::ZERO },
            server_error: failed.then_some(unavailable),
        }
    }
}

/// Admits one call at `now` into a sliding window log that holds at most `capacity` calls per `window`, and
/// remembers it; a refused call does not count (retrying clients must not lock themselves out).
pub(crate) fn admit_in_window(times: &mut VecDeque<Instant>, capacity: usize, window: Duration, now: Instant) -> bool {
    while times.front().is_some_and(|at| now.saturating_duration_since(*at) >= window) {
        times.pop_front();
    }
    if times.len() >= capacity {
        return false;
    }
    times.push_back(now);
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{FakeAwsArgs, FakeAzureArgs};

    /// What both fakes' command lines share: no flag at all is their `Default`, and `--port`.
    #[test]
    fn both_command_lines_default_and_take_a_port() {
        assert_eq!(parse_args::<FakeAwsArgs>(&["fake-aws"]).unwrap(), FakeAwsArgs::default());
        assert_eq!(parse_args::<FakeAzureArgs>(&["fake-azure"]).unwrap(), FakeAzureArgs::default());
        assert_eq!(parse_args::<FakeAwsArgs>(&["fake-aws", "--port", "0"]).unwrap().port, 0);
        assert_eq!(parse_args::<FakeAzureArgs>(&["fake-azure", "--port", "0"]).unwrap().port, 0);
    }

    #[test]
    fn transient_faults_follow_their_rates() {
        use rand::SeedableRng as _;
        let mut rng = StdRng::seed_from_u64(3);
        let rates = TransientRates { latency: 1.0, latency_ms: 10, latency_jitter_ms: 50, error_5xx: 0.05 };
        let draws: Vec<Transient> = (0..4000).map(|_| rates.draw(&mut rng)).collect();
        assert!(draws.iter().all(|d| (10..=60).contains(&d.delay.as_millis())));
        assert!(draws.iter().any(|d| d.delay.as_millis() < 15) && draws.iter().any(|d| d.delay.as_millis() > 55));
        let failed = draws.iter().filter(|d| d.server_error.is_some()).count();
        assert!((100..300).contains(&failed), "{failed} of 4000 at 5 %");
        assert!(
            draws.iter().any(|d| d.server_error == Some(true)) && draws.iter().any(|d| d.server_error == Some(false))
        );
        let none = TransientRates::default().draw(&mut rng);
        assert_eq!(none, Transient::default());
    }

    #[test]
    fn take_page_reports_the_next_position() {
        let (page, next) = take_page((1..=5).map(|i| (i, i * 10)), 2);
        assert_eq!((page, next), (vec![10, 20], Some(3)));
        let (page, next) = take_page((1..=2).map(|i| (i, i)), 2);
        assert_eq!((page, next), (vec![1, 2], None));
    }
}
