use std::fmt;
use std::time::Duration;

/// What kind of failure a cloud call had; the engine's retry policy is a function of this alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The provider asked us to slow down (AWS `ThrottlingException`, HTTP 429).
    Throttled,
    /// Worth retrying: 5xx, timeouts, connection failures.
    Transient,
    /// The credentials were rejected or lack permission; retrying will not help and other keys of the same
    /// connection will fail the same way.
    Unauthorized,
    /// The key does not exist (any more).
    NotFound,
    /// The key is in a state that forbids the action (`KMSInvalidStateException`).
    InvalidState,
    /// The request itself was refused (validation, malformed policy, ...).
    Rejected,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

/// A failed cloud call: the provider's error code and message, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    pub kind: ErrorKind,
    pub code: String,
    pub message: String,
    /// The provider's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// The provider's id of the request, when it answered (AWS `x-amzn-RequestId`): what its support and its
    /// own logs (CloudTrail) know the call by.
    pub request_id: Option<String>,
}

impl CloudError {
    pub fn new(kind: ErrorKind, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, code: code.into(), message: message.into(), retry_after: None, request_id: None }
    }
}

/// What a state-changing call that succeeded leaves to record: the provider's request id, when it sent one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub request_id: Option<String>,
}

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for CloudError {}
