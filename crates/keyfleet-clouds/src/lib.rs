#![doc = include_str!("../README.md")]

pub mod aws;
pub mod azure;
mod error;
mod send_by;

pub use aws::{AwsCredentials, AwsKms, AwsKmsConnector, KeyMetadata, SdkConnector};
pub use azure::{AzureCredentials, KeyVault, KeyVaultConnector, RestConnector};
pub use error::{CloudError, ErrorKind, Receipt};
pub use send_by::{Missed, send_by};
