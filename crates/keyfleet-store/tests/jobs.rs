//! The job state machine as the store enforces it, on a real SQLite file and a real PostgreSQL database.

#[macro_use]
mod common;

use chrono::Duration;
use common::*;
use keyfleet_core::time::now;
use keyfleet_core::*;
use keyfleet_store::{AwsRegionKeys, Lease, Refusal};

on_both_backends!(
    items_are_claimed_once_and_the_last_finish_completes_the_job,
    expired_leases_return_to_pending_and_the_old_owner_is_fenced_out,
    cancel_skips_pending_items_and_waits_for_in_flight_ones,
    a_retry_waits_for_its_time_and_a_job_whose_items_all_failed_is_failed,
    claims_take_due_items_oldest_first_and_carry_the_jobs_operation,
    cancel_of_a_job_with_nothing_in_flight_ends_it_and_unknown_jobs_are_none,
    a_selector_job_holds_the_matching_live_keys_in_account_region_order,
    refused_credentials_fail_the_pending_items_of_that_connection_only,
    items_handed_back_unsent_are_pending_again_or_meet_their_jobs_stop,
    a_claim_is_fenced_from_a_later_claim_of_the_same_node,
    a_late_heartbeat_never_shortens_a_lease,
    a_due_retry_is_claimed_before_fresh_items,
    jobs_and_items_list_with_filters_sorting_and_totals,
);

async fn items_are_claimed_once_and_the_last_finish_completes_the_job(db: &TestDb) {
    let s = db.store();
    let j = job(3);
    s.create_job(&j, &items(3)).await.expect("create");
    let lease = now() + Duration::seconds(30);
    let a = s.claim_items(P, Lease::new("a", now(), lease), 2).await.expect("claim");
    let b = s.claim_items(P, Lease::new("b", now(), lease), 5).await.expect("claim");
    assert_eq!((a.len(), b.len()), (2, 1));
    assert!(s.claim_items(P, Lease::new("c", now(), lease), 5).await.expect("claim").is_empty());
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
    // Finishing twice is fenced too: the item is no longer running.
    assert!(!s.finish_item(j.id, b[0].seq, "b", &success(), now()).await.expect("fenced"));
}

async fn expired_leases_return_to_pending_and_the_old_owner_is_fenced_out(db: &TestDb) {
    let s = db.store();
    let j = job(1);
    s.create_job(&j, &items(1)).await.expect("create");
    let t0 = now();
    let a = s.claim_items(P, Lease::new("a", t0, t0 + Duration::seconds(1)), 1).await.expect("claim");
    // A heartbeat extends only the owner's leases.
    assert_eq!(s.renew_leases("nobody", t0 + Duration::seconds(5)).await.expect("renew"), 0);
    assert_eq!(s.renew_leases("a", t0 + Duration::seconds(2)).await.expect("renew"), 1);
    assert_eq!(s.release_expired_leases(t0 + Duration::seconds(2)).await.expect("release"), 0, "renewed");
    assert_eq!(s.release_expired_leases(t0 + Duration::seconds(3)).await.expect("release"), 1);
    let b = s
        .claim_items(P, Lease::new("b", t0 + Duration::seconds(3), t0 + Duration::seconds(60)), 1)
        .await
        .expect("claim");
    assert_eq!(b[0].attempts, 2, "the attempt count survives the reclaim");
    assert_eq!(b[0].first_attempt_at, a[0].first_attempt_at, "the deadline still counts from the first attempt");
    assert!(!s.finish_item(j.id, a[0].seq, "a", &success(), now()).await.expect("fenced"));
    assert!(s.finish_item(j.id, b[0].seq, "b", &success(), now()).await.expect("finish"));
}

async fn cancel_skips_pending_items_and_waits_for_in_flight_ones(db: &TestDb) {
    let s = db.store();
    let j = job(3);
    s.create_job(&j, &items(3)).await.expect("create");
    let lease = now() + Duration::seconds(30);
    let a = s.claim_items(P, Lease::new("a", now(), lease), 1).await.expect("claim");
    let after = s.cancel_job(j.id, now()).await.expect("cancel").expect("exists");
    assert!(after.abort);
    assert!(s.job_aborted(j.id).await.expect("aborted"));
    assert_eq!((after.status, after.skipped), (JobStatus::InProgress, 2));
    assert!(s.finish_item(j.id, a[0].seq, "a", &success(), now()).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Cancelled);
    // Cancel on a terminal job changes nothing but `abort`.
    let again = s.cancel_job(j.id, now()).await.expect("cancel").expect("exists");
    assert_eq!((again.status, again.updated_at), (done.status, done.updated_at));
    let items = s.job_items(j.id).await.expect("items");
    let details: Vec<_> = items.iter().map(|i| (i.status, i.detail.as_deref())).collect();
    assert_eq!(
        details,
        vec![
            (ItemStatus::Succeeded, Some("Success")),
            (ItemStatus::Skipped, Some("Skipped: cancelled")),
            (ItemStatus::Skipped, Some("Skipped: cancelled")),
        ]
    );
}

async fn a_retry_waits_for_its_time_and_a_job_whose_items_all_failed_is_failed(db: &TestDb) {
    let s = db.store();
    let j = job(1);
    s.create_job(&j, &items(1)).await.expect("create");
    let t0 = now();
    let a = s.claim_items(P, Lease::new("a", t0, t0 + Duration::seconds(30)), 1).await.expect("claim");
    let retry = ItemOutcome::Retry {
        code: "ThrottlingException".into(),
        message: "slow down".into(),
        not_before: t0 + Duration::seconds(5),
    };
    assert!(s.finish_item(j.id, a[0].seq, "a", &retry, t0).await.expect("retry"));
    assert!(s.claim_items(P, Lease::new("a", t0, t0 + Duration::seconds(30)), 1).await.expect("claim").is_empty());
    let due = s.pending_partitions().await.expect("partitions");
    assert_eq!(due, vec![(P.to_string(), t0 + Duration::seconds(5))]);
    assert!(
        s.claim_items("other/region", Lease::new("a", later(t0, 60), later(t0, 60)), 1)
            .await
            .expect("claim")
            .is_empty()
    );
    let at = t0 + Duration::seconds(6);
    let b = s.claim_items(P, Lease::new("a", at, at + Duration::seconds(30)), 1).await.expect("claim");
    let failed = ItemOutcome::Failed { code: "AccessDeniedException".into(), message: "no".into(), state_before: None };
    assert!(s.finish_item(j.id, b[0].seq, "a", &failed, at).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(done.status, JobStatus::Failed);
    let items = s.job_items(j.id).await.expect("items");
    assert_eq!((items[0].attempts, items[0].last_error_code.as_deref()), (2, Some("AccessDeniedException")));
    assert!(s.pending_partitions().await.expect("partitions").is_empty());
}

async fn claims_take_due_items_oldest_first_and_carry_the_jobs_operation(db: &TestDb) {
    let s = db.store();
    let mut first = job(4);
    first.operation = Operation::ScheduleKeyDeletion;
    first.params = JobParams { days: Some(7), ..Default::default() };
    let first_items = items(4);
    s.create_job(&first, &first_items).await.expect("create");
    let second = job(2);
    s.create_job(&second, &items(2)).await.expect("create");
    s.create_job(&job(1), &items_in("444455556666/eu-west-1", 1)).await.expect("create");
    let t0 = now();

    // Push item 0 of the first job into the future: due items come first, then the oldest.
    let a = s.claim_items(P, Lease::new("w", t0, later(t0, 30)), 1).await.expect("claim");
    assert_eq!((a[0].job_id, a[0].seq, a[0].key_id), (first.id, 0, first_items[0].key_id));
    let retry = ItemOutcome::Retry { code: "Throttling".into(), message: "x".into(), not_before: later(t0, 10) };
    assert!(s.finish_item(first.id, 0, "w", &retry, t0).await.expect("retry"));

    let got = s.claim_items(P, Lease::new("w", t0, later(t0, 30)), 4).await.expect("claim");
    let got: Vec<_> = got.iter().map(|c| (c.job_id, c.seq)).collect();
    let mut want = vec![(first.id, 1), (first.id, 2), (first.id, 3), (second.id, 0)];
    want.sort();
    assert_eq!(got, want, "returned in (job, seq) order");

    let rest = s.claim_items(P, Lease::new("w", later(t0, 11), later(t0, 41)), 10).await.expect("claim");
    let rest: Vec<_> = rest.iter().map(|c| (c.job_id, c.seq, c.attempts)).collect();
    let mut want = vec![(first.id, 0, 2), (second.id, 1, 1)];
    want.sort();
    assert_eq!(rest, want);

    let again = s.claim_items(P, Lease::new("w", later(t0, 11), later(t0, 41)), 10).await.expect("claim");
    assert!(again.is_empty());
    let a = s.claim_items("444455556666/eu-west-1", Lease::new("w", t0, later(t0, 30)), 10).await.expect("claim");
    assert_eq!(a.len(), 1);
    let running = s.list_items(first.id, Some(ItemStatus::Running), &page(0, 10, &[])).await.expect("items");
    assert_eq!(running.1, 4);

    // What a worker needs comes with the claim, also when the item comes back after a lost lease.
    assert_eq!(s.release_expired_leases(later(t0, 60)).await.expect("release"), 7);
    let reclaimed = s.claim_items(P, Lease::new("w", later(t0, 60), later(t0, 90)), 1).await.expect("claim");
    assert_eq!((reclaimed[0].job_id, reclaimed[0].seq), (first.id, 1));
    assert_eq!((reclaimed[0].operation, reclaimed[0].params.days), (Operation::ScheduleKeyDeletion, Some(7)));
}

async fn cancel_of_a_job_with_nothing_in_flight_ends_it_and_unknown_jobs_are_none(db: &TestDb) {
    let s = db.store();
    let j = job(2);
    s.create_job(&j, &items(2)).await.expect("create");
    assert!(!s.job_aborted(j.id).await.expect("aborted"));
    let t = later(now(), 1);
    let after = s.cancel_job(j.id, t).await.expect("cancel").expect("exists");
    assert_eq!(
        (after.status, after.skipped, after.abort, after.completed_at),
        (JobStatus::Cancelled, 2, true, Some(t))
    );
    assert!(s.claim_items(P, Lease::new("w", t, later(t, 30)), 10).await.expect("claim").is_empty());

    assert!(s.cancel_job(JobId::new(), now()).await.expect("cancel").is_none());
    assert!(s.get_job(JobId::new()).await.expect("get").is_none());
    assert!(s.job_aborted(JobId::new()).await.expect("aborted"), "an unknown job counts as aborted");

    // A job whose last item fails is failed only if every item failed; one skipped makes it completed.
    let j = job(2);
    s.create_job(&j, &items(2)).await.expect("create");
    let c = s.claim_items(P, Lease::new("w", now(), later(now(), 30)), 2).await.expect("claim");
    let skipped = ItemOutcome::Skipped { reason: "key is gone".into() };
    let failed = ItemOutcome::Failed { code: "NotFoundException".into(), message: "x".into(), state_before: None };
    assert!(s.finish_item(j.id, c[0].seq, "w", &skipped, now()).await.expect("finish"));
    assert!(s.finish_item(j.id, c[1].seq, "w", &failed, now()).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!((done.status, done.skipped, done.failed), (JobStatus::Completed, 1, 1));
    assert_eq!(s.job_items(j.id).await.expect("items")[0].detail.as_deref(), Some("Skipped: key is gone"));
}

/// Two containers in two accounts, keys in two regions, some tagged and aliased, one gone.
async fn inventory(db: &TestDb) -> (KmsRecord, KmsRecord, ConnectionId) {
    let s = db.store();
    let conn = connection("main");
    s.insert_aws_connection(&conn).await.expect("connection");
    let other_conn = connection("other");
    s.insert_aws_connection(&other_conn).await.expect("connection");
    // Inserted in the "wrong" account order, to show the selector orders by account.
    let b = kms("b", "222222222222", other_conn.id, &["us-east-1", "eu-west-1"]);
    let a = kms("a", "111111111111", conn.id, &["us-east-1", "eu-west-1"]);
    s.insert_kms(&b).await.expect("kms");
    s.insert_kms(&a).await.expect("kms");
    let at = now();
    let keys = |names: &[&str]| -> Vec<AwsKeyMaterial> {
        names
            .iter()
            .map(|n| {
                let (tags, aliases): (&[(&str, &str)], &[&str]) = match *n {
                    "k2" => (&[("team", "red"), ("env", "prod")], &["alias/app-one"]),
                    "k3" => (&[("team", "blue")], &["alias/app-two", "alias/other"]),
                    "k5" => (&[("team", "red")], &["alias/other"]),
                    _ => (&[], &[]),
                };
                material(n, if *n == "k4" { "Disabled" } else { "Enabled" }, tags, aliases)
            })
            .collect()
    };
    s.sync_aws_region(&AwsRegionKeys { kms_id: b.id, region: "us-east-1", keys: &keys(&["k5"]) }, at)
        .await
        .expect("sync");
    s.sync_aws_region(&AwsRegionKeys { kms_id: a.id, region: "us-east-1", keys: &keys(&["k3", "k1", "k2"]) }, at)
        .await
        .expect("sync");
    s.sync_aws_region(&AwsRegionKeys { kms_id: a.id, region: "eu-west-1", keys: &keys(&["k4", "k6"]) }, at)
        .await
        .expect("sync");
    // k6 leaves AWS.
    s.sync_aws_region(&AwsRegionKeys { kms_id: a.id, region: "eu-west-1", keys: &keys(&["k4"]) }, later(at, 1))
        .await
        .expect("sync");
    (a, b, conn.id)
}

fn selector() -> KeySelector {
    KeySelector::default()
}

async fn a_selector_job_holds_the_matching_live_keys_in_account_region_order(db: &TestDb) {
    let s = db.store();
    let (a, b, _) = inventory(db).await;
    let all = s.count_selector(&selector()).await.expect("count");
    assert_eq!(all, 5, "the gone key is never selected");

    let j = job(0);
    let n = s.create_job_from_selector(&j, &selector()).await.expect("create");
    assert_eq!(n, 5);
    let stored = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!(stored.total, 5);
    let items = s.job_items(j.id).await.expect("items");
    let keys = s.aws_keys_by_ids(&items.iter().map(|i| i.key_id).collect::<Vec<_>>()).await.expect("keys");
    let by_id = |id: KeyId| keys.iter().find(|k| k.id == id).expect("key").material.key_id.clone();
    let order: Vec<(i64, String)> = items.iter().map(|i| (i.seq, by_id(i.key_id))).collect();
    // account 111… before 222…; in an account, eu-west-1 before us-east-1; in a region, sync order.
    assert_eq!(order, vec![(0, "k4".into()), (1, "k3".into()), (2, "k1".into()), (3, "k2".into()), (4, "k5".into())]);
    let parts = s.pending_partitions().await.expect("partitions");
    let parts: Vec<&str> = parts.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(parts, vec!["111111111111/eu-west-1", "111111111111/us-east-1", "222222222222/us-east-1"]);
    // Claims follow the selector's order.
    let c = s.claim_items("111111111111/us-east-1", Lease::new("w", now(), later(now(), 30)), 2).await.expect("claim");
    assert_eq!(c.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![1, 2]);

    let count = |sel: KeySelector| async move { s.count_selector(&sel).await.expect("count") };
    assert_eq!(count(KeySelector { kms: vec![b.id], ..selector() }).await, 1);
    assert_eq!(count(KeySelector { kms: vec![a.id, b.id], ..selector() }).await, 5);
    assert_eq!(count(KeySelector { regions: vec!["eu-west-1".into()], ..selector() }).await, 1);
    assert_eq!(count(KeySelector { key_state: Some("Disabled".into()), ..selector() }).await, 1);
    assert_eq!(count(KeySelector { alias_prefix: Some("alias/app-".into()), ..selector() }).await, 2);
    assert_eq!(count(KeySelector { alias_prefix: Some("alias/other".into()), ..selector() }).await, 2);
    assert_eq!(count(KeySelector { alias_prefix: Some("app-".into()), ..selector() }).await, 0, "a prefix");
    assert_eq!(count(KeySelector { tags: vec![("team".into(), None)], ..selector() }).await, 3);
    assert_eq!(count(KeySelector { tags: vec![("team".into(), Some("red".into()))], ..selector() }).await, 2);
    assert_eq!(count(KeySelector { tags: vec![("red".into(), None)], ..selector() }).await, 0, "a value is no key");
    assert_eq!(
        count(KeySelector { tags: vec![("team".into(), Some("red".into())), ("env".into(), None)], ..selector() })
            .await,
        1
    );
    assert_eq!(
        count(KeySelector { kms: vec![a.id], tags: vec![("team".into(), Some("red".into()))], ..selector() }).await,
        1
    );

    let narrow = KeySelector { tags: vec![("team".into(), Some("red".into()))], ..selector() };
    let j2 = job(0);
    assert_eq!(s.create_job_from_selector(&j2, &narrow).await.expect("create"), 2);
    let items = s.job_items(j2.id).await.expect("items");
    assert_eq!(items.iter().map(|i| i.seq).collect::<Vec<_>>(), vec![0, 1]);
    // A selector that matches nothing makes an empty job (the caller decides what that means).
    let none = KeySelector { key_state: Some("PendingDeletion".into()), ..selector() };
    assert_eq!(s.create_job_from_selector(&job(0), &none).await.expect("create"), 0);
}

async fn refused_credentials_fail_the_pending_items_of_that_connection_only(db: &TestDb) {
    let s = db.store();
    let (_, _, conn) = inventory(db).await;
    let j = job(0);
    assert_eq!(s.create_job_from_selector(&j, &selector()).await.expect("create"), 5);
    // One item of the refused connection is in flight: it is left to its worker.
    let running =
        s.claim_items("111111111111/eu-west-1", Lease::new("w", now(), later(now(), 30)), 1).await.expect("claim");
    let t = later(now(), 1);
    let n = s
        .fail_pending_for_connection(
            j.id,
            &Refusal { connection: conn, code: "UnrecognizedClientException", message: "bad key" },
            t,
        )
        .await
        .expect("fail");
    assert_eq!(n, 3);
    let mid = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!((mid.status, mid.failed), (JobStatus::InProgress, 3));
    let failed = s.list_items(j.id, Some(ItemStatus::Failed), &page(0, 10, &[])).await.expect("items");
    assert_eq!(failed.1, 3);
    assert!(failed.0.iter().all(|i| i.detail.as_deref() == Some("Failed: UnrecognizedClientException: bad key")
        && i.last_error_code.as_deref() == Some("UnrecognizedClientException")
        && i.updated_at == t));
    assert_eq!(
        s.fail_pending_for_connection(j.id, &Refusal { connection: conn, code: "X", message: "y" }, t)
            .await
            .expect("again"),
        0
    );

    let failed = ItemOutcome::Failed {
        code: "UnrecognizedClientException".into(),
        message: "bad key".into(),
        state_before: None,
    };
    assert!(s.finish_item(j.id, running[0].seq, "w", &failed, t).await.expect("finish"));
    let other = s.claim_items("222222222222/us-east-1", Lease::new("w", t, later(t, 30)), 5).await.expect("claim");
    assert_eq!(other.len(), 1);
    assert!(s.finish_item(j.id, other[0].seq, "w", &success(), t).await.expect("finish"));
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!((done.status, done.failed, done.succeeded), (JobStatus::Completed, 4, 1));

    // When every item fails this way, the job ends as failed at once.
    let j = job(0);
    let only = KeySelector {
        kms: vec![],
        regions: vec!["us-east-1".into()],
        tags: vec![("team".into(), Some("blue".into()))],
        ..selector()
    };
    assert_eq!(s.create_job_from_selector(&j, &only).await.expect("create"), 1);
    assert_eq!(
        s.fail_pending_for_connection(j.id, &Refusal { connection: conn, code: "X", message: "y" }, t)
            .await
            .expect("fail"),
        1
    );
    let done = s.get_job(j.id).await.expect("get").expect("exists");
    assert_eq!((done.status, done.completed_at), (JobStatus::Failed, Some(t)));
}

async fn jobs_and_items_list_with_filters_sorting_and_totals(db: &TestDb) {
    let s = db.store();
    let user = UserId::new();
    let t0 = now();
    let mut made = Vec::new();
    for (i, op) in [Operation::EnableKey, Operation::DisableKey, Operation::EnableKey].into_iter().enumerate() {
        let mut j = job(2);
        j.operation = op;
        j.created_by = if i == 1 { user } else { UserId::new() };
        // Two jobs created in the same microsecond: the insertion order breaks the tie.
        j.created_at = if i == 2 { later(t0, 1) } else { t0 };
        j.updated_at = j.created_at;
        s.create_job(&j, &items(2)).await.expect("create");
        made.push(j);
    }
    // The second job ends.
    s.cancel_job(made[1].id, later(t0, 5)).await.expect("cancel");

    let ids = |v: &(Vec<JobRecord>, u64)| v.0.iter().map(|j| j.id).collect::<Vec<_>>();
    let all = s.list_jobs(&JobFilter::default(), &page(0, 10, &[])).await.expect("list");
    assert_eq!((ids(&all), all.1), (vec![made[2].id, made[0].id, made[1].id], 3), "newest first, then insertion");
    let paged = s.list_jobs(&JobFilter::default(), &page(1, 1, &["createdAt"])).await.expect("list");
    assert_eq!((ids(&paged), paged.1), (vec![made[1].id], 3));
    // SQLite's NULL order: unfinished jobs (no completed_at) first ascending, last descending.
    let asc = s.list_jobs(&JobFilter::default(), &page(0, 10, &["completed_at"])).await.expect("list");
    assert_eq!(ids(&asc), vec![made[0].id, made[2].id, made[1].id]);
    let desc = s.list_jobs(&JobFilter::default(), &page(0, 10, &["-completed_at"])).await.expect("list");
    assert_eq!(ids(&desc), vec![made[1].id, made[0].id, made[2].id]);
    let by_status =
        s.list_jobs(&JobFilter::default(), &page(0, 10, &["overall_status", "-createdAt"])).await.expect("list");
    assert_eq!(ids(&by_status), vec![made[1].id, made[2].id, made[0].id], "cancelled < in_progress");

    let f = JobFilter { operation: Some(Operation::EnableKey), ..Default::default() };
    let enables = s.list_jobs(&f, &page(0, 1, &["createdAt"])).await.expect("list");
    assert_eq!((ids(&enables), enables.1), (vec![made[0].id], 2));
    let f = JobFilter { created_by: Some(user), status: Some(JobStatus::Cancelled), ..Default::default() };
    assert_eq!(ids(&s.list_jobs(&f, &page(0, 10, &[])).await.expect("list")), vec![made[1].id]);
    let f = JobFilter { id: Some(made[2].id), cloud: Some("aws".into()), ..Default::default() };
    assert_eq!(ids(&s.list_jobs(&f, &page(0, 10, &[])).await.expect("list")), vec![made[2].id]);
    let f = JobFilter { cloud: Some("azure".into()), ..Default::default() };
    assert_eq!(s.list_jobs(&f, &page(0, 10, &[])).await.expect("list").1, 0);

    let (items, total) = s.list_items(made[0].id, None, &page(1, 5, &[])).await.expect("items");
    assert_eq!((items.iter().map(|i| i.seq).collect::<Vec<_>>(), total), (vec![1], 2));
    let (items, total) = s.list_items(made[1].id, Some(ItemStatus::Skipped), &page(0, 5, &[])).await.expect("items");
    assert_eq!((items.len(), total), (2, 2));
    assert_eq!(s.list_items(made[1].id, Some(ItemStatus::Pending), &page(0, 5, &[])).await.expect("items").1, 0);
}

async fn items_handed_back_unsent_are_pending_again_or_meet_their_jobs_stop(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let j = job(3);
    s.create_job(&j, &items(3)).await.expect("create");
    let c = s.claim_items(P, Lease::new("a", t0, later(t0, 30)), 3).await.expect("claim");
    // Only the claim's owner hands an item back, and the claim's attempt is undone.
    assert_eq!(s.return_unsent(j.id, &[(c[0].seq, 1)], "b", t0).await.expect("return"), 0);
    assert_eq!(s.return_unsent(j.id, &[(c[0].seq, 2)], "a", t0).await.expect("return"), 0, "another claim");
    assert_eq!(s.return_unsent(j.id, &[(c[0].seq, 1)], "a", t0).await.expect("return"), 1);
    let again = s.claim_items(P, Lease::new("a", t0, later(t0, 30)), 3).await.expect("claim");
    assert_eq!(again.iter().map(|i| (i.seq, i.attempts)).collect::<Vec<_>>(), vec![(c[0].seq, 1)]);

    // A cancel skips only pending items; what is handed back afterwards is skipped the same way, and the last
    // one ends the job.
    let during = s.cancel_job(j.id, t0).await.expect("cancel").expect("job");
    assert_eq!((during.status, during.skipped), (JobStatus::InProgress, 0));
    let all = [(c[0].seq, 1), (c[1].seq, 1), (c[2].seq, 1)];
    assert_eq!(s.return_unsent(j.id, &all, "a", later(t0, 1)).await.expect("return"), 3);
    let after = s.get_job(j.id).await.expect("get").expect("job");
    assert_eq!((after.status, after.skipped), (JobStatus::Cancelled, 3));
    let rows = s.job_items(j.id).await.expect("items");
    assert!(rows.iter().all(|i| i.detail.as_deref() == Some("Skipped: cancelled") && i.attempts == 0), "{rows:?}");

    // A failure threshold: the items handed back after the stop are skipped with its reason.
    let mut j = job(3);
    j.params.max_failures = Some(0);
    s.create_job(&j, &items(3)).await.expect("create");
    let c = s.claim_items(P, Lease::new("a", t0, later(t0, 30)), 3).await.expect("claim");
    let failed = ItemOutcome::Failed { code: "AccessDeniedException".into(), message: "no".into(), state_before: None };
    assert!(s.finish_item(j.id, c[0].seq, "a", &failed, t0).await.expect("finish"));
    assert_eq!(s.return_unsent(j.id, &[(c[1].seq, 1), (c[2].seq, 1)], "a", t0).await.expect("return"), 2);
    let after = s.get_job(j.id).await.expect("get").expect("job");
    assert_eq!((after.status, after.failed, after.skipped), (JobStatus::Failed, 1, 2));
    let reason = after.stop_reason.expect("stopped");
    let rows = s.job_items(j.id).await.expect("items");
    let skipped = keyfleet_core::rules::threshold_skipped_detail(&reason);
    assert_eq!(rows.iter().filter(|i| i.detail.as_deref() == Some(skipped.as_str())).count(), 2, "{rows:?}");
}

/// A retry waits out its backoff, then goes before the fresh items of its partition (it would otherwise run
/// only after all of them, at the end of the job).
async fn a_due_retry_is_claimed_before_fresh_items(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let j = job(4);
    s.create_job(&j, &items(4)).await.expect("create");
    let first = s.claim_items(P, Lease::new("a", t0, later(t0, 30)), 1).await.expect("claim");
    assert_eq!(first[0].seq, 0);
    let retry =
        ItemOutcome::Retry { code: "KMSInternalException".into(), message: "x".into(), not_before: later(t0, 2) };
    assert!(s.finish_item(j.id, 0, "a", &retry, later(t0, 1)).await.expect("finish"));
    // Not due yet: the fresh items go on.
    let next = s.claim_items(P, Lease::new("a", later(t0, 1), later(t0, 31)), 1).await.expect("claim");
    assert_eq!((next[0].seq, next[0].attempts), (1, 1));
    // Due: the retry first, then fresh items fill the claim, oldest first.
    let batch = s.claim_items(P, Lease::new("a", later(t0, 3), later(t0, 33)), 2).await.expect("claim");
    let got: Vec<(i64, i64)> = batch.iter().map(|c| (c.seq, c.attempts)).collect();
    assert_eq!(got, vec![(0, 2), (2, 1)]);
    let rest = s.claim_items(P, Lease::new("a", later(t0, 3), later(t0, 33)), 5).await.expect("claim");
    assert_eq!(rest.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![3]);
}

/// A heartbeat reads the clock, then writes; a node paused in between (or a statement queued behind others)
/// writes a lease end older than the one a claim made meanwhile. The claim's node counts on its own lease
/// end, so the store must keep the later one, for items and for partitions alike.
async fn a_late_heartbeat_never_shortens_a_lease(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let j = job(1);
    s.create_job(&j, &items(1)).await.expect("create");
    let claimed = s.claim_items(P, Lease::new("a", later(t0, 8), later(t0, 11)), 1).await.expect("claim");
    assert!(s.acquire_partition(P, Lease::new("a", later(t0, 8), later(t0, 11))).await.expect("partition"));
    // The heartbeat that read the clock at t0, arriving after the claim.
    assert_eq!(s.renew_leases("a", later(t0, 3)).await.expect("renew"), 1);
    s.renew_partitions("a", later(t0, 3)).await.expect("renew partitions");
    assert!(s.holds_item(j.id, claimed[0].seq, 1, "a", later(t0, 10)).await.expect("held"), "the claim's end stands");
    assert_eq!(s.release_expired_leases(later(t0, 10)).await.expect("reap"), 0);
    let other = Lease::new("b", later(t0, 10), later(t0, 13));
    assert!(!s.acquire_partition(P, other).await.expect("partition"), "the partition lease stands too");
    // A heartbeat still extends.
    assert_eq!(s.renew_leases("a", later(t0, 20)).await.expect("renew"), 1);
    assert!(s.holds_item(j.id, claimed[0].seq, 1, "a", later(t0, 19)).await.expect("held"));
}

/// A node paused past its lease may claim an item again that it still holds from before the pause: the
/// earlier claim must neither pass the lease check nor record its result onto the later claim.
async fn a_claim_is_fenced_from_a_later_claim_of_the_same_node(db: &TestDb) {
    let s = db.store();
    let t0 = now();
    let j = job(1);
    s.create_job(&j, &items(1)).await.expect("create");
    let first = s.claim_items(P, Lease::new("a", t0, later(t0, 3)), 1).await.expect("claim");
    assert!(s.holds_item(j.id, first[0].seq, 1, "a", t0).await.expect("held"));
    assert_eq!(s.release_expired_leases(later(t0, 4)).await.expect("reap"), 1);
    let second = s.claim_items(P, Lease::new("a", later(t0, 4), later(t0, 34)), 1).await.expect("claim");
    assert_eq!(second[0].attempts, 2);
    assert!(!s.holds_item(j.id, first[0].seq, 1, "a", later(t0, 5)).await.expect("held"), "the earlier claim");
    assert!(s.holds_item(j.id, first[0].seq, 2, "a", later(t0, 5)).await.expect("held"));
    let outcome = ItemOutcome::Skipped { reason: "stale".into() };
    let items = |attempt| {
        [keyfleet_store::FinishedItem {
            seq: first[0].seq,
            attempt: Some(attempt),
            outcome: &outcome,
            effect: keyfleet_store::ItemEffect::None,
            cloud_calls: &[],
            policy_before: None,
        }]
    };
    let stale = items(1);
    let batch = keyfleet_store::FinishedBatch { job: j.id, owner: "a", at: later(t0, 5), items: &stale };
    assert_eq!(s.finish_items(&batch).await.expect("finish"), vec![false]);
    let current = items(2);
    let batch = keyfleet_store::FinishedBatch { job: j.id, owner: "a", at: later(t0, 5), items: &current };
    assert_eq!(s.finish_items(&batch).await.expect("finish"), vec![true]);
}
