//! AWS KMS request quotas: the documented default rate of each operation, the configuration that
//! scales or overrides them, and the sliding one-second windows that enforce them per (account,
//! region, operation).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

use super::state::Scope;

/// AWS KMS's default request quotas (requests per second, per account and region), from the
/// "Request quotas" page of the AWS KMS developer guide. Operations not listed get
/// [`OTHER_OPERATIONS_RATE`].
pub const AWS_DEFAULT_QUOTAS: &[(&str, f64)] = &[
    ("CancelKeyDeletion", 5.0),
    ("CreateAlias", 5.0),
    ("CreateKey", 50.0),
    ("DeleteAlias", 5.0),
    ("DescribeKey", 2000.0),
    ("DisableKey", 5.0),
    ("EnableKey", 5.0),
    ("GetKeyPolicy", 1000.0),
    ("ListAliases", 500.0),
    ("ListKeys", 500.0),
    ("ListResourceTags", 2000.0),
    ("PutKeyPolicy", 15.0),
    ("ScheduleKeyDeletion", 15.0),
    ("TagResource", 10.0),
    ("UntagResource", 10.0),
];

/// The default quota of an operation [`AWS_DEFAULT_QUOTAS`] does not list.
pub const OTHER_OPERATIONS_RATE: f64 = 100.0;

/// AWS's default quota of an operation, in requests per second.
pub fn aws_default_quota(operation: &str) -> f64 {
    AWS_DEFAULT_QUOTAS.iter().find(|(name, _)| *name == operation).map_or(OTHER_OPERATIONS_RATE, |(_, rate)| *rate)
}

/// Request quotas per (account, region, operation), like AWS's. A call over its operation's
/// quota answers `ThrottlingException`.
///
/// JSON: `{"scale": 0.5, "overrides": {"DisableKey": 2}}`; both members are optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Multiplies every AWS default (not the overrides): 0.1 makes DisableKey 0.5/s.
    pub scale: f64,
    /// Operation -> requests per second, replacing the scaled default; later entries win. A
    /// rate of 0 throttles every call of that operation.
    #[serde(serialize_with = "overrides_as_map", deserialize_with = "overrides_from_map")]
    pub overrides: Vec<(String, f64)>,
}

impl Default for QuotaConfig {
    /// AWS's defaults, unscaled.
    fn default() -> Self {
        Self { scale: 1.0, overrides: Vec::new() }
    }
}

impl QuotaConfig {
    /// AWS's default quotas multiplied by `scale`.
    #[must_use]
    pub fn scaled(scale: f64) -> Self {
        Self { scale, ..Self::default() }
    }

    /// Sets one operation's quota, in requests per second.
    #[must_use]
    pub fn with_override(mut self, operation: impl Into<String>, rate: f64) -> Self {
        self.overrides.push((operation.into(), rate));
        self
    }

    /// The quota of an operation, in requests per second.
    pub fn rate(&self, operation: &str) -> f64 {
        self.overrides
            .iter()
            .rev()
            .find(|(name, _)| name == operation)
            .map_or_else(|| aws_default_quota(operation) * self.scale, |(_, rate)| *rate)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if !self.scale.is_finite() || self.scale < 0.0 {
            return Err(format!("quotas.scale: {} is not a finite number >= 0", self.scale));
        }
        for (operation, rate) in &self.overrides {
            if operation.is_empty() {
                return Err("quotas.overrides: an operation name is empty".to_owned());
            }
            if !rate.is_finite() || *rate < 0.0 {
                return Err(format!("quotas.overrides.{operation}: {rate} is not a finite number >= 0"));
            }
        }
        Ok(())
    }
}

fn overrides_as_map<S: Serializer>(overrides: &[(String, f64)], serializer: S) -> Result<S::Ok, S::Error> {
    let map: BTreeMap<&str, f64> = overrides.iter().map(|(name, rate)| (name.as_str(), *rate)).collect();
    map.serialize(serializer)
}

fn overrides_from_map<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<(String, f64)>, D::Error> {
    Ok(BTreeMap::<String, f64>::deserialize(deserializer)?.into_iter().collect())
}

/// How many calls a window admits and how long it is. A rate of at least one per second is
/// `floor(rate)` calls per `floor(rate) / rate` seconds (15/s: 15 calls per second; 2.5/s: 2 calls
/// per 0.8 s); a slower rate is one call per `1 / rate` seconds. `None`: nothing is admitted.
fn window_of(rate: f64) -> Option<(usize, Duration)> {
    // NaN and negative rates are refused by validation; treat them as "closed" all the same.
    if rate.is_nan() || rate <= 0.0 {
        return None;
    }
    // Saturating float-to-int cast: a huge rate is simply a huge window.
    let capacity = rate.floor().max(1.0) as usize;
    let window = Duration::try_from_secs_f64(capacity as f64 / rate).unwrap_or(Duration::ZERO);
    Some((capacity, window))
}

/// The calls each (account, region, operation) was admitted in its current window: a sliding
/// window log, so a burst is cut at exactly the quota and a steady rate at the quota passes.
#[derive(Debug, Default)]
pub(crate) struct QuotaWindows {
    admitted: HashMap<(Scope, String), VecDeque<Instant>>,
}

impl QuotaWindows {
    /// Admits one call at `now` if the window has room, and remembers it; a refused call does
    /// not count against the quota (retrying clients must not lock themselves out).
    pub(crate) fn try_admit(&mut self, scope: &Scope, operation: &str, rate: f64, now: Instant) -> bool {
        let Some((capacity, window)) = window_of(rate) else {
            return false;
        };
        let times = self.admitted.entry((scope.clone(), operation.to_owned())).or_default();
        crate::common::admit_in_window(times, capacity, window, now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_aws() {
        assert_eq!(aws_default_quota("DisableKey"), 5.0);
        assert_eq!(aws_default_quota("ScheduleKeyDeletion"), 15.0);
        assert_eq!(aws_default_quota("DescribeKey"), 2000.0);
        assert_eq!(aws_default_quota("Decrypt"), OTHER_OPERATIONS_RATE);
        let config = QuotaConfig::scaled(0.5).with_override("EnableKey", 1.0).with_override("EnableKey", 3.0);
        assert_eq!(config.rate("DisableKey"), 2.5);
        assert_eq!(config.rate("EnableKey"), 3.0, "overrides are not scaled; the last one wins");
    }

    #[test]
    fn windows_cut_bursts_at_the_quota_and_refill() {
        let scope = Scope::new("111122223333", "us-east-1");
        let mut windows = QuotaWindows::default();
        let t0 = Instant::now();
        let admitted = (0..20).filter(|_| windows.try_admit(&scope, "DisableKey", 5.0, t0)).count();
        assert_eq!(admitted, 5);
        assert!(windows.try_admit(&scope, "EnableKey", 5.0, t0), "each operation has its own window");
        assert!(windows.try_admit(&Scope::new("111122223333", "eu-west-1"), "DisableKey", 5.0, t0));
        assert!(!windows.try_admit(&scope, "DisableKey", 5.0, t0 + Duration::from_millis(999)));
        assert!(windows.try_admit(&scope, "DisableKey", 5.0, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn slow_and_fractional_rates() {
        assert_eq!(window_of(0.5), Some((1, Duration::from_secs(2))));
        assert_eq!(window_of(2.5), Some((2, Duration::from_millis(800))));
        assert_eq!(window_of(0.0), None);
        let scope = Scope::new("111122223333", "us-east-1");
        let mut windows = QuotaWindows::default();
        let t0 = Instant::now();
        assert!(windows.try_admit(&scope, "DisableKey", 0.5, t0));
        assert!(!windows.try_admit(&scope, "DisableKey", 0.5, t0 + Duration::from_millis(1999)));
        assert!(windows.try_admit(&scope, "DisableKey", 0.5, t0 + Duration::from_secs(2)));
        assert!(!windows.try_admit(&scope, "ListKeys", 0.0, t0));
    }

    #[test]
    fn overrides_are_a_json_object() {
        let config = QuotaConfig::scaled(2.0).with_override("DisableKey", 1.0);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(json, serde_json::json!({ "scale": 2.0, "overrides": { "DisableKey": 1.0 } }));
        assert_eq!(serde_json::from_value::<QuotaConfig>(json).unwrap(), config);
        assert_eq!(serde_json::from_str::<QuotaConfig>("{}").unwrap(), QuotaConfig::default());
    }
}
