//! AWS KMS: connections, KMS containers, keys and policy templates (`inventory`), bulk jobs (`bulkjobs`) and key
//! synchronization jobs (`sync`). What AWS shares with Azure (reading, listing and cancelling jobs) lives in
//! `crate::jobs` and `crate::sync_jobs`.

mod bulkjobs;
mod inventory;
mod sync;

pub use bulkjobs::MAX_KEYS;
pub use inventory::{KmsEntry, TemplateEntry, check_region};
