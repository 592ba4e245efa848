//! What keeps password logins from being guessed or from exhausting the node: failure throttling per
//! username and per client address, and a bounded pool for the argon2 work.
//!
//! The throttle state is in memory, per node: with several nodes behind a balancer an attacker gets the
//! allowance of each node (documented in docs/API.md). Entries are dropped once their delay has passed and
//! they have been quiet for [`LoginSettings::forget_after`], and the table is capped, so its memory is bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::{Result, ServiceError};

/// Entries kept at most; beyond this the oldest-quiet ones are forgotten first.
const MAX_ENTRIES: usize = 100_000;

/// The knobs of login throttling and password hashing.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Failed logins of one username (or from one address) allowed before each further attempt waits.
    pub failures_before_delay: u32,
    /// The same, for one client address (over all usernames); higher, as several people may share one.
    pub address_failures_before_delay: u32,
    /// The first delay; each further failure doubles it.
    pub base_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A counter with no failure for this long starts again from zero.
    pub forget_after: Duration,
    /// Password hashes (argon2, about 19 MiB each) computed at once on this node.
    pub hash_concurrency: usize,
    /// Logins and password changes waiting for a hashing slot beyond which more are refused (503).
    pub hash_queue: usize,
}

impl Default for LoginSettings {
    fn default() -> Self {
        Self {
            failures_before_delay: 5,
            address_failures_before_delay: 20,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
            hash_concurrency: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
            hash_queue: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Counts failed logins and says when the next attempt may come.
pub struct LoginThrottle {
    settings: LoginSettings,
    table: Mutex<HashMap<Subject, Failures>>,
}

impl LoginThrottle {
    pub fn new(settings: LoginSettings) -> Self {
        Self { settings, table: Mutex::new(HashMap::new()) }
    }

    fn subjects(username: &str, addr: Option<IpAddr>) -> impl Iterator<Item = Subject> {
        // Usernames are looked up exactly, so the throttle keys them exactly too.
        std::iter::once(Subject::User(username.to_owned())).chain(addr.map(Subject::Address))
    }

    /// Refuses (429) while the username or the address is waiting out a delay.
    pub fn check(&self, username: &str, addr: Option<IpAddr>) -> Result<()> {
        let now = Instant::now();
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let wait = Self::subjects(username, addr)
            .filter_map(|s| table.get(&s)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            None => Ok(()),
            Some(wait) => Err(ServiceError::TooManyRequests {
                message: "Too many failed logins; try again later.".into(),
                retry_after: round_up_secs(wait),
            }),
        }
    }

    /// Records a failed attempt against the username and the address.
    pub fn failure(&self, username: &str, addr: Option<IpAddr>) {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= MAX_ENTRIES {
            self.prune(&mut table, now);
        }
        for subject in Self::subjects(username, addr) {
            let threshold = match subject {
                Subject::User(_) => self.settings.failures_before_delay,
                Subject::Address(_) => self.settings.address_failures_before_delay,
            };
            let entry = table.entry(subject).or_insert(Failures { count: 0, last: now, blocked_until: None });
            if now.duration_since(entry.last) > self.settings.forget_after {
                entry.count = 0;
            }
            entry.count = entry.count.saturating_add(1);
            entry.last = now;
            if entry.count >= threshold {
                let doublings = (entry.count - threshold).min(30);
                let delay = self.settings.base_delay.saturating_mul(1 << doublings).min(self.settings.max_delay);
                entry.blocked_until = Some(now + delay);
            }
        }
    }

    /// A successful login clears the username's failures (not the address's: one account an attacker owns
    /// must not reset their allowance for guessing the others).
    pub fn success(&self, username: &str) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.remove(&Subject::User(username.to_owned()));
    }

    fn prune(&self, table: &mut HashMap<Subject, Failures>, now: Instant) {
        let forget = self.settings.forget_after;
        table.retain(|_, f| {
            f.blocked_until.is_some_and(|u| u > now)
                || now.duration_since(f.last) <= forget.min(Duration::from_secs(60))
        });
        if table.len() >= MAX_ENTRIES {
            // Still full of live entries: drop the quietest half rather than grow without bound.
            let mut lasts: Vec<Instant> = table.values().map(|f| f.last).collect();
            lasts.sort_unstable();
            let cutoff = lasts[lasts.len() / 2];
            table.retain(|_, f| f.last > cutoff);
        }
    }
}

fn round_up_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

/// Runs CPU- and memory-heavy password hashing on `concurrency` threads of its own, with at most `queue`
/// jobs waiting; beyond that callers get a 503 at once instead of piling up. Own threads rather than tokio's
/// blocking pool: each thread reuses one argon2 working memory (~19 MiB) for the hashes of a burst and frees
/// it when its queue runs empty, so memory stays at `concurrency` × 19 MiB under a flood and returns after.
#[derive(Clone)]
pub struct HashPool {
    jobs: std::sync::mpsc::SyncSender<Job>,
    /// Jobs sent and not yet taken by a thread.
    queued: Arc<AtomicUsize>,
}

type Job = Box<dyn FnOnce() + Send>;

impl HashPool {
    pub fn new(concurrency: usize, queue: usize) -> Self {
        let (jobs, receiver) = std::sync::mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..concurrency.max(1) {
            let (receiver, queued) = (receiver.clone(), queued.clone());
            // The threads end when the last sender (the pool) is dropped.
            let _ = std::thread::Builder::new().name(format!("password-hash-{i}")).spawn(move || {
                loop {
                    let job = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { return };
                    queued.fetch_sub(1, Ordering::SeqCst);
                    job();
                    if queued.load(Ordering::SeqCst) == 0 {
                        // Nothing waiting: give the working memory back until the next burst.
                        crate::users::release_hash_memory();
                    }
                }
            });
        }
        Self { jobs, queued }
    }

    /// Runs `work` on a hashing thread once one is free.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(work());
        });
        self.queued.fetch_add(1, Ordering::SeqCst);
        self.jobs
            .try_send(job)
            .inspect_err(|_| {
                self.queued.fetch_sub(1, Ordering::SeqCst);
            })
            .map_err(|e| match e {
                std::sync::mpsc::TrySendError::Full(_) => ServiceError::Unavailable {
                    message: "Too many logins in progress; try again shortly.".into(),
                    retry_after: 1,
                },
                std::sync::mpsc::TrySendError::Disconnected(_) => {
                    ServiceError::Internal("the password hashing threads stopped".into())
                }
            })?;
        rx.await.map_err(|_| ServiceError::Internal("a password hashing job was lost".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(LoginSettings {
            failures_before_delay: 3,
            address_failures_before_delay: 5,
            base_delay: Duration::from_secs(10),
            ..Default::default()
        })
    }

    #[test]
    fn delay_starts_at_the_threshold_and_doubles() {
        let t = throttle();
        for _ in 0..2 {
            t.failure("u", None);
        }
        assert!(t.check("u", None).is_ok());
        t.failure("u", None);
        let Err(ServiceError::TooManyRequests { retry_after, .. }) = t.check("u", None) else { panic!("throttled") };
        assert_eq!(retry_after, 10);
        t.failure("u", None);
        let Err(ServiceError::TooManyRequests { retry_after, .. }) = t.check("u", None) else { panic!("throttled") };
        assert_eq!(retry_after, 20);
        t.success("u");
        assert!(t.check("u", None).is_ok());
    }

    #[test]
    fn address_counts_over_usernames() {
        let t = throttle();
        let addr = Some(IpAddr::from([10, 0, 0, 1]));
        for i in 0..5 {
            assert!(t.check(&format!("user{i}"), addr).is_ok());
            t.failure(&format!("user{i}"), addr);
        }
        assert!(t.check("someone-else", addr).is_err());
        assert!(t.check("someone-else", Some(IpAddr::from([10, 0, 0, 2]))).is_ok());
    }

    #[tokio::test]
    async fn pool_refuses_beyond_its_queue() {
        let pool = HashPool::new(1, 1);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let p = pool.clone();
        let first = tokio::spawn(async move { p.run(move || rx.recv().is_ok()).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let p = pool.clone();
        let second = tokio::spawn(async move { p.run(|| true).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(matches!(pool.run(|| true).await, Err(ServiceError::Unavailable { .. })));
        tx.send(()).expect("send");
        assert!(first.await.expect("join").expect("ran"));
        assert!(second.await.expect("join").expect("ran"));
        assert!(pool.run(|| true).await.expect("room again"));
    }
}
