//! Connection limits and what every answer carries: a header-read timeout, an idle keep-alive timeout, a
//! cap on open connections, 413 for an oversized body, tokens from the future refused, `Cache-Control: no-store`
//! and `Strict-Transport-Security`.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn addr(app: &TestApp) -> String {
    app.url.rsplit("://").next().unwrap().to_string()
}

/// How long until the server closes `stream` (reads until end of stream, discarding data); `None` if it
/// is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_client_that_sends_half_a_header_is_disconnected() {
    let app = TestApp::start_with(|a| {
        a.plain_http = true;
        a.header_read_timeout_secs = Some(1);
        a.idle_timeout_secs = Some(2);
    })
    .await;
    let mut slow = TcpStream::connect(addr(&app)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: keyfleet\r\nX-Slow: ").await.unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(5)).await.expect("closed after the header timeout");
    assert!(took >= Duration::from_millis(900), "not before the timeout: {took:?}");

    // A connection that never sends a byte goes the same way, and an idle keep-alive connection after the
    // idle timeout.
    let mut silent = TcpStream::connect(addr(&app)).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await.is_some(), "silent connection kept open");
    let mut idle = TcpStream::connect(addr(&app)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: keyfleet\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut idle, Duration::from_secs(5)).await.is_some(), "idle keep-alive kept open");
}

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A blocking TLS connection to the app (rustls over std's `TcpStream`), trusting its generated certificate;
/// use it inside `spawn_blocking`, since the server runs on the test's runtime.
fn tls_connect(app: &TestApp) -> TlsStream {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let pem = app.dir.path().join("data/tls/cert.pem");
    for cert in CertificateDer::pem_file_iter(&pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = std::net::TcpStream::connect(addr(app)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Sends `GET /healthz` on `tls` and reads the whole answer; its status line.
fn healthz(tls: &mut TlsStream) -> String {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    read_response(tls)
}

/// Reads one answer with a `Content-Length` body from `tls`; its status line.
fn read_response(tls: &mut TlsStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tls.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed before the answer: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .expect("content-length");
            if got.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_owned();
            }
        }
    }
}

/// Like [`closed_within`], for a TLS connection (a close without `close_notify` counts).
fn tls_closed_within(tls: &mut TlsStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        tls.sock.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match tls.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// A server with these header-read and idle timeouts (seconds), and `client` on a blocking thread with one
/// TLS connection to it.
async fn one_connection(header: u64, idle: u64, client: impl FnOnce(&mut TlsStream) + Send + 'static) {
    let app = TestApp::start_with(|a| {
        a.header_read_timeout_secs = Some(header);
        a.idle_timeout_secs = Some(idle);
    })
    .await;
    let mut tls = tls_connect(&app);
    tokio::task::spawn_blocking(move || client(&mut tls)).await.unwrap();
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    one_connection(1, 3, |tls| {
        assert!(healthz(tls).starts_with("HTTP/1.1 200"));
        // Twice the header timeout, well within the idle timeout: the connection still serves.
        std::thread::sleep(Duration::from_secs(2));
        assert!(healthz(tls).starts_with("HTTP/1.1 200"), "the same connection serves a second request");
        let took = tls_closed_within(tls, Duration::from_secs(8)).expect("closed after the idle timeout");
        assert!(took >= Duration::from_secs(2), "closed at the idle timeout, not the header timeout: {took:?}");
    })
    .await;
}

#[tokio::test]
async fn a_header_begun_after_an_idle_pause_has_the_header_timeout() {
    one_connection(1, 10, |tls| {
        assert!(healthz(tls).starts_with("HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(1500));
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: ").unwrap();
        let took = tls_closed_within(tls, Duration::from_secs(8)).expect("closed after the header timeout");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "closed about a second after the header began, not at the idle timeout: {took:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_slow_body_is_not_a_slow_header() {
    // Once the header is complete, the body (and the handler) take the time they need.
    one_connection(1, 10, |tls| {
        let body = serde_json::to_vec(&json!({"username": "admin", "password": ADMIN_PASSWORD})).unwrap();
        let head = format!(
            "POST /api/v1/auth/tokens HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).unwrap();
        let (first, rest) = body.split_at(body.len() / 2);
        for part in [first, rest] {
            std::thread::sleep(Duration::from_millis(1200));
            tls.write_all(part).unwrap();
        }
        assert!(read_response(tls).starts_with("HTTP/1.1 200"));
    })
    .await;
}

#[tokio::test]
async fn a_stalled_tls_handshake_is_disconnected() {
    let app = TestApp::start_with(|a| a.header_read_timeout_secs = Some(1)).await;
    assert!(app.url.starts_with("https://"));
    let mut stalled = TcpStream::connect(addr(&app)).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap(); // the start of a ClientHello, then nothing
    assert!(closed_within(&mut stalled, Duration::from_secs(5)).await.is_some(), "stalled handshake kept open");
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let app = TestApp::start_with(|a| {
        a.plain_http = true;
        a.max_connections = Some(2);
        a.header_read_timeout_secs = Some(3);
        a.idle_timeout_secs = Some(3);
    })
    .await;
    // Let the server close the login's pooled keep-alive connection, which holds a slot.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut first = TcpStream::connect(addr(&app)).await.unwrap();
    let _second = TcpStream::connect(addr(&app)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(addr(&app)).await.unwrap();
    let took = closed_within(&mut third, Duration::from_secs(1)).await;
    assert!(took.is_some(), "a third connection is closed at once, not after the header timeout");
    // A freed slot serves the next client.
    first.shutdown().await.unwrap();
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let r = http.get(format!("{}/healthz", app.url)).send().await.expect("a slot is free again");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_oversized_body_is_413_in_cckm_format() {
    let app = TestApp::start().await;
    let keys: Vec<String> = (0..120_000).map(|i| format!("{i:020}")).collect();
    let r = app.post("/api/v1/cckm/aws/bulkjob", json!({"operation": "disablekey", "keys": keys})).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!((r.body["code"].as_i64(), r.body["codeDesc"].as_str()), (Some(9), Some("NCERRInvalidParamValue")));
    assert!(r.body["message"].as_str().unwrap().starts_with("body:"), "{}", r.body);
}

fn encode(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

/// The admin's token with `change` applied to its claims, signed with the server's real key.
fn resigned(app: &TestApp, change: impl FnOnce(&mut Value)) -> String {
    let p: Vec<&str> = app.admin.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).unwrap()).unwrap();
    change(&mut claims);
    let key = keyfleet_core::crypto::MasterKey::from_base64(
        &std::fs::read_to_string(app.dir.path().join("data/master.key")).unwrap(),
    )
    .unwrap()
    .derive("keyfleet/jwt/hs256/v1");
    let signing_input = format!("{}.{}", p[0], encode(&claims));
    let tag =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key), signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

#[tokio::test]
async fn tokens_from_the_future_are_401() {
    let app = TestApp::start().await;
    let now = chrono::Utc::now().timestamp();
    for (what, token) in [
        (
            "iat an hour ahead",
            resigned(&app, |c| {
                c["iat"] = json!(now + 3600);
                c["exp"] = json!(now + 3900);
            }),
        ),
        ("nbf an hour ahead", resigned(&app, |c| c["nbf"] = json!(now + 3600))),
    ] {
        let r = app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(&token), None).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_eq!(r.body["codeDesc"], "NCERRUnauthorizedAccess");
        assert!(r.body["message"].as_str().unwrap().contains("not valid yet"), "{what}: {}", r.body);
    }
    // Within the leeway (a neighbour's clock a little ahead), and nbf in the past, are fine.
    let ahead = resigned(&app, |c| {
        c["iat"] = json!(now + 30);
        c["nbf"] = json!(now + 30);
    });
    assert_eq!(app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(&ahead), None).await.status, 200);
    let past = resigned(&app, |c| c["nbf"] = json!(now - 10));
    assert_eq!(app.call("GET", "/api/v1/cckm/aws/bulkjob", Some(&past), None).await.status, 200);
}

#[tokio::test]
async fn answers_are_not_cached_and_https_is_strict() {
    let app = TestApp::start().await;
    for (path, token, status) in [
        ("/api/v1/cckm/aws/bulkjob", Some(app.admin.as_str()), 200),
        ("/api/v1/cckm/aws/bulkjob", None, 401),
        ("/api/v1/nowhere", Some(app.admin.as_str()), 404),
    ] {
        let mut req = app.http.get(format!("{}{path}", app.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000", "{path}");
    }
    let r = app
        .http
        .post(format!("{}/api/v1/auth/tokens", app.url))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store", "the token answer above all");

    // Plain HTTP (behind a TLS proxy) sends no HSTS: the proxy decides.
    let plain = TestApp::start_with(|a| a.plain_http = true).await;
    let r = plain.http.get(format!("{}/healthz", plain.url)).send().await.unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.headers().get("strict-transport-security").is_none());
}
