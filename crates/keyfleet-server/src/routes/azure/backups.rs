//! Cloud key backups of Azure keys: take, list, read, rename, delete, restore.

use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::{get, post};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::azure::{AzureKeyView, KeyBackupRequest, KeyBackupView, RestoreBackupRequest};
use keyfleet_api_types::common::ListParams;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::{AppState, views};

pub fn routes() -> Routes {
    Routes::new()
        .route("/v1/cckm/azure/keys/{id}/backups", get(list_backups).post(create_backup))
        .route(
            "/v1/cckm/azure/keys/{id}/backups/{backup_id}",
            get(get_backup).patch(update_backup).delete(delete_backup),
        )
        .route("/v1/cckm/azure/keys/{id}/backups/{backup_id}/restore", post(restore_backup))
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;
type Answer<T> = Result<axum::Json<T>, ApiError>;

async fn create_backup(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<KeyBackupRequest>,
) -> Created<KeyBackupView> {
    Ok((StatusCode::CREATED, axum::Json(views::azure::key_backup(s.services.create_key_backup(&c, &id, req).await?))))
}

async fn list_backups(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> Answer<ListEnvelope<KeyBackupView>> {
    let (list, total, p) = s.services.list_key_backups(&c, &id, q).await?;
    Ok(axum::Json(views::list(list, total, &p, views::azure::key_backup)))
}

async fn get_backup(State(s): S, Auth(c): Auth, Path((id, backup)): Path<(String, String)>) -> Answer<KeyBackupView> {
    Ok(axum::Json(views::azure::key_backup(s.services.get_key_backup(&c, &id, &backup).await?)))
}

async fn update_backup(
    State(s): S,
    Auth(c): Auth,
    Path((id, backup)): Path<(String, String)>,
    Json(req): Json<KeyBackupRequest>,
) -> Answer<KeyBackupView> {
    Ok(axum::Json(views::azure::key_backup(s.services.update_key_backup(&c, &id, &backup, req).await?)))
}

async fn delete_backup(
    State(s): S,
    Auth(c): Auth,
    Path((id, backup)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.services.delete_key_backup(&c, &id, &backup).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers the restored key as the inventory now has it.
async fn restore_backup(
    State(s): S,
    Auth(c): Auth,
    Path((id, backup)): Path<(String, String)>,
    Json(req): Json<RestoreBackupRequest>,
) -> Answer<AzureKeyView> {
    Ok(axum::Json(views::azure::key(s.services.restore_key_backup(&c, &id, &backup, req).await?)))
}
