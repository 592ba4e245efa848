//! Framing of the Key Vault REST protocol: which vault a request addresses, the `api-version`
//! check, the bearer token, Key Vault's error codes and body, and the response shape.

use std::fmt;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The `api-version` values the fake accepts. `2025-07-01` is what azure-keyvault-keys 4.11
/// sends by default.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["7.4", "7.5", "7.6", "2025-07-01"];
/// The resource a Key Vault token is issued for; named in the bearer challenge.
pub const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// Host suffixes that select a vault by the first label of the `Host` header.
const VAULT_HOST_SUFFIXES: &[&str] = &[".vault.localhost", ".vault.azure.net"];
/// The path prefix that selects a vault: `/vaults/<vault>/keys/...`.
const VAULT_PATH_PREFIX: &str = "/vaults/";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";
/// What Key Vault reports in `x-ms-keyvault-service-version`.
const SERVICE_VERSION: &str = "1.9.2776.1";

/// The Key Vault error codes the fake answers with, each mapped once to its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    BadParameter,
    Conflict,
    Internal,
    KeyNotFound,
    MethodNotAllowed,
    NotFound,
    NotImplemented,
    ServiceUnavailable,
    Throttled,
    Unauthorized,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::BadParameter => "BadParameter",
            Self::Conflict => "Conflict",
            Self::Internal => "InternalServerError",
            Self::KeyNotFound => "KeyNotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::NotFound => "NotFound",
            Self::NotImplemented => "NotImplemented",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::Throttled => "Throttled",
            Self::Unauthorized => "Unauthorized",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::BadParameter => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::KeyNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error as Key Vault reports it: `{"error": {"code", "message", "innererror"?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VaultError {
    pub code: ErrorCode,
    pub message: String,
    /// Key Vault's `innererror.code`, e.g. `ObjectIsDeletedButRecoverable`.
    pub inner: Option<&'static str>,
    /// The `Retry-After` seconds of a 429.
    pub retry_after: Option<u64>,
}

impl VaultError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), inner: None, retry_after: None }
    }

    pub(crate) fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadParameter, message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// `name` is what the request named: `name` or `name/version`.
    pub(crate) fn key_not_found(name: &str) -> Self {
        Self::new(
            ErrorCode::KeyNotFound,
            format!(
                "A key with (name/id) {name} was not found in this key vault. If you recently deleted \
                 this key you may be able to recover it using the correct recovery command. For help \
                 resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
            ),
        )
    }

    pub(crate) fn deleted_key_not_found(name: &str) -> Self {
        Self::new(ErrorCode::KeyNotFound, format!("Deleted Key not found: {name}"))
    }

    /// A create or restore over a key that is deleted but not purged.
    pub(crate) fn deleted_but_recoverable(name: &str) -> Self {
        Self {
            inner: Some("ObjectIsDeletedButRecoverable"),
            ..Self::new(
                ErrorCode::Conflict,
                format!(
                    "Key {name} is currently in a deleted but recoverable state, and its name cannot \
                     be reused; in this state, the key can only be recovered or purged."
                ),
            )
        }
    }
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for VaultError {}

/// A successful answer.
#[derive(Debug)]
pub(crate) enum Reply {
    Json(Value),
    /// 204, as after a purge.
    NoContent,
}

impl Reply {
    pub(crate) fn json<T: serde::Serialize>(output: &T) -> Result<Self, VaultError> {
        serde_json::to_value(output).map(Self::Json).map_err(|_| VaultError::internal())
    }
}

/// Where a request landed: the vault and how the client addressed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// Lower case, as vault names are DNS labels.
    pub vault: String,
    /// The path inside the vault, e.g. `/keys/k1/create`.
    pub path: String,
    /// The base `nextLink`s are built on: the vault URL as the client used it.
    pub link_base: String,
    /// The base of `kid` and `recoveryId`: `https://<vault>.vault.localhost[:port]` (path scheme)
    /// or `https://<host>` (host scheme), never a path prefix, because the
    /// SDKs parse a key id as `https://host/keys/<name>[/<version>]`.
    pub id_base: String,
}

/// The vault a request addresses: `/vaults/<vault>/...` (path scheme, what
/// `RunningVault::vault_url` gives), else a `Host` of `<vault>.vault.localhost[:port]` or
/// `<vault>.vault.azure.net[:port]` (host scheme).
pub(crate) fn target(headers: &HeaderMap, uri: &Uri) -> Result<Target, VaultError> {
    let host = request_host(headers, uri);
    let path = uri.path();
    if let Some(rest) = path.strip_prefix(VAULT_PATH_PREFIX) {
        let (vault, inner) = rest.split_once('/').map_or((rest, ""), |(v, p)| (v, p));
        check_vault_name(vault)?;
        let vault = vault.to_ascii_lowercase();
        let port = host.rsplit_once(':').map(|(_, p)| p).filter(|p| p.bytes().all(|b| b.is_ascii_digit()));
        let id_host = match port {
            Some(port) => format!("{vault}.vault.localhost:{port}"),
            None => format!("{vault}.vault.localhost"),
        };
        return Ok(Target {
            link_base: format!("https://{host}{VAULT_PATH_PREFIX}{vault}"),
            id_base: format!("https://{id_host}"),
            path: format!("/{inner}"),
            vault,
        });
    }
    let hostname = host
        .rsplit_once(':')
        .map_or(host.as_str(), |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host.as_str() });
    let vault = VAULT_HOST_SUFFIXES.iter().find_map(|suffix| {
        let label = hostname.to_ascii_lowercase().strip_suffix(suffix)?.to_owned();
        (!label.is_empty() && !label.contains('.')).then_some(label)
    });
    match vault {
        Some(vault) => {
            check_vault_name(&vault)?;
            Ok(Target {
                vault,
                path: path.to_owned(),
                link_base: format!("https://{host}"),
                id_base: format!("https://{}", host.to_ascii_lowercase()),
            })
        }
        None => Err(VaultError::new(
            ErrorCode::NotFound,
            format!(
                "No vault in the request: use https://{host}/vaults/<vault>/keys/... or a host \
                 <vault>.vault.localhost"
            ),
        )),
    }
}

/// `https://<host>` of the request: the authority bearer challenges name when the fake does not
/// know its own URL (served by someone else's server).
pub(crate) fn origin(headers: &HeaderMap, uri: &Uri) -> String {
    format!("https://{}", request_host(headers, uri))
}

/// `Host`, else the URI's authority (HTTP/2, absolute-form), else `localhost`.
fn request_host(headers: &HeaderMap, uri: &Uri) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Azure's rule for vault names: 3-24 characters, letters, digits and single hyphens, starting
/// with a letter and not ending with a hyphen.
pub(crate) fn check_vault_name(name: &str) -> Result<(), VaultError> {
    let bytes = name.as_bytes();
    let valid = (3..=24).contains(&bytes.len())
        && bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !name.contains("--");
    if valid {
        Ok(())
    } else {
        Err(VaultError::bad_parameter(format!(
            "vault: '{name}' is not a valid vault name (3-24 letters, digits and single hyphens, \
             starting with a letter)"
        )))
    }
}

/// The query string, decoded; a parameter given twice keeps its first value.
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(uri: &Uri) -> Self {
        let pairs = uri.query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect());
        Self(pairs.unwrap_or_default())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Every Key Vault call names a supported `api-version`.
pub(crate) fn check_api_version(query: &Query) -> Result<&str, VaultError> {
    let supported = SUPPORTED_API_VERSIONS.join(", ");
    match query.get("api-version") {
        None | Some("") => Err(VaultError::bad_parameter(format!(
            "api-version: the 'api-version' query parameter is required. Supported versions: {supported}"
        ))),
        Some(version) if SUPPORTED_API_VERSIONS.contains(&version) => Ok(version),
        Some(version) => Err(VaultError::bad_parameter(format!(
            "api-version: the specified version ({version}) is not recognized. Supported versions: {supported}"
        ))),
    }
}

/// The token of `Authorization: Bearer <token>`, if the header has that form.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The JSON body of a call, typed; a malformed body or a member of the wrong type is
/// `BadParameter` naming the member.
pub(crate) fn body<T: DeserializeOwned>(body: &[u8]) -> Result<T, VaultError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(VaultError::bad_parameter("The request body is required and must be a JSON object."));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            VaultError::bad_parameter(format!("The request body is not a valid JSON object: {inner}"))
        } else {
            VaultError::bad_parameter(format!("{path}: {inner}"))
        }
    })
}

/// What the fake answers a method that the path does not take.
pub(crate) fn method_not_allowed(method: &Method, path: &str) -> VaultError {
    VaultError::new(ErrorCode::MethodNotAllowed, format!("The method {method} is not allowed on {path}."))
}

/// Builds the HTTP response of one data-plane call. `challenge` is the `WWW-Authenticate`
/// value that goes with a 401.
pub(crate) fn respond(request_id: &str, result: Result<Reply, VaultError>, challenge: &str) -> Response {
    let (status, body, error) = match result {
        Ok(Reply::Json(value)) => (StatusCode::OK, value.to_string(), None),
        Ok(Reply::NoContent) => (StatusCode::NO_CONTENT, String::new(), None),
        Err(err) => {
            let mut error = serde_json::json!({ "code": err.code.as_str(), "message": err.message });
            if let Some(inner) = err.inner {
                error["innererror"] = serde_json::json!({ "code": inner });
            }
            (err.code.status(), serde_json::json!({ "error": error }).to_string(), Some(err))
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if status != StatusCode::NO_CONTENT {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-ms-request-id", value);
    }
    headers.insert("x-ms-keyvault-service-version", HeaderValue::from_static(SERVICE_VERSION));
    match error {
        Some(VaultError { code: ErrorCode::Unauthorized, .. }) => {
            if let Ok(value) = HeaderValue::from_str(challenge) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        Some(VaultError { retry_after: Some(seconds), .. }) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        _ => {}
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target_of(host: Option<&str>, uri: &str) -> Result<Target, VaultError> {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        target(&headers, &uri.parse().unwrap())
    }

    #[test]
    fn the_vault_comes_from_the_path_prefix() {
        let t = target_of(Some("127.0.0.1:4600"), "/vaults/Prod-1/keys/k1?api-version=7.4").unwrap();
        assert_eq!(t.vault, "prod-1");
        assert_eq!(t.path, "/keys/k1");
        assert_eq!(t.link_base, "https://127.0.0.1:4600/vaults/prod-1");
        assert_eq!(t.id_base, "https://prod-1.vault.localhost:4600");
        assert_eq!(target_of(None, "/vaults/abc").unwrap().path, "/");
        assert_eq!(target_of(Some("127.0.0.1:1"), "/vaults/a/keys").unwrap_err().code, ErrorCode::BadParameter);
    }

    #[test]
    fn or_from_the_first_label_of_the_host() {
        let t = target_of(Some("myvault.vault.localhost:4600"), "/keys").unwrap();
        assert_eq!((t.vault.as_str(), t.path.as_str()), ("myvault", "/keys"));
        assert_eq!(t.id_base, "https://myvault.vault.localhost:4600");
        let t = target_of(Some("MyVault.vault.azure.net"), "/keys").unwrap();
        assert_eq!(t.vault, "myvault");
        assert_eq!(t.link_base, "https://MyVault.vault.azure.net");
        assert_eq!(target_of(Some("127.0.0.1:4600"), "/keys").unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(target_of(Some("myvault.localhost:4600"), "/keys").unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(target_of(Some("a.b.vault.localhost"), "/keys").unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn api_version_is_required_and_checked() {
        let q = |s: &str| Query::parse(&format!("/keys?{s}").parse().unwrap());
        assert_eq!(check_api_version(&q("api-version=7.4")).unwrap(), "7.4");
        assert_eq!(check_api_version(&q("api-version=2025-07-01")).unwrap(), "2025-07-01");
        assert!(check_api_version(&q("maxresults=1")).unwrap_err().message.contains("required"));
        assert!(check_api_version(&q("api-version=7.3")).unwrap_err().message.contains("(7.3)"));
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn body_errors_name_the_member() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct B {
            key_size: Option<u32>,
        }
        let err = body::<B>(br#"{"key_size": "big"}"#).unwrap_err();
        assert!(err.message.starts_with("key_size: "), "{}", err.message);
        assert_eq!(body::<B>(b"{").unwrap_err().code, ErrorCode::BadParameter);
        assert!(body::<B>(b"").is_err());
    }
}
