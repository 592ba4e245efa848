#![doc = include_str!("../README.md")]

#[macro_use]
mod macros;

pub mod audit;
pub mod auth;
pub mod aws;
pub mod azure;
pub mod bulkjob;
pub mod common;
pub mod usermgmt;

pub use common::{ErrorBody, ListEnvelope, Timestamp};

/// What every job resource (bulk or synchronization job, either cloud) shows, whatever its kind: the fields
/// `job_resource!` declares, read by clients that treat all jobs alike.
pub trait JobResource {
    fn id(&self) -> &str;
    fn overall_status(&self) -> &str;
    fn detailed_status(&self) -> &std::collections::BTreeMap<String, String>;
}
