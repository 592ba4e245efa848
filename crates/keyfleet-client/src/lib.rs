#![doc = include_str!("../README.md")]

pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod token;

pub use client::{AwsKeyListQuery, Client, ClientOptions, Cloud, DEFAULT_URL};
pub use config::ClientConfig;
pub use error::ClientError;
pub use events::{EventStream, ServerEvent};
pub use reqwest::Method;
