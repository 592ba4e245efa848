//! Azure's routes: connections, vaults and keys (`inventory`); cloud key backups (`backups`); bulk and key
//! synchronization jobs (`jobs`).

mod backups;
mod inventory;
mod jobs;

use crate::routes::table::Routes;

pub fn routes() -> Routes {
    Routes::new().merge(inventory::routes()).merge(backups::routes()).merge(jobs::routes())
}
