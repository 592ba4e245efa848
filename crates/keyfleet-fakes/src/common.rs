//! What the AWS and Azure fakes share: the `/_fake/` control routes' error and call log, and paging.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

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
    fn take_page_reports_the_next_position() {
        let (page, next) = take_page((1..=5).map(|i| (i, i * 10)), 2);
        assert_eq!((page, next), (vec![10, 20], Some(3)));
        let (page, next) = take_page((1..=2).map(|i| (i, i)), 2);
        assert_eq!((page, next), (vec![1, 2], None));
    }
}
