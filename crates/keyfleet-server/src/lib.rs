#![doc = include_str!("../README.md")]

mod auth;
pub mod config;
pub mod config_check;
mod console;
pub mod error;
mod extract;
mod limits;
pub mod lock;
mod openapi;
mod ops;
mod routes;
mod startup;
pub mod tls;
mod views;

use std::sync::Arc;

use keyfleet_service::Services;

pub use config::{Config, Environment, ServeArgs};
pub use config_check::ConfigCommand;
pub use routes::{mounted_routes, router};
pub use startup::{RunningServer, init_logging, migrate, open_database, serve, start};

/// What every handler can reach.
pub struct AppState {
    pub services: Arc<Services>,
    /// Ended bulk jobs' views, rendered once (`views/rendered.rs`).
    pub rendered: views::rendered::RenderedJobs,
    /// The bearer token `/metrics` requires, if any.
    pub metrics_token: Option<secrecy::SecretString>,
}

impl AppState {
    pub fn new(services: Arc<Services>) -> Self {
        Self { services, rendered: Default::default(), metrics_token: None }
    }
}
