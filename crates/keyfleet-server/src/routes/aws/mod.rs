//! AWS's routes: connections, KMS containers, keys and policy templates (`inventory`); bulk and key
//! synchronization jobs (`jobs`).

mod inventory;
mod jobs;

use crate::routes::table::Routes;

pub fn routes() -> Routes {
    Routes::new().merge(inventory::routes()).merge(jobs::routes())
}
