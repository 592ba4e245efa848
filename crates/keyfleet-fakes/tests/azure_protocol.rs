//! The fake Azure Key Vault over real HTTPS (reqwest trusting only the fake's CA): the
//! api-version check, the bearer challenge, the Entra ID token endpoint, and Key Vault's rules for
//! keys, paging, backup and restore, soft delete and throttling.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use keyfleet_fakes::{
    BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET, BUILTIN_TENANT_ID, FakeVault, FakeVaultConfig, RunningVault,
    ThrottleConfig,
};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const API: &str = "api-version=7.4";

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {}", self.body))
    }
}

/// A served fake, an HTTPS client that trusts only its CA, and a token from its token endpoint.
struct Azure {
    running: RunningVault,
    http: reqwest::Client,
    token: String,
}

fn https_client(running: &RunningVault) -> reqwest::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(running.ca_pem().as_bytes()).unwrap();
    reqwest::Client::builder().tls_certs_only([ca])
}

impl Azure {
    async fn start() -> Self {
        Self::with(FakeVault::default()).await
    }

    async fn with(fake: FakeVault) -> Self {
        let running = fake.spawn().await.unwrap();
        let http = https_client(&running).build().unwrap();
        let answer = token_request(&http, &running, BUILTIN_TENANT_ID, BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let token = answer.body["access_token"].as_str().unwrap().to_owned();
        Self { running, http, token }
    }

    fn fake(&self) -> &FakeVault {
        &self.running.fake
    }

    /// `path_and_query` is inside the vault, e.g. `/keys?api-version=7.4`.
    async fn send(&self, method: Method, vault: &str, path_and_query: &str, body: Option<Value>) -> Answer {
        let url = format!("{}{path_and_query}", self.running.vault_url(vault));
        self.send_url(method, &url, body).await
    }

    async fn send_url(&self, method: Method, url: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn ok(&self, method: Method, vault: &str, path: &str, body: Option<Value>) -> Value {
        let answer = self.send(method.clone(), vault, &with_api(path), body).await;
        assert!(answer.status.is_success(), "{method} {path}: {} {}", answer.status, answer.body);
        answer.body
    }

    /// Asserts a Key Vault error; returns the answer.
    async fn err(&self, method: Method, vault: &str, path: &str, body: Option<Value>, status: StatusCode) -> Answer {
        let answer = self.send(method.clone(), vault, &with_api(path), body).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        assert!(answer.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", answer.body);
        answer
    }

    async fn create(&self, vault: &str, name: &str, body: Value) -> Value {
        self.ok(Method::POST, vault, &format!("/keys/{name}/create"), Some(body)).await
    }

    /// Follows `nextLink`s from `first`; returns the pages.
    async fn pages(&self, vault: &str, first: &str) -> Vec<Value> {
        let mut pages = vec![self.ok(Method::GET, vault, first, None).await];
        while let Some(next) = pages.last().unwrap()["nextLink"].as_str().map(str::to_owned) {
            assert!(next.starts_with(&self.running.vault_url(vault)), "nextLink is absolute: {next}");
            assert!(next.contains("$skiptoken="), "{next}");
            let answer = self.send_url(Method::GET, &next, None).await;
            assert_eq!(answer.status, StatusCode::OK, "{next}: {}", answer.body);
            pages.push(answer.body);
        }
        pages
    }
}

fn with_api(path: &str) -> String {
    if path.contains('?') { format!("{path}&{API}") } else { format!("{path}?{API}") }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    Answer { status, headers, body }
}

async fn token_request(
    http: &reqwest::Client,
    running: &RunningVault,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> Answer {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", "https://vault.azure.net/.default"),
    ];
    answer(http.post(running.token_url(tenant)).form(&form).send().await.unwrap()).await
}

fn names(page: &Value) -> Vec<String> {
    page["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["kid"].as_str().unwrap().rsplit('/').next().unwrap().to_owned())
        .collect()
}

// ---- framing, api-version, auth ----

#[tokio::test]
async fn api_version_is_required_and_checked() {
    let azure = Azure::start().await;
    let missing = azure.send(Method::GET, "vault1", "/keys", None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::BAD_REQUEST, "BadParameter"));
    assert!(missing.body["error"]["message"].as_str().unwrap().contains("api-version"));
    let old = azure.send(Method::GET, "vault1", "/keys?api-version=7.3", None).await;
    assert_eq!((old.status, old.code()), (StatusCode::BAD_REQUEST, "BadParameter"));
    assert!(old.body["error"]["message"].as_str().unwrap().contains("(7.3)"), "{}", old.body);
    for version in ["7.4", "7.5", "7.6", "2025-07-01"] {
        let ok = azure.send(Method::GET, "vault1", &format!("/keys?api-version={version}"), None).await;
        assert_eq!(ok.status, StatusCode::OK, "{version}: {}", ok.body);
        assert_eq!(ok.body, json!({ "value": [], "nextLink": null }));
        assert_eq!(ok.header("content-type"), Some("application/json; charset=utf-8"));
        assert!(ok.header("x-ms-request-id").is_some());
    }
}

#[tokio::test]
async fn requests_without_a_valid_token_get_the_bearer_challenge() {
    let azure = Azure::start().await;
    let url = format!("{}/keys?{API}", azure.running.vault_url("vault1"));
    let expected = format!(
        "Bearer authorization=\"{}/{BUILTIN_TENANT_ID}\", resource=\"https://vault.azure.net\"",
        azure.running.authority()
    );

    let anonymous = answer(azure.http.get(&url).send().await.unwrap()).await;
    assert_eq!((anonymous.status, anonymous.code()), (StatusCode::UNAUTHORIZED, "Unauthorized"));
    assert_eq!(anonymous.header("www-authenticate"), Some(expected.as_str()));

    let forged = answer(azure.http.get(&url).bearer_auth("not-issued-here").send().await.unwrap()).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.header("www-authenticate"), Some(expected.as_str()));

    let basic = answer(azure.http.get(&url).basic_auth("u", Some("p")).send().await.unwrap()).await;
    assert_eq!(basic.status, StatusCode::UNAUTHORIZED);

    let calls = azure.fake().calls();
    assert_eq!(calls.iter().filter(|c| c.status == 401).count(), 3);
    assert!(calls.iter().all(|c| c.vault == "vault1" && c.path == "/keys"), "{calls:?}");
}

#[tokio::test]
async fn token_endpoint_issues_tokens_and_refuses_wrong_secrets() {
    let fake = FakeVault::new(FakeVaultConfig::default().with_client("tenant-2", "app-2", "secret-2"));
    let azure = Azure::with(fake).await;
    assert_eq!(azure.fake().token_requests(), 1);

    let ok = token_request(&azure.http, &azure.running, "tenant-2", "app-2", "secret-2").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["token_type"], "Bearer");
    assert_eq!(ok.body["expires_in"], 3599);
    assert_eq!(ok.body["ext_expires_in"], 3599);
    let token = ok.body["access_token"].as_str().unwrap();
    assert_ne!(token, azure.token);
    // A token of another configured tenant is accepted too.
    let url = format!("{}/keys?{API}", azure.running.vault_url("vault1"));
    let status = azure.http.get(&url).bearer_auth(token).send().await.unwrap().status();
    assert_eq!(status, StatusCode::OK);

    let wrong = token_request(&azure.http, &azure.running, BUILTIN_TENANT_ID, BUILTIN_CLIENT_ID, "nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"], "invalid_client");
    assert_eq!(wrong.body["error_codes"], json!([7_000_215]));
    assert!(wrong.body["error_description"].as_str().unwrap().starts_with("AADSTS7000215: "));
    assert!(wrong.body.get("access_token").is_none());

    let other_tenant =
        token_request(&azure.http, &azure.running, "tenant-2", BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET).await;
    assert_eq!(
        (other_tenant.status, other_tenant.body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    let unknown_tenant =
        token_request(&azure.http, &azure.running, "nobody", BUILTIN_CLIENT_ID, BUILTIN_CLIENT_SECRET).await;
    assert_eq!(unknown_tenant.status, StatusCode::BAD_REQUEST);

    assert_eq!(azure.fake().token_requests(), 5);
}

// ---- keys ----

#[tokio::test]
async fn create_get_and_list_with_next_link_paging() {
    let azure = Azure::start().await;
    let rsa = azure.create("vault1", "Key-RSA", json!({ "kty": "RSA", "key_size": 2048, "tags": { "a": "1" } })).await;
    let kid = rsa["key"]["kid"].as_str().unwrap();
    let port = azure.running.addr.port();
    assert!(kid.starts_with(&format!("https://vault1.vault.localhost:{port}/keys/Key-RSA/")), "{kid}");
    assert_eq!(rsa["key"]["kty"], "RSA");
    assert_eq!(rsa["key"]["e"], "AQAB");
    assert_eq!(rsa["key"]["n"].as_str().unwrap().len(), 342, "256 bytes in base64url");
    assert_eq!(rsa["key"]["key_ops"], json!(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]));
    let attributes = &rsa["attributes"];
    assert_eq!(attributes["enabled"], true);
    assert_eq!(attributes["recoveryLevel"], "Recoverable+Purgeable");
    assert_eq!(attributes["recoverableDays"], 90);
    assert!(attributes["created"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(attributes["created"], attributes["updated"]);
    assert_eq!(rsa["tags"], json!({ "a": "1" }));

    let ec = azure.create("vault1", "key-ec", json!({ "kty": "EC", "crv": "P-521" })).await;
    assert_eq!((ec["key"]["crv"].as_str(), ec["key"]["x"].as_str().unwrap().len()), (Some("P-521"), 88));
    assert!(ec.get("tags").is_none(), "no tags, no member");

    // Names are case-insensitive; the key keeps its spelling.
    let got = azure.ok(Method::GET, "vault1", "/keys/key-rsa", None).await;
    assert_eq!(got["key"]["kid"], kid);
    let got = azure.ok(Method::GET, "vault1", "/keys/KEY-RSA/", None).await;
    assert_eq!(got["key"]["kid"], kid);
    let missing = azure.err(Method::GET, "vault1", "/keys/nope", None, StatusCode::NOT_FOUND).await;
    assert_eq!(missing.code(), "KeyNotFound");
    // Vaults are separate.
    azure.err(Method::GET, "vault2", "/keys/key-rsa", None, StatusCode::NOT_FOUND).await;

    for i in 0..28 {
        azure.create("vault1", &format!("k-{i:02}"), json!({ "kty": "EC" })).await;
    }
    let pages = azure.pages("vault1", "/keys?maxresults=10").await;
    assert_eq!(pages.iter().map(|p| p["value"].as_array().unwrap().len()).collect::<Vec<_>>(), [10, 10, 10]);
    assert!(pages[2]["nextLink"].is_null());
    let listed: Vec<String> = pages.iter().flat_map(names).collect();
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), 30);
    assert_eq!(listed.first().map(String::as_str), Some("k-00"));
    assert!(listed.contains(&"Key-RSA".to_owned()));
    let item = pages.iter().flat_map(|p| p["value"].as_array().unwrap().clone()).find(|i| i["tags"]["a"] == "1");
    assert_eq!(
        item.unwrap()["kid"],
        format!("https://vault1.vault.localhost:{port}/keys/Key-RSA"),
        "list kids have no version"
    );

    let default_page = azure.ok(Method::GET, "vault1", "/keys", None).await;
    assert_eq!(default_page["value"].as_array().unwrap().len(), 25);
    assert!(default_page["nextLink"].is_string());

    let too_many = azure.err(Method::GET, "vault1", "/keys?maxresults=26", None, StatusCode::BAD_REQUEST).await;
    assert_eq!(too_many.code(), "BadParameter");
    azure.err(Method::GET, "vault1", "/keys?$skiptoken=forged", None, StatusCode::BAD_REQUEST).await;
    // A skiptoken of one vault's listing does not page another's.
    let next = pages[0]["nextLink"].as_str().unwrap().replace("/vaults/vault1/", "/vaults/vault2/");
    assert_eq!(azure.send_url(Method::GET, &next, None).await.status, StatusCode::BAD_REQUEST);

    assert_eq!(azure.fake().key_names("vault1").len(), 30);
}

#[tokio::test]
async fn create_rejects_what_key_vault_rejects() {
    let azure = Azure::start().await;
    for body in [
        json!({}),
        json!({ "kty": "RSA", "key_size": 1024 }),
        json!({ "kty": "EC", "crv": "P-192" }),
        json!({ "kty": "oct-HSM" }),
        json!({ "kty": "RSA", "key_ops": ["launch"] }),
        json!({ "kty": "RSA", "key_size": "big" }),
        json!({ "kty": "RSA", "tags": (0..16).map(|i| (format!("t{i}"), json!("v"))).collect::<serde_json::Map<_, _>>() }),
    ] {
        let answer =
            azure.err(Method::POST, "vault1", "/keys/k/create", Some(body.clone()), StatusCode::BAD_REQUEST).await;
        assert_eq!(answer.code(), "BadParameter", "{body}");
    }
    let typed =
        azure.err(Method::POST, "vault1", "/keys/k/create", Some(json!({ "kty": 5 })), StatusCode::BAD_REQUEST).await;
    assert!(typed.body["error"]["message"].as_str().unwrap().starts_with("kty: "), "{}", typed.body);
    let bad_name = azure
        .err(Method::POST, "vault1", "/keys/a_b/create", Some(json!({ "kty": "RSA" })), StatusCode::BAD_REQUEST)
        .await;
    assert!(bad_name.body["error"]["message"].as_str().unwrap().contains("a_b"));
    azure.err(Method::POST, "vault1", "/keys", None, StatusCode::METHOD_NOT_ALLOWED).await;
    azure.err(Method::POST, "vault1", "/keys/k/v/sign", Some(json!({})), StatusCode::NOT_IMPLEMENTED).await;
    assert!(azure.fake().key_names("vault1").is_empty());
}

#[tokio::test]
async fn versions_are_listed_and_paged() {
    let azure = Azure::start().await;
    let mut created = Vec::new();
    for _ in 0..5 {
        let bundle = azure.create("vault1", "multi", json!({ "kty": "RSA" })).await;
        created.push(bundle["key"]["kid"].as_str().unwrap().rsplit('/').next().unwrap().to_owned());
    }
    assert_eq!(azure.fake().key_versions("vault1", "multi"), created);
    let pages = azure.pages("vault1", "/keys/multi/versions?maxresults=2").await;
    assert_eq!(pages.len(), 3);
    let listed: Vec<String> = pages.iter().flat_map(names).collect();
    assert_eq!(listed, created, "oldest first, every version once");

    let latest = azure.ok(Method::GET, "vault1", "/keys/multi", None).await;
    assert!(latest["key"]["kid"].as_str().unwrap().ends_with(&created[4]));
    let first = azure.ok(Method::GET, "vault1", &format!("/keys/multi/{}", created[0]), None).await;
    assert!(first["key"]["kid"].as_str().unwrap().ends_with(&created[0]));
    let unknown =
        azure.err(Method::GET, "vault1", &format!("/keys/multi/{}", "0".repeat(32)), None, StatusCode::NOT_FOUND).await;
    assert_eq!(unknown.code(), "KeyNotFound");
    azure.err(Method::GET, "vault1", "/keys/none/versions", None, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn update_changes_one_versions_attributes() {
    let azure = Azure::start().await;
    let v1 = azure.create("vault1", "k", json!({ "kty": "RSA", "tags": { "keep": "me" } })).await;
    let v1_id = v1["key"]["kid"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    azure.create("vault1", "k", json!({ "kty": "RSA" })).await;

    let patch = json!({
        "key_ops": ["sign", "verify"],
        "attributes": { "enabled": false, "exp": 2_000_000_000, "nbf": 1_600_000_000 },
        "tags": { "owner": "team-a" },
    });
    let updated = azure.ok(Method::PATCH, "vault1", &format!("/keys/k/{v1_id}"), Some(patch)).await;
    assert_eq!(updated["key"]["key_ops"], json!(["sign", "verify"]));
    assert_eq!(updated["attributes"]["enabled"], false);
    assert_eq!(updated["attributes"]["exp"], 2_000_000_000);
    assert_eq!(updated["attributes"]["nbf"], 1_600_000_000);
    assert_eq!(updated["tags"], json!({ "owner": "team-a" }), "tags are replaced");
    let again = azure.ok(Method::GET, "vault1", &format!("/keys/k/{v1_id}"), None).await;
    assert_eq!(again["attributes"], updated["attributes"]);
    assert_eq!(azure.fake().key_enabled("vault1", "k"), Some(true), "the latest version is untouched");

    let latest =
        azure.ok(Method::PATCH, "vault1", "/keys/k/", Some(json!({ "attributes": { "enabled": false } }))).await;
    assert_eq!(latest["attributes"]["enabled"], false);
    assert_eq!(azure.fake().key_enabled("vault1", "k"), Some(false));
    let exportable = json!({ "attributes": { "exportable": true } });
    azure.err(Method::PATCH, "vault1", "/keys/k/", Some(exportable), StatusCode::BAD_REQUEST).await;
    azure.err(Method::PATCH, "vault1", "/keys/gone/", Some(json!({})), StatusCode::NOT_FOUND).await;
}

// ---- backup, soft delete, restore ----

#[tokio::test]
async fn backup_delete_purge_restore_round_trip() {
    let azure = Azure::start().await;
    let first = azure.create("vault1", "precious", json!({ "kty": "EC", "tags": { "t": "1" } })).await;
    let second = azure.create("vault1", "precious", json!({ "kty": "RSA" })).await;
    let versions = azure.fake().key_versions("vault1", "precious");

    let backup = azure.ok(Method::POST, "vault1", "/keys/precious/backup", None).await;
    let blob = backup["value"].as_str().unwrap().to_owned();
    assert!(blob.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "base64url");
    assert_eq!(azure.fake().backup_count(), 1);

    let deleted = azure.ok(Method::DELETE, "vault1", "/keys/precious", None).await;
    let port = azure.running.addr.port();
    assert_eq!(deleted["recoveryId"], format!("https://vault1.vault.localhost:{port}/deletedkeys/precious"));
    assert_eq!(deleted["key"]["kid"], second["key"]["kid"]);
    let deleted_date = deleted["deletedDate"].as_i64().unwrap();
    assert_eq!(deleted["scheduledPurgeDate"].as_i64().unwrap() - deleted_date, 90 * 86_400);
    azure.err(Method::GET, "vault1", "/keys/precious", None, StatusCode::NOT_FOUND).await;
    azure.err(Method::DELETE, "vault1", "/keys/precious", None, StatusCode::NOT_FOUND).await;
    let got_deleted = azure.ok(Method::GET, "vault1", "/deletedkeys/precious", None).await;
    assert_eq!(got_deleted["recoveryId"], deleted["recoveryId"]);
    let listed = azure.ok(Method::GET, "vault1", "/deletedkeys", None).await;
    assert_eq!(listed["value"][0]["recoveryId"], deleted["recoveryId"]);
    assert_eq!(listed["value"][0]["kid"], format!("https://vault1.vault.localhost:{port}/keys/precious"));
    assert_eq!(azure.fake().deleted_key_names("vault1"), ["precious"]);

    // Deleted but not purged: the name cannot be reused, not even by a restore.
    let create = json!({ "kty": "RSA" });
    let conflict = azure.err(Method::POST, "vault1", "/keys/precious/create", Some(create), StatusCode::CONFLICT).await;
    assert_eq!(conflict.code(), "Conflict");
    assert_eq!(conflict.body["error"]["innererror"]["code"], "ObjectIsDeletedButRecoverable");
    let restore = json!({ "value": blob });
    let conflict =
        azure.err(Method::POST, "vault1", "/keys/restore", Some(restore.clone()), StatusCode::CONFLICT).await;
    assert_eq!(conflict.body["error"]["innererror"]["code"], "ObjectIsDeletedButRecoverable");

    let purge = azure.send(Method::DELETE, "vault1", &with_api("/deletedkeys/precious"), None).await;
    assert_eq!(purge.status, StatusCode::NO_CONTENT);
    assert_eq!(purge.body, Value::Null);
    azure.err(Method::GET, "vault1", "/deletedkeys/precious", None, StatusCode::NOT_FOUND).await;
    azure.err(Method::DELETE, "vault1", "/deletedkeys/precious", None, StatusCode::NOT_FOUND).await;

    let restored = azure.ok(Method::POST, "vault1", "/keys/restore", Some(restore)).await;
    assert_eq!(restored["key"], second["key"], "same latest version and material");
    assert_eq!(azure.fake().key_versions("vault1", "precious"), versions, "every version restored");
    let old = azure.ok(Method::GET, "vault1", &format!("/keys/precious/{}", versions[0]), None).await;
    assert_eq!((old["key"]["x"].clone(), old["tags"].clone()), (first["key"]["x"].clone(), json!({ "t": "1" })));

    // The same backup restores into another vault of the fake (same subscription).
    let into_v2 = azure.ok(Method::POST, "vault2", "/keys/restore", Some(json!({ "value": blob }))).await;
    assert!(
        into_v2["key"]["kid"]
            .as_str()
            .unwrap()
            .starts_with(&format!("https://vault2.vault.localhost:{port}/keys/precious/"))
    );
}

#[tokio::test]
async fn restore_over_an_existing_key_is_a_conflict() {
    let azure = Azure::start().await;
    azure.create("vault1", "k", json!({ "kty": "RSA" })).await;
    let blob = azure.ok(Method::POST, "vault1", "/keys/k/backup", None).await["value"].clone();
    let conflict =
        azure.err(Method::POST, "vault1", "/keys/restore", Some(json!({ "value": blob })), StatusCode::CONFLICT).await;
    assert_eq!(conflict.code(), "Conflict");
    assert!(conflict.body["error"].get("innererror").is_none());

    let forged = json!({ "value": "AAAAAAAAAAAAAAAAeyJmb3JtYXQiOjF9" });
    let bad = azure.err(Method::POST, "vault1", "/keys/restore", Some(forged), StatusCode::BAD_REQUEST).await;
    assert_eq!(bad.code(), "BadParameter");
    azure.err(Method::POST, "vault1", "/keys/restore", Some(json!({})), StatusCode::BAD_REQUEST).await;
    azure.err(Method::POST, "vault1", "/keys/none/backup", None, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn backup_refuses_more_than_500_versions() {
    let azure = Azure::start().await;
    for _ in 0..500 {
        azure.fake().create_key("vault1", "busy");
    }
    azure.ok(Method::POST, "vault1", "/keys/busy/backup", None).await;
    azure.fake().create_key("vault1", "busy");
    let refused = azure.err(Method::POST, "vault1", "/keys/busy/backup", None, StatusCode::BAD_REQUEST).await;
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("501 versions"), "{}", refused.body);
    assert_eq!(azure.fake().backup_count(), 1);
}

#[tokio::test]
async fn a_deleted_key_recovers() {
    let azure = Azure::start().await;
    let created = azure.create("vault1", "k", json!({ "kty": "RSA" })).await;
    azure.ok(Method::DELETE, "vault1", "/keys/k", None).await;
    let recovered = azure.ok(Method::POST, "vault1", "/deletedkeys/k/recover", None).await;
    assert_eq!(recovered["key"], created["key"]);
    assert_eq!(azure.fake().key_names("vault1"), ["k"]);
    azure.err(Method::POST, "vault1", "/deletedkeys/k/recover", None, StatusCode::NOT_FOUND).await;
}

// ---- throttling ----

#[tokio::test]
async fn throttling_answers_429_with_retry_after() {
    let azure = Azure::start().await;
    azure.fake().set_throttle(ThrottleConfig::every_nth(2, Some(7)));
    azure.ok(Method::GET, "vault1", "/keys", None).await;
    let throttled = azure.err(Method::GET, "vault1", "/keys", None, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(throttled.code(), "Throttled");
    assert_eq!(throttled.header("retry-after"), Some("7"));

    azure.fake().set_throttle(ThrottleConfig { probability: 1.0, ..ThrottleConfig::default() });
    let no_retry_after = azure.err(Method::GET, "vault1", "/keys", None, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(no_retry_after.header("retry-after"), None);

    azure.fake().set_throttle(ThrottleConfig { vault_limit_per_10s: Some(3), ..ThrottleConfig::default() });
    for _ in 0..3 {
        azure.ok(Method::GET, "vault1", "/keys", None).await;
    }
    let limited = azure.err(Method::GET, "vault1", "/keys", None, StatusCode::TOO_MANY_REQUESTS).await;
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    azure.ok(Method::GET, "vault2", "/keys", None).await;

    azure.fake().set_throttle(ThrottleConfig::default());
    azure.ok(Method::GET, "vault1", "/keys", None).await;
    let statuses: Vec<u16> = azure.fake().calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [200, 429, 429, 200, 200, 200, 429, 200, 200]);
}

// ---- addressing ----

#[tokio::test]
async fn vaults_are_also_addressed_by_host_name() {
    let azure = Azure::start().await;
    let kid = azure.fake().create_key("hosted", "k");
    let port = azure.running.addr.port();
    assert!(kid.starts_with(&format!("https://hosted.vault.localhost:{port}/keys/k/")), "{kid}");

    let http = https_client(&azure.running)
        .resolve("hosted.vault.localhost", azure.running.addr)
        .resolve("hosted.vault.azure.net", azure.running.addr)
        .build()
        .unwrap();
    // The kid itself is a URL that reaches the key.
    let by_kid = http.get(format!("{kid}?{API}")).bearer_auth(&azure.token).send().await.unwrap();
    assert_eq!(by_kid.status(), StatusCode::OK);
    let body: Value = by_kid.json().await.unwrap();
    assert_eq!(body["key"]["kid"], kid);

    let azure_style = format!("https://hosted.vault.azure.net:{port}/keys?{API}");
    let listed: Value = http.get(azure_style).bearer_auth(&azure.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["value"][0]["kid"], format!("https://hosted.vault.azure.net:{port}/keys/k"));

    let no_vault = answer(azure.http.get(format!("{}/keys?{API}", azure.running.url())).send().await.unwrap()).await;
    assert_eq!((no_vault.status, no_vault.code()), (StatusCode::NOT_FOUND, "NotFound"));
}
