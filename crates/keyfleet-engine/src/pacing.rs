//! Token buckets per rate-limit partition (each cloud names its own: `aws/pacing.rs`, `azure/pacing.rs`), so keyfleet stays inside the cloud's request quotas.
//!
//! Two rules decide when a call may be sent, both on the time it is *sent*, not on a slot reserved earlier
//! (a worker that is late to its slot — a paused process, a database read between slot and send — must not
//! send two calls closer than the quota allows):
//!
//! - **Spacing**: calls leave one interval (1/rate) apart on average; a call that fell behind may catch up by
//!   one interval, never more. In a cluster a partition's first call on a node waits one interval (the
//!   partition may have just moved here from a node that was calling, and the spacing continues across the
//!   move); a single node has no other node to continue from, and sends it at once.
//! - **A window mirroring the quota's.** A cloud counts a quota over a sliding window: AWS admits at most
//!   `N` calls of a partition in any one second (`floor(rate)` calls per `floor(rate)/rate` s, as the fake
//!   models it). The time a call *arrives* is unknown — somewhere between its send and its answer — so the
//!   pacer keeps each call in its window until `window` after its **answer** ([`Sent`] is dropped). A new
//!   call is sent only when fewer than `N` calls may still be in the cloud's window: however late a send
//!   and however slow the network, `N + 1` calls can never arrive within one window. Latency costs a little
//!   rate (about `latency ÷ window`), never a throttle.
//!
//! When the cloud throttles anyway (another caller is using the same quota), the bucket's rate and window
//! are halved; every success then adds a little back, up to the configured ceiling (AIMD).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// One rate-limit partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    pub account: String,
    pub region: String,
    pub action: &'static str,
}

/// The share of a quota keyfleet's spacing aims at. The window alone keeps calls under the quota; this
/// leaves the rest for other callers of the same quota and absorbs the rounding of timers.
pub const HEADROOM: f64 = 0.98;

/// A partition's default rate (requests per second): its cloud's documented quota for the action, else 5/s.
pub fn default_rate(action: &str) -> f64 {
    crate::cloud::CLOUDS.iter().find_map(|c| c.default_rate(action)).unwrap_or(5.0)
}

/// How many calls a quota of `rate` per second admits in its sliding window, and the window's length: at
/// least one per second is `floor(rate)` calls per `floor(rate) / rate` s (5/s: 5 per second; 2.5/s: 2 per
/// 0.8 s); a slower rate is one call per `1 / rate` s. The fake AWS KMS enforces its quotas the same way.
pub fn quota_window(rate: f64) -> (usize, Duration) {
    let rate = rate.max(0.001);
    let capacity = rate.floor().max(1.0) as usize;
    (capacity, Duration::try_from_secs_f64(capacity as f64 / rate).unwrap_or(Duration::from_secs(1000)))
}

#[derive(Debug)]
struct Bucket {
    /// The quota (requests per second, scaled): what the cloud admits.
    quota: f64,
    /// The rate now: `quota` times the AIMD factor (in (0.1, 1]).
    rate: f64,
    /// The theoretical time of the next send at `rate × HEADROOM` (a virtual clock: a call may go at most
    /// one interval before it).
    tat: Instant,
    /// The calls that may still be in the cloud's window, oldest first: each until `window` after its answer.
    sent: VecDeque<Call>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    id: u64,
    /// When it was answered; `None` while in flight.
    answered: Option<Instant>,
}

impl Bucket {
    fn new(quota: f64, now: Instant, first_waits: bool) -> Self {
        let mut b = Bucket { quota, rate: quota, tat: now, sent: VecDeque::new(), next_id: 0 };
        // The virtual clock allows one interval of catch-up: the first call goes now, or one interval from now.
        b.tat = now + if first_waits { 2 } else { 1 } * b.interval();
        b
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / (self.rate * HEADROOM))
    }

    /// The window at the current rate: throttling shrinks it with the rate.
    fn window(&self) -> (usize, Duration) {
        quota_window(self.rate)
    }

    /// When the next call may be sent by the window alone: now, a time in the future, or `None` while it
    /// must wait for an answer.
    fn window_opens(&mut self, now: Instant) -> Option<Instant> {
        let (capacity, window) = self.window();
        let expired = |c: &Call| c.answered.is_some_and(|at| at + window <= now);
        while self.sent.front().is_some_and(expired) {
            self.sent.pop_front();
        }
        if self.sent.len() < capacity {
            return Some(now);
        }
        // Answers do not come back in send order: drop every expired call, then count again.
        self.sent.retain(|c| !expired(c));
        if self.sent.len() < capacity {
            return Some(now);
        }
        let excess = self.sent.len() + 1 - capacity;
        // The `excess`-th answer to leave the window opens it; calls still in flight may never leave first.
        let mut answers: Vec<Instant> = self.sent.iter().filter_map(|c| c.answered).collect();
        if answers.len() < excess {
            return None;
        }
        answers.select_nth_unstable(excess - 1);
        Some(answers[excess - 1] + window)
    }
}

/// Shared by all workers of a node.
#[derive(Debug)]
pub struct Pacer {
    buckets: Mutex<HashMap<Partition, Bucket>>,
    rate_for: fn(&str) -> f64,
    /// Multiplies every rate; 0 or less disables pacing (benchmarks of raw engine overhead).
    scale: f64,
    /// Woken when a call is answered: a send waiting for room in its window may then go.
    answered: Notify,
    /// A partition's first call here waits one interval: another node may have been calling it (a cluster).
    first_waits: bool,
}

/// A call sent on a partition: it stays in the partition's window until `window` after this value drops,
/// so keep it until the call is answered (`let _sent = pacer.acquire(..).await;`, then the call).
#[must_use = "the call counts in its window until this drops: keep it until the call is answered"]
#[derive(Debug)]
pub struct Sent<'a> {
    call: Option<(&'a Pacer, Partition, u64)>,
}

impl Drop for Sent<'_> {
    fn drop(&mut self) {
        if let Some((pacer, p, id)) = self.call.take() {
            let mut buckets = pacer.lock();
            if let Some(b) = buckets.get_mut(&p) {
                let now = Instant::now();
                if let Some(c) = b.sent.iter_mut().rev().find(|c| c.id == id) {
                    c.answered = Some(now);
                }
            }
            drop(buckets);
            pacer.answered.notify_waiters();
        }
    }
}

impl Pacer {
    /// A pacer for a node of a cluster (see [`Pacer::single_node`]).
    pub fn new(scale: f64) -> Self {
        let buckets = Mutex::new(HashMap::new());
        Self { buckets, rate_for: default_rate, scale, answered: Notify::new(), first_waits: true }
    }

    /// The pacer of the only node calling its partitions: a partition's first call goes at once.
    pub fn single_node(self) -> Self {
        Self { first_waits: false, ..self }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Partition, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a call of the partition may be sent, and counts it as sent now. `quota` overrides the
    /// cloud's default for this action (a KMS container's own setting); the scale applies to both. Keep the
    /// returned [`Sent`] until the call is answered.
    pub async fn acquire(&self, p: &Partition, quota: Option<f64>) -> Sent<'_> {
        if self.scale <= 0.0 {
            return Sent { call: None };
        }
        let quota = quota.unwrap_or_else(|| (self.rate_for)(p.action)).max(0.01) * self.scale;
        loop {
            // Registered before the window is read, so that an answer in between is not missed.
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let opens = {
                let mut buckets = self.lock();
                let now = Instant::now();
                let b = buckets.entry(p.clone()).or_insert_with(|| Bucket::new(quota, now, self.first_waits));
                if b.quota != quota {
                    // The container's quota changed: adopt it, keeping any back-off in proportion.
                    b.rate = b.rate / b.quota * quota;
                    b.quota = quota;
                }
                // Spacing: no earlier than one interval before the virtual clock (one interval of catch-up).
                let interval = b.interval();
                let spaced = b.tat.checked_sub(interval).unwrap_or(now).max(now);
                let opens = if spaced > now { Some(spaced) } else { b.window_opens(now) };
                if opens.is_some_and(|at| at <= now) {
                    b.tat = b.tat.max(now) + interval;
                    let id = b.next_id;
                    b.next_id += 1;
                    b.sent.push_back(Call { id, answered: None });
                    return Sent { call: Some((self, p.clone(), id)) };
                }
                opens
            };
            // Wait for the time, or for an answer when only an answer can open the window.
            match opens {
                Some(at) => tokio::time::sleep_until(at).await,
                None => answered.await,
            }
        }
    }

    /// The cloud throttled a request of this partition: halve its rate and window (not below 1/10 of the
    /// quota).
    pub fn throttled(&self, p: &Partition) {
        if let Some(b) = self.lock().get_mut(p) {
            b.rate = (b.rate / 2.0).max(b.quota / 10.0);
        }
    }

    /// A request of this partition succeeded: recover additively towards the quota.
    pub fn succeeded(&self, p: &Partition) {
        if let Some(b) = self.lock().get_mut(p) {
            b.rate = (b.rate + b.quota / 20.0).min(b.quota);
        }
    }

    /// Every bucket's partition, the rate it paces at now and its ceiling (requests/s, headroom included),
    /// for `/metrics`.
    pub fn snapshot(&self) -> Vec<(Partition, f64, f64)> {
        self.lock().iter().map(|(p, b)| (p.clone(), b.rate * HEADROOM, b.quota * HEADROOM)).collect()
    }

    /// The rate a partition paces at now, headroom included (for tests and metrics).
    pub fn rate(&self, p: &Partition) -> Option<f64> {
        self.lock().get(p).map(|b| b.rate * HEADROOM)
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
#[allow(clippy::unwrap_used)]
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
            drop(pacer.acquire(&p, None).await);
        }
        // Eleven calls at 5 per second (less the headroom); the first waits one interval too. Each wait
        // ends on tokio's millisecond tick, at most 1 ms late.
        let expected = 11.0 / 5.0 / HEADROOM;
        let late = start.elapsed().as_secs_f64() - expected;
        assert!((0.0..0.011).contains(&late), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_node_sends_a_partitions_first_call_at_once() {
        let pacer = Pacer::new(1.0).single_node();
        let p = part("EnableKey");
        let start = tokio::time::Instant::now();
        drop(pacer.acquire(&p, None).await);
        assert_eq!(start.elapsed(), Duration::ZERO, "nobody else may have called: no wait");
        for _ in 1..11 {
            drop(pacer.acquire(&p, None).await);
        }
        // Then spaced as in a cluster: ten more intervals, each on tokio's millisecond tick.
        let late = start.elapsed().as_secs_f64() - 10.0 / 5.0 / HEADROOM;
        assert!((0.0..0.011).contains(&late), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_quota_overrides_the_default() {
        let pacer = Pacer::new(1.0);
        let p = part("DisableKey");
        let start = tokio::time::Instant::now();
        for _ in 0..3 {
            drop(pacer.acquire(&p, Some(1.0)).await);
        }
        let late = start.elapsed().as_secs_f64() - 3.0 / HEADROOM;
        assert!((0.0..0.003).contains(&late), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_and_success_recovers_it() {
        let pacer = Pacer::new(1.0);
        let p = part("ScheduleKeyDeletion");
        drop(pacer.acquire(&p, None).await);
        pacer.throttled(&p);
        assert_eq!(pacer.rate(&p), Some(7.5 * HEADROOM));
        for _ in 0..20 {
            pacer.succeeded(&p);
        }
        assert_eq!(pacer.rate(&p), Some(15.0 * HEADROOM));
    }

    /// Calls answered after 0-50 ms (seeded), eight workers on one 5/s partition: however late each answer,
    /// no call is sent before the fifth-previous one left the quota's one-second window (counted from its
    /// answer, the latest it can have arrived), so no six calls can arrive within one second; and the
    /// latency costs rate only in proportion (on simulated time: the run's length is exact).
    #[tokio::test(start_paused = true)]
    async fn the_window_counts_each_call_until_a_window_after_its_answer() {
        use rand::{Rng as _, SeedableRng as _};
        let pacer = std::sync::Arc::new(Pacer::new(1.0));
        let p = part("DisableKey");
        let log = std::sync::Arc::new(Mutex::new(Vec::new()));
        let rng = std::sync::Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(7)));
        let start = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (pacer, p, log, rng) = (pacer.clone(), p.clone(), log.clone(), rng.clone());
            workers.spawn(async move {
                for _ in 0..25 {
                    let sent = pacer.acquire(&p, None).await;
                    let at = Instant::now();
                    let latency = Duration::from_millis(rng.lock().unwrap().random_range(0..=50));
                    tokio::time::sleep(latency).await;
                    drop(sent);
                    log.lock().unwrap().push((at, Instant::now()));
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let mut calls = log.lock().unwrap().clone();
        calls.sort();
        assert_eq!(calls.len(), 200);
        for (i, (sent, _)) in calls.iter().enumerate().skip(5) {
            // The five calls before this one: each answered at least a second before it was sent.
            let mut answers: Vec<Instant> = calls[..i].iter().map(|c| c.1).collect();
            answers.sort();
            let fifth_latest = answers[answers.len() - 5];
            assert!(*sent >= fifth_latest + Duration::from_secs(1), "call {i} sent too soon");
        }
        // 200 calls at 5/s take 40 s; the latency (25 ms on average per window) and the headroom add a
        // little, never a second per window.
        let took = start.elapsed().as_secs_f64();
        assert!((40.0..200.0 / 5.0 / HEADROOM + 40.0 * 0.051).contains(&took), "{took}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_in_flight_holds_its_place_in_the_window() {
        let pacer = Pacer::new(1.0);
        let p = part("EnableKey");
        let mut in_flight = Vec::new();
        for _ in 0..5 {
            in_flight.push(pacer.acquire(&p, None).await);
        }
        let start = Instant::now();
        let sixth = async {
            let _sent = pacer.acquire(&p, None).await;
            start.elapsed()
        };
        let answer_one = async {
            // Nothing is answered for three seconds; then one call is.
            tokio::time::sleep(Duration::from_secs(3)).await;
            in_flight.pop();
        };
        let (waited, ()) = tokio::join!(sixth, answer_one);
        // The sixth call goes a full window after that answer, not a second after the first call was sent.
        let late = waited.as_secs_f64() - 4.0;
        assert!((0.0..0.002).contains(&late), "{waited:?}");
    }

    /// Answers come back out of order: a slow first call must not hide that the later ones left the window.
    #[tokio::test(start_paused = true)]
    async fn calls_answered_out_of_order_leave_the_window() {
        let pacer = Pacer::new(1.0);
        let p = part("EnableKey");
        let slow = pacer.acquire(&p, None).await;
        for _ in 0..4 {
            drop(pacer.acquire(&p, None).await);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = Instant::now();
        let more = (pacer.acquire(&p, None).await, pacer.acquire(&p, None).await);
        // Four places are free: two calls go at once (one interval of catch-up), the slow one still counts.
        assert!(start.elapsed() <= Duration::from_millis(1), "{:?}", start.elapsed());
        drop((slow, more));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_narrows_the_window_with_the_rate() {
        let pacer = Pacer::new(1.0);
        let p = part("DisableKey");
        drop(pacer.acquire(&p, None).await);
        pacer.throttled(&p);
        // 2.5/s now: at most two calls in any 0.8 s, and calls 1 / (2.5 x headroom) s apart.
        let b = pacer.lock();
        let bucket = &b[&p];
        assert_eq!(bucket.window(), (2, Duration::from_millis(800)));
        assert_eq!(bucket.interval(), Duration::from_secs_f64(1.0 / (2.5 * HEADROOM)));
    }

    #[test]
    fn the_window_mirrors_the_quota() {
        assert_eq!(quota_window(5.0), (5, Duration::from_secs(1)));
        assert_eq!(quota_window(400.0), (400, Duration::from_secs(1)));
        assert_eq!(quota_window(0.5), (1, Duration::from_secs(2)));
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
