//! `POST /v1/auth/tokens`: the token request, the token response and the JWT claims.

use serde::{Deserialize, Serialize};

/// Body of `POST /v1/auth/tokens`. Every field is optional on the wire; the server decides which are needed
/// for the grant and names the missing one.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    #[serde(default, alias = "name", skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_refresh_token: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_lifetime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_revoke_unused_in: Option<i64>,
}

/// 200 answer of the token endpoint.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub jwt: String,
    pub duration: i64,
    pub token_type: String,
    pub client_id: String,
    pub refresh_token: String,
    pub refresh_token_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_expires_in: Option<i64>,
}

/// The `cust` claim.
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct CustClaims {
    pub domain_id: String,
    pub groups: Vec<String>,
    pub sid: String,
    pub zone_id: String,
}

/// The JWT claims CipherTrust Manager issues (note `jwtid`, not `jti`).
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub aud: String,
    pub sub: String,
    pub iss: String,
    pub acc: String,
    pub preferred_username: String,
    pub cust: CustClaims,
    pub jwtid: String,
    pub iat: i64,
    pub exp: i64,
    /// keyfleet's: the user's token generation when issued (absent while it is 0); a password change
    /// raises it and so invalidates every token issued before.
    #[serde(default, rename = "kf_gen", skip_serializing_if = "is_zero")]
    pub generation: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Body of `PATCH /v1/auth/changepw`: the user's own name and current password, and the new one.
#[derive(Debug, Clone, utoipa::ToSchema, Default, Serialize, Deserialize, PartialEq)]
pub struct ChangePasswordRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_domain: Option<String>,
}

/// One of the caller's refresh tokens in `GET /v1/auth/tokens` (never the token itself).
#[derive(Debug, Clone, utoipa::ToSchema, Serialize, Deserialize, PartialEq)]
pub struct RefreshTokenView {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    #[serde(rename = "createdAt")]
    pub created_at: crate::Timestamp,
    pub expires_at: crate::Timestamp,
}
