//! Token buckets per rate-limit partition (each cloud names its own: `aws/pacing.rs`, `azure/pacing.rs`), so keyfleet stays inside the cloud's request quotas.
//!
//! Each bucket hands out slots one interval (1/rate) apart, the first one interval after the call asks (a
//! partition can move between nodes, and the node it comes from may have just called): requests leave evenly
//! spaced rather than in bursts, which is what a per-second quota shared with other callers tolerates best. When the cloud throttles
//! anyway (another caller is using the same quota), the bucket's rate is halved; every success then adds a
//! little back, up to the configured ceiling (AIMD).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One rate-limit partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    pub account: String,
    pub region: String,
    pub action: &'static str,
}

/// keyfleet paces this far under a quota: calls spaced exactly at the limit arrive with network jitter, and
/// two of them landing in one second-long window would be throttled.
pub const HEADROOM: f64 = 0.97;

/// A partition's default rate (requests per second): its cloud's documented quota for the action, else 5/s.
pub fn default_rate(action: &str) -> f64 {
    crate::cloud::CLOUDS.iter().find_map(|c| c.default_rate(action)).unwrap_or(5.0)
}

#[derive(Debug)]
struct Bucket {
    ceiling: f64,
    rate: f64,
    /// The earliest slot the next call may take. Each reservation moves it one interval (at the rate of the
    /// moment) past the slot it took, so two calls are never closer than the ceiling allows, whatever the
    /// rate did meanwhile.
    next: Instant,
}

/// Shared by all workers of a node.
#[derive(Debug)]
pub struct Pacer {
    buckets: Mutex<HashMap<Partition, Bucket>>,
    rate_for: fn(&str) -> f64,
    /// Multiplies every rate; 0 or less disables pacing (benchmarks of raw engine overhead).
    scale: f64,
}

impl Pacer {
    pub fn new(scale: f64) -> Self {
        Self { buckets: Mutex::new(HashMap::new()), rate_for: default_rate, scale }
    }

    /// Reserves the next slot of the partition and sleeps until it comes. `quota` overrides the cloud's
    /// default for this action (a KMS container's own setting); the scale applies to both.
    pub async fn acquire(&self, p: &Partition, quota: Option<f64>) {
        if self.scale <= 0.0 {
            return;
        }
        let wait = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let ceiling = quota.unwrap_or_else(|| (self.rate_for)(p.action)).max(0.01) * self.scale * HEADROOM;
            let b = buckets.entry(p.clone()).or_insert_with(|| Bucket { ceiling, rate: ceiling, next: now });
            if b.ceiling != ceiling {
                // The container's quota changed: adopt it, keeping any back-off in proportion.
                b.rate = b.rate / b.ceiling * ceiling;
                b.ceiling = ceiling;
            }
            // Reserve the next slot, at least one interval away even when the bucket is idle: the partition
            // may have just come from another node, whose last call this node cannot see. Concurrent callers
            // queue up in arrival order.
            let interval = Duration::from_secs_f64(1.0 / b.rate);
            let slot = b.next.max(now + interval);
            b.next = slot + interval;
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// The cloud throttled a request of this partition: halve its rate (not below 1/10 of the ceiling).
    pub fn throttled(&self, p: &Partition) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(p) {
            b.rate = (b.rate / 2.0).max(b.ceiling / 10.0);
        }
    }

    /// A request of this partition succeeded: recover additively towards the ceiling.
    pub fn succeeded(&self, p: &Partition) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.get_mut(p) {
            b.rate = (b.rate + b.ceiling / 20.0).min(b.ceiling);
        }
    }

    /// Every bucket's partition, current rate and ceiling (requests/s), for `/metrics`.
    pub fn snapshot(&self) -> Vec<(Partition, f64, f64)> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.iter().map(|(p, b)| (p.clone(), b.rate, b.ceiling)).collect()
    }

    /// The current rate of a partition (for tests and metrics).
    pub fn rate(&self, p: &Partition) -> Option<f64> {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets.get(p).map(|b| b.rate)
    }
}

/// Spaces state-changing calls on the same key: AWS throttles rapid changes to one key even under the
/// account's quota.
#[derive(Debug)]
pub struct KeySpacer {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl KeySpacer {
    pub fn new(interval: Duration) -> Self {
        Self { interval, next: Mutex::new(HashMap::new()) }
    }

    /// Waits until a change to `key` is allowed, and reserves the slot after it.
    pub async fn space(&self, key: &str) {
        if self.interval.is_zero() {
            return;
        }
        let wait = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            if next.len() > 100_000 {
                next.retain(|_, t| *t > now);
            }
            let slot = next.get(key).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(key.to_string(), slot + self.interval);
            slot - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(action: &'static str) -> Partition {
        Partition { account: "1".into(), region: "r".into(), action }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_at_the_quota() {
        let pacer = Pacer::new(1.0);
        let p = part("EnableKey");
        let start = tokio::time::Instant::now();
        for _ in 0..11 {
            pacer.acquire(&p, None).await;
        }
        // Eleven calls at 5 per second (less the headroom); the first waits one interval too. Each wait
        // ends on tokio's millisecond tick, at most 1 ms late.
        let expected = 11.0 / 5.0 / HEADROOM;
        let late = start.elapsed().as_secs_f64() - expected;
        assert!((0.0..0.011).contains(&late), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_quota_overrides_the_default() {
        let pacer = Pacer::new(1.0);
        let p = part("DisableKey");
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            pacer.acquire(&p, Some(1.0)).await;
        }
        let late = start.elapsed().as_secs_f64() - 3.0 / HEADROOM;
        assert!((0.0..0.003).contains(&late), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_success_recovers_it() {
        let pacer = Pacer::new(1.0);
        let p = part("ScheduleKeyDeletion");
        pacer.acquire(&p, None).await;
        pacer.throttled(&p);
        assert_eq!(pacer.rate(&p), Some(7.5 * HEADROOM));
        for _ in 0..20 {
            pacer.succeeded(&p);
        }
        assert_eq!(pacer.rate(&p), Some(15.0 * HEADROOM));
    }

    #[tokio::test(start_paused = true)]
    async fn changes_to_one_key_are_spaced_but_other_keys_are_not_held() {
        let spacer = KeySpacer::new(Duration::from_millis(250));
        let start = tokio::time::Instant::now();
        spacer.space("a").await;
        spacer.space("b").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        spacer.space("a").await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
    }
}
