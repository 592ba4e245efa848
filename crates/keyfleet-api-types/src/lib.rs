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
