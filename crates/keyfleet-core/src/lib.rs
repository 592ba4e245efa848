#![doc = include_str!("../README.md")]

pub mod audit;
pub mod cloud;
pub mod crypto;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod rules;
pub mod time;

pub use cloud::Cloud;
pub use ids::*;
pub use model::*;
