//! The engine's wall time. Every timestamp the engine writes or compares (leases, `not_before`, item
//! deadlines, backup times) comes from its [`Clock`]; every wait goes through `tokio::time`. A test that runs
//! tokio with paused time and gives the engine a [`TokioClock`] therefore runs leases, backoffs and
//! deadlines on simulated time: hours pass in milliseconds, and the same inputs give the same run.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use keyfleet_core::time::{from_micros, to_micros};

pub trait Clock: Send + Sync + Debug {
    /// Now, at the precision keyfleet stores (whole microseconds).
    fn now(&self) -> DateTime<Utc>;
}

/// The real wall clock ([`keyfleet_core::time::now`]); the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        keyfleet_core::time::now()
    }
}

/// Wall time that follows tokio's clock: `start` plus the tokio time elapsed since the clock was made. Under
/// tokio's paused time (`#[tokio::test(start_paused = true)]`) it moves only when every task waits.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self { start, origin: tokio::time::Instant::now() }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        from_micros(to_micros(self.start) + self.origin.elapsed().as_micros() as i64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_moves_with_paused_time() {
        let start = from_micros(1_700_000_000_000_000);
        let clock = TokioClock::starting_at(start);
        assert_eq!(clock.now(), start);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
    }
}
