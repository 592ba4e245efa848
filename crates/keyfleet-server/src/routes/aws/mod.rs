//! AWS's routes: connections, KMS containers, keys and policy templates (`inventory`); bulk and key
//! synchronization jobs (`jobs`).

mod inventory;
mod jobs;

use std::sync::Arc;

use axum::Router;

use crate::AppState;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().merge(inventory::routes()).merge(jobs::routes())
}
