//! Job lists at depth: every page of a list in creation order, however deep its `skip`, holds exactly what
//! counting rows from the start would, with the right `total`, also after jobs are added and deleted (on this
//! node or another) — on a real SQLite file and a real PostgreSQL database.

#[macro_use]
mod common;

use chrono::Duration;
use common::*;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::Store;

on_both_backends!(
    deep_pages_match_counting_from_the_start_before_and_after_the_list_changes,
    item_pages_are_ranges_of_item_numbers_with_the_job_s_total,
);

/// More than two of the store's remembered intervals (1,000 jobs), so that pages seek from a remembered
/// position, and ties of `created_at`, which keep insertion order.
const JOBS: usize = 2_345;

async fn deep_pages_match_counting_from_the_start_before_and_after_the_list_changes(db: &TestDb) {
    let s = db.store();
    let (alice, bob) = (UserId::new(), UserId::new());
    let t0 = now() - Duration::days(1);
    // Jobs in insertion order, three at a time sharing a microsecond, every third one bob's.
    let mut made: Vec<JobRecord> = (0..JOBS)
        .map(|i| {
            let at = t0 + Duration::microseconds((i / 3) as i64);
            let who = if i % 3 == 0 { bob } else { alice };
            JobRecord {
                status: JobStatus::Completed,
                ..JobRecord::started(Cloud::Aws, Operation::DisableKey, JobParams::default(), who, at)
            }
        })
        .collect();
    // One at a time: the row number follows this order.
    for j in &made {
        s.create_job(j, &[]).await.expect("create");
    }
    let everyone = JobFilter { cloud: Some("aws".into()), ..Default::default() };
    check_pages(s, &made, &everyone, alice).await;

    // A job added through another connection (a second node on PostgreSQL) and one deleted: every position
    // moves, the remembered ones are taken again.
    let other = db.node().await;
    let newest = JobRecord {
        status: JobStatus::Completed,
        ..JobRecord::started(Cloud::Aws, Operation::EnableKey, JobParams::default(), alice, now())
    };
    other.create_job(&newest, &[]).await.expect("create on another node");
    made.push(newest);
    let gone = made.remove(1_500);
    assert_eq!(other.delete_job(gone.id).await.expect("delete"), Some(true));
    check_pages(s, &made, &everyone, alice).await;
}

/// Every page shape the API asks for, against the expected order computed here.
async fn check_pages(s: &dyn Store, made: &[JobRecord], everyone: &JobFilter, alice: UserId) {
    let by = |who: Option<UserId>, op: Option<Operation>| -> Vec<JobId> {
        made.iter()
            .filter(|j| who.is_none_or(|w| j.created_by == w) && op.is_none_or(|o| j.operation == o))
            .map(|j| j.id)
            .collect()
    };
    let alices = JobFilter { created_by: Some(alice), ..everyone.clone() };
    let enables = JobFilter { operation: Some(Operation::EnableKey), ..everyone.clone() };
    for (filter, oldest) in
        [(everyone, by(None, None)), (&alices, by(Some(alice), None)), (&enables, by(None, Some(Operation::EnableKey)))]
    {
        let newest: Vec<JobId> = {
            // Newest first; ties (same microsecond) stay in insertion order.
            let mut v: Vec<(i64, usize, JobId)> = made
                .iter()
                .enumerate()
                .filter(|(_, j)| oldest.contains(&j.id))
                .map(|(i, j)| (-j.created_at.timestamp_micros(), i, j.id))
                .collect();
            v.sort();
            v.into_iter().map(|(_, _, id)| id).collect()
        };
        let n = oldest.len() as u64;
        for (sort, expected) in [(&[][..], &newest), (&["-createdAt"][..], &newest), (&["createdAt"][..], &oldest)] {
            // Twice each: the first may remember positions, the second seeks from them.
            for _ in 0..2 {
                for skip in [0, 7, 999, 1_000, 1_001, 1_562, 1_999, 2_000, 2_003, n.saturating_sub(3), n, n + 5] {
                    let (jobs, total) = s.list_jobs(filter, &page(skip, 10, sort)).await.expect("list");
                    let got: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
                    let want: Vec<JobId> = expected.iter().skip(skip as usize).take(10).copied().collect();
                    assert_eq!(total, n, "total of {filter:?}");
                    assert_eq!(got, want, "{filter:?} sorted {sort:?} at skip {skip}");
                }
            }
        }
    }
    // A list the counters do not answer (a status filter) still counts right.
    let done = JobFilter { status: Some(JobStatus::Completed), ..everyone.clone() };
    assert_eq!(s.list_jobs(&done, &page(1_500, 10, &[])).await.expect("list").1, made.len() as u64);
}

async fn item_pages_are_ranges_of_item_numbers_with_the_job_s_total(db: &TestDb) {
    let s = db.store();
    let j = job(2_500);
    s.create_job(&j, &items(2_500)).await.expect("create");
    for skip in [0, 1, 1_234, 2_495, 2_499, 2_500, 9_999] {
        let (items, total) = s.list_items(j.id, None, &page(skip, 10, &[])).await.expect("items");
        let seqs: Vec<i64> = items.iter().map(|i| i.seq).collect();
        let want: Vec<i64> = (skip as i64..2_500).take(10).collect();
        assert_eq!((seqs, total), (want, 2_500), "skip {skip}");
    }
    let empty = job(0);
    s.create_job(&empty, &[]).await.expect("create");
    let (none, total) = s.list_items(empty.id, None, &page(0, 10, &[])).await.expect("items");
    assert_eq!((none.len(), total), (0, 0));
    // What a view shows of them: every item in key order, for several jobs in one read.
    let small = job(3);
    let keys = items(3);
    s.create_job(&small, &keys).await.expect("create");
    let lines = s.item_lines(&[small.id, empty.id], None).await.expect("lines");
    let got: Vec<(JobId, KeyId, ItemStatus)> = lines.iter().map(|l| (l.job_id, l.key_id, l.status)).collect();
    let want: Vec<(JobId, KeyId, ItemStatus)> =
        keys.iter().map(|k| (small.id, k.key_id, ItemStatus::Pending)).collect();
    assert_eq!(got, want);
    assert!(s.item_lines(&[j.id], Some(5)).await.expect("failed lines").is_empty(), "no failures yet");
}
