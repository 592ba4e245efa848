//! The Key Vault REST client against the strict fake Key Vault and Entra ID, over real HTTPS (trusting the fake's
//! generated CA). No mocks: every assertion is about what went over the wire or what the fake holds afterwards.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use keyfleet_clouds::azure::{Listing, PUBLIC_AUTHORITY, VAULT_RESOURCE};
use keyfleet_clouds::{AzureCredentials, ErrorKind, KeyVault, KeyVaultConnector, RestConnector};
use keyfleet_fakes::{
    BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET, BUILTIN_TENANT_ID, FakeVault, RunningVault, ThrottleConfig,
};

/// The most items a Key Vault listing page holds (and the fake's default page size).
const PAGE_SIZE: usize = 25;

struct Env {
    fake: FakeVault,
    running: RunningVault,
    connector: RestConnector,
}

impl Env {
    async fn start() -> Self {
        let fake = FakeVault::default();
        let running = fake.clone().spawn().await.unwrap();
        let connector = RestConnector::new(Some(running.ca_pem().as_bytes())).unwrap();
        Self { fake, running, connector }
    }

    fn credentials(&self) -> AzureCredentials {
        credentials_for(&self.running)
    }

    fn vault(&self, name: &str) -> Arc<dyn KeyVault> {
        self.connector.connect(&self.credentials(), &self.running.vault_url(name))
    }
}

fn credentials_for(running: &RunningVault) -> AzureCredentials {
    AzureCredentials {
        tenant_id: BUILTIN_TENANT_ID.to_owned(),
        client_id: BUILTIN_CLIENT_ID.to_owned(),
        client_secret: BUILTIN_CLIENT_SECRET.into(),
        authority: running.authority(),
        resource: VAULT_RESOURCE.to_owned(),
    }
}

/// Every page of a listing, following `nextLink`s.
async fn all_pages<F, Fut>(mut page: F) -> Vec<Listing<keyfleet_clouds::azure::KeyItem>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Listing<keyfleet_clouds::azure::KeyItem>, keyfleet_clouds::CloudError>>,
{
    let mut pages = Vec::new();
    let mut next = None;
    loop {
        let listing = page(next.clone()).await.unwrap();
        next = listing.next_link.clone();
        pages.push(listing);
        if next.is_none() {
            return pages;
        }
        assert!(pages.len() < 100, "the listing does not end");
    }
}

#[tokio::test]
async fn listing_follows_next_links_and_returns_every_key_once() {
    let env = Env::start().await;
    let created = env.fake.create_keys("listing", 2 * PAGE_SIZE + 7);
    let vault = env.vault("listing");

    let pages = all_pages(|next| {
        let vault = vault.clone();
        async move { vault.list_keys(next.as_deref()).await }
    })
    .await;

    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p.items.len() <= PAGE_SIZE));
    let names: Vec<String> = pages.iter().flat_map(|p| p.items.iter().map(|i| i.name.clone())).collect();
    assert_eq!(names.len(), created.len(), "no key twice");
    assert_eq!(names.iter().cloned().collect::<BTreeSet<_>>(), created.iter().cloned().collect::<BTreeSet<_>>());
    let first = &pages[0].items[0];
    assert_eq!(first.version, None, "a key listing names keys, not versions");
    assert!(first.kid.ends_with(&format!("/keys/{}", first.name)), "{}", first.kid);
    assert!(first.enabled);
    assert!(first.created.is_some() && first.updated.is_some());
    assert!(!first.managed);
    // Every page went to the vault's own path, with the token.
    let calls = env.fake.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.vault == "listing" && c.path == "/keys" && c.status == 200), "{calls:?}");
}

#[tokio::test]
async fn versions_of_a_key_are_listed() {
    let env = Env::start().await;
    for _ in 0..3 {
        env.fake.create_key("versions", "rotated");
    }
    env.fake.create_key("versions", "other");
    let vault = env.vault("versions");

    let listing = vault.list_key_versions("rotated", None).await.unwrap();
    assert_eq!(listing.next_link, None);
    let versions: BTreeSet<String> = listing.items.iter().map(|i| i.version.clone().unwrap()).collect();
    assert_eq!(versions, env.fake.key_versions("versions", "rotated").into_iter().collect());
    assert!(listing.items.iter().all(|i| i.name == "rotated" && i.enabled));

    let err = vault.list_key_versions("missing", None).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::NotFound, "KeyNotFound"));
}

#[tokio::test]
async fn many_versions_page_too() {
    let env = Env::start().await;
    for _ in 0..PAGE_SIZE + 3 {
        env.fake.create_key("manyversions", "k");
    }
    let vault = env.vault("manyversions");
    let pages = all_pages(|next| {
        let vault = vault.clone();
        async move { vault.list_key_versions("k", next.as_deref()).await }
    })
    .await;
    assert_eq!(pages.len(), 2);
    let versions: Vec<String> = pages.iter().flat_map(|p| p.items.iter().map(|i| i.version.clone().unwrap())).collect();
    assert_eq!(versions.len(), PAGE_SIZE + 3);
    assert_eq!(versions.iter().collect::<BTreeSet<_>>().len(), PAGE_SIZE + 3);
}

#[tokio::test]
async fn get_key_reads_the_current_version() {
    let env = Env::start().await;
    env.fake.create_key("getkey", "k1");
    let latest = env.fake.create_key("getkey", "k1");
    let vault = env.vault("getkey");

    let key = vault.get_key("k1").await.unwrap();
    assert_eq!(key.kid, latest);
    assert_eq!(key.name, "k1");
    assert_eq!(Some(key.version.as_str()), latest.rsplit('/').next());
    assert_eq!(key.kty, "RSA");
    assert_eq!(key.key_ops, ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]);
    assert_eq!(key.key_size, Some(2048));
    assert_eq!(key.curve, None);
    assert!(key.enabled);
    let created = key.created.unwrap();
    assert!((chrono::Utc::now() - created).num_seconds().abs() < 60, "{created}");
    assert_eq!(key.updated, Some(created));
    assert_eq!((key.exp, key.nbf), (None, None));
    assert_eq!(key.recovery_level, "Recoverable+Purgeable");
    assert_eq!(key.recoverable_days, Some(90));
    assert!(!key.managed);
    assert!(key.tags.is_empty());
}

#[tokio::test]
async fn unknown_keys_are_not_found() {
    let env = Env::start().await;
    let vault = env.vault("notfound");
    for err in [vault.get_key("nope").await.unwrap_err(), vault.backup_key("nope").await.unwrap_err()] {
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::NotFound, "KeyNotFound"), "{err}");
        assert!(err.message.contains("nope"), "{err}");
    }
}

#[tokio::test]
async fn invalid_key_names_are_refused_without_a_request() {
    let env = Env::start().await;
    let vault = env.vault("names");
    for name in ["", "a/b", "a_b", "../keys"] {
        let err = vault.get_key(name).await.unwrap_err();
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "InvalidKeyName"), "{name}");
    }
    assert!(env.fake.calls().is_empty());
}

#[tokio::test]
async fn backup_restores_into_another_vault() {
    let env = Env::start().await;
    env.fake.create_key("source", "moved");
    env.fake.create_key("source", "moved");
    let source = env.vault("source");
    let target = env.vault("target");

    let blob = source.backup_key("moved").await.unwrap();
    assert!(!blob.is_empty());
    assert_eq!(env.fake.backup_count(), 1);

    let restored = target.restore_key(&blob).await.unwrap();
    assert_eq!(restored.name, "moved");
    assert_eq!(restored.key_size, Some(2048));
    assert_eq!(env.fake.key_names("target"), ["moved"]);
    assert_eq!(env.fake.key_versions("target", "moved"), env.fake.key_versions("source", "moved"));
    assert_eq!(target.get_key("moved").await.unwrap().version, restored.version);

    // Key Vault refuses to restore over an existing key.
    let err = source.restore_key(&blob).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "Conflict"), "{err}");
    let err = target.restore_key(&blob).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "Conflict"), "{err}");

    // A blob that is not a backup is a bad request.
    let err = target.restore_key(b"not a backup").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "BadParameter"), "{err}");
}

#[tokio::test]
async fn a_wrong_secret_is_unauthorized_and_never_shown() {
    let env = Env::start().await;
    env.fake.create_key("secrets", "k1");
    let secret = "Sup3r-S3cret~value";
    let credentials = AzureCredentials { client_secret: secret.into(), ..env.credentials() };
    let vault = env.connector.connect(&credentials, &env.running.vault_url("secrets"));

    let err = vault.get_key("k1").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Unauthorized, "invalid_client"), "{err}");
    assert!(err.message.contains("AADSTS7000215"), "Entra's description is kept: {err}");
    for shown in [err.to_string(), format!("{err:?}"), format!("{credentials:?}"), format!("{:?}", env.connector)] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(env.fake.calls().is_empty(), "no data-plane call without a token");

    // Other refusals of the token endpoint: an unknown application, an unknown tenant.
    let unknown_client = AzureCredentials { client_id: "nobody".to_owned(), ..env.credentials() };
    let err =
        env.connector.connect(&unknown_client, &env.running.vault_url("secrets")).get_key("k1").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Unauthorized, "unauthorized_client"), "{err}");
    let unknown_tenant = AzureCredentials { tenant_id: "another-tenant".to_owned(), ..env.credentials() };
    let err =
        env.connector.connect(&unknown_tenant, &env.running.vault_url("secrets")).get_key("k1").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    assert!(err.message.contains("AADSTS90002"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_every_client_of_the_connector() {
    let env = Env::start().await;
    env.fake.create_keys("first", 3);
    env.fake.create_keys("second", 3);
    let first = env.vault("first");
    let second = env.vault("second");

    // Concurrent callers before any token exists wait for one token request.
    let calls = (0..16).map(|i| {
        let vault = if i % 2 == 0 { first.clone() } else { second.clone() };
        async move { vault.get_key("key-0001").await }
    });
    for result in join_all(calls).await {
        result.unwrap();
    }
    for _ in 0..5 {
        first.list_keys(None).await.unwrap();
        second.list_key_versions("key-0002", None).await.unwrap();
    }
    // A client made later by the same connector still uses the cached token.
    env.vault("third").list_keys(None).await.unwrap();
    assert_eq!(env.fake.token_requests(), 1);
    assert_eq!(env.fake.calls().len(), 16 + 10 + 1);

    // Another connector has its own cache.
    let other = RestConnector::new(Some(env.running.ca_pem().as_bytes())).unwrap();
    other.connect(&env.credentials(), &env.running.vault_url("first")).get_key("key-0001").await.unwrap();
    assert_eq!(env.fake.token_requests(), 2);
    // The connector's Debug shows neither secret nor token.
    let shown = format!("{:?}", env.connector);
    assert!(!shown.contains(BUILTIN_CLIENT_SECRET), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_a_failed_token_request() {
    let env = Env::start().await;
    let credentials = AzureCredentials { client_secret: "wrong".into(), ..env.credentials() };
    let vault = env.connector.connect(&credentials, &env.running.vault_url("shared"));
    let calls = (0..8).map(|_| {
        let vault = vault.clone();
        async move { vault.list_keys(None).await }
    });
    for result in join_all(calls).await {
        assert_eq!(result.unwrap_err().kind, ErrorKind::Unauthorized);
    }
    // Far fewer than one per caller: the ones that waited took the shared answer.
    assert!(env.fake.token_requests() < 8, "{}", env.fake.token_requests());
    // A later call asks again.
    let before = env.fake.token_requests();
    vault.list_keys(None).await.unwrap_err();
    assert_eq!(env.fake.token_requests(), before + 1);
}

#[tokio::test]
async fn a_refused_cached_token_is_replaced_and_the_call_retried_once() {
    // Two fakes: tokens of the first are unknown to the second, so the second answers 401 to them.
    let env = Env::start().await;
    let other_fake = FakeVault::default();
    let other = other_fake.clone().spawn().await.unwrap();
    env.fake.create_key("home", "k1");
    other_fake.create_key("away", "k1");
    let pem = format!("{}\n{}", env.running.ca_pem(), other.ca_pem());
    let connector = RestConnector::new(Some(pem.as_bytes())).unwrap();
    let home = connector.connect(&env.credentials(), &env.running.vault_url("home"));
    let away = connector.connect(&env.credentials(), &other.vault_url("away"));

    home.get_key("k1").await.unwrap();
    assert_eq!(env.fake.token_requests(), 1);

    let err = away.get_key("k1").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Unauthorized, "Unauthorized"), "{err}");
    let calls = other_fake.calls();
    assert_eq!(calls.len(), 2, "the call was retried once: {calls:?}");
    assert!(calls.iter().all(|c| c.status == 401));
    assert_eq!(env.fake.token_requests(), 2, "the refused token was replaced");

    // The replacement stays cached for the vault that accepts it.
    home.get_key("k1").await.unwrap();
    assert_eq!(env.fake.token_requests(), 2);
    assert_eq!(other_fake.token_requests(), 0);
}

#[tokio::test]
async fn throttling_is_reported_with_retry_after() {
    let env = Env::start().await;
    env.fake.create_key("throttled", "k1");
    let vault = env.vault("throttled");

    env.fake.set_throttle(ThrottleConfig::every_nth(2, Some(7)));
    vault.get_key("k1").await.unwrap();
    let err = vault.get_key("k1").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Throttled, "Throttled"), "{err}");
    assert!(err.kind.is_retryable());
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));

    // Key Vault does not always say how long to wait.
    env.fake.set_throttle(ThrottleConfig::every_nth(1, None));
    let err = vault.list_keys(None).await.unwrap_err();
    assert_eq!((err.kind, err.retry_after), (ErrorKind::Throttled, None));

    env.fake.set_throttle(ThrottleConfig::default());
    vault.backup_key("k1").await.unwrap();
}

#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_gets_no_token() {
    let env = Env::start().await;
    env.fake.create_keys("origin", 30);
    let elsewhere_fake = FakeVault::default();
    let elsewhere = elsewhere_fake.clone().spawn().await.unwrap();
    let vault = env.vault("origin");

    let first = vault.list_keys(None).await.unwrap();
    let genuine = first.next_link.clone().unwrap();
    // Same path and query, another port: another origin.
    let port = env.running.addr.port().to_string();
    let moved = genuine.replacen(&port, &elsewhere.addr.port().to_string(), 1);
    assert_ne!(moved, genuine);
    for link in [moved.as_str(), "https://evil.example.com/keys?api-version=7.5", "/keys?api-version=7.5"] {
        let err = vault.list_keys(Some(link)).await.unwrap_err();
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "InvalidNextLink"), "{link}: {err}");
        let err = vault.list_key_versions("key-0001", Some(link)).await.unwrap_err();
        assert_eq!(err.code, "InvalidNextLink");
    }
    assert!(elsewhere_fake.calls().is_empty(), "nothing was sent to the other origin");

    let second = vault.list_keys(Some(&genuine)).await.unwrap();
    assert_eq!(second.items.len(), 5);
    assert_eq!(second.next_link, None);
}

#[tokio::test]
async fn without_the_ca_the_handshake_fails_as_transient() {
    let env = Env::start().await;
    let connector = RestConnector::new(None).unwrap();
    let err = connector.connect(&env.credentials(), &env.running.vault_url("tls")).list_keys(None).await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Transient, "ConnectionError"), "{err}");
    assert!(err.message.to_ascii_lowercase().contains("certificate"), "the cause is named: {err}");
    assert!(!err.message.contains(BUILTIN_CLIENT_SECRET));
    assert_eq!(env.fake.token_requests(), 0);
}

#[tokio::test]
async fn transport_failures_are_transient() {
    // Nobody listens: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let connector = RestConnector::new(None).unwrap();
    let credentials = AzureCredentials {
        tenant_id: BUILTIN_TENANT_ID.to_owned(),
        client_id: BUILTIN_CLIENT_ID.to_owned(),
        client_secret: BUILTIN_CLIENT_SECRET.into(),
        authority: format!("https://127.0.0.1:{port}"),
        resource: VAULT_RESOURCE.to_owned(),
    };
    let err = connector.connect(&credentials, "https://127.0.0.1:1/vaults/v1").get_key("k").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Transient, "ConnectionError"), "{err}");

    // Somebody accepts and never answers: a timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let connector = RestConnector::with_timeouts(None, Duration::from_millis(500), Duration::from_secs(1)).unwrap();
    let credentials = AzureCredentials { authority: format!("https://127.0.0.1:{port}"), ..credentials };
    let started = std::time::Instant::now();
    let err = connector.connect(&credentials, "https://127.0.0.1:1/vaults/v1").get_key("k").await.unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Transient, "Timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    holder.abort();
}

#[tokio::test]
async fn bad_vault_urls_are_refused_before_any_request() {
    let env = Env::start().await;
    for url in ["not a url", "http://127.0.0.1/vaults/v1", "https://127.0.0.1/vaults/v1?x=1"] {
        let err = env.connector.connect(&env.credentials(), url).list_keys(None).await.unwrap_err();
        assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "InvalidVaultUrl"), "{url}");
    }
    // A trailing slash is ignored.
    env.fake.create_key("slash", "k1");
    let url = format!("{}/", env.running.vault_url("slash"));
    env.connector.connect(&env.credentials(), &url).get_key("k1").await.unwrap();
    assert_eq!(env.fake.calls()[0].path, "/keys/k1");
}

#[test]
fn debug_output_never_shows_the_secret() {
    let credentials = AzureCredentials {
        tenant_id: "t".to_owned(),
        client_id: "c".to_owned(),
        client_secret: "very-secret-value".into(),
        authority: PUBLIC_AUTHORITY.to_owned(),
        resource: VAULT_RESOURCE.to_owned(),
    };
    let connector = RestConnector::new(None).unwrap();
    let _vault = connector.connect(&credentials, "https://v.vault.azure.net");
    for shown in [format!("{credentials:?}"), format!("{credentials:#?}"), format!("{connector:?}")] {
        assert!(!shown.contains("very-secret-value"), "{shown}");
    }
}

#[test]
fn a_pem_without_certificates_is_refused() {
    let err = RestConnector::new(Some(b"no certificate here")).unwrap_err();
    assert_eq!((err.kind, err.code.as_str()), (ErrorKind::Rejected, "InvalidCertificate"));
}

/// Runs the futures as concurrent tasks; their outputs in completion order.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    set.join_all().await
}
