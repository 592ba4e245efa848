//! The job state machine as the store enforces it, on a real SQLite file.

use chrono::Duration;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::{JobStore, SqliteStore};

fn later_of(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    t + Duration::seconds(60)
}

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("t.db")).await.expect("open");
    store.migrate().await.expect("migrate");
    (dir, store)
}

fn job(total: i64) -> JobRecord {
    let at = now();
    JobRecord {
        id: JobId::new(),
        cloud: "aws".into(),
        operation: Operation::DisableKey,
        params: JobParams::default(),
        status: JobStatus::InProgress,
        abort: false,
        created_by: UserId::new(),
        total,
        succeeded: 0,
        failed: 0,
        skipped: 0,
        created_at: at,
        updated_at: at,
        completed_at: None,
    }
}

const P: &str = "111122223333/us-east-1";

fn items(n: usize) -> Vec<NewItem> {
    (0..n).map(|_| NewItem { key_id: KeyId::new(), partition: P.to_string() }).collect()
}

fn success() -> ItemOutcome {
    ItemOutcome::Succeeded {
        detail: "Success".into(),
        state_before: Some("Enabled".into()),
        state_after: Some("Disabled".into()),
    }
}

#[tokio::test]
async fn items_are_claimed_once_and_the_last_finish_completes_the_job() {
    let (_d, s) = store().await;
    let j = job(3);
    s.create_job(&j, &items(3)).await.expect("create");
    let lease = now() + Duration::seconds(30);
    let a = s.claim_items("a", P, now(), lease, 2).await.expect("claim");
    let b = s.claim_items("b", P, now(), lease, 5).await.expect("claim");
    assert_eq!((a.len(), b.len()), (2, 1));
    assert!(s.claim_items("c", P, now(), lease, 5).await.expect("claim").is_empty());
    assert_eq!(a[0].attempts, 1);

    // A worker that does not hold the lease cannot write.
    assert!(!s.finish_item(j.id, b[0].seq, "a", &success(), now()).await.expect("fenced"));
    for c in &a {
        assert!(s.finish_item(j.id, c.seq, "a", &success(), now()).await.expect("finish"));
    }
    let mid = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!((mid.status, mid.succeeded), (JobStatus::InProgress, 2));
    let failed = ItemOutcome::Failed {
        code: "KMSInvalidStateException".into(),
        message: "pending deletion".into(),
        state_before: None,
    };
    assert!(s.finish_item(j.id, b[0].seq, "b", &failed, now()).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.completed_at.is_some());
    let items = s.job_items(j.id).await.expect("items");
    assert_eq!(items[b[0].seq as usize].detail.as_deref(), Some("Failed: KMSInvalidStateException: pending deletion"));
}

#[tokio::test]
async fn expired_leases_return_to_pending_and_the_old_owner_is_fenced_out() {
    let (_d, s) = store().await;
    let j = job(1);
    s.create_job(&j, &items(1)).await.expect("create");
    let t0 = now();
    let a = s.claim_items("a", P, t0, t0 + Duration::seconds(1), 1).await.expect("claim");
    assert_eq!(s.release_expired_leases(t0 + Duration::seconds(2)).await.expect("release"), 1);
    let b = s.claim_items("b", P, t0 + Duration::seconds(2), t0 + Duration::seconds(60), 1).await.expect("claim");
    assert_eq!(b[0].attempts, 2, "the attempt count survives the reclaim");
    assert!(!s.finish_item(j.id, a[0].seq, "a", &success(), now()).await.expect("fenced"));
    assert!(s.finish_item(j.id, b[0].seq, "b", &success(), now()).await.expect("finish"));
}

#[tokio::test]
async fn cancel_skips_pending_items_and_waits_for_in_flight_ones() {
    let (_d, s) = store().await;
    let j = job(3);
    s.create_job(&j, &items(3)).await.expect("create");
    let lease = now() + Duration::seconds(30);
    let a = s.claim_items("a", P, now(), lease, 1).await.expect("claim");
    let after = s.cancel_job(j.id, now()).await.expect("cancel").expect("exists");
    assert!(after.abort);
    assert_eq!((after.status, after.skipped), (JobStatus::InProgress, 2));
    assert!(s.finish_item(j.id, a[0].seq, "a", &success(), now()).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Cancelled);
    // Cancel on a terminal job changes nothing but `abort`.
    let again = s.cancel_job(j.id, now()).await.expect("cancel").expect("exists");
    assert_eq!((again.status, again.updated_at), (done.status, done.updated_at));
}

#[tokio::test]
async fn a_retry_waits_for_its_time_and_a_job_whose_items_all_failed_is_failed() {
    let (_d, s) = store().await;
    let j = job(1);
    s.create_job(&j, &items(1)).await.expect("create");
    let t0 = now();
    let a = s.claim_items("a", P, t0, t0 + Duration::seconds(30), 1).await.expect("claim");
    let retry = ItemOutcome::Retry {
        code: "ThrottlingException".into(),
        message: "slow down".into(),
        not_before: t0 + Duration::seconds(5),
    };
    assert!(s.finish_item(j.id, a[0].seq, "a", &retry, t0).await.expect("retry"));
    assert!(s.claim_items("a", P, t0, t0 + Duration::seconds(30), 1).await.expect("claim").is_empty());
    let due = s.pending_partitions().await.expect("partitions");
    assert_eq!(due, vec![(P.to_string(), t0 + Duration::seconds(5))]);
    assert!(s.claim_items("a", "other/region", later_of(t0), later_of(t0), 1).await.expect("claim").is_empty());
    let later = t0 + Duration::seconds(6);
    let b = s.claim_items("a", P, later, later + Duration::seconds(30), 1).await.expect("claim");
    let failed = ItemOutcome::Failed { code: "AccessDeniedException".into(), message: "no".into(), state_before: None };
    assert!(s.finish_item(j.id, b[0].seq, "a", &failed, later).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Failed);
    let items = s.job_items(j.id).await.expect("items");
    assert_eq!((items[0].attempts, items[0].last_error_code.as_deref()), (2, Some("AccessDeniedException")));
}
