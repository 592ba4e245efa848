//! Reading a JWT's expiry without verifying it, to refresh before the server refuses the token.
//!
//! The client cannot verify the signature (it does not hold the key) and does not need to: the server does.
//! The client only wants to know when to use its refresh token, so it reads `exp` from the payload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Refresh when the token has less than this many seconds left.
pub const REFRESH_MARGIN_SECS: i64 = 30;

/// The `exp` claim (seconds since the epoch) of a compact JWT, read without checking the signature.
/// `None` when the token is not a JWT or has no numeric `exp`.
pub fn jwt_expiry(jwt: &str) -> Option<i64> {
    let mut parts = jwt.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    // base64url without padding per RFC 7519; tolerate padding some issuers add anyway.
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))
}

/// Whether a token should be refreshed at `now` (seconds since the epoch): it expires within
/// [`REFRESH_MARGIN_SECS`]. A token whose expiry cannot be read is left alone; a 401 will tell.
pub fn needs_refresh(jwt: &str, now: i64) -> bool {
    jwt_expiry(jwt).is_some_and(|exp| exp - now < REFRESH_MARGIN_SECS)
}

/// Seconds since the epoch, now.
pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
pub(crate) fn fake_jwt(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_exp_from_a_cckm_style_token() {
        let jwt = fake_jwt(&json!({
            "aud": "keyfleet", "sub": "local|00000000-0000-0000-0000-000000000001", "iss": "kylo",
            "acc": "kylo", "preferred_username": "admin",
            "cust": {"domain_id": "00000000-0000-0000-0000-000000000000", "groups": ["admin"],
                     "sid": "s", "zone_id": "00000000-0000-0000-0000-000000000000"},
            "jwtid": "j", "iat": 1_700_000_000, "exp": 1_700_000_300
        }));
        assert_eq!(jwt_expiry(&jwt), Some(1_700_000_300));
    }

    #[test]
    fn tolerates_padding_and_float_exp() {
        let payload = base64::engine::general_purpose::URL_SAFE.encode(br#"{"exp":1700000300.5}"#);
        assert!(payload.ends_with('='), "test input should carry padding");
        assert_eq!(jwt_expiry(&format!("h.{payload}.s")), Some(1_700_000_300));
    }

    #[test]
    fn garbage_has_no_expiry() {
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry("a.b.c.d"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
        assert_eq!(jwt_expiry(&fake_jwt(&json!({"iat": 1}))), None);
        assert_eq!(jwt_expiry(&fake_jwt(&json!({"exp": "soon"}))), None);
    }

    #[test]
    fn refreshes_within_thirty_seconds_of_expiry() {
        let jwt = fake_jwt(&json!({"exp": 1000}));
        assert!(!needs_refresh(&jwt, 900));
        assert!(!needs_refresh(&jwt, 970));
        assert!(needs_refresh(&jwt, 971));
        assert!(needs_refresh(&jwt, 2000));
        assert!(!needs_refresh("opaque", 2000));
    }
}
