//! Azure Key Vault: connections, vaults and keys (`inventory`), cloud key backups (`backups`), bulk jobs
//! (`bulkjobs`) and key synchronization jobs (`sync`). What Azure shares with AWS (reading, listing and
//! cancelling jobs) lives in `crate::jobs` and `crate::sync_jobs`.

mod backups;
mod bulkjobs;
mod inventory;
mod sync;

pub(crate) use bulkjobs::check_azure_job_readable;
pub use inventory::VaultEntry;
