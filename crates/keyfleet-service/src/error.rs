use keyfleet_store::StoreError;

/// Why a use case refused or failed. The HTTP edge maps each variant to a status and CCKM error code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong; `field` names the offending field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state (duplicate name, job still running, ...).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but it contradicts an earlier request (an `Idempotency-Key` reused with another body).
    #[error("{0}")]
    Unprocessable(String),
    /// The cloud failed or refused what this request needed, after keyfleet's retries; the text names the
    /// cloud's error.
    #[error("{0}")]
    Cloud(String),
    /// Too many attempts from this user or address; retry after `retry_after` seconds.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    /// This node is at capacity (e.g. the password-hashing queue is full); retry after `retry_after` seconds.
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
    /// A failure of ours; the text is logged, never shown to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid { field: field.to_string(), message: message.into() }
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        ServiceError::NotFound(format!("{what} {id} not found"))
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ServiceError::Conflict(m),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<keyfleet_core::crypto::CryptoError> for ServiceError {
    fn from(e: keyfleet_core::crypto::CryptoError) -> Self {
        ServiceError::Internal(e.to_string())
    }
}
