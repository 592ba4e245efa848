//! The one retry policy: which failures are retried, how often, and how long to wait. The policy is pure: the
//! jitter is drawn by the caller (the engine's seeded or OS-seeded generator) and passed in. Bulk-job items
//! retry through their item's state (`worker.rs`: a failed attempt is rescheduled); a cloud call outside an
//! item — key synchronization, a backup or restore of one key — retries in place with
//! [`Engine::call_retried`], paced by the same pacer.

use std::future::Future;
use std::time::Duration;

use keyfleet_clouds::{CloudError, ErrorKind};

use crate::Engine;
use crate::pacing::Partition;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per item, including the first.
    pub max_attempts: i64,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 8, base: Duration::from_millis(200), cap: Duration::from_secs(30) }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    RetryAfter(Duration),
    Fail,
}

impl RetryPolicy {
    /// `attempts` is how many attempts have been made, the failed one included; `jitter` is a uniform draw
    /// in [0, 1].
    pub fn verdict(&self, err: &CloudError, attempts: i64, jitter: f64) -> Verdict {
        if !err.kind.is_retryable() || attempts >= self.max_attempts {
            return Verdict::Fail;
        }
        let backoff = self.backoff(attempts, jitter);
        // Honour the provider's Retry-After when it asks for longer than our own backoff.
        let wait = match err.retry_after {
            Some(ra) if ra > backoff => ra,
            _ => backoff,
        };
        Verdict::RetryAfter(wait)
    }

    /// Full jitter: `jitter` (uniform in [0, 1]) of min(cap, base * 2^(attempts-1)), in whole ms.
    pub fn backoff(&self, attempts: i64, jitter: f64) -> Duration {
        let exp = attempts.clamp(1, 30) - 1;
        let ceiling = self.base.saturating_mul(1u32 << exp.min(20)).min(self.cap);
        let ms = ceiling.as_millis().max(1) as f64;
        Duration::from_millis((ms * jitter.clamp(0.0, 1.0)).round() as u64)
    }
}

/// Whether a call may be repeated after a failure whose outcome is unknown (a timeout, a dropped connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Reads and backups: repeating changes nothing.
    Safe,
    /// Restores: only a refusal that proves nothing happened (throttling) is retried.
    OnlyIfRefused,
}

impl Engine {
    /// Runs one cloud call outside a bulk-job item (`action` names it in metrics and logs), paced on
    /// partition `p` (at `quota`, else the cloud's default for the partition) with the AIMD feedback, retrying throttling and transient failures with the
    /// retry policy's backoff (honouring `Retry-After`) up to its attempt cap. `call` makes a fresh request
    /// for each attempt.
    pub(crate) async fn call_retried<T, F, Fut>(
        &self,
        cloud: &'static str,
        action: &'static str,
        p: &Partition,
        quota: Option<f64>,
        repeat: Repeat,
        call: F,
    ) -> Result<T, CloudError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = {
                let _sent = self.pacer.acquire(p, quota).await;
                self.timed(cloud, action, call()).await
            };
            let err = match result {
                Ok(v) => {
                    self.pacer.succeeded(p);
                    return Ok(v);
                }
                Err(e) => e,
            };
            if err.kind == ErrorKind::Throttled {
                self.pacer.throttled(p);
            }
            if repeat == Repeat::OnlyIfRefused && err.kind != ErrorKind::Throttled {
                return Err(err);
            }
            match self.config.retry.verdict(&err, attempts, self.jitter()) {
                Verdict::RetryAfter(wait) => {
                    self.metrics.cloud_retries.inc([cloud, action]);
                    tracing::info!(
                        cloud, partition.account = %p.account, partition.region = %p.region, action,
                        attempt = attempts, error.code = %err.code, wait_ms = wait.as_millis() as u64,
                        "cloud call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Verdict::Fail => return Err(err),
            }
        }
    }
}

/// True when the failure says the connection's credentials are no good.
pub fn is_unauthorized(err: &CloudError) -> bool {
    err.kind == ErrorKind::Unauthorized
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retryable_kinds_are_retried_and_only_up_to_the_cap() {
        let p = RetryPolicy { max_attempts: 3, ..Default::default() };
        let throttled = CloudError::new(ErrorKind::Throttled, "ThrottlingException", "slow down");
        let invalid = CloudError::new(ErrorKind::InvalidState, "KMSInvalidStateException", "pending deletion");
        assert!(matches!(p.verdict(&throttled, 1, 0.5), Verdict::RetryAfter(_)));
        assert_eq!(p.verdict(&throttled, 3, 0.5), Verdict::Fail);
        assert_eq!(p.verdict(&invalid, 1, 0.5), Verdict::Fail);
    }

    #[test]
    fn backoff_stays_under_the_exponential_ceiling_and_the_cap() {
        let p = RetryPolicy::default();
        for attempts in 1..40 {
            let ceiling = p.base.saturating_mul(1u32 << (attempts - 1).min(20)).min(p.cap);
            assert_eq!(p.backoff(attempts, 1.0), ceiling);
            assert!(p.backoff(attempts, 0.37) <= ceiling);
            assert_eq!(p.backoff(attempts, 0.0), Duration::ZERO);
        }
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(400));
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let p = RetryPolicy { cap: Duration::from_millis(10), ..Default::default() };
        let mut e = CloudError::new(ErrorKind::Throttled, "TooManyRequests", "429");
        e.retry_after = Some(Duration::from_secs(7));
        assert_eq!(p.verdict(&e, 1, 1.0), Verdict::RetryAfter(Duration::from_secs(7)));
    }
}
