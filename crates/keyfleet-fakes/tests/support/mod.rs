//! Drives the fake's router in-process, the way an AWS SDK would talk to it.
#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use keyfleet_fakes::{BUILTIN_ACCESS_KEY_ID, FakeKms, FakeKmsConfig};
use serde_json::{Value, json};
use tower::ServiceExt as _;

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-east-1";

/// A SigV4 `Authorization` header as the SDKs send it (the fake does not check the signature).
pub fn authorization(access_key_id: &str, region: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/20240101/{region}/kms/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0123456789abcdef"
    )
}

pub fn key_arn(region: &str, account: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/{key_id}")
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    /// `Value::Null` when the body is empty.
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The AWS error code, checking that the three places AWS puts it agree.
    pub fn error_code(&self) -> Option<String> {
        let code = self.body.get("__type")?.as_str().unwrap().to_owned();
        assert_eq!(self.header("x-amzn-errortype"), Some(code.as_str()));
        Some(code)
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap()
    }
}

/// A fake and its router, with the built-in credentials in us-east-1 by default.
#[derive(Clone)]
pub struct Kms {
    pub fake: FakeKms,
    router: Router,
    access_key_id: String,
    region: String,
}

impl Kms {
    pub fn new() -> Self {
        Self::with_config(FakeKmsConfig::default())
    }

    pub fn with_config(config: FakeKmsConfig) -> Self {
        let fake = FakeKms::new(config);
        let router = fake.router();
        Self { fake, router, access_key_id: BUILTIN_ACCESS_KEY_ID.to_owned(), region: REGION.to_owned() }
    }

    /// The same fake, called with other credentials or in another region.
    pub fn as_caller(&self, access_key_id: &str, region: &str) -> Self {
        Self { access_key_id: access_key_id.to_owned(), region: region.to_owned(), ..self.clone() }
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let raw = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap().to_vec();
        let body = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap() };
        Answer { status, headers, raw, body }
    }

    /// A signed request for `operation`.
    fn request(&self, operation: &str, body: impl Into<Body>) -> Request<Body> {
        Request::builder()
            .method(Method::POST)
            .uri("/")
            .header("x-amz-target", format!("TrentService.{operation}"))
            .header("content-type", "application/x-amz-json-1.1")
            .header("authorization", authorization(&self.access_key_id, &self.region))
            .body(body.into())
            .unwrap()
    }

    pub async fn call_raw(&self, operation: &str, body: impl Into<Body>) -> Answer {
        self.send(self.request(operation, body)).await
    }

    pub async fn call(&self, operation: &str, input: Value) -> Answer {
        self.call_raw(operation, input.to_string()).await
    }

    /// Calls and asserts success; returns the body (`Null` for an empty one).
    pub async fn ok(&self, operation: &str, input: Value) -> Value {
        let answer = self.call(operation, input).await;
        assert_eq!(answer.status, StatusCode::OK, "{operation} failed: {}", String::from_utf8_lossy(&answer.raw));
        answer.body
    }

    /// Calls and asserts an AWS error (HTTP 400); returns (code, message).
    pub async fn err(&self, operation: &str, input: Value) -> (String, String) {
        let answer = self.call(operation, input).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{operation} should fail: {}",
            String::from_utf8_lossy(&answer.raw)
        );
        (answer.error_code().unwrap(), answer.message().to_owned())
    }

    /// Creates a default key; returns its KeyId.
    pub async fn create_key(&self) -> String {
        let out = self.ok("CreateKey", json!({})).await;
        out["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    }

    pub async fn describe(&self, key: &str) -> Value {
        self.ok("DescribeKey", json!({ "KeyId": key })).await["KeyMetadata"].clone()
    }

    pub async fn get_json(&self, uri: &str) -> (StatusCode, Value) {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let answer = self.send(request).await;
        (answer.status, answer.body)
    }

    pub async fn post_json(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let request =
            Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
        let answer = self.send(request).await;
        (answer.status, answer.body)
    }

    pub async fn put_json(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        let request =
            Request::put(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
        let answer = self.send(request).await;
        (answer.status, answer.body)
    }

    /// Like [`Kms::call`], for a fake that may drop the connection: `None` when it did (in
    /// process, the answer's body fails instead of arriving).
    pub async fn call_or_drop(&self, operation: &str, input: Value) -> Option<Answer> {
        let response = self.router.clone().oneshot(self.request(operation, input.to_string())).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let raw = axum::body::to_bytes(response.into_body(), usize::MAX).await.ok()?.to_vec();
        let body = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap() };
        Some(Answer { status, headers, raw, body })
    }
}
