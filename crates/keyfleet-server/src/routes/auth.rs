use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::{delete, patch, post};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::auth::{ChangePasswordRequest, RefreshTokenView, TokenRequest, TokenResponse};
use keyfleet_api_types::common::ListParams;
use keyfleet_service::paging::page;
use keyfleet_store::sort_fields;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{ClientAddr, Json, Query};
use crate::{AppState, views};

pub fn routes() -> Routes {
    Routes::new()
        .route("/v1/auth/tokens", post(issue).get(list_tokens))
        .route("/v1/auth/tokens/", post(issue))
        .route("/v1/auth/tokens/{id}", delete(revoke_token))
        .route("/v1/auth/changepw", patch(change_password))
}

/// `GET /v1/auth/tokens`: the caller's refresh tokens that still work (never the tokens themselves).
async fn list_tokens(
    State(s): State<Arc<AppState>>,
    Auth(c): Auth,
    Query(q): Query<ListParams>,
) -> Result<axum::Json<ListEnvelope<RefreshTokenView>>, ApiError> {
    let p = page(&q, sort_fields::REFRESH_TOKENS)?;
    let (tokens, total) = s.services.list_refresh_tokens(&c, &p).await?;
    Ok(axum::Json(views::list(tokens, total, &p, views::refresh_token)))
}

/// `DELETE /v1/auth/tokens/{id}`: 204 once the refresh token is revoked.
async fn revoke_token(
    State(s): State<Arc<AppState>>,
    Auth(c): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.services.revoke_refresh_token(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
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
