use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{patch, post};
use keyfleet_api_types::auth::{ChangePasswordRequest, TokenRequest, TokenResponse};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ClientAddr, Json};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/auth/tokens", post(issue))
        .route("/v1/auth/tokens/", post(issue))
        .route("/v1/auth/changepw", patch(change_password))
}

async fn issue(
    State(s): State<Arc<AppState>>,
    client: ClientAddr,
    Json(req): Json<TokenRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    Ok(axum::Json(s.services.issue_token(req, client.0).await?))
}

/// `PATCH /v1/auth/changepw`: 204 once the password is changed and every token of the user revoked.
async fn change_password(
    State(s): State<Arc<AppState>>,
    client: ClientAddr,
    Json(req): Json<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    s.services.change_password(req, client.0).await?;
    Ok(StatusCode::NO_CONTENT)
}
