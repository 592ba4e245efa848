//! The AWS client honours a send deadline (`send_by`): a change whose request is ready only after its
//! deadline never reaches the service; one in time does. Against the fake AWS KMS over HTTP.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use keyfleet_clouds::{AwsCredentials, AwsKmsConnector, Missed, SdkConnector, send_by};
use keyfleet_fakes::{FakeKms, FakeKmsConfig};
use tokio::time::Instant;

#[tokio::test]
async fn a_change_ready_after_its_send_deadline_never_reaches_the_service() {
    let fake = FakeKms::new(FakeKmsConfig::default().with_account("AKIASENDBY", "111122223333")).spawn().await.unwrap();
    let key = fake.fake.create_keys("111122223333", "us-east-1", 1).remove(0);
    let credentials = AwsCredentials {
        access_key_id: "AKIASENDBY".into(),
        secret_access_key: "secret".to_owned().into(),
        endpoint_url: Some(fake.url()),
    };
    let kms = SdkConnector::default().connect(&credentials, "us-east-1");
    let disables = || fake.fake.calls().iter().filter(|c| c.operation == "DisableKey").count();

    // The node froze between its lease check and the send: the deadline passed before the request was ready.
    let past = Instant::now();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(send_by(past, kms.disable_key(&key)).await.err(), Some(Missed));
    assert_eq!(disables(), 0, "nothing was sent");
    assert_eq!(fake.fake.key_state("111122223333", "us-east-1", &key).as_deref(), Some("Enabled"));

    let sent = send_by(Instant::now() + Duration::from_secs(30), kms.disable_key(&key)).await;
    assert!(matches!(sent, Ok(Ok(_))), "{sent:?}");
    assert_eq!(disables(), 1);
    // Without a deadline the client sends as always.
    kms.enable_key(&key).await.unwrap();
}
