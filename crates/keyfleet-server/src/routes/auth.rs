use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use keyfleet_api_types::auth::{TokenRequest, TokenResponse};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ClientAddr, Json};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/auth/tokens", post(issue)).route("/v1/auth/tokens/", post(issue))
}

async fn issue(
    State(s): State<Arc<AppState>>,
    client: ClientAddr,
    Json(req): Json<TokenRequest>,
) -> Result<axum::Json<TokenResponse>, ApiError> {
    Ok(axum::Json(s.services.issue_token(req, client.0).await?))
}
