//! The official Rust SDK (aws-sdk-kms), unmodified, against the fake over real HTTP: what
//! keyfleet's own AWS client will see.
#![allow(clippy::unwrap_used)]

use aws_credential_types::Credentials;
use aws_sdk_kms::Client;
use aws_sdk_kms::config::{BehaviorVersion, Region, retry::RetryConfig};
use aws_sdk_kms::types::{KeyState, Tag};
use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, BUILTIN_ACCOUNT_ID, FakeKms, RunningFake};

fn client(running: &RunningFake, access_key_id: &str, region: &str) -> Client {
    let config = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(running.url())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new(access_key_id, "x", None, None, "test"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

fn code<E: aws_sdk_kms::error::ProvideErrorMetadata>(err: &E) -> &str {
    err.code().unwrap_or("<no code>")
}

#[tokio::test]
async fn rust_sdk_round_trips_every_operation() {
    let running = FakeKms::default().spawn().await.unwrap();
    let kms = client(&running, BUILTIN_ACCESS_KEY_ID, "us-east-1");

    let created = kms
        .create_key()
        .description("rust sdk")
        .tags(Tag::builder().tag_key("env").tag_value("dev").build().unwrap())
        .send()
        .await
        .unwrap();
    let md = created.key_metadata().unwrap();
    let key_id = md.key_id().to_owned();
    assert_eq!(md.aws_account_id(), Some(BUILTIN_ACCOUNT_ID));
    assert_eq!(md.key_state(), Some(&KeyState::Enabled));
    assert!(md.creation_date().is_some());

    let described = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().description(), Some("rust sdk"));

    kms.disable_key().key_id(&key_id).send().await.unwrap();
    kms.enable_key().key_id(&key_id).send().await.unwrap();

    let err = kms.schedule_key_deletion().key_id(&key_id).pending_window_in_days(40).send().await.unwrap_err();
    assert_eq!(code(&err), "ValidationException");

    let scheduled = kms.schedule_key_deletion().key_id(&key_id).pending_window_in_days(7).send().await.unwrap();
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    assert!(scheduled.deletion_date().is_some());

    let err = kms.enable_key().key_id(&key_id).send().await.unwrap_err();
    assert!(err.as_service_error().unwrap().is_kms_invalid_state_exception());

    let cancelled = kms.cancel_key_deletion().key_id(&key_id).send().await.unwrap();
    assert!(cancelled.key_id().unwrap().ends_with(&key_id));
    let md = kms.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(md.key_metadata().unwrap().key_state(), Some(&KeyState::Disabled));

    let policy = kms.get_key_policy().key_id(&key_id).send().await.unwrap();
    assert!(policy.policy().unwrap().contains("Enable IAM User Permissions"));
    let err = kms.put_key_policy().key_id(&key_id).policy("{not json").send().await.unwrap_err();
    assert!(err.as_service_error().unwrap().is_malformed_policy_document_exception());
    kms.put_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .policy(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();

    kms.tag_resource()
        .key_id(&key_id)
        .tags(Tag::builder().tag_key("env").tag_value("prod").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = kms.list_resource_tags().key_id(&key_id).send().await.unwrap();
    assert_eq!(tags.tags()[0].tag_value(), "prod");

    kms.create_alias().alias_name("alias/rust-sdk").target_key_id(&key_id).send().await.unwrap();
    let aliases = kms.list_aliases().key_id(&key_id).send().await.unwrap();
    assert_eq!(aliases.aliases()[0].alias_name(), Some("alias/rust-sdk"));
    let err = kms.describe_key().key_id("0a1b2c3d-0000-4000-8000-000000000000").send().await.unwrap_err();
    assert!(err.as_service_error().unwrap().is_not_found_exception());
}

#[tokio::test]
async fn rust_sdk_paginates_list_keys() {
    let running = FakeKms::default().spawn().await.unwrap();
    let seeded = running.fake.create_keys(BUILTIN_ACCOUNT_ID, "eu-west-1", 230);
    let kms = client(&running, BUILTIN_ACCESS_KEY_ID, "eu-west-1");
    let listed: Vec<String> = kms
        .list_keys()
        .limit(100)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.key_id().unwrap().to_owned())
        .collect();
    assert_eq!(listed, seeded);
    assert_eq!(running.fake.calls().iter().filter(|c| c.operation == "ListKeys").count(), 3);

    let other = client(&running, "AKIAOTHER", "eu-west-1");
    let err = other.describe_key().key_id(&seeded[0]).send().await.unwrap_err();
    assert_eq!(code(&err), "NotFoundException");
}
