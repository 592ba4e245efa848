//! The engine under seeded faults on simulated time (see `harness/`). `KEYFLEET_SIM_SEEDS=N` runs seeds
//! 0..N (default 2000, spread over the machine's cores); `KEYFLEET_SIM_SEED=S` replays seed S alone.
#![allow(clippy::unwrap_used)]

mod harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")))
}

/// One seed's run; a panic inside it is a failure of that seed.
fn run(seed: u64) -> Result<harness::Trace, String> {
    catch_unwind(AssertUnwindSafe(|| harness::run_seed(seed))).unwrap_or_else(|p| {
        let what = p.downcast_ref::<String>().map(String::as_str).or(p.downcast_ref::<&str>().copied());
        Err(format!("panicked: {}", what.unwrap_or("?")))
    })
}

#[test]
fn every_seed_keeps_the_engines_promises() {
    let (first, count) = match env_u64("KEYFLEET_SIM_SEED") {
        Some(seed) => (seed, 1),
        None => (0, env_u64("KEYFLEET_SIM_SEEDS").unwrap_or(2000)),
    };
    let started = std::time::Instant::now();
    let next = AtomicU64::new(first);
    let failed: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count as usize).max(1);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= first + count || failed.lock().unwrap().as_ref().is_some_and(|(f, _)| *f < seed) {
                        return;
                    }
                    if let Err(why) = run(seed) {
                        let mut f = failed.lock().unwrap();
                        if f.as_ref().is_none_or(|(other, _)| seed < *other) {
                            *f = Some((seed, why));
                        }
                    }
                }
            });
        }
    });
    if let Some((seed, why)) = failed.into_inner().unwrap() {
        panic!(
            "simulation seed {seed} failed:\n{why}\n\nreplay it with:\n  \
             KEYFLEET_SIM_SEED={seed} cargo test -p keyfleet-engine --test sim -- --nocapture"
        );
    }
    eprintln!("{count} simulation seeds passed in {:.1?} ({threads} threads)", started.elapsed());
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 17] {
        let a = harness::run_seed(seed).expect("seed passes");
        let b = harness::run_seed(seed).expect("seed passes");
        assert!(!a.calls.is_empty());
        assert_eq!(a, b, "seed {seed} ran differently twice");
    }
}
