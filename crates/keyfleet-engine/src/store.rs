//! What the engine needs from the store: [`EngineStore`], the union of the store's worker-facing traits
//! ([`WorkQueue`], [`SyncQueue`], [`AwsWorkStore`], [`AzureWorkStore`]). Every [`keyfleet_store::Store`] is
//! one; a test can provide it in memory (see `tests/harness`).

pub use keyfleet_store::{AwsWorkStore, AzureWorkStore, EngineStore, SyncQueue, WorkQueue};
