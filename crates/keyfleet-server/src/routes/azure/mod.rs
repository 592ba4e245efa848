//! Azure's routes: connections, vaults and keys (`inventory`); cloud key backups (`backups`); bulk and key
//! synchronization jobs (`jobs`).

mod backups;
mod inventory;
mod jobs;

use std::sync::Arc;

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().merge(inventory::routes()).merge(backups::routes()).merge(jobs::routes())
}
