#![doc = include_str!("../README.md")]

pub mod auth;
pub mod aws;
pub mod azure;
pub mod bulkjob;
pub mod common;
pub mod usermgmt;

pub use common::{ErrorBody, ListEnvelope, Timestamp};
