#![doc = include_str!("../README.md")]

pub mod aws;
mod error;

pub use aws::{AwsCredentials, AwsKms, AwsKmsConnector, KeyMetadata, SdkConnector};
pub use error::{CloudError, ErrorKind};
