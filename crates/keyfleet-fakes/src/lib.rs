#![doc = include_str!("../README.md")]

pub mod aws;
pub mod azure;
mod common;

pub use common::CallFaultArgs;

pub use aws::{
    BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, CallRecord, DEFAULT_REGION, FakeAwsArgs, FakeKms, FakeKmsConfig,
    RunningFake, run,
};
pub use aws::{FakeKmsStats, Faults, KmsCallCounts, KmsOperationStats, QuotaConfig};
pub use azure::{
    BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET, BUILTIN_TENANT_ID, FakeAzureArgs, FakeVault, FakeVaultConfig,
    RunningVault, ThrottleConfig, VaultCallRecord,
};
