//! What Azure bulk jobs act on: connections, vaults (with ACLs), keys, key sync jobs, cloud key backups.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::azure::*;
use keyfleet_api_types::common::{ListParams, UpdateAclsRequest};
use keyfleet_service::paging::page;
use keyfleet_store::sort_fields;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::routes::SyncListQuery;
use crate::{AppState, views};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/connectionmgmt/services/azure/connections", get(list_connections).post(create_connection))
        .route(
            "/v1/connectionmgmt/services/azure/connections/{id}",
            get(get_connection).patch(update_connection).delete(delete_connection),
        )
        .route("/v1/cckm/azure/add-vaults", post(add_vaults))
        .route("/v1/cckm/azure/vaults", get(list_vaults))
        .route("/v1/cckm/azure/vaults/{id}", get(get_vault))
        .route("/v1/cckm/azure/vaults/{id}/update-acls", post(update_acls))
        .route("/v1/cckm/azure/keys", get(list_keys))
        .route("/v1/cckm/azure/keys/{id}", get(get_key))
        .route("/v1/cckm/azure/keys/{id}/backups", get(list_backups).post(create_backup))
        .route(
            "/v1/cckm/azure/keys/{id}/backups/{backup_id}",
            get(get_backup).patch(update_backup).delete(delete_backup),
        )
        .route("/v1/cckm/azure/keys/{id}/backups/{backup_id}/restore", post(restore_backup))
        .route("/v1/cckm/azure/synchronization-jobs", get(list_sync).post(create_sync))
        .route("/v1/cckm/azure/synchronization-jobs/{id}", get(get_sync))
        .route("/v1/cckm/azure/synchronization-jobs/{id}/cancel", post(cancel_sync))
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;
type Answer<T> = Result<axum::Json<T>, ApiError>;

// --- connections --------------------------------------------------------------------------------------

async fn create_connection(
    State(s): S,
    Auth(c): Auth,
    Json(req): Json<AzureConnectionRequest>,
) -> Created<AzureConnectionView> {
    Ok((StatusCode::CREATED, axum::Json(views::azure_connection(s.services.create_azure_connection(&c, req).await?))))
}

async fn get_connection(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<AzureConnectionView> {
    Ok(axum::Json(views::azure_connection(s.services.get_azure_connection(&c, &id).await?)))
}

async fn update_connection(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<AzureConnectionRequest>,
) -> Answer<AzureConnectionView> {
    Ok(axum::Json(views::azure_connection(s.services.update_azure_connection(&c, &id, req).await?)))
}

async fn list_connections(
    State(s): S,
    Auth(c): Auth,
    Query(q): Query<ListParams>,
) -> Answer<ListEnvelope<AzureConnectionView>> {
    let p = page(&q, sort_fields::NAMED)?;
    let (list, total) = s.services.list_azure_connections(&c, &p).await?;
    Ok(axum::Json(views::list(list, total, &p, views::azure_connection)))
}

async fn delete_connection(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.services.delete_azure_connection(&c, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- vaults -------------------------------------------------------------------------------------------

/// Answers the added vaults as a list, like CCKM.
async fn add_vaults(State(s): S, Auth(c): Auth, Json(req): Json<AddVaultsRequest>) -> Created<ListEnvelope<VaultView>> {
    let added = s.services.add_vaults(&c, req).await?;
    let total = added.len() as u64;
    let resources: Vec<VaultView> = added.into_iter().map(views::vault).collect();
    Ok((StatusCode::CREATED, axum::Json(ListEnvelope { skip: 0, limit: total, total, resources })))
}

async fn list_vaults(State(s): S, Auth(c): Auth, Query(q): Query<VaultQuery>) -> Answer<ListEnvelope<VaultView>> {
    let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort.clone() }, sort_fields::NAMED)?;
    let (list, total) = s.services.list_vaults(&c, q, &p).await?;
    Ok(axum::Json(views::list(list, total, &p, views::vault)))
}

async fn get_vault(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<VaultView> {
    Ok(axum::Json(views::vault(s.services.get_vault(&c, &id).await?)))
}

async fn update_acls(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<UpdateAclsRequest>,
) -> Answer<VaultView> {
    Ok(axum::Json(views::vault(s.services.update_vault_acls(&c, &id, req).await?)))
}

// --- keys ---------------------------------------------------------------------------------------------

async fn list_keys(State(s): S, Auth(c): Auth, Query(q): Query<AzureKeyQuery>) -> Answer<ListEnvelope<AzureKeyView>> {
    let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort.clone() }, sort_fields::AZURE_KEYS)?;
    let (keys, total) = s.services.list_azure_keys(&c, q, &p).await?;
    Ok(axum::Json(views::list(keys, total, &p, views::azure_key)))
}

async fn get_key(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<AzureKeyView> {
    Ok(axum::Json(views::azure_key(s.services.get_azure_key(&c, &id).await?)))
}

// --- cloud key backups --------------------------------------------------------------------------------

async fn create_backup(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<KeyBackupRequest>,
) -> Created<KeyBackupView> {
    Ok((StatusCode::CREATED, axum::Json(views::key_backup(s.services.create_key_backup(&c, &id, req).await?))))
}

async fn list_backups(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Query(q): Query<ListParams>,
) -> Answer<ListEnvelope<KeyBackupView>> {
    let (list, total, p) = s.services.list_key_backups(&c, &id, q).await?;
    Ok(axum::Json(views::list(list, total, &p, views::key_backup)))
}

async fn get_backup(State(s): S, Auth(c): Auth, Path((id, backup)): Path<(String, String)>) -> Answer<KeyBackupView> {
    Ok(axum::Json(views::key_backup(s.services.get_key_backup(&c, &id, &backup).await?)))
}

async fn update_backup(
    State(s): S,
    Auth(c): Auth,
    Path((id, backup)): Path<(String, String)>,
    Json(req): Json<KeyBackupRequest>,
) -> Answer<KeyBackupView> {
    Ok(axum::Json(views::key_backup(s.services.update_key_backup(&c, &id, &backup, req).await?)))
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
    Ok(axum::Json(views::azure_key(s.services.restore_key_backup(&c, &id, &backup, req).await?)))
}

// --- key synchronization ------------------------------------------------------------------------------

async fn create_sync(State(s): S, Auth(c): Auth, Json(req): Json<CreateAzureSyncJob>) -> Created<AzureSyncJobView> {
    Ok((StatusCode::CREATED, axum::Json(views::azure_sync_job(s.services.create_azure_sync_job(&c, req).await?))))
}

async fn get_sync(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<AzureSyncJobView> {
    Ok(axum::Json(views::azure_sync_job(s.services.get_azure_sync_job(&c, &id).await?)))
}

async fn cancel_sync(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<AzureSyncJobView> {
    Ok(axum::Json(views::azure_sync_job(s.services.cancel_azure_sync_job(&c, &id).await?)))
}

async fn list_sync(
    State(s): S,
    Auth(c): Auth,
    Query(q): Query<SyncListQuery>,
) -> Answer<ListEnvelope<AzureSyncJobView>> {
    let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort }, &["createdAt", "updatedAt", "id"])?;
    let (list, total) = s.services.list_azure_sync_jobs(&c, q.overall_status.as_deref(), &p).await?;
    Ok(axum::Json(views::list(list, total, &p, views::azure_sync_job)))
}
