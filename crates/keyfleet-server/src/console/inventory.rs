//! Inventory: keys with filters, KMS containers and vaults, connections (never their secrets), key
//! synchronization jobs.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use maud::html;

use super::layout::{self, Nav};
use super::{Answer, Session};
use crate::AppState;

/// `GET /console/inventory`.
pub(crate) async fn page(State(_s): State<Arc<AppState>>, Extension(session): Extension<Session>) -> Answer {
    let body = html! { p { "Inventory" } };
    Ok(layout::page(&session, Nav::Inventory, "Inventory", body))
}
