//! Framing of the AWS JSON 1.1 protocol: the target header, the SigV4 credential scope,
//! the request body, AWS's error codes and messages, and the response shape.

use std::fmt;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// `X-Amz-Target` is `TrentService.<Operation>` for every KMS call.
pub(crate) const TARGET_PREFIX: &str = "TrentService.";
pub(crate) const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
const SIGV4_ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "kms";

/// The AWS error codes the fake answers with, each mapped once to its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    AlreadyExists,
    IncompleteSignature,
    InvalidArn,
    InvalidMarker,
    InvalidSignature,
    KmsInternal,
    KmsInvalidState,
    LimitExceeded,
    MalformedPolicyDocument,
    MissingAuthenticationToken,
    NotAuthorized,
    NotFound,
    Serialization,
    ServiceUnavailable,
    Tag,
    Throttling,
    UnknownOperation,
    UnrecognizedClient,
    UnsupportedOperation,
    Validation,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyExists => "AlreadyExistsException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::InvalidArn => "InvalidArnException",
            Self::InvalidMarker => "InvalidMarkerException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::KmsInternal => "KMSInternalException",
            Self::KmsInvalidState => "KMSInvalidStateException",
            Self::LimitExceeded => "LimitExceededException",
            Self::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::NotAuthorized => "NotAuthorizedException",
            Self::NotFound => "NotFoundException",
            Self::Serialization => "SerializationException",
            Self::ServiceUnavailable => "ServiceUnavailableException",
            Self::Tag => "TagException",
            Self::Throttling => "ThrottlingException",
            Self::UnknownOperation => "UnknownOperationException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::UnsupportedOperation => "UnsupportedOperationException",
            Self::Validation => "ValidationException",
        }
    }

    pub(crate) fn status(self) -> StatusCode {
        match self {
            Self::KmsInternal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error as AWS KMS reports it: a code and a human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KmsError {
    pub code: ErrorCode,
    pub message: String,
}

impl KmsError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub(crate) fn invalid_state(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::KmsInvalidState, message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, message)
    }

    pub(crate) fn internal() -> Self {
        Self::new(ErrorCode::KmsInternal, "internal error")
    }
}

impl fmt::Display for KmsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for KmsError {}

/// A successful answer: most mutating KMS calls answer 200 with an empty body.
#[derive(Debug)]
pub(crate) enum Reply {
    Empty,
    Json(Value),
}

impl Reply {
    pub(crate) fn json<T: serde::Serialize>(output: &T) -> Result<Self, KmsError> {
        serde_json::to_value(output).map(Self::Json).map_err(|_| KmsError::internal())
    }
}

/// The operation name from `X-Amz-Target`, without the service prefix, as sent.
pub(crate) fn target(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-amz-target")?.to_str().ok()
}

/// Who is calling, from the SigV4 credential scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credential {
    pub access_key_id: String,
    pub region: String,
}

/// Reads `Authorization: AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/kms/aws4_request,
/// SignedHeaders=..., Signature=...`. The signature itself is not verified (moto does not either):
/// the fake only needs to know the account and the region.
pub(crate) fn credential(headers: &HeaderMap) -> Result<Credential, KmsError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(KmsError::new(ErrorCode::MissingAuthenticationToken, "Missing Authentication Token"));
    };
    let incomplete = |message: String| KmsError::new(ErrorCode::IncompleteSignature, message);
    let value = value.to_str().map_err(|_| incomplete("Authorization header is not valid ASCII.".to_owned()))?;
    let Some(params) = value.trim().strip_prefix(SIGV4_ALGORITHM) else {
        let algorithm = value.split_whitespace().next().unwrap_or_default();
        return Err(incomplete(format!("Unsupported AWS 'algorithm': '{algorithm}'.")));
    };
    let param =
        |name: &str| params.split(',').map(str::trim).find_map(|part| part.strip_prefix(name)?.strip_prefix('='));
    let mut missing = Vec::new();
    for name in ["Credential", "Signature", "SignedHeaders"] {
        if param(name).is_none_or(str::is_empty) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(missing.join(" ")));
    }
    let scope = param("Credential").unwrap_or_default();
    let parts: Vec<&str> = scope.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(incomplete(format!("Credential should be scoped to a valid region and service, not '{scope}'.")));
    };
    let valid_date = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    if access_key_id.is_empty() || region.is_empty() || !valid_date || *terminator != "aws4_request" {
        return Err(incomplete(format!("Credential should be scoped to a valid region and service, not '{scope}'.")));
    }
    if *service != SERVICE {
        return Err(KmsError::new(
            ErrorCode::InvalidSignature,
            format!("Credential should be scoped to correct service: '{SERVICE}'."),
        ));
    }
    Ok(Credential { access_key_id: (*access_key_id).to_owned(), region: (*region).to_owned() })
}

/// The body is a JSON object; an empty body counts as `{}`.
pub(crate) fn body_object(body: &[u8]) -> Result<Value, KmsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(KmsError::new(ErrorCode::Serialization, "Start of structure or map found where not expected.")),
        Err(err) => Err(KmsError::new(ErrorCode::Serialization, format!("Request body is not valid JSON: {err}"))),
    }
}

/// Typed view of an operation's input. A member of the wrong JSON type is a
/// `SerializationException`, as on AWS; missing or out-of-range members are checked later
/// with [`Violations`] so that they produce AWS's `ValidationException` text.
pub(crate) fn input<T: DeserializeOwned>(body: Value) -> Result<T, KmsError> {
    serde_json::from_value(body)
        .map_err(|err| KmsError::new(ErrorCode::Serialization, format!("Cannot deserialize request: {err}")))
}

/// Builds the HTTP response for one call.
pub(crate) fn respond(request_id: &str, result: Result<Reply, KmsError>) -> Response {
    let (status, error_type, body) = match result {
        Ok(Reply::Empty) => (StatusCode::OK, None, Vec::new()),
        Ok(Reply::Json(value)) => (StatusCode::OK, None, value.to_string().into_bytes()),
        Err(err) => {
            let body = serde_json::json!({ "__type": err.code.as_str(), "message": err.message });
            (err.code.status(), Some(err.code), body.to_string().into_bytes())
        }
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Some(code) = error_type {
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code.as_str()));
    }
    response
}

/// Collects AWS-style constraint violations so that one `ValidationException` lists them all:
/// `2 validation errors detected: Value null at 'keyId' failed to satisfy constraint: ...; ...`.
#[derive(Debug, Default)]
pub(crate) struct Violations(Vec<String>);

impl Violations {
    fn push(&mut self, value: &str, member: &str, constraint: &str) {
        self.0.push(format!("Value {value} at '{member}' failed to satisfy constraint: {constraint}"));
    }

    /// A required string member with its length bounds; returns "" when absent (the
    /// violation is then reported by [`Violations::finish`]).
    pub(crate) fn required<'a>(&mut self, member: &str, value: Option<&'a str>, min: usize, max: usize) -> &'a str {
        match value {
            None => {
                self.push("null", member, "Member must not be null");
                ""
            }
            Some(value) => {
                self.length(member, Some(value), min, max);
                value
            }
        }
    }

    pub(crate) fn not_null<T>(&mut self, member: &str, value: Option<&T>) {
        if value.is_none() {
            self.push("null", member, "Member must not be null");
        }
    }

    pub(crate) fn length(&mut self, member: &str, value: Option<&str>, min: usize, max: usize) {
        let Some(value) = value else { return };
        let len = value.chars().count();
        if len < min {
            let constraint = format!("Member must have length greater than or equal to {min}");
            self.push(&quoted(value), member, &constraint);
        } else if len > max {
            let constraint = format!("Member must have length less than or equal to {max}");
            self.push(&quoted(value), member, &constraint);
        }
    }

    pub(crate) fn range(&mut self, member: &str, value: Option<i64>, min: i64, max: i64) {
        let Some(value) = value else { return };
        if value < min {
            let constraint = format!("Member must have value greater than or equal to {min}");
            self.push(&format!("'{value}'"), member, &constraint);
        } else if value > max {
            let constraint = format!("Member must have value less than or equal to {max}");
            self.push(&format!("'{value}'"), member, &constraint);
        }
    }

    pub(crate) fn one_of(&mut self, member: &str, value: Option<&str>, allowed: &[&str]) {
        let Some(value) = value else { return };
        if !allowed.contains(&value) {
            let constraint = format!("Member must satisfy enum value set: [{}]", allowed.join(", "));
            self.push(&quoted(value), member, &constraint);
        }
    }

    pub(crate) fn pattern(&mut self, member: &str, value: Option<&str>, ok: bool, pattern: &str) {
        let Some(value) = value else { return };
        if !ok {
            let constraint = format!("Member must satisfy regular expression pattern: {pattern}");
            self.push(&quoted(value), member, &constraint);
        }
    }

    pub(crate) fn finish(self) -> Result<(), KmsError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(KmsError::validation(format!("1 validation error detected: {}", self.0.join("; ")))),
            n => Err(KmsError::validation(format!("{n} validation errors detected: {}", self.0.join("; ")))),
        }
    }
}

/// Quotes a member value for a violation message, eliding the middle of long values
/// (policies) so that the message stays readable.
fn quoted(value: &str) -> String {
    const MAX: usize = 128;
    if value.chars().count() <= MAX {
        return format!("'{value}'");
    }
    let head: String = value.chars().take(MAX).collect();
    format!("'{head}...'")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers
    }

    #[test]
    fn credential_scope_gives_access_key_and_region() {
        let got = credential(&headers(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-3/kms/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=abc123",
        ))
        .unwrap();
        assert_eq!(got.access_key_id, "AKIDEXAMPLE");
        assert_eq!(got.region, "eu-west-3");
    }

    #[test]
    fn missing_or_malformed_authorization_is_rejected() {
        let missing = credential(&HeaderMap::new()).unwrap_err();
        assert_eq!(missing.code, ErrorCode::MissingAuthenticationToken);

        let basic = credential(&headers("Basic dXNlcjpwYXNz")).unwrap_err();
        assert_eq!(basic.code, ErrorCode::IncompleteSignature);

        let no_signature =
            credential(&headers("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kms/aws4_request")).unwrap_err();
        assert_eq!(no_signature.code, ErrorCode::IncompleteSignature);
        assert!(no_signature.message.contains("'Signature'"));

        let short_scope =
            credential(&headers("AWS4-HMAC-SHA256 Credential=AKID/us-east-1, SignedHeaders=host, Signature=x"))
                .unwrap_err();
        assert_eq!(short_scope.code, ErrorCode::IncompleteSignature);

        let other_service = credential(&headers(
            "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=x",
        ))
        .unwrap_err();
        assert_eq!(other_service.code, ErrorCode::InvalidSignature);
    }

    #[test]
    fn violations_read_like_aws() {
        let mut v = Violations::default();
        v.range("pendingWindowInDays", Some(40), 7, 30);
        assert_eq!(
            v.finish().unwrap_err().message,
            "1 validation error detected: Value '40' at 'pendingWindowInDays' failed to satisfy \
             constraint: Member must have value less than or equal to 30"
        );

        let mut v = Violations::default();
        v.required("keyId", None, 1, 2048);
        v.range("limit", Some(0), 1, 1000);
        let message = v.finish().unwrap_err().message;
        assert!(
            message.starts_with(
                "2 validation errors detected: Value null at 'keyId' failed to satisfy \
                 constraint: Member must not be null; Value '0' at 'limit'"
            ),
            "{message}"
        );
    }

    #[test]
    fn body_must_be_a_json_object() {
        assert!(body_object(b"").unwrap().is_object());
        assert_eq!(body_object(b"not json").unwrap_err().code, ErrorCode::Serialization);
        assert_eq!(body_object(b"[1]").unwrap_err().code, ErrorCode::Serialization);
    }
}
