//! What `/readyz` and `/metrics` read from the store, on both backends.

#[macro_use]
mod common;

use common::*;
use keyfleet_core::time::now;

on_both_backends!(a_migrated_database_takes_the_probe_write_and_counts_jobs_by_status);

async fn a_migrated_database_takes_the_probe_write_and_counts_jobs_by_status(db: &TestDb) {
    let s = db.store();
    s.probe_write(now()).await.expect("probe");
    s.probe_write(now()).await.expect("the probe overwrites its row");
    assert_eq!(s.pending_migrations().await.expect("migrations"), Vec::<i64>::new());
    let pools = s.pool_stats();
    assert!(!pools.is_empty() && pools.iter().all(|p| p.max >= 1 && p.idle <= p.size), "{pools:?}");

    assert!(s.job_counts().await.expect("counts").is_empty());
    s.create_job(&job(2), &items(2)).await.expect("create");
    s.create_job(&job(1), &items(1)).await.expect("create");
    let counts = s.job_counts().await.expect("counts");
    assert_eq!(counts.len(), 1, "{counts:?}");
    let c = &counts[0];
    assert_eq!(
        (c.cloud.as_str(), c.operation.as_str(), c.status.as_str(), c.count),
        ("aws", "disablekey", "in_progress", 2)
    );
}
