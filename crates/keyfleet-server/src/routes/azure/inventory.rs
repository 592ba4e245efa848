//! What Azure bulk jobs act on: connections, vaults (with ACLs), keys.

use std::sync::Arc;

use crate::routes::table::Routes;
use crate::routes::table::{get, post};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::azure::*;
use keyfleet_api_types::common::{ListParams, UpdateAclsRequest};
use keyfleet_service::paging::page;
use keyfleet_store::sort_fields;

use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{Json, Query};
use crate::{AppState, views};

pub fn routes() -> Routes {
    connection_routes!(
        "azure",
        AzureConnectionRequest => AzureConnectionView,
        views::azure::connection,
        create_azure_connection,
        get_azure_connection,
        update_azure_connection,
        list_azure_connections,
        delete_azure_connection
    )
    .route("/v1/cckm/azure/add-vaults", post(add_vaults))
    .route("/v1/cckm/azure/vaults", get(list_vaults))
    .route("/v1/cckm/azure/vaults/{id}", get(get_vault))
    .route("/v1/cckm/azure/vaults/{id}/update-acls", post(update_acls))
    .route("/v1/cckm/azure/keys", get(list_keys))
    .route("/v1/cckm/azure/keys/{id}", get(get_key))
}

type S = State<Arc<AppState>>;
type Created<T> = Result<(StatusCode, axum::Json<T>), ApiError>;
type Answer<T> = Result<axum::Json<T>, ApiError>;

// --- vaults -------------------------------------------------------------------------------------------

/// Answers the added vaults as a list, like CCKM.
async fn add_vaults(State(s): S, Auth(c): Auth, Json(req): Json<AddVaultsRequest>) -> Created<ListEnvelope<VaultView>> {
    let added = s.services.add_vaults(&c, req).await?;
    let total = added.len() as u64;
    let resources: Vec<VaultView> = added.into_iter().map(views::azure::vault).collect();
    Ok((StatusCode::CREATED, axum::Json(ListEnvelope { skip: 0, limit: total, total, resources })))
}

async fn list_vaults(State(s): S, Auth(c): Auth, Query(q): Query<VaultQuery>) -> Answer<ListEnvelope<VaultView>> {
    let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort.clone() }, sort_fields::NAMED)?;
    let (list, total) = s.services.list_vaults(&c, q, &p).await?;
    Ok(axum::Json(views::list(list, total, &p, views::azure::vault)))
}

async fn get_vault(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<VaultView> {
    Ok(axum::Json(views::azure::vault(s.services.get_vault(&c, &id).await?)))
}

async fn update_acls(
    State(s): S,
    Auth(c): Auth,
    Path(id): Path<String>,
    Json(req): Json<UpdateAclsRequest>,
) -> Answer<VaultView> {
    Ok(axum::Json(views::azure::vault(s.services.update_vault_acls(&c, &id, req).await?)))
}

// --- keys ---------------------------------------------------------------------------------------------

async fn list_keys(State(s): S, Auth(c): Auth, Query(q): Query<AzureKeyQuery>) -> Answer<ListEnvelope<AzureKeyView>> {
    let p = page(&ListParams { skip: q.skip, limit: q.limit, sort: q.sort.clone() }, sort_fields::AZURE_KEYS)?;
    let (keys, total) = s.services.list_azure_keys(&c, q, &p).await?;
    Ok(axum::Json(views::list(keys, total, &p, views::azure::key)))
}

async fn get_key(State(s): S, Auth(c): Auth, Path(id): Path<String>) -> Answer<AzureKeyView> {
    Ok(axum::Json(views::azure::key(s.services.get_azure_key(&c, &id).await?)))
}
