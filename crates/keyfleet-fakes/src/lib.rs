#![doc = include_str!("../README.md")]

pub mod aws;

pub use aws::{
    BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, CallRecord, DEFAULT_REGION, FakeAwsArgs, FakeKms,
    FakeKmsConfig, RunningFake, run,
};
