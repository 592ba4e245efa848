//! The bearer-token extractor: every protected handler takes a `Caller`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use keyfleet_service::{Caller, ServiceError};

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError(ServiceError::Unauthorized("Authorization header with a Bearer token is required.".into()))
            })?;
        Ok(Auth(state.services.authenticate(token).await?))
    }
}
