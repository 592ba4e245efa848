//! Browser sessions: sign in, sign out, and the layer that authenticates every signed-in page and checks the
//! CSRF token of every form.
//!
//! - The session cookie `__Host-kf_session` (HttpOnly, Secure, SameSite=Strict, Path=/) holds the user's API
//!   access and refresh tokens and the session's CSRF token, sealed with AES-256-GCM under the master key: the
//!   browser can neither read nor change it, and every node of a cluster can open it.
//! - Every request is authenticated through `Services::session_caller`: the access token exactly as the API
//!   checks it, and the refresh token must still be valid. Signing out revokes the refresh token; revoking it
//!   through the API, changing the password, disabling or deleting the user ends the session at once.
//! - CSRF: a synchronizer token per session, in a hidden `csrf` field of every form; the layer refuses a POST
//!   without it or with another value (403) before any handler runs. The sign-in form, before any session,
//!   has its own token in the short-lived sealed cookie `__Host-kf_login`. SameSite=Strict is a second wall.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyfleet_api_types::auth::TokenRequest;
use keyfleet_service::console::SessionTokens;
use keyfleet_service::{Caller, ServiceError};
use serde::{Deserialize, Serialize};

use super::{Answer, ConsoleError, HOME, form, layout, see_other};
use crate::AppState;
use crate::extract::ClientAddr;

type S = State<Arc<AppState>>;

const SESSION_COOKIE: &str = "__Host-kf_session";
const LOGIN_COOKIE: &str = "__Host-kf_login";
/// How long the sign-in form may stay open before its token expires (seconds).
const LOGIN_FORM_SECS: u64 = 3600;
/// The largest form body the console reads.
const FORM_LIMIT: usize = 64 * 1024;

/// The signed-in user of a request, in its extensions (set by [`authenticated`]).
#[derive(Clone)]
pub(crate) struct Session {
    pub caller: Caller,
    /// The token every form of the session carries.
    pub csrf: String,
    tokens: SessionTokens,
}

/// What the session cookie holds.
#[derive(Serialize, Deserialize)]
struct SessionCookie {
    tokens: SessionTokens,
    csrf: String,
}

/// What the sign-in form's cookie holds.
#[derive(Serialize, Deserialize)]
struct LoginCookie {
    csrf: String,
}

/// `name=value` of a cookie with the console's flags; `max_age` 0 deletes it.
fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let age = max_age.map(|s| format!("; Max-Age={s}")).unwrap_or_default();
    let text = format!("{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict{age}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn seal<T: Serialize>(state: &AppState, purpose: &str, value: &T) -> Result<String, ConsoleError> {
    let plain = serde_json::to_vec(value).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(state.services.seal_cookie(purpose, &plain)?))
}

/// The content of cookie `name`, if the request has it and it opens under the master key.
fn unseal<T: for<'de> Deserialize<'de>>(state: &AppState, headers: &HeaderMap, name: &str) -> Option<T> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)?;
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    serde_json::from_slice(&state.services.open_cookie(name, &sealed)?).ok()
}

fn random() -> Result<String, ConsoleError> {
    keyfleet_core::crypto::random_token(43).map_err(|e| ConsoleError(ServiceError::Internal(e.to_string())))
}

/// Compares two tokens in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `csrf` field of a form body.
fn csrf_field(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned())
}

/// The layer in front of every signed-in page: authenticates the session (renewing its access token when
/// due), refuses a POST whose CSRF token is missing or wrong, and hands the handler the [`Session`]. Without
/// a valid session, a GET goes to the sign-in page (and back afterwards), anything else is a 401.
pub(crate) async fn authenticated(State(state): S, req: Request, next: Next) -> Response {
    let Some(cookie) = unseal::<SessionCookie>(&state, req.headers(), SESSION_COOKIE) else {
        return signed_out(&req);
    };
    let (caller, renewed) = match state.services.session_caller(&cookie.tokens).await {
        Ok(found) => found,
        Err(ServiceError::Unauthorized(_)) => {
            let mut resp = signed_out(&req);
            resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)));
            return resp;
        }
        Err(e) => return ConsoleError(e).into_response(),
    };
    let session = Session { caller, csrf: cookie.csrf, tokens: renewed.clone().unwrap_or(cookie.tokens) };
    let mut req = if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
            return ConsoleError(ServiceError::invalid("form", "is too large")).into_response();
        };
        if !csrf_field(&bytes).is_some_and(|t| same(&t, &session.csrf)) {
            tracing::info!(user.name = %session.caller.username, "console form refused: CSRF token missing or wrong");
            let message = "The form's security token is missing or wrong (CSRF). Reload the page and try again.";
            return (StatusCode::FORBIDDEN, layout::error_page(StatusCode::FORBIDDEN, message)).into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let keep = renewed.map(|tokens| SessionCookie { tokens, csrf: session.csrf.clone() });
    req.extensions_mut().insert(session);
    let mut resp = next.run(req).await;
    // A renewed access token goes back into the cookie (unless the answer ends the session).
    if let Some(keep) = keep
        && !resp.headers().contains_key(header::SET_COOKIE)
    {
        match seal(&state, SESSION_COOKIE, &keep) {
            Ok(v) => {
                resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &v, None));
            }
            Err(e) => return e.into_response(),
        }
    }
    resp
}

/// No (valid) session: a page load goes to the sign-in page and comes back after it; anything else is a 401.
fn signed_out(req: &Request) -> Response {
    if req.method() == Method::GET && !req.uri().path().ends_with("/events") {
        let here = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or(HOME);
        let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
        return see_other(&format!("/console/login?next={next}"));
    }
    let message = "You are not signed in, or the session has ended.";
    (StatusCode::UNAUTHORIZED, layout::error_page(StatusCode::UNAUTHORIZED, message)).into_response()
}

/// A local page to return to after signing in; anything else (another site, `//host`) is the home page.
fn local(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/console/") && !n.starts_with("//") && !n.contains('\\')).unwrap_or(HOME)
}

#[derive(Deserialize, Default)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

/// `GET /console/login`: the sign-in form, with a fresh token in its own cookie.
pub(crate) async fn login_form(State(state): S, req: Request) -> Answer {
    let q: LoginQuery = super::query(req.uri().query())?;
    let notice = q.signed_out.is_some().then_some("You have signed out.");
    login_answer(&state, StatusCode::OK, local(q.next.as_deref()), "", notice, None)
}

fn login_answer(
    state: &AppState,
    status: StatusCode,
    next: &str,
    username: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Answer {
    let csrf = random()?;
    let sealed = seal(state, LOGIN_COOKIE, &LoginCookie { csrf: csrf.clone() })?;
    let page = layout::login_page(&csrf, next, username, notice, error);
    let mut resp = (status, page).into_response();
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, &sealed, Some(LOGIN_FORM_SECS)));
    Ok(resp)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /console/login`: the API's password grant; the tokens go into a new session cookie.
pub(crate) async fn login(State(state): S, client: ClientAddr, headers: HeaderMap, body: Bytes) -> Answer {
    let f: LoginForm = form(&body)?;
    let next = local(f.next.as_deref());
    let expected = unseal::<LoginCookie>(&state, &headers, LOGIN_COOKIE);
    if !expected.is_some_and(|c| same(&c.csrf, &f.csrf)) {
        let message = "The sign-in form expired or was not sent from this site (CSRF). Try again.";
        return login_answer(&state, StatusCode::FORBIDDEN, next, &f.username, None, Some(message));
    }
    let req = TokenRequest {
        grant_type: Some("password".into()),
        username: Some(f.username.clone()),
        password: Some(f.password),
        ..Default::default()
    };
    let tokens = match state.services.issue_token(req, client.0).await {
        Ok(t) => SessionTokens::from_response(t),
        Err(
            e @ (ServiceError::Unauthorized(_) | ServiceError::TooManyRequests { .. } | ServiceError::Invalid { .. }),
        ) => {
            let (status, _, _) = crate::error::classify(&e);
            return login_answer(&state, status, next, &f.username, None, Some(&e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let sealed = seal(&state, SESSION_COOKIE, &SessionCookie { tokens, csrf: random()? })?;
    let mut resp = see_other(next);
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &sealed, None));
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_COOKIE, "", Some(0)));
    Ok(resp)
}

/// `POST /console/logout`: revokes the session's refresh token (so the cookie is worthless even if kept) and
/// deletes the cookie.
pub(crate) async fn logout(State(state): S, axum::Extension(session): axum::Extension<Session>) -> Answer {
    match state.services.revoke_refresh_token(&session.caller, &session.tokens.refresh_token_id).await {
        Ok(()) | Err(ServiceError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut resp = see_other("/console/login?signed_out=1");
    resp.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", Some(0)));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_console_pages_are_returned_to() {
        assert_eq!(local(Some("/console/jobs/aws/x")), "/console/jobs/aws/x");
        for bad in ["https://evil.example/", "//evil.example/console/", "/api/v1/x", "/console\\..", ""] {
            assert_eq!(local(Some(bad)), HOME, "{bad}");
        }
        assert_eq!(local(None), HOME);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }

    #[test]
    fn cookies_carry_every_flag() {
        let c = set_cookie(SESSION_COOKIE, "v", None);
        assert_eq!(c.to_str().unwrap_or_default(), "__Host-kf_session=v; Path=/; Secure; HttpOnly; SameSite=Strict");
    }
}
