//! keyfleet's HTTP API end to end: the real server over HTTPS, a real SQLite file, the fake AWS KMS and moto.
#![allow(clippy::unwrap_used)]

mod authz;
mod azure;
mod events;
mod faults;
mod hardening;
mod inventory;
mod jobs;
mod large_jobs;
mod login;
mod openapi;
mod operations;
mod ops;
mod report;
mod revert;
mod safety;
mod secrets;
mod snapshots;
mod strict;
mod support;
mod validation;
