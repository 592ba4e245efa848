#![doc = include_str!("../README.md")]

pub mod client;
pub mod commands;
pub mod config;
pub mod error;
pub mod output;
pub mod summary;
pub mod token;

pub use client::{AwsKeyListQuery, Client, ClientOptions, DEFAULT_URL};
pub use commands::{ClientCommand, ClientGlobalArgs, run};
pub use config::ClientConfig;
pub use error::ClientError;
pub use reqwest::Method;
