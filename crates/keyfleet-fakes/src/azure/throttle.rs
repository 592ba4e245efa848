//! Throttling and faults, off by default: injected 429s (every n-th request, or at random), an
//! optional per-vault limit over any 10-second window, as Key Vault counts its service limits, and
//! the transient faults both fakes share (latency with jitter, 500/503 server errors).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::protocol::{ErrorCode, VaultError};
use crate::common::{Transient, TransientRates, admit_in_window, fault_rng};

/// Key Vault's service limits are counted per vault over 10 seconds.
const WINDOW: Duration = Duration::from_secs(10);

/// When the data plane answers 429 `Throttled` or a server error, and how long calls take. Only
/// authenticated requests count and are throttled (the token endpoint and bearer challenges never
/// are); latency delays every data-plane request before it is counted.
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
    /// At most this many requests per vault in any 10-second window (Key Vault: 4,000 for software
    /// keys); the rest get 429 with `Retry-After` = seconds until the oldest counted request leaves
    /// the window. A refused request does not count.
    pub vault_limit_per_10s: Option<u32>,
    /// Probability that an admitted request answers 500 `InternalServerError` or 503
    /// `ServiceUnavailable` (half each) without being applied; it counts against the limit.
    pub error_5xx: f64,
    /// Every request is delayed by `latency_ms` plus a uniform jitter of 0..=`latency_jitter_ms`.
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// Seeds the latency and server errors; setting the config restarts the sequence.
    pub seed: Option<u64>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            every_nth: None,
            probability: 0.0,
            retry_after_secs: None,
            vault_limit_per_10s: None,
            error_5xx: 0.0,
            latency_ms: 0,
            latency_jitter_ms: 0,
            seed: None,
        }
    }
}

impl ThrottleConfig {
    /// Throttles every n-th request with `Retry-After: retry_after_secs`.
    #[must_use]
    pub fn every_nth(n: u32, retry_after_secs: Option<u64>) -> Self {
        Self { every_nth: Some(n), retry_after_secs, ..Self::default() }
    }
}

#[derive(Debug)]
pub(crate) struct Throttle {
    pub config: ThrottleConfig,
    counted: u64,
    /// Per vault: when each request of the last 10 s was admitted.
    windows: HashMap<String, VecDeque<Instant>>,
    rng: StdRng,
}

impl Default for Throttle {
    fn default() -> Self {
        Self { config: ThrottleConfig::default(), counted: 0, windows: HashMap::new(), rng: fault_rng(None) }
    }
}

impl Throttle {
    pub(crate) fn set(&mut self, config: ThrottleConfig) {
        let rng = fault_rng(config.seed);
        *self = Self { config, rng, ..Self::default() };
    }

    /// Draws the latency and server error of one request, on its arrival.
    pub(crate) fn transient(&mut self) -> Transient {
        let c = &self.config;
        let rates = TransientRates {
            latency: 1.0,
            latency_ms: c.latency_ms,
            latency_jitter_ms: c.latency_jitter_ms,
            error_5xx: c.error_5xx,
        };
        rates.draw(&mut self.rng)
    }

    /// Admits one authenticated request to `vault` at `now`, or throttles it.
    pub(crate) fn admit(&mut self, vault: &str, now: Instant) -> Result<(), VaultError> {
        self.counted += 1;
        let injected = self.config.every_nth.is_some_and(|n| n > 0 && self.counted.is_multiple_of(u64::from(n)))
            || (self.config.probability > 0.0 && rand::random::<f64>() < self.config.probability);
        if injected {
            return Err(throttled(self.config.retry_after_secs));
        }
        if let Some(limit) = self.config.vault_limit_per_10s {
            let times = self.windows.entry(vault.to_owned()).or_default();
            if !admit_in_window(times, limit as usize, WINDOW, now) {
                let oldest = times.front().copied().unwrap_or(now);
                let wait = (oldest + WINDOW).saturating_duration_since(now).as_secs_f64().ceil() as u64;
                return Err(throttled(Some(wait.max(1))));
            }
        }
        Ok(())
    }
}

/// The answer of an injected server error: 503 when `unavailable`, else 500.
pub(crate) fn server_error(unavailable: bool) -> VaultError {
    if unavailable {
        VaultError::new(ErrorCode::ServiceUnavailable, "The service is temporarily unavailable.")
    } else {
        VaultError::new(ErrorCode::Internal, "An internal server error occurred (injected by the fake).")
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
        let now = Instant::now();
        assert!((0..1000).all(|_| throttle.admit("v", now).is_ok()));
        assert_eq!(throttle.transient(), Transient::default());
    }

    #[test]
    fn every_nth_request() {
        let mut throttle = Throttle::default();
        throttle.set(ThrottleConfig::every_nth(3, Some(2)));
        let now = Instant::now();
        let outcomes: Vec<bool> = (0..6).map(|_| throttle.admit("v", now).is_ok()).collect();
        assert_eq!(outcomes, [true, true, false, true, true, false]);
        throttle.set(ThrottleConfig::every_nth(3, None));
        throttle.admit("v", now).unwrap();
        throttle.admit("v", now).unwrap();
        let err = throttle.admit("v", now).unwrap_err();
        assert_eq!((err.code, err.retry_after), (ErrorCode::Throttled, None));
    }

    #[test]
    fn probability_one_throttles_everything() {
        let mut throttle = Throttle::default();
        throttle.set(ThrottleConfig { probability: 1.0, ..ThrottleConfig::default() });
        assert!(throttle.admit("v", Instant::now()).is_err());
    }

    /// Any 10 s, not fixed windows: two requests at the end of one window and two at the start of
    /// the next would pass fixed windows.
    #[test]
    fn per_vault_sliding_window() {
        let mut throttle = Throttle::default();
        throttle.set(ThrottleConfig { vault_limit_per_10s: Some(2), ..ThrottleConfig::default() });
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        throttle.admit("a", at(100)).unwrap();
        throttle.admit("a", at(101)).unwrap();
        let err = throttle.admit("a", at(103)).unwrap_err();
        assert_eq!(err.retry_after, Some(7));
        throttle.admit("b", at(103)).unwrap();
        throttle.admit("a", at(110)).unwrap();
        assert!(throttle.admit("a", at(110)).is_err(), "the request of 101 s is still in the window");
        throttle.admit("a", at(111)).unwrap();
    }

    #[test]
    fn seeded_server_errors_and_jitter_repeat() {
        let config =
            ThrottleConfig { error_5xx: 0.5, latency_jitter_ms: 50, seed: Some(9), ..ThrottleConfig::default() };
        let draw = |throttle: &mut Throttle| (0..40).map(|_| throttle.transient()).collect::<Vec<_>>();
        let mut a = Throttle::default();
        a.set(config.clone());
        let mut b = Throttle::default();
        b.set(config);
        let first = draw(&mut a);
        assert_eq!(first, draw(&mut b));
        assert!(first.iter().any(|t| t.server_error.is_some()) && first.iter().any(|t| t.server_error.is_none()));
        assert!(first.iter().all(|t| t.delay <= Duration::from_millis(50)));
        assert_eq!(server_error(true).code, ErrorCode::ServiceUnavailable);
        assert_eq!(server_error(false).code, ErrorCode::Internal);
    }
}
