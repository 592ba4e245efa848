//! Fault injection: what can go wrong between a client and AWS KMS ([`Faults`]), and the
//! decisions the fake takes for each call (throttle it, fail it, delay it, drop it).
//!
//! Faults apply to the KMS endpoint only, never to the `/_fake/...` control routes. All of them
//! are off by default.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use rand::Rng as _;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ops::Operation;
use super::protocol::{ErrorCode, KmsError};
use super::quota::{QuotaConfig, QuotaWindows};
use super::state::Scope;
use crate::common::TransientRates;

/// The call log's `error` for a call whose connection the fake closed before applying it.
pub const CONNECTION_DROPPED: &str = "ConnectionDropped";
/// The call log's `error` for a call the fake applied and then closed the connection without
/// answering: the change **did** happen, the client cannot know it.
pub const DROPPED_AFTER_APPLY: &str = "DroppedAfterApply";

/// AWS KMS's words for a throttled call.
const THROTTLED_MESSAGE: &str =
    "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.";

/// The faults the fake injects into KMS calls. `Faults::default()` injects none.
///
/// JSON (the `/_fake/faults` control route): every member is optional, `{}` is no faults;
/// `per_key_min_interval` is `per_key_min_interval_ms` there.
///
/// For each call, in this order: `drop_connection` (the call never reaches the service), then
/// authentication, `quotas`, `per_key_min_interval`, `error_5xx`, the operation itself, and
/// `drop_after_apply`. `latency` delays the call before all of them. A call refused by one step
/// does not reach the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// AWS's request quotas per (account, region, operation); `None`: unlimited.
    pub quotas: Option<QuotaConfig>,
    /// A change to a key (EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion,
    /// PutKeyPolicy, TagResource, UntagResource) sooner than this after the previous successful
    /// change to the same key answers `ThrottlingException`, as AWS throttles "rapid changes to
    /// the same key" even under the quota.
    #[serde(rename = "per_key_min_interval_ms", with = "optional_millis")]
    pub per_key_min_interval: Option<Duration>,
    /// Probability that a call answers 500 `KMSInternalException` or 503
    /// `ServiceUnavailableException` (half each) without being applied.
    pub error_5xx: f64,
    /// Probability that a call is delayed by `latency_ms` plus a uniform jitter of up to
    /// `latency_jitter_ms`.
    pub latency: f64,
    pub latency_ms: u64,
    pub latency_jitter_ms: u64,
    /// Probability that the connection is closed without an answer, before the call is applied.
    pub drop_connection: f64,
    /// Probability that a **successful** call is applied and then its connection is closed
    /// without an answer. Failed calls changed nothing and are answered normally.
    pub drop_after_apply: f64,
    /// Seeds the random faults, so that the same calls in the same order meet the same faults.
    /// Without a seed they differ from run to run. Setting faults restarts the sequence.
    pub seed: Option<u64>,
}

impl Faults {
    /// AWS's default request quotas, nothing else.
    pub fn aws_quotas() -> Self {
        Self { quotas: Some(QuotaConfig::default()), ..Self::default() }
    }

    /// Whether any fault is on.
    pub fn is_active(&self) -> bool {
        self.quotas.is_some()
            || self.per_key_min_interval.is_some()
            || self.error_5xx > 0.0
            || self.delays()
            || self.drop_connection > 0.0
            || self.drop_after_apply > 0.0
    }

    fn delays(&self) -> bool {
        self.latency > 0.0 && (self.latency_ms > 0 || self.latency_jitter_ms > 0)
    }

    /// Checks that probabilities are within [0, 1] and rates are finite and not negative;
    /// the message names the member.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("error_5xx", self.error_5xx),
            ("latency", self.latency),
            ("drop_connection", self.drop_connection),
            ("drop_after_apply", self.drop_after_apply),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name}: {p} is not a probability between 0 and 1"));
            }
        }
        self.quotas.as_ref().map_or(Ok(()), QuotaConfig::validate)
    }
}

/// One line for logs and the `fake-aws` startup line: `none`, or the active faults.
impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(quotas) = &self.quotas {
            let mut part = String::from("AWS quotas");
            if quotas.scale != 1.0 {
                let _ = write!(part, " x{}", quotas.scale);
            }
            for (operation, rate) in &quotas.overrides {
                let _ = write!(part, ", {operation}={rate}/s");
            }
            parts.push(part);
        }
        if let Some(interval) = self.per_key_min_interval {
            parts.push(format!("per-key interval {}ms", interval.as_millis()));
        }
        if self.error_5xx > 0.0 {
            parts.push(format!("5xx {}", percent(self.error_5xx)));
        }
        if self.delays() {
            let mut part = format!("latency {}ms", self.latency_ms);
            if self.latency_jitter_ms > 0 {
                let _ = write!(part, "+0..{}ms", self.latency_jitter_ms);
            }
            if self.latency < 1.0 {
                let _ = write!(part, " on {}", percent(self.latency));
            }
            parts.push(part);
        }
        if self.drop_connection > 0.0 {
            parts.push(format!("drop {}", percent(self.drop_connection)));
        }
        if self.drop_after_apply > 0.0 {
            parts.push(format!("drop after apply {}", percent(self.drop_after_apply)));
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        if let Some(seed) = self.seed {
            parts.push(format!("seed {seed}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// `0.125` -> `12.5%`, without floating-point noise.
fn percent(p: f64) -> String {
    format!("{}%", (p * 100_000.0).round() / 1000.0)
}

/// `Option<Duration>` as whole milliseconds in JSON.
mod optional_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            // Saturates past 584 million years.
            Some(interval) => serializer.serialize_u64(u64::try_from(interval.as_millis()).unwrap_or(u64::MAX)),
            None => serializer.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(deserializer)?.map(Duration::from_millis))
    }
}

/// The random faults drawn for one call when it arrives. Every call draws the same number of
/// random values, so a seed gives the same decisions to the same sequence of calls whatever
/// the other calls' outcomes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub delay: Duration,
    pub error_5xx: Option<ErrorCode>,
    pub drop_connection: bool,
    pub drop_after_apply: bool,
}

impl Plan {
    /// The answer of an injected 5xx, if this call drew one.
    pub(crate) fn server_error(&self) -> Option<KmsError> {
        self.error_5xx.map(|code| {
            let message = match code {
                ErrorCode::ServiceUnavailable => "Service Unavailable",
                _ => "The request was rejected because an internal exception occurred. The request can be retried.",
            };
            KmsError::new(code, message)
        })
    }
}

/// How a call ended, as the call log records it.
#[derive(Debug)]
pub(crate) enum Outcome {
    Answered {
        result: Result<super::protocol::Reply, KmsError>,
        injected: bool,
    },
    /// Closed before the call was applied.
    Dropped,
    /// Applied, then closed without an answer.
    DroppedAfterApply,
}

impl Outcome {
    /// The call log's `error`.
    pub(crate) fn error(&self) -> Option<String> {
        match self {
            Self::Answered { result: Ok(_), .. } => None,
            Self::Answered { result: Err(err), .. } => Some(err.code.as_str().to_owned()),
            Self::Dropped => Some(CONNECTION_DROPPED.to_owned()),
            Self::DroppedAfterApply => Some(DROPPED_AFTER_APPLY.to_owned()),
        }
    }

    /// Whether the call reached the key store and succeeded: its effect happened.
    /// Whether the client got an answer (and so a request id).
    pub(crate) fn answered(&self) -> bool {
        matches!(self, Self::Answered { .. })
    }

    pub(crate) fn applied(&self) -> bool {
        matches!(self, Self::Answered { result: Ok(_), .. } | Self::DroppedAfterApply)
    }
}

/// Changes a key's state, policy or tags: what `per_key_min_interval` limits.
pub(crate) fn changes_key(operation: Operation) -> bool {
    use Operation as Op;
    matches!(
        operation,
        Op::EnableKey
            | Op::DisableKey
            | Op::ScheduleKeyDeletion
            | Op::CancelKeyDeletion
            | Op::PutKeyPolicy
            | Op::TagResource
            | Op::UntagResource
    )
}

/// The faults in force and what they remember: the random sequence, the quota windows and
/// the last change of each key.
#[derive(Debug)]
pub(crate) struct Injector {
    faults: Faults,
    rng: StdRng,
    windows: QuotaWindows,
    last_change: HashMap<(Scope, String), Instant>,
}

impl Injector {
    pub(crate) fn new(faults: Faults) -> Self {
        let rng = rng_for(&faults);
        Self { faults, rng, windows: QuotaWindows::default(), last_change: HashMap::new() }
    }

    pub(crate) fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Replaces the faults and restarts the random sequence. Quota windows and the last change
    /// of each key are kept: the calls already made still count.
    pub(crate) fn set(&mut self, faults: Faults) {
        self.rng = rng_for(&faults);
        self.faults = faults;
    }

    /// Draws the random faults of one call.
    pub(crate) fn plan(&mut self) -> Plan {
        let f = &self.faults;
        let rng = &mut self.rng;
        let rates = TransientRates {
            latency: f.latency,
            latency_ms: f.latency_ms,
            latency_jitter_ms: f.latency_jitter_ms,
            error_5xx: f.error_5xx,
        };
        let transient = rates.draw(rng);
        let drop_connection = rng.random::<f64>() < f.drop_connection;
        let drop_after_apply = rng.random::<f64>() < f.drop_after_apply;
        Plan {
            delay: transient.delay,
            error_5xx: transient
                .server_error
                .map(|unavailable| if unavailable { ErrorCode::ServiceUnavailable } else { ErrorCode::KmsInternal }),
            drop_connection,
            drop_after_apply,
        }
    }

    /// `ThrottlingException` when the call is over its operation's quota, or changes `key_id`
    /// too soon after its previous change. Counts the call against the quota when it passes.
    pub(crate) fn throttle(
        &mut self,
        scope: &Scope,
        operation: Operation,
        key_id: Option<&str>,
        now: Instant,
    ) -> Result<(), KmsError> {
        if let (Some(interval), Some(key_id), true) = (self.faults.per_key_min_interval, key_id, changes_key(operation))
        {
            let last = self.last_change.get(&(scope.clone(), key_id.to_owned()));
            if last.is_some_and(|last| now.saturating_duration_since(*last) < interval) {
                tracing::debug!(aws.operation = operation.name(), key.id = key_id, "fake KMS per-key throttle");
                return Err(throttled());
            }
        }
        if let Some(quotas) = &self.faults.quotas {
            let rate = quotas.rate(operation.name());
            if !self.windows.try_admit(scope, operation.name(), rate, now) {
                tracing::debug!(aws.operation = operation.name(), rate, "fake KMS quota throttle");
                return Err(throttled());
            }
        }
        Ok(())
    }

    /// Remembers a successful change to a key, for `per_key_min_interval`.
    pub(crate) fn changed(&mut self, scope: &Scope, operation: Operation, key_id: &str, now: Instant) {
        if changes_key(operation) {
            self.last_change.insert((scope.clone(), key_id.to_owned()), now);
        }
    }
}

fn rng_for(faults: &Faults) -> StdRng {
    crate::common::fault_rng(faults.seed)
}

fn throttled() -> KmsError {
    KmsError::new(ErrorCode::Throttling, THROTTLED_MESSAGE)
}

/// A response whose body fails before its first byte. hyper writes nothing of it and closes the
/// connection (the status line is only buffered when the body fails), so a client sees the
/// connection close without an answer. Driven in-process, reading the body fails.
pub(crate) fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection dropped by the fake"))
    });
    Response::new(Body::from_stream(failing))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn default_is_no_faults() {
        let faults = Faults::default();
        assert!(!faults.is_active());
        assert_eq!(faults.to_string(), "none");
        let plan = Injector::new(faults).plan();
        assert_eq!(plan.delay, Duration::ZERO);
        assert!(plan.error_5xx.is_none() && !plan.drop_connection && !plan.drop_after_apply);
    }

    #[test]
    fn json_round_trip_and_validation() {
        let faults = Faults {
            quotas: Some(QuotaConfig::scaled(0.5).with_override("DisableKey", 2.0)),
            per_key_min_interval: Some(Duration::from_millis(250)),
            error_5xx: 0.1,
            latency: 1.0,
            latency_ms: 20,
            latency_jitter_ms: 5,
            drop_connection: 0.01,
            drop_after_apply: 0.02,
            seed: Some(7),
        };
        let json = serde_json::to_value(&faults).unwrap();
        assert_eq!(json["per_key_min_interval_ms"], 250);
        assert_eq!(serde_json::from_value::<Faults>(json).unwrap(), faults);
        assert_eq!(serde_json::from_str::<Faults>("{}").unwrap(), Faults::default());
        assert!(serde_json::from_str::<Faults>(r#"{"error_rate": 1}"#).is_err());
        assert!(faults.validate().is_ok());
        assert_eq!(
            faults.to_string(),
            "AWS quotas x0.5, DisableKey=2/s, per-key interval 250ms, 5xx 10%, latency 20ms+0..5ms, drop 1%, \
             drop after apply 2%, seed 7"
        );

        let bad = Faults { error_5xx: 1.5, ..Faults::default() };
        assert!(bad.validate().unwrap_err().starts_with("error_5xx"));
        let bad = Faults { drop_connection: f64::NAN, ..Faults::default() };
        assert!(bad.validate().is_err());
        let bad = Faults { quotas: Some(QuotaConfig::scaled(-1.0)), ..Faults::default() };
        assert!(bad.validate().unwrap_err().starts_with("quotas.scale"));
    }

    #[test]
    fn seeds_repeat_the_same_plans() {
        let faults = Faults { error_5xx: 0.5, drop_connection: 0.3, seed: Some(42), ..Faults::default() };
        let draw = |injector: &mut Injector| {
            (0..50).map(|_| injector.plan()).map(|p| (p.error_5xx, p.drop_connection)).collect::<Vec<_>>()
        };
        let mut a = Injector::new(faults.clone());
        let mut b = Injector::new(faults.clone());
        let first = draw(&mut a);
        assert_eq!(first, draw(&mut b));
        a.set(faults);
        assert_eq!(draw(&mut a), first, "setting the faults restarts the sequence");
        assert!(first.iter().any(|(e, _)| *e == Some(ErrorCode::ServiceUnavailable)));
        assert!(first.iter().any(|(e, _)| *e == Some(ErrorCode::KmsInternal)));
        assert!(first.iter().any(|(e, _)| e.is_none()));
    }

    #[test]
    fn per_key_interval_counts_from_the_last_change() {
        let scope = Scope::new("111122223333", "us-east-1");
        let faults = Faults { per_key_min_interval: Some(Duration::from_millis(100)), ..Faults::default() };
        let mut injector = Injector::new(faults);
        let t0 = Instant::now();
        assert!(injector.throttle(&scope, Operation::DisableKey, Some("k1"), t0).is_ok());
        injector.changed(&scope, Operation::DisableKey, "k1", t0);
        let soon = t0 + Duration::from_millis(50);
        let err = injector.throttle(&scope, Operation::EnableKey, Some("k1"), soon).unwrap_err();
        assert_eq!(err.code, ErrorCode::Throttling);
        assert!(injector.throttle(&scope, Operation::EnableKey, Some("k2"), soon).is_ok());
        assert!(injector.throttle(&scope, Operation::DescribeKey, Some("k1"), soon).is_ok());
        assert!(injector.throttle(&scope, Operation::EnableKey, Some("k1"), t0 + Duration::from_millis(100)).is_ok());
    }
}
