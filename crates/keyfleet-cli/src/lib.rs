//! The `keyfleet` binary's own code: the client commands (`login`, `aws ...`, `api`) built on the
//! `keyfleet-client` library, and how they print. `main.rs` puts them beside `serve`, `migrate` and the
//! fakes.

pub mod audit;
pub mod commands;
pub mod exit;
mod output;
mod summary;

pub use commands::{ClientCommand, ClientGlobalArgs, run};
