//! HTTPS for the fake: a CA generated at start and a server certificate it signs. The official
//! clients refuse plain HTTP, and the Rust SDK rejects a bare self-signed certificate, so
//! clients are given the CA to trust, never the server certificate.

use std::io;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use chrono::{Datelike as _, Duration, NaiveDate, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names every server certificate covers: loopback, `<vault>.vault.localhost` (host-scheme
/// vaults and key ids) and `<vault>.vault.azure.net` (for clients that map Azure host names to
/// the fake, e.g. reqwest's `resolve`).
const DEFAULT_NAMES: &[&str] = &["localhost", "*.vault.localhost", "127.0.0.1", "::1", "*.vault.azure.net"];

/// A generated CA and the server certificate it signed.
pub(crate) struct TlsMaterial {
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key_der: Vec<u8>,
}

/// Generates a CA and a server certificate for [`DEFAULT_NAMES`] plus `extra_names` (DNS names
/// or IP addresses).
pub(crate) fn generate(extra_names: &[String]) -> io::Result<TlsMaterial> {
    let today = Utc::now().date_naive();
    let ca_key = KeyPair::generate().map_err(io::Error::other)?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "keyfleet fake Azure Key Vault CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    set_validity(&mut ca_params, today - Duration::days(1), today + Duration::days(3650));
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(io::Error::other)?;

    let mut names: Vec<String> = DEFAULT_NAMES.iter().map(|n| (*n).to_owned()).collect();
    for name in extra_names {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let leaf_key = KeyPair::generate().map_err(io::Error::other)?;
    let mut leaf_params = CertificateParams::new(names).map_err(io::Error::other)?;
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    // Within the 398 days browsers and some TLS stacks allow for a server certificate.
    set_validity(&mut leaf_params, today - Duration::days(1), today + Duration::days(397));
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(io::Error::other)?;

    Ok(TlsMaterial {
        ca_pem: ca.pem(),
        ca_der: ca.der().clone(),
        leaf_der: leaf.der().clone(),
        leaf_key_der: leaf_key.serialize_der(),
    })
}

/// Sets a certificate's validity to whole days, `from` to `to`.
fn set_validity(params: &mut CertificateParams, from: NaiveDate, to: NaiveDate) {
    // Months and days always fit in a u8.
    let ymd = |d: NaiveDate| (d.year(), d.month() as u8, d.day() as u8);
    let (y, m, d) = ymd(from);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = ymd(to);
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

/// The server side: the certificate chain (server certificate, then CA) over TLS 1.2/1.3 with
/// aws-lc-rs, named explicitly so that another crypto provider in the build cannot interfere.
pub(crate) fn server_config(material: &TlsMaterial) -> io::Result<RustlsConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.leaf_key_der.clone()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![material.leaf_der.clone(), material.ca_der.clone()], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}
