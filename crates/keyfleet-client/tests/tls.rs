//! The client against an HTTPS server with a self-signed certificate, as `keyfleet serve` creates on first
//! start: refused by default, accepted with `insecure` (`-k`) or with the certificate as `ca_cert`.

use axum::routing::post;
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use keyfleet_client::{Client, ClientError, ClientOptions};
use serde_json::json;

async fn start_https() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("certificate");
    let cert_pem = certified.cert.pem();
    let key_pem = certified.signing_key.serialize_pem();
    let tls = RustlsConfig::from_pem(cert_pem.clone().into_bytes(), key_pem.into_bytes()).await.expect("tls config");
    let app = Router::new().route(
        "/api/v1/auth/tokens",
        post(|| async {
            Json(json!({
                "jwt": "h.e30.s", "duration": 300, "token_type": "Bearer",
                "client_id": "11111111-1111-4111-8111-111111111111", "refresh_token": "r",
                "refresh_token_id": "22222222-2222-4222-8222-222222222222"
            }))
        }),
    );
    // Bound here and handed over: the port cannot be taken by anyone else in between.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = axum_server::from_tcp_rustls(listener, tls).expect("server");
    tokio::spawn(server.serve(app.into_make_service()));
    (format!("https://127.0.0.1:{port}"), cert_pem)
}

fn client(opts: ClientOptions) -> Client {
    Client::new(&opts).expect("client")
}

#[tokio::test]
async fn self_signed_certificates_need_insecure_or_the_ca() {
    let (url, cert_pem) = start_https().await;

    let strict = client(ClientOptions { base_url: url.clone(), ..ClientOptions::default() });
    let err = strict.login("admin", "pw").await.expect_err("untrusted");
    assert!(matches!(err, ClientError::Http(_)), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    let insecure = client(ClientOptions { base_url: url.clone(), insecure: true, ..ClientOptions::default() });
    insecure.login("admin", "pw").await.expect("insecure login");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert_pem).expect("write");
    let trusting = client(ClientOptions { base_url: url, ca_cert: Some(ca), ..ClientOptions::default() });
    trusting.login("admin", "pw").await.expect("login with ca_cert");
}
