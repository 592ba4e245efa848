//! Throttling, off by default: injected 429s (every n-th request, or at random) and an optional
//! per-vault limit per 10-second window, as Key Vault counts its service limits.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::protocol::{ErrorCode, VaultError};

/// Key Vault's service limits are counted per vault over 10 seconds.
const WINDOW_SECS: i64 = 10;

/// When the data plane answers 429 `Throttled`. Only authenticated requests count and are
/// throttled (the token endpoint and bearer challenges never are).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Throttle every n-th request (counted over all vaults since this config was set).
    pub every_nth: Option<u32>,
    /// Throttle each request with this probability, 0.0-1.0.
    pub probability: f64,
    /// `Retry-After` seconds on injected 429s; `None` sends no `Retry-After`, as Key Vault
    /// sometimes does (clients must then back off on their own).
    pub retry_after_secs: Option<u64>,
    /// At most this many requests per vault per 10-second window; the rest get 429 with
    /// `Retry-After` = seconds until the window ends.
    pub vault_limit_per_10s: Option<u32>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { every_nth: None, probability: 0.0, retry_after_secs: None, vault_limit_per_10s: None }
    }
}

impl ThrottleConfig {
    /// Throttles every n-th request with `Retry-After: retry_after_secs`.
    #[must_use]
    pub fn every_nth(n: u32, retry_after_secs: Option<u64>) -> Self {
        Self { every_nth: Some(n), retry_after_secs, ..Self::default() }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    pub config: ThrottleConfig,
    counted: u64,
    /// Per vault: (start of the current window, requests admitted in it).
    windows: HashMap<String, (i64, u32)>,
}

impl Throttle {
    pub(crate) fn set(&mut self, config: ThrottleConfig) {
        *self = Self { config, ..Self::default() };
    }

    /// Admits one authenticated request to `vault` at `now` (Unix seconds), or throttles it.
    pub(crate) fn admit(&mut self, vault: &str, now: i64) -> Result<(), VaultError> {
        self.counted += 1;
        let injected = self.config.every_nth.is_some_and(|n| n > 0 && self.counted.is_multiple_of(u64::from(n)))
            || (self.config.probability > 0.0 && rand::random::<f64>() < self.config.probability);
        if injected {
            return Err(throttled(self.config.retry_after_secs));
        }
        if let Some(limit) = self.config.vault_limit_per_10s {
            let window = self.windows.entry(vault.to_owned()).or_insert((now, 0));
            if now - window.0 >= WINDOW_SECS {
                *window = (now, 0);
            }
            if window.1 >= limit {
                let wait = u64::try_from(window.0 + WINDOW_SECS - now).unwrap_or(1).max(1);
                return Err(throttled(Some(wait)));
            }
            window.1 += 1;
        }
        Ok(())
    }
}

fn throttled(retry_after: Option<u64>) -> VaultError {
    VaultError {
        retry_after,
        ..VaultError::new(
            ErrorCode::Throttled,
            "Request was not processed because too many requests were received. Reason: \
             VaultRequestTypeLimitReached",
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default() {
        let mut throttle = Throttle::default();
        assert!((0..1000).all(|_| throttle.admit("v", 0).is_ok()));
    }

    #[test]
    fn every_nth_request() {
        let mut throttle = Throttle::default();
        throttle.set(ThrottleConfig::every_nth(3, Some(2)));
        let outcomes: Vec<bool> = (0..6).map(|_| throttle.admit("v", 0).is_ok()).collect();
        assert_eq!(outcomes, [true, true, false, true, true, false]);
        throttle.set(ThrottleConfig::every_nth(3, None));
        throttle.admit("v", 0).unwrap();
        throttle.admit("v", 0).unwrap();
        let err = throttle.admit("v", 0).unwrap_err();
        assert_eq!((err.code, err.retry_after), (ErrorCode::Throttled, None));
    }

    #[test]
    fn probability_one_throttles_everything() {
        let mut throttle = Throttle::default();
        throttle.set(ThrottleConfig { probability: 1.0, ..ThrottleConfig::default() });
        assert!(throttle.admit("v", 0).is_err());
    }

    #[test]
    fn per_vault_window() {
        let mut throttle = Throttle::default();
        throttle.set(ThrottleConfig { vault_limit_per_10s: Some(2), ..ThrottleConfig::default() });
        throttle.admit("a", 100).unwrap();
        throttle.admit("a", 101).unwrap();
        let err = throttle.admit("a", 103).unwrap_err();
        assert_eq!(err.retry_after, Some(7));
        throttle.admit("b", 103).unwrap();
        throttle.admit("a", 110).unwrap();
    }
}
