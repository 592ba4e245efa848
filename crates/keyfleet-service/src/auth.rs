//! The token endpoint: password and refresh-token grants, JWTs with CipherTrust's claims, and their check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keyfleet_api_types::auth::{ChangePasswordRequest, Claims, CustClaims, TokenRequest, TokenResponse};
use keyfleet_core::crypto::{random_token, sha256_hex};
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::audit::{self, OUTCOME_FAILURE};
use uuid::Uuid;

use crate::users::check_password_policy;
use crate::{Caller, Result, ServiceError, Services};

pub const AUDIENCE: &str = "cipher-trust";
pub const ISSUER: &str = "kylo";
const ROOT_ZONE: &str = "00000000-0000-0000-0000-000000000000";
const WRONG: &str = "Wrong username or password.";
/// Seconds a token's `iat` or `nbf` may lie ahead of this node's clock.
pub const CLOCK_LEEWAY_SECS: i64 = 60;

/// The claims a token is checked with: CipherTrust's, and `nbf` when a token carries one (ours carry none).
#[derive(serde::Deserialize)]
struct Checked {
    #[serde(flatten)]
    claims: Claims,
    nbf: Option<i64>,
}

impl Services {
    /// `POST /v1/auth/tokens`; `client` is the address the request came from (for login throttling).
    pub async fn issue_token(&self, req: TokenRequest, client: Option<IpAddr>) -> Result<TokenResponse> {
        match req.grant_type.as_deref().unwrap_or("password") {
            "password" => self.password_grant(req, client).await,
            "refresh_token" => self.refresh_grant(req).await,
            other => Err(ServiceError::invalid(
                "grant_type",
                format!("unsupported grant type {other:?}; use password or refresh_token"),
            )),
        }
    }

    async fn password_grant(&self, req: TokenRequest, client: Option<IpAddr>) -> Result<TokenResponse> {
        let username =
            req.username.filter(|u| !u.is_empty()).ok_or_else(|| ServiceError::invalid("username", "is required"))?;
        let password = req.password.ok_or_else(|| ServiceError::invalid("password", "is required"))?;
        if let Some(c) = req.connection.as_deref().filter(|c| *c != "local_account") {
            return Err(ServiceError::invalid("connection", format!("unknown user store {c:?}; only local_account")));
        }
        // While throttled even the right password is refused, so guessing gains nothing from waiting out
        // fewer attempts; the check comes before any hashing, so refused attempts cost nothing.
        self.login_throttle.check(&username, client)?;
        let user = self.store.user_by_name(&username).await?;
        // Verify against a dummy hash for unknown users too, so timing does not reveal which names exist.
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = self.verify_password(password, hash).await?;
        audit::set_user(&username);
        let user = match (user, ok) {
            (Some(u), true) if !u.disabled => u,
            (user, ok) => {
                self.login_throttle.failure(&username, client);
                let why = if ok { "user disabled" } else { "wrong username or password" };
                tracing::info!(user.name = %username, client.address = ?client, reason = why, "login refused");
                self.record_refusal("auth.login", &username, user.as_ref(), why).await?;
                return Err(ServiceError::Unauthorized(WRONG.into()));
            }
        };
        self.login_throttle.success(&username);
        self.store.record_login(user.id, now()).await?;
        let ttl = self.settings.refresh_token_ttl;
        let refresh = random_token(64)?;
        let record = RefreshTokenRecord {
            id: RefreshTokenId::new(),
            user_id: user.id,
            client_id: Uuid::new_v4().to_string(),
            token_hash: sha256_hex(refresh.as_bytes()),
            created_at: now(),
            expires_at: now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
            revoked: false,
        };
        self.store.insert_refresh_token(&record).await?;
        self.token_response(&user, &record, refresh).await
    }

    async fn refresh_grant(&self, req: TokenRequest) -> Result<TokenResponse> {
        let presented = req
            .refresh_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ServiceError::invalid("refresh_token", "is required for grant_type refresh_token"))?;
        let invalid = || ServiceError::Unauthorized("Invalid or expired refresh token.".into());
        let record = self.store.refresh_token_by_hash(&sha256_hex(presented.as_bytes())).await?.ok_or_else(invalid)?;
        if record.revoked || record.expires_at <= now() {
            return Err(invalid());
        }
        let user = self.store.user_by_id(record.user_id).await?.filter(|u| !u.disabled).ok_or_else(invalid)?;
        audit::set_user(&user.username);
        if req.renew_refresh_token.unwrap_or(false) {
            if !self.store.revoke_refresh_token(record.id).await? {
                // Renewed meanwhile by another request: only one renewal of a token wins.
                return Err(invalid());
            }
            let fresh = random_token(64)?;
            let renewed = RefreshTokenRecord {
                id: RefreshTokenId::new(),
                token_hash: sha256_hex(fresh.as_bytes()),
                created_at: now(),
                ..record
            };
            self.store.insert_refresh_token(&renewed).await?;
            return self.token_response(&user, &renewed, fresh).await;
        }
        self.token_response(&user, &record, presented).await
    }

    /// `PATCH /v1/auth/changepw`: a user changes their own password, proving it with the current one. Every
    /// access and refresh token of the user stops working at once, on every node (the check reads the
    /// user's token generation from the database on each request).
    pub async fn change_password(&self, req: ChangePasswordRequest, client: Option<IpAddr>) -> Result<()> {
        let username =
            req.username.filter(|u| !u.is_empty()).ok_or_else(|| ServiceError::invalid("username", "is required"))?;
        let password = req.password.ok_or_else(|| ServiceError::invalid("password", "is required"))?;
        let new_password = req.new_password.ok_or_else(|| ServiceError::invalid("new_password", "is required"))?;
        check_password_policy(&username, &new_password)
            .map_err(|e| ServiceError::invalid("new_password", e.to_string().trim_start_matches("password: ")))?;
        if new_password == password {
            return Err(ServiceError::invalid("new_password", "must differ from the current password"));
        }
        // The current password is a guess like any login's: same throttle, same answers.
        self.login_throttle.check(&username, client)?;
        let user = self.store.user_by_name(&username).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
        audit::set_user(&username);
        let user = match (user, self.verify_password(password, hash).await?) {
            (Some(u), true) if !u.disabled => u,
            (user, ok) => {
                self.login_throttle.failure(&username, client);
                let why = if ok { "user disabled" } else { "wrong username or password" };
                tracing::info!(user.name = %username, client.address = ?client, reason = why, "password change refused");
                self.record_refusal("user.password", &username, user.as_ref(), why).await?;
                return Err(ServiceError::Unauthorized(WRONG.into()));
            }
        };
        self.login_throttle.success(&username);
        let new_hash = self.hash_password(new_password).await?;
        if !self.store.change_password(user.id, &new_hash, now()).await? {
            return Err(ServiceError::Unauthorized(WRONG.into()));
        }
        tracing::info!(user.name = %username, "password changed; every token of the user revoked");
        Ok(())
    }

    /// `GET /v1/auth/tokens`: the caller's refresh tokens that still work.
    pub async fn list_refresh_tokens(&self, caller: &Caller, page: &Page) -> Result<(Vec<RefreshTokenRecord>, u64)> {
        Ok(self.store.list_refresh_tokens(caller.user_id, now(), page).await?)
    }

    /// `DELETE /v1/auth/tokens/{id}`: revokes one of the caller's refresh tokens (an admin may revoke anyone's).
    /// Someone else's token is a 404, as if it did not exist.
    pub async fn revoke_refresh_token(&self, caller: &Caller, id: &str) -> Result<()> {
        let not_found = || ServiceError::not_found("refresh token", id);
        let tid: RefreshTokenId = id.parse().map_err(|_| not_found())?;
        let token = self.store.refresh_token_by_id(tid).await?.ok_or_else(not_found)?;
        if token.user_id != caller.user_id && !caller.is_admin() {
            return Err(not_found());
        }
        if token.revoked || !self.store.revoke_refresh_token(tid).await? {
            return Err(not_found());
        }
        Ok(())
    }

    /// The audit record of a refused login or password change (it changes nothing else). The resource is the
    /// user, or the name tried when no such user exists.
    async fn record_refusal(&self, action: &str, username: &str, user: Option<&UserRecord>, why: &str) -> Result<()> {
        let resource = user.map(|u| format!("user:{}", u.id)).unwrap_or_else(|| format!("username:{username}"));
        let record =
            audit::event(action, resource).outcome(OUTCOME_FAILURE).details(serde_json::json!({"reason": why}));
        Ok(self.store.record_audit(&record).await?)
    }

    async fn token_response(
        &self,
        user: &UserRecord,
        refresh: &RefreshTokenRecord,
        refresh_plain: String,
    ) -> Result<TokenResponse> {
        let groups = self.store.user_groups(user.id).await?;
        let iat = Utc::now().timestamp();
        let ttl = self.settings.token_ttl.as_secs() as i64;
        let claims = Claims {
            aud: AUDIENCE.into(),
            sub: user.id.wire(),
            iss: ISSUER.into(),
            acc: ISSUER.into(),
            preferred_username: user.username.clone(),
            cust: CustClaims {
                domain_id: ROOT_ZONE.into(),
                groups,
                sid: refresh.id.to_string(),
                zone_id: ROOT_ZONE.into(),
            },
            jwtid: Uuid::new_v4().to_string(),
            iat,
            exp: iat + ttl,
            generation: user.token_generation,
        };
        let jwt =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.jwt_key))
                .map_err(|e| ServiceError::Internal(format!("signing token: {e}")))?;
        Ok(TokenResponse {
            jwt,
            duration: ttl,
            token_type: "Bearer".into(),
            client_id: refresh.client_id.clone(),
            refresh_token: refresh_plain,
            refresh_token_id: refresh.id.to_string(),
            refresh_token_expires_in: Some((refresh.expires_at - now()).num_seconds().max(0)),
        })
    }

    /// Checks a bearer token and loads its user. Expired, tampered, unsigned (`alg: none`) or foreign tokens,
    /// and tokens of deleted users, are all 401.
    ///
    /// A token checked once is remembered with its caller until it expires ([`TokenCache`]), as long as the
    /// store's auth epoch stays the one it was checked under: the epoch is read first, so a change committed
    /// after it (on any node) makes the next request check the token and read the user again.
    pub async fn authenticate(&self, bearer: &str) -> Result<Caller> {
        let epoch = self.store.auth_epoch().await?;
        let now = Utc::now().timestamp();
        if let Some(caller) = self.tokens.get(bearer, epoch, now) {
            audit::set_user(&caller.username);
            return Ok(caller);
        }
        let (caller, exp) = self.check_token(bearer).await?;
        self.tokens.put(bearer, &caller, epoch, exp, now);
        Ok(caller)
    }

    /// [`Services::authenticate`] without the cache: the caller and the token's `exp`.
    async fn check_token(&self, bearer: &str) -> Result<(Caller, i64)> {
        let unauthorized = |why: &str| ServiceError::Unauthorized(format!("Token is invalid: {why}."));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Checked>(bearer, &DecodingKey::from_secret(&self.jwt_key), &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => unauthorized("expired"),
                _ => unauthorized("malformed or not signed by this server"),
            })?;
        // A token from the future was not issued by this server's clock: refused, beyond a small leeway for
        // clocks of a cluster's nodes that differ a little. (`exp` is checked without leeway.)
        let latest = Utc::now().timestamp() + CLOCK_LEEWAY_SECS;
        if data.claims.claims.iat > latest || data.claims.nbf.is_some_and(|nbf| nbf > latest) {
            return Err(unauthorized("not valid yet (iat or nbf in the future)"));
        }
        let id = UserId::parse_wire(&data.claims.claims.sub).ok_or_else(|| unauthorized("bad subject"))?;
        let user = self.store.user_by_id(id).await?.ok_or_else(|| unauthorized("unknown user"))?;
        if data.claims.claims.generation != user.token_generation {
            return Err(unauthorized("revoked by a password change or by disabling the user"));
        }
        if user.disabled {
            return Err(unauthorized("the user is disabled"));
        }
        audit::set_user(&user.username);
        let groups = self.store.user_groups(user.id).await?;
        Ok((Caller { user_id: user.id, username: user.username, groups }, data.claims.claims.exp))
    }
}

/// Tokens [`Services::authenticate`] has checked, each with its caller, the auth epoch it was checked under
/// and its expiry. Keyed by the whole token text, so a hit is the very token that was verified: it needs no
/// second signature check. Bounded: past [`TokenCache::MAX`] tokens, the stale ones go, then all.
#[derive(Default)]
pub(crate) struct TokenCache {
    entries: Mutex<HashMap<String, CachedToken>>,
}

struct CachedToken {
    caller: Caller,
    epoch: u64,
    exp: i64,
}

impl TokenCache {
    const MAX: usize = 10_000;

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedToken>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The caller of `token` if it was checked under `epoch` and has not expired by `now` (Unix seconds).
    fn get(&self, token: &str, epoch: u64, now: i64) -> Option<Caller> {
        let entries = self.entries();
        let hit = entries.get(token)?;
        (hit.epoch == epoch && now < hit.exp).then(|| hit.caller.clone())
    }

    fn put(&self, token: &str, caller: &Caller, epoch: u64, exp: i64, now: i64) {
        let mut entries = self.entries();
        if entries.len() >= Self::MAX {
            entries.retain(|_, e| e.epoch == epoch && now < e.exp);
            if entries.len() >= Self::MAX {
                entries.clear();
            }
        }
        entries.insert(token.to_owned(), CachedToken { caller: caller.clone(), epoch, exp });
    }
}

/// An argon2 hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ";
