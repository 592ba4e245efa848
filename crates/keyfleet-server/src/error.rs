//! The one place where failures become HTTP answers in CCKM's error format.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keyfleet_api_types::ErrorBody;
use keyfleet_service::ServiceError;

tokio::task_local! {
    /// The id of the request being served, for `requestID` in error bodies.
    pub static REQUEST_ID: String;
}

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError(ServiceError::invalid(field, message))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError(ServiceError::NotFound(message.into()))
    }
}

/// (HTTP status, CCKM code, CCKM codeDesc) for each kind of failure; documented in docs/API.md.
pub fn classify(e: &ServiceError) -> (StatusCode, i32, &'static str) {
    match e {
        ServiceError::Invalid { .. } => (StatusCode::BAD_REQUEST, 9, "NCERRInvalidParamValue"),
        ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, 5, "NCERRUnauthorizedAccess"),
        ServiceError::Forbidden(_) => (StatusCode::FORBIDDEN, 7, "NCERRInsufficientPermissions"),
        ServiceError::NotFound(_) => (StatusCode::NOT_FOUND, 16, "NCERRResourceNotFound"),
        ServiceError::Conflict(_) => (StatusCode::CONFLICT, 11, "NCERRConflict"),
        ServiceError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, 9, "NCERRInvalidParamValue"),
        ServiceError::Cloud(_) => (StatusCode::BAD_GATEWAY, 13, "NCERRCloudError"),
        ServiceError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, 22, "NCERRTooManyRequests"),
        ServiceError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, 23, "NCERRServiceUnavailable"),
        ServiceError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, 14, "NCERRInternalServerError"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, code_desc) = classify(&self.0);
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let message = match &self.0 {
            ServiceError::Internal(cause) => {
                // Logged once, here; the client gets no detail.
                tracing::error!(request.id = %request_id, error = %cause, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let retry_after = match &self.0 {
            ServiceError::TooManyRequests { retry_after, .. } | ServiceError::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        };
        let body = ErrorBody { code, code_desc: code_desc.to_string(), message, request_id };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
