//! What the web console needs beyond the API's use cases: its cookies sealed under the master key, the caller
//! of a browser session (checked on every request, so that revoking the session's tokens ends it), and one
//! list of every cloud's bulk jobs. The console's permissions are the API's: its pages call the same methods.

use std::collections::HashMap;

use keyfleet_api_types::auth::{TokenRequest, TokenResponse};
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::jobs::overall_status;
use crate::{Caller, Result, ServiceError, Services};

/// Seconds before its expiry at which a session's access token is renewed with its refresh token.
const RENEW_BEFORE_SECS: i64 = 30;

/// The API tokens a browser session holds (in its sealed cookie): the access token every request is
/// authenticated with, and the refresh token that renews it and that signing out revokes.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionTokens {
    pub jwt: String,
    /// Unix seconds at which `jwt` expires.
    pub jwt_expires_at: i64,
    pub refresh_token: String,
    pub refresh_token_id: String,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens").field("refresh_token_id", &self.refresh_token_id).finish_non_exhaustive()
    }
}

impl SessionTokens {
    pub fn from_response(t: TokenResponse) -> Self {
        SessionTokens {
            jwt_expires_at: chrono::Utc::now().timestamp() + t.duration,
            jwt: t.jwt,
            refresh_token: t.refresh_token,
            refresh_token_id: t.refresh_token_id,
        }
    }
}

impl Services {
    /// Encrypts a console cookie's content (AES-256-GCM under the master key, so every node of a cluster can
    /// read it); `purpose` is bound as associated data, so one kind of cookie never passes for another.
    pub fn seal_cookie(&self, purpose: &str, plain: &[u8]) -> Result<Vec<u8>> {
        self.master
            .encrypt(plain, format!("keyfleet/console/{purpose}").as_bytes())
            .map_err(|e| ServiceError::Internal(format!("sealing a console cookie: {e}")))
    }

    /// The content of a cookie [`Services::seal_cookie`] sealed for `purpose`; `None` for anything else.
    pub fn open_cookie(&self, purpose: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        self.master.decrypt(sealed, format!("keyfleet/console/{purpose}").as_bytes()).ok()
    }

    /// The caller of a browser session. The access token is checked exactly as the API checks a bearer token
    /// (so a password change, a disabled or deleted user end the session), and the refresh token must still be
    /// valid (so revoking it — signing out, `DELETE /v1/auth/tokens/{id}` — ends the session at once, not when
    /// the access token expires). An access token about to expire is renewed with the refresh token; the new
    /// tokens are returned for the cookie.
    pub async fn session_caller(&self, tokens: &SessionTokens) -> Result<(Caller, Option<SessionTokens>)> {
        let ended = || ServiceError::Unauthorized("The session has ended; sign in again.".into());
        if tokens.jwt_expires_at - RENEW_BEFORE_SECS <= chrono::Utc::now().timestamp() {
            let req = TokenRequest {
                grant_type: Some("refresh_token".into()),
                refresh_token: Some(tokens.refresh_token.clone()),
                ..Default::default()
            };
            let renewed = SessionTokens::from_response(self.issue_token(req, None).await?);
            let caller = self.authenticate(&renewed.jwt).await?;
            return Ok((caller, Some(renewed)));
        }
        let caller = self.authenticate(&tokens.jwt).await?;
        let id: RefreshTokenId = tokens.refresh_token_id.parse().map_err(|_| ended())?;
        let valid = self
            .store
            .refresh_token_by_id(id)
            .await?
            .is_some_and(|t| !t.revoked && t.expires_at > now() && t.user_id == caller.user_id);
        if !valid {
            return Err(ended());
        }
        Ok((caller, None))
    }

    /// The bulk jobs of every cloud (or of `cloud`), newest first, optionally of one `overall_status`: what the
    /// per-cloud lists (`GET .../bulkjob(s)`) show, together. A CCKM User sees the jobs they created.
    pub async fn list_jobs_of_all_clouds(
        &self,
        caller: &Caller,
        cloud: Option<Cloud>,
        status: Option<&str>,
        page: &Page,
    ) -> Result<(Vec<JobRecord>, u64)> {
        caller.require_cckm_user()?;
        let mut filter = JobFilter {
            cloud: cloud.map(|c| c.name().to_string()),
            status: overall_status(status)?,
            ..Default::default()
        };
        if !caller.is_cckm_admin() {
            filter.created_by = Some(caller.user_id);
        }
        Ok(self.store.list_jobs(&filter, page).await?)
    }

    /// The job, if `caller` may read it (the rule of `GET .../bulkjob(s)/{id}`), without its items.
    pub async fn bulkjob_record(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobRecord> {
        self.readable_job(caller, cloud, id).await
    }

    /// The user names of `ids` (a job list's creators); a deleted user is absent.
    pub async fn usernames(&self, ids: impl IntoIterator<Item = UserId>) -> Result<HashMap<UserId, String>> {
        let mut out = HashMap::new();
        for id in ids {
            if out.contains_key(&id) {
                continue;
            }
            if let Some(u) = self.store.user_by_id(id).await? {
                out.insert(id, u.username);
            }
        }
        Ok(out)
    }
}
