use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::rules::{
    CANCELLED, Counter, FailureLimits, ItemChange, Progress, end_status, failed_detail, skipped_detail,
    threshold_skipped_detail,
};
use keyfleet_core::time::to_micros;
use keyfleet_core::*;
use sqlx::{Pool, Transaction};

use super::audit::{append, append_all};
use super::azure::push_backup_selector;
use super::inventory::{KEYS_PER_REFRESH, push_selector, refresh_aws_keys};
use super::{Backend, Db, Dialect, Fields, JsonParam, Query, limit_offset, list_page, order_by, row_by};
use crate::audit::{AuditEvent, event};
use crate::{Derived, FinishedBatch, ItemEffect, ItemLine, JobStore, Lease, Refusal, Result, StoreError, WorkQueue};

fn operation<D: Db>(r: &Fields<'_, D>) -> Result<Operation> {
    let op = r.text("operation")?;
    Operation::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("operation {op:?}")))
}

fn job_status<D: Db>(r: &Fields<'_, D>) -> Result<JobStatus> {
    let status = r.text("status")?;
    JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))
}

fn job<D: Db>(r: Fields<'_, D>) -> Result<JobRecord> {
    Ok(JobRecord {
        id: r.parse("id")?,
        cloud: r.text("cloud")?,
        operation: operation(&r)?,
        params: r.json("params")?,
        status: job_status(&r)?,
        abort: r.flag("abort")?,
        created_by: r.parse("created_by")?,
        total: r.int("total")?,
        succeeded: r.int("succeeded")?,
        failed: r.int("failed")?,
        skipped: r.int("skipped")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        completed_at: r.opt_ts("completed_at")?,
        plan: r.opt_json("plan")?,
        plan_expires_at: r.opt_ts("plan_expires_at")?,
        stop_reason: r.opt_text("stop_reason")?,
    })
}

/// The status a new job's items start in: a planned job's are never claimed until it is confirmed.
fn new_item_status(j: &JobRecord) -> ItemStatus {
    if j.status == JobStatus::Planned { ItemStatus::Planned } else { ItemStatus::Pending }
}

fn item<D: Db>(r: Fields<'_, D>) -> Result<ItemRecord> {
    let status = r.text("status")?;
    Ok(ItemRecord {
        job_id: r.parse("job_id")?,
        seq: r.int("seq")?,
        key_id: r.parse("key_id")?,
        status: ItemStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("item status {status:?}")))?,
        attempts: r.int("attempts")?,
        detail: r.opt_text("detail")?,
        last_error_code: r.opt_text("last_error_code")?,
        last_error_message: r.opt_text("last_error_message")?,
        state_before: r.opt_text("state_before")?,
        state_after: r.opt_text("state_after")?,
        restore_state: r.opt_text("restore_state")?,
        restores_policy: r.opt_text("restore_policy")?.is_some(),
        updated_at: r.ts("updated_at")?,
    })
}

fn aws_report_row<D: Db>(r: Fields<'_, D>) -> Result<ReportRow> {
    let material: Option<serde_json::Value> = r.opt_json("material")?;
    let alias = material.as_ref().and_then(|m| m.get("aliases")?.as_array()?.first()?.as_str().map(String::from));
    Ok(ReportRow {
        key_ref: r.opt_text("key_ref")?,
        key_name: alias,
        account: r.opt_text("account")?,
        location: r.opt_text("location")?,
        current_state: r.opt_text("current_state")?,
        item: item(r)?,
    })
}

fn azure_report_row<D: Db>(r: Fields<'_, D>) -> Result<ReportRow> {
    // The key's kid names its current version; the backup's version takes its place.
    let material: Option<serde_json::Value> = r.opt_json("material")?;
    let key_kid = material.as_ref().and_then(|m| m.get("kid")?.as_str().map(String::from));
    let kid = match (key_kid, r.opt_text("key_version")?) {
        (Some(kid), Some(version)) => kid.rsplit_once('/').map(|(key, _)| format!("{key}/{version}")),
        _ => None,
    };
    Ok(ReportRow {
        key_ref: kid,
        key_name: r.opt_text("key_name")?,
        account: r.opt_text("account")?,
        location: r.opt_text("location")?,
        current_state: r.opt_text("current_state")?,
        item: item(r)?,
    })
}

fn claimed<D: Db>(r: Fields<'_, D>) -> Result<ClaimedItem> {
    Ok(ClaimedItem {
        job_id: r.parse("job_id")?,
        seq: r.int("seq")?,
        key_id: r.parse("key_id")?,
        operation: operation(&r)?,
        params: r.json("params")?,
        partition: r.text("partition")?,
        attempts: r.int("attempts")?,
        first_attempt_at: r.ts("first_attempt_at")?,
        restore: match (r.opt_text("restore_state")?, r.opt_text("restore_policy")?) {
            (None, None) => None,
            (state, policy) => Some(Restore { state, policy }),
        },
    })
}

fn push_job_filter<D: Db>(q: &mut Query<D>, f: &JobFilter) {
    q.push(" WHERE true");
    if let Some(v) = f.id {
        q.push(" AND id = ").push_bind(v.to_string());
    }
    if let Some(v) = f.status {
        q.push(" AND status = ").push_bind(v.as_str());
    }
    push_counted_filter(q, f);
}

/// The parts of a job filter that `job_totals` counts by (cloud, operation, creator), as `AND` clauses.
fn push_counted_filter<D: Db>(q: &mut Query<D>, f: &JobFilter) {
    if let Some(v) = &f.cloud {
        q.push(" AND cloud = ").push_bind(v);
    }
    if let Some(v) = f.operation {
        q.push(" AND operation = ").push_bind(v.as_str());
    }
    if let Some(v) = f.created_by {
        q.push(" AND created_by = ").push_bind(v.to_string());
    }
}

/// The order of a job list: creation time, ties in insertion order (the row number ascending), served by an
/// index per direction (`jobs_by_cloud_created` and `jobs_by_cloud_created_desc`, migration 0009), so that a
/// position in it is a `(created_at, row number)` pair to seek to; or, sorted by anything else, `order_by`'s.
struct JobOrder {
    sql: String,
    /// `Some(descending)` in creation order.
    creation: Option<bool>,
    row_no: &'static str,
}

impl JobOrder {
    fn of(sort: &[SortKey], row_no: &'static str) -> JobOrder {
        let creation = match sort {
            [] => Some(true),
            [k] if k.field == "createdAt" => Some(k.descending),
            _ => None,
        };
        let sql = match creation {
            Some(descending) => {
                let dir = if descending { "DESC" } else { "ASC" };
                format!(" ORDER BY created_at {dir}, {row_no} ASC")
            }
            None => {
                let columns = &[
                    ("createdAt", "created_at"),
                    ("updatedAt", "updated_at"),
                    ("completed_at", "completed_at"),
                    ("overall_status", "status"),
                    ("operation", "operation"),
                    ("id", "id"),
                ];
                order_by(sort, columns, "created_at DESC", row_no)
            }
        };
        JobOrder { sql, creation, row_no }
    }

    /// Rows after `mark` in this order (`inclusive`: and the mark's own row). Written as a range of
    /// `created_at`, which the index seeks to, less the ties that come before the mark.
    fn push_after<D: Db>(&self, q: &mut Query<D>, mark: Mark, inclusive: bool) {
        let range = if self.creation.unwrap_or(true) { "<=" } else { ">=" };
        let before = if inclusive { "<" } else { "<=" };
        q.push(&format!(" AND created_at {range} ")).push_bind(mark.0);
        q.push(" AND NOT (created_at = ").push_bind(mark.0);
        q.push(&format!(" AND {} {before} ", self.row_no)).push_bind(mark.1).push(")");
    }
}

/// A position in a job list in creation order: `(created_at, row number)` of the job there.
type Mark = (i64, i64);

/// Positions this node remembers in job lists in creation order: every [`ListMarks::EVERY`]th job's
/// [`Mark`], per list (cloud, operation, creator, direction), with the list's version (`job_totals`) when
/// they were taken. A `skip` then costs a seek and fewer than `EVERY` steps instead of `skip` steps; a list
/// whose version moved (a job stored or deleted on any node) is remembered afresh on its next deep page.
#[derive(Default)]
pub struct ListMarks {
    lists: std::sync::Mutex<std::collections::HashMap<String, (i64, Vec<Mark>)>>,
}

impl ListMarks {
    const EVERY: u64 = 1000;
    /// Lists remembered at most (each is 16 bytes per `EVERY` jobs); beyond, all are forgotten.
    const MAX_LISTS: usize = 256;

    fn lists(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (i64, Vec<Mark>)>> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The version and the `nth` mark (position `nth * EVERY`, `nth` ≥ 1) of a list, if remembered.
    fn get(&self, key: &str, nth: u64) -> Option<(i64, Mark)> {
        let lists = self.lists();
        let (version, marks) = lists.get(key)?;
        let at = usize::try_from(nth).ok()?.checked_sub(1)?;
        marks.get(at).map(|m| (*version, *m))
    }
}

/// Takes the marks of a list up to the `nth` at `version`, continuing those remembered at that version;
/// `None` when the list changed meanwhile (then the caller pages by offset).
async fn remember<D: Db>(
    pool: &Pool<D>,
    marks: &ListMarks,
    key: String,
    filter: &JobFilter,
    order: &JobOrder,
    nth: u64,
    version: i64,
) -> Result<Option<Mark>> {
    let mut list = match marks.lists().get(&key) {
        Some((v, list)) if *v == version => list.clone(),
        _ => Vec::new(),
    };
    while (list.len() as u64) < nth {
        let mut q = Query::<D>::new(format!("SELECT created_at, {} AS row_no, ", order.row_no));
        push_totals(&mut q, "version", filter);
        q.push(" AS list_version FROM jobs");
        push_job_filter(&mut q, filter);
        if let Some(last) = list.last() {
            order.push_after(&mut q, *last, false);
        }
        let step = if list.is_empty() { ListMarks::EVERY } else { ListMarks::EVERY - 1 };
        q.push(&order.sql).push(" LIMIT 1 OFFSET ").push_bind(step as i64);
        let row = q.optional(pool, |r| Ok(((r.int("created_at")?, r.int("row_no")?), r.int("list_version")?))).await?;
        match row {
            Some((mark, v)) if v == version => list.push(mark),
            _ => return Ok(None),
        }
    }
    let mark = usize::try_from(nth).ok().and_then(|n| list.get(n.checked_sub(1)?).copied());
    let mut lists = marks.lists();
    if lists.len() >= ListMarks::MAX_LISTS {
        lists.clear();
    }
    lists.insert(key, (version, list));
    Ok(mark)
}

/// `(SELECT sum(column) FROM job_totals ...)` over the counters of the jobs `filter` matches (its cloud,
/// operation and creator; callers handle `id` and `status` filters otherwise).
fn push_totals<D: Db>(q: &mut Query<D>, column: &str, f: &JobFilter) {
    q.push(&format!("(SELECT CAST(COALESCE(sum({column}), 0) AS BIGINT) FROM job_totals WHERE true"));
    push_counted_filter(q, f);
    q.push(")");
}

/// How many jobs `filter` matches, and the version of that list.
async fn job_totals<D: Db>(pool: &Pool<D>, filter: &JobFilter) -> Result<(u64, i64)> {
    let mut q = Query::<D>::new("SELECT ");
    push_totals(&mut q, "n", filter);
    q.push(" AS n, ");
    push_totals(&mut q, "version", filter);
    q.push(" AS v");
    let row = q.fetch_one(pool).await?;
    let r = Fields::<D>(&row);
    Ok((r.int("n")?.max(0) as u64, r.int("v")?))
}

/// A page of jobs (after `seek`, inclusive, then `offset` rows) with the list's total and version read in the
/// same statement; `None` for those when the page is empty.
async fn job_page<D: Db>(
    pool: &Pool<D>,
    filter: &JobFilter,
    order: &JobOrder,
    seek: Option<Mark>,
    offset: u64,
    page: &Page,
) -> Result<(Vec<JobRecord>, Option<(u64, i64)>)> {
    let mut q = Query::<D>::new("SELECT *, ");
    push_totals(&mut q, "n", filter);
    q.push(" AS list_total, ");
    push_totals(&mut q, "version", filter);
    q.push(" AS list_version FROM jobs");
    push_job_filter(&mut q, filter);
    if let Some(mark) = seek {
        order.push_after(&mut q, mark, true);
    }
    q.push(&order.sql).push(&limit_offset(&Page { skip: offset, limit: page.limit, sort: Vec::new() }));
    let rows = q.all(pool, |r| Ok((r.int("list_total")?, r.int("list_version")?, job(r)?))).await?;
    let totals = rows.first().map(|(n, v, _)| ((*n).max(0) as u64, *v));
    Ok((rows.into_iter().map(|(_, _, j)| j).collect(), totals))
}

/// The job, its row locked for the rest of the transaction on PostgreSQL (the lock order, see
/// `postgres.rs`).
async fn lock_job<D: Db>(tx: &mut Transaction<'_, D>, id: JobId) -> Result<Option<JobRecord>> {
    Query::new(format!("SELECT * FROM jobs WHERE id = $1{}", D::FOR_UPDATE))
        .bind(id.to_string())
        .optional(tx, job)
        .await
}

/// [`lock_job`] without reading the job: false when there is no such job.
async fn lock_job_row<D: Db>(tx: &mut Transaction<'_, D>, id: JobId) -> Result<bool> {
    let sql = format!("SELECT 1 AS found FROM jobs WHERE id = $1{}", D::FOR_UPDATE);
    Ok(Query::<D>::new(sql).bind(id.to_string()).fetch_optional(tx).await?.is_some())
}

/// Items per multi-row `UPDATE` of `finish_items`: 10 parameters each, within SQLite's 999.
const ITEMS_PER_FINISH: usize = 90;

/// Adds `n` ended items to one counter of the job and, when that ends the job, ends it as the rules say.
/// Runs inside the caller's transaction, which holds the job row (`lock_job`), so it sees every other
/// writer's count and exactly one writer ends the job.
async fn count_ended<D: Db>(
    tx: &mut Transaction<'_, D>,
    id: JobId,
    counter: Counter,
    n: u64,
    at: DateTime<Utc>,
) -> Result<()> {
    let c = counter.as_str();
    let row = Query::<D>::new(format!(
        "UPDATE jobs SET {c} = {c} + $1, updated_at = $2 WHERE id = $3 \
         RETURNING status, abort, total, succeeded, failed, skipped, params, stop_reason"
    ))
    .bind(n as i64)
    .bind(at)
    .bind(id.to_string())
    .fetch_one(&mut *tx)
    .await?;
    let r = Fields::<D>(&row);
    let mut progress = Progress {
        total: r.int("total")?,
        succeeded: r.int("succeeded")?,
        failed: r.int("failed")?,
        skipped: r.int("skipped")?,
    };
    if job_status(&r)? != JobStatus::InProgress {
        return Ok(());
    }
    let abort = r.flag("abort")?;
    let mut stopped = r.opt_text("stop_reason")?.is_some();
    if !stopped
        && !abort
        && let Some(reason) = FailureLimits::of(&r.json("params")?).crossed(&progress)
    {
        progress.skipped += stop_job(tx, id, &reason, at).await? as i64;
        stopped = true;
    }
    if let Some(end) = end_status(&progress, abort, stopped) {
        Query::<D>::new(
            "UPDATE jobs SET status = $1, completed_at = $2, updated_at = $2 WHERE id = $3 AND status = 'in_progress'",
        )
        .bind(end.as_str())
        .bind(at)
        .bind(id.to_string())
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// The audit record of a request's change to a bulk job (`bulkjob.create`, `bulkjob.cancel`, ...).
fn job_event(action: &str, j: &JobRecord) -> AuditEvent {
    event(action, format!("bulkjob:{}", j.id))
        .details(serde_json::json!({"cloud": j.cloud, "operation": j.operation.as_str(), "items": j.total}))
}

/// Stops a job that crossed a failure threshold: records why and skips its pending items, so no further cloud
/// call is made for it. Returns how many items were skipped (already counted).
async fn stop_job<D: Db>(tx: &mut Transaction<'_, D>, id: JobId, reason: &str, at: DateTime<Utc>) -> Result<u64> {
    let skipped = skip_waiting(tx, id, &threshold_skipped_detail(reason), at).await?;
    Query::<D>::new("UPDATE jobs SET stop_reason = $1, skipped = skipped + $2 WHERE id = $3")
        .bind(reason)
        .bind(skipped as i64)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tracing::warn!(bulkjob.id = %id, items = skipped, reason, "failure threshold reached: the job stops");
    Ok(skipped)
}

/// Skips every item of the job that has not started (`pending`, or `planned` on a job cancelled before it was
/// confirmed) with `detail`. Returns how many (not yet counted).
async fn skip_waiting<D: Db>(tx: &mut Transaction<'_, D>, id: JobId, detail: &str, at: DateTime<Utc>) -> Result<u64> {
    Query::<D>::new(
        "UPDATE job_items SET status = 'skipped', detail = $1, updated_at = $2 \
         WHERE job_id = $3 AND status IN ('pending', 'planned')",
    )
    .bind(detail)
    .bind(at)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await
}

async fn insert_job<D: Db>(tx: &mut Transaction<'_, D>, j: &JobRecord) -> Result<()> {
    Query::<D>::new(
        "INSERT INTO jobs (id, cloud, operation, params, status, abort, created_by, total, succeeded, failed, \
         skipped, created_at, updated_at, completed_at, plan_expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(j.id.to_string())
    .bind(&j.cloud)
    .bind(j.operation.as_str())
    .bind(JsonParam(&j.params))
    .bind(j.status.as_str())
    .bind(j.abort)
    .bind(j.created_by.to_string())
    .bind(j.total)
    .bind(j.succeeded)
    .bind(j.failed)
    .bind(j.skipped)
    .bind(j.created_at)
    .bind(j.updated_at)
    .bind(j.completed_at)
    .bind(j.plan_expires_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Inserts the job's items from `SELECT ... FROM {from}` (`from` names the selection's tables and ends
/// before its `WHERE`, which `filter` appends): seq numbers by `order`, the insertion (claim) order follows
/// them. Sets the job's total; returns it.
async fn insert_selected_items<D: Db>(
    tx: &mut Transaction<'_, D>,
    j: &JobRecord,
    columns: &str,
    from: &str,
    order: &str,
    filter: impl FnOnce(&mut Query<D>),
) -> Result<i64> {
    let mut q = Query::<D>::new(format!(
        "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) \
         SELECT $1, row_number() OVER (ORDER BY {order}) - 1, {columns}, $3, $2 FROM {from}"
    ))
    .bind(j.id.to_string())
    .bind(j.created_at)
    .bind(new_item_status(j).as_str());
    filter(&mut q);
    q.push(&format!(" ORDER BY {order}"));
    let n = q.execute(&mut *tx).await? as i64;
    Query::<D>::new("UPDATE jobs SET total = $1 WHERE id = $2")
        .bind(n)
        .bind(j.id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(n)
}

/// Tells other nodes about a new job, at commit (where the dialect has more than one node).
async fn announce_job<D: Db>(tx: &mut Transaction<'_, D>) -> Result<()> {
    if let Some(sql) = D::ANNOUNCE_JOB {
        Query::<D>::new(sql).fetch_all(tx).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> JobStore for B {
    async fn create_job(&self, j: &JobRecord, items: &[NewItem]) -> Result<()> {
        let mut tx = self.writer().begin().await?;
        insert_job(&mut tx, j).await?;
        for (chunk_no, chunk) in items.chunks(B::Db::ITEMS_PER_INSERT).enumerate() {
            let first = (chunk_no * B::Db::ITEMS_PER_INSERT) as i64;
            let mut q = Query::<B::Db>::new(
                "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) VALUES ",
            )
            .bind(j.id.to_string())
            .bind(j.created_at)
            .bind(new_item_status(j).as_str());
            // Rows in seq order: the insertion (claim) order among equally due items follows the caller's.
            for (i, item) in chunk.iter().enumerate() {
                q.push(if i == 0 { "($1, " } else { ", ($1, " }).push_bind(first + i as i64).push(", ");
                q.push_bind(item.key_id.to_string()).push(", ").push_bind(&item.partition).push(", $3, $2)");
            }
            q.execute(&mut tx).await?;
        }
        append(&mut tx, &job_event("bulkjob.create", j)).await?;
        announce_job(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn count_selector(&self, selector: &KeySelector) -> Result<u64> {
        let mut q = Query::new("SELECT count(*) AS n FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id");
        push_selector(&mut q, selector);
        q.count(self.reader()).await
    }

    async fn create_job_from_selector(&self, j: &JobRecord, selector: &KeySelector) -> Result<i64> {
        let mut tx = self.writer().begin().await?;
        insert_job(&mut tx, j).await?;
        let columns = "k.id, m.account_id || '/' || k.region";
        let order = format!("m.account_id, k.region, k.{}", B::Db::ROW_NO);
        let from = "aws_keys k JOIN aws_kms m ON m.id = k.kms_id";
        let n = insert_selected_items(&mut tx, j, columns, from, &order, |q| push_selector(q, selector)).await?;
        append(&mut tx, &job_event("bulkjob.create", &JobRecord { total: n, ..j.clone() })).await?;
        announce_job(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn count_backup_selection(&self, selector: &BackupSelector) -> Result<u64> {
        let mut q = Query::new("SELECT count(*) AS n FROM azure_key_backups b");
        push_backup_selector(&mut q, selector);
        q.count(self.reader()).await
    }

    async fn backup_selection_vaults(&self, selector: &BackupSelector) -> Result<Vec<VaultId>> {
        let mut q = Query::new("SELECT DISTINCT b.vault_id FROM azure_key_backups b");
        push_backup_selector(&mut q, selector);
        q.push(" ORDER BY b.vault_id");
        q.all(self.reader(), |r| r.parse("vault_id")).await
    }

    async fn create_job_from_backups(&self, j: &JobRecord, selector: &BackupSelector) -> Result<i64> {
        let mut tx = self.writer().begin().await?;
        insert_job(&mut tx, j).await?;
        // Oldest backup first; the partition is the backup's vault (`azure_partition`).
        let columns = format!("b.id, '{CLOUD_AZURE}' || '/' || b.vault_id");
        let order = format!("b.created_at, b.{}", B::Db::ROW_NO);
        let from = "azure_key_backups b";
        let n =
            insert_selected_items(&mut tx, j, &columns, from, &order, |q| push_backup_selector(q, selector)).await?;
        append(&mut tx, &job_event("bulkjob.create", &JobRecord { total: n, ..j.clone() })).await?;
        announce_job(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_items(&self, job: JobId, status: Option<ItemStatus>, page: &Page) -> Result<(Vec<ItemRecord>, u64)> {
        let Some(status) = status else {
            // Items are numbered 0..n without gaps (every create numbers them so, none is deleted alone): the
            // page is a range of the primary key and the total its highest number plus one, both read from the
            // index in one statement, at any depth.
            let count = "SELECT COALESCE(max(seq) + 1, 0) AS n FROM job_items WHERE job_id = $1";
            let rows = Query::new(format!(
                "SELECT *, ({count}) AS list_total FROM job_items WHERE job_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3"
            ))
            .bind(job.to_string())
            .bind(i64::try_from(page.skip).unwrap_or(i64::MAX))
            .bind(i64::try_from(page.limit).unwrap_or(i64::MAX))
            .all(self.reader(), |r| {
                let n = r.int("list_total")?;
                Ok((item(r)?, n))
            })
            .await?;
            let total = match rows.first() {
                Some((_, n)) => *n as u64,
                None => Query::new(count).bind(job.to_string()).count(self.reader()).await?,
            };
            return Ok((rows.into_iter().map(|(i, _)| i).collect(), total));
        };
        let filter = |q: &mut Query<B::Db>| {
            q.push(" WHERE job_id = ").push_bind(job.to_string());
            q.push(" AND status = ").push_bind(status.as_str());
        };
        let (select, count) = ("SELECT * FROM job_items", "SELECT count(*) AS n FROM job_items");
        list_page(self.reader(), select, count, filter, " ORDER BY seq".into(), page, item).await
    }

    async fn item_lines(&self, jobs: &[JobId], failed_up_to: Option<u64>) -> Result<Vec<ItemLine>> {
        let mut q = Query::<B::Db>::new("SELECT job_id, key_id, status, detail FROM job_items WHERE ");
        match jobs {
            [] => return Ok(Vec::new()),
            [one] => {
                q.push("job_id = ").push_bind(one.to_string());
            }
            many => B::Db::push_in_list(&mut q, "job_id", many.iter().map(ToString::to_string).collect()),
        }
        if failed_up_to.is_some() {
            q.push(" AND status = 'failed'");
        }
        q.push(" ORDER BY job_id, seq");
        if let Some(n) = failed_up_to {
            q.push(" LIMIT ").push_bind(i64::try_from(n).unwrap_or(i64::MAX));
        }
        q.all(self.reader(), |r| {
            let status = r.text("status")?;
            Ok(ItemLine {
                job_id: r.parse("job_id")?,
                key_id: r.parse("key_id")?,
                status: ItemStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("item status {status:?}")))?,
                detail: r.opt_text("detail")?,
            })
        })
        .await
    }

    async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        row_by(self.reader(), "jobs", "id", id.to_string(), job).await
    }

    async fn list_jobs(&self, filter: &JobFilter, page: &Page) -> Result<(Vec<JobRecord>, u64)> {
        let order = JobOrder::of(&page.sort, B::Db::ROW_NO);
        if filter.id.is_some() || filter.status.is_some() {
            // The counters do not answer these filters (an id matches one job; a status changes): counted.
            let (select, count) = ("SELECT * FROM jobs", "SELECT count(*) AS n FROM jobs");
            let filter = |q: &mut Query<B::Db>| push_job_filter(q, filter);
            return list_page(self.reader(), select, count, filter, order.sql, page, job).await;
        }
        let every = ListMarks::EVERY;
        if page.skip >= every && order.creation.is_some() && filter.cloud.is_some() {
            let marks = self.list_marks();
            let key = format!(
                "{:?}|{:?}|{:?}|{:?}",
                filter.cloud,
                filter.operation.map(|o| o.as_str()),
                filter.created_by,
                order.creation
            );
            let nth = page.skip / every;
            let offset = page.skip - nth * every;
            // Seek to a position remembered at or before `skip`, then step over fewer than `every` rows; the
            // answer holds if the list has not changed since (its version is read in the same statement).
            if let Some((version, mark)) = marks.get(&key, nth) {
                let (jobs, totals) = job_page(self.reader(), filter, &order, Some(mark), offset, page).await?;
                if let Some((total, v)) = totals
                    && v == version
                {
                    return Ok((jobs, total));
                }
            }
            let (total, version) = job_totals(self.reader(), filter).await?;
            if page.skip >= total {
                return Ok((Vec::new(), total));
            }
            if let Some(mark) = remember(self.reader(), marks, key, filter, &order, nth, version).await? {
                let (jobs, totals) = job_page(self.reader(), filter, &order, Some(mark), offset, page).await?;
                if let Some((total, v)) = totals
                    && v == version
                {
                    return Ok((jobs, total));
                }
            }
        }
        let (jobs, totals) = job_page(self.reader(), filter, &order, None, page.skip, page).await?;
        let total = match totals {
            Some((n, _)) => n,
            None => job_totals(self.reader(), filter).await?.0,
        };
        Ok((jobs, total))
    }

    async fn job_items(&self, id: JobId) -> Result<Vec<ItemRecord>> {
        Query::new("SELECT * FROM job_items WHERE job_id = $1 ORDER BY seq")
            .bind(id.to_string())
            .all(self.reader(), item)
            .await
    }

    async fn cancel_job(&self, id: JobId, at: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let mut tx = self.writer().begin().await?;
        let Some(current) = lock_job(&mut tx, id).await? else {
            return Ok(None);
        };
        Query::<B::Db>::new("UPDATE jobs SET abort = true WHERE id = $1").bind(id.to_string()).execute(&mut tx).await?;
        // A planned job runs nothing: cancelling it skips its planned items exactly like pending ones.
        if current.status == JobStatus::Planned {
            Query::<B::Db>::new("UPDATE jobs SET status = 'in_progress' WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut tx)
                .await?;
        }
        // CCKM: cancel on a finished job only raises the flag.
        if !current.status.is_terminal() {
            // Items a worker claims meanwhile are `running` by the time this statement gets their row lock,
            // so they are left to finish (and counted then), exactly as if the claim had come first.
            let skipped = skip_waiting(&mut tx, id, &skipped_detail(CANCELLED), at).await?;
            count_ended(&mut tx, id, Counter::Skipped, skipped, at).await?;
        }
        let after = Query::new("SELECT * FROM jobs WHERE id = $1").bind(id.to_string()).optional(&mut tx, job).await?;
        append(&mut tx, &job_event("bulkjob.cancel", &current)).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn plan_groups(&self, id: JobId, cloud: Cloud) -> Result<Vec<PlanGroup>> {
        let sql = match cloud {
            Cloud::Aws => {
                "SELECT m.name AS container, k.region AS region, k.key_state AS state, i.restore_state AS restore_state, \
                 count(*) AS n, count(i.restore_policy) AS policies \
                 FROM job_items i JOIN aws_keys k ON k.id = i.key_id JOIN aws_kms m ON m.id = k.kms_id \
                 WHERE i.job_id = $1 GROUP BY m.name, k.region, k.key_state, i.restore_state \
                 ORDER BY m.name, k.region, k.key_state, i.restore_state"
            }
            Cloud::Azure => {
                "SELECT v.name AS container, v.location AS region, 'stored' AS state, i.restore_state AS restore_state, \
                 count(*) AS n, count(i.restore_policy) AS policies \
                 FROM job_items i JOIN azure_key_backups b ON b.id = i.key_id JOIN azure_vaults v ON v.id = b.vault_id \
                 WHERE i.job_id = $1 GROUP BY v.name, v.location, i.restore_state ORDER BY v.name, v.location"
            }
        };
        Query::new(sql)
            .bind(id.to_string())
            .all(self.reader(), |r| {
                Ok(PlanGroup {
                    container: r.text("container")?,
                    region: r.text("region")?,
                    state: r.text("state")?,
                    restore_state: r.opt_text("restore_state")?,
                    items: r.int("n")?,
                    restore_policies: r.int("policies")?,
                })
            })
            .await
    }

    async fn report_rows(&self, id: JobId, cloud: Cloud, after_seq: i64, limit: i64) -> Result<Vec<ReportRow>> {
        // Outer joins: an item whose target has left the inventory is still reported.
        let (columns, from, row): (_, _, fn(Fields<'_, B::Db>) -> Result<ReportRow>) = match cloud {
            Cloud::Aws => (
                "k.arn AS key_ref, k.material AS material, m.account_id AS account, k.region AS location, \
                 CASE WHEN k.gone THEN NULL ELSE k.key_state END AS current_state",
                "LEFT JOIN aws_keys k ON k.id = i.key_id LEFT JOIN aws_kms m ON m.id = k.kms_id".to_string(),
                aws_report_row,
            ),
            // The vault is the item's partition, so it is known after the backup has been deleted.
            Cloud::Azure => (
                "k.material AS material, b.key_name AS key_name, b.key_version AS key_version, \
                 v.subscription_id AS account, v.name AS location, \
                 CASE WHEN b.id IS NULL THEN NULL ELSE 'stored' END AS current_state",
                format!(
                    "LEFT JOIN azure_key_backups b ON b.id = i.key_id LEFT JOIN azure_keys k ON k.id = b.key_id \
                     LEFT JOIN azure_vaults v ON i.partition = '{CLOUD_AZURE}' || '/' || v.id"
                ),
                azure_report_row,
            ),
        };
        Query::new(format!(
            "SELECT i.*, {columns} FROM job_items i {from} WHERE i.job_id = $1 AND i.seq > $2 ORDER BY i.seq LIMIT $3"
        ))
        .bind(id.to_string())
        .bind(after_seq)
        .bind(limit)
        .all(self.reader(), row)
        .await
    }

    async fn error_groups(&self, id: JobId, samples: i64) -> Result<Vec<ErrorGroup>> {
        // Each failure numbered within its code's group and counted with it; only the first `samples` rows of
        // each group come back.
        let rows = Query::new(
            "SELECT code, n, message, key_id FROM (\
               SELECT COALESCE(last_error_code, '') AS code, key_id, seq, last_error_message AS message, \
                 row_number() OVER (PARTITION BY COALESCE(last_error_code, '') ORDER BY seq) AS rn, \
                 count(*) OVER (PARTITION BY COALESCE(last_error_code, '')) AS n \
               FROM job_items WHERE job_id = $1 AND status = 'failed') g \
             WHERE rn <= $2 ORDER BY n DESC, code, rn",
        )
        .bind(id.to_string())
        .bind(samples)
        .all(self.reader(), |r| Ok((r.text("code")?, r.int("n")?, r.opt_text("message")?, r.parse("key_id")?)))
        .await?;
        let mut groups: Vec<ErrorGroup> = Vec::new();
        for (code, count, message, key) in rows {
            match groups.last_mut() {
                Some(g) if g.code == code => g.sample_keys.push(key),
                _ => groups.push(ErrorGroup { code, count, message, sample_keys: vec![key] }),
            }
        }
        Ok(groups)
    }

    async fn set_job_plan(&self, id: JobId, plan: &serde_json::Value) -> Result<()> {
        Query::<B::Db>::new("UPDATE jobs SET plan = $1 WHERE id = $2")
            .bind(JsonParam(plan))
            .bind(id.to_string())
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn start_planned_job(&self, id: JobId, at: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let mut tx = self.writer().begin().await?;
        match lock_job(&mut tx, id).await? {
            Some(j) if j.status == JobStatus::Planned => {}
            _ => return Ok(None),
        }
        Query::<B::Db>::new(
            "UPDATE job_items SET status = 'pending', updated_at = $1 WHERE job_id = $2 AND status = 'planned'",
        )
        .bind(at)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        // A plan with nothing in it is done as soon as it starts.
        Query::<B::Db>::new(
            "UPDATE jobs SET status = CASE WHEN total = 0 THEN 'completed' ELSE 'in_progress' END, \
             completed_at = CASE WHEN total = 0 THEN $1 ELSE NULL END, updated_at = $1 WHERE id = $2",
        )
        .bind(at)
        .bind(id.to_string())
        .execute(&mut tx)
        .await?;
        let after = Query::new("SELECT * FROM jobs WHERE id = $1").bind(id.to_string()).optional(&mut tx, job).await?;
        if let Some(j) = &after {
            append(&mut tx, &job_event("bulkjob.confirm", j)).await?;
        }
        announce_job(&mut tx).await?;
        tx.commit().await?;
        Ok(after)
    }

    async fn create_derived_job(&self, j: &JobRecord, from: JobId, how: Derived) -> Result<i64> {
        // Which items of `from` the new job takes, and what each of its items restores.
        let (items, restore_state, restore_policy, action) = match how {
            Derived::Retry => ("status IN ('failed', 'skipped')", "restore_state", "restore_policy", "bulkjob.retry"),
            // What the job changed: a state it moved, or a policy a template replaced.
            Derived::Revert => (
                "status = 'succeeded' AND (state_before <> state_after OR policy_before IS NOT NULL)",
                "CASE WHEN state_before <> state_after THEN state_before END",
                "policy_before",
                "bulkjob.revert",
            ),
        };
        let mut tx = self.writer().begin().await?;
        insert_job(&mut tx, j).await?;
        let n = Query::<B::Db>::new(format!(
            "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at, restore_state, restore_policy) \
             SELECT $1, row_number() OVER (ORDER BY seq) - 1, key_id, partition, $3, $2, {restore_state}, \
             {restore_policy} FROM job_items WHERE job_id = $4 AND {items} ORDER BY seq"
        ))
        .bind(j.id.to_string())
        .bind(j.created_at)
        .bind(new_item_status(j).as_str())
        .bind(from.to_string())
        .execute(&mut tx)
        .await? as i64;
        if n == 0 {
            // Nothing to take over: the transaction is dropped, so no job was created.
            return Ok(0);
        }
        Query::<B::Db>::new("UPDATE jobs SET total = $1 WHERE id = $2")
            .bind(n)
            .bind(j.id.to_string())
            .execute(&mut tx)
            .await?;
        let created = JobRecord { total: n, ..j.clone() };
        let mut record = job_event(action, &created);
        record.details["from"] = from.to_string().into();
        append(&mut tx, &record).await?;
        announce_job(&mut tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn delete_job(&self, id: JobId) -> Result<Option<bool>> {
        let mut tx = self.writer().begin().await?;
        let Some(current) = lock_job(&mut tx, id).await? else {
            return Ok(None);
        };
        if current.status == JobStatus::InProgress {
            return Ok(Some(false));
        }
        Query::<B::Db>::new("DELETE FROM job_items WHERE job_id = $1").bind(id.to_string()).execute(&mut tx).await?;
        Query::<B::Db>::new("DELETE FROM jobs WHERE id = $1").bind(id.to_string()).execute(&mut tx).await?;
        append(&mut tx, &job_event("bulkjob.delete", &current)).await?;
        tx.commit().await?;
        Ok(Some(true))
    }
}

#[async_trait]
impl<B: Backend> WorkQueue for B {
    async fn fail_pending_for_connection(&self, job: JobId, refusal: &Refusal<'_>, at: DateTime<Utc>) -> Result<u64> {
        let Refusal { connection, code, message } = *refusal;
        let mut tx = self.writer().begin().await?;
        if !lock_job_row(&mut tx, job).await? {
            return Ok(0);
        }
        let n = Query::<B::Db>::new(
            "UPDATE job_items SET status = 'failed', detail = $1, last_error_code = $2, last_error_message = $3, \
             updated_at = $4 WHERE job_id = $5 AND status = 'pending' AND key_id IN \
             (SELECT k.id FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id WHERE m.connection_id = $6)",
        )
        .bind(failed_detail(code, message))
        .bind(code)
        .bind(message)
        .bind(at)
        .bind(job.to_string())
        .bind(connection.to_string())
        .execute(&mut tx)
        .await?;
        if n > 0 {
            count_ended(&mut tx, job, Counter::Failed, n, at).await?;
        }
        tx.commit().await?;
        Ok(n)
    }
    async fn return_unsent(&self, job: JobId, items: &[(i64, i64)], owner: &str, at: DateTime<Utc>) -> Result<u64> {
        let mut tx = self.writer().begin().await?;
        let Some(current) = lock_job(&mut tx, job).await? else {
            return Ok(0);
        };
        let mut returned = 0;
        for &(seq, attempt) in items {
            // The claim's attempt is undone: the item was never sent.
            returned += Query::<B::Db>::new(
                "UPDATE job_items SET status = 'pending', attempts = attempts - 1, \
                 first_attempt_at = CASE WHEN attempts = 1 THEN NULL ELSE first_attempt_at END, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
                 WHERE job_id = $2 AND seq = $3 AND lease_owner = $4 AND status = 'running' AND attempts = $5",
            )
            .bind(at)
            .bind(job.to_string())
            .bind(seq)
            .bind(owner)
            .bind(attempt)
            .execute(&mut tx)
            .await?;
        }
        // The job's stop reaches them as it reached its other pending items.
        let stop = if current.abort {
            Some(skipped_detail(CANCELLED))
        } else {
            current.stop_reason.as_deref().map(threshold_skipped_detail)
        };
        if let Some(detail) = stop
            && returned > 0
            && !current.status.is_terminal()
        {
            let skipped = skip_waiting(&mut tx, job, &detail, at).await?;
            count_ended(&mut tx, job, Counter::Skipped, skipped, at).await?;
        }
        tx.commit().await?;
        Ok(returned)
    }
    async fn job_aborted(&self, id: JobId) -> Result<bool> {
        // A job stopped by a failure threshold makes no further calls either.
        let abort = Query::new("SELECT (abort OR stop_reason IS NOT NULL) AS abort FROM jobs WHERE id = $1")
            .bind(id.to_string())
            .optional(self.reader(), |r| r.flag("abort"))
            .await?;
        Ok(abort.unwrap_or(true))
    }
    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        Query::new(
            "SELECT partition, min(not_before) AS due FROM job_items WHERE status = 'pending' \
             GROUP BY partition ORDER BY partition",
        )
        .all(self.reader(), |r| Ok((r.text("partition")?, r.ts("due")?)))
        .await
    }
    async fn job_announced(&self) {
        Backend::job_announced(self).await
    }
    async fn acquire_partition(&self, partition: &str, lease: Lease<'_>) -> Result<bool> {
        let Lease { owner, now, until } = lease;
        let taken = Query::<B::Db>::new(
            "INSERT INTO partition_leases (partition, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (partition) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE partition_leases.owner = excluded.owner OR partition_leases.expires_at < $4",
        )
        .bind(partition)
        .bind(owner)
        .bind(until)
        .bind(now)
        .execute(self.writer())
        .await?;
        Ok(taken == 1)
    }
    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        // Never shortened, as item leases (`renew_leases`).
        Query::<B::Db>::new(
            "UPDATE partition_leases SET expires_at = CASE WHEN expires_at < $1 THEN $1 ELSE expires_at END \
             WHERE owner = $2",
        )
        .bind(until)
        .bind(owner)
        .execute(self.writer())
        .await
    }
    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()> {
        Query::<B::Db>::new("DELETE FROM partition_leases WHERE partition = $1 AND owner = $2")
            .bind(partition)
            .bind(owner)
            .execute(self.writer())
            .await?;
        Ok(())
    }
    async fn claim_items(&self, partition: &str, lease: Lease<'_>, limit: u32) -> Result<Vec<ClaimedItem>> {
        let Lease { owner, now, until: lease_until } = lease;
        // One statement: take the due items no one else is claiming (SKIP LOCKED on PostgreSQL: concurrent
        // nodes take disjoint sets and never wait on each other), mark them running with a lease, and return
        // them with their job's operation and parameters. Items attempted before come first (each side oldest
        // due first, each through its own index: `job_items_retries`, `job_items_pending`), so a retry runs
        // soon after its backoff instead of behind every fresh item of its job.
        let (row_no, skip_locked) = (B::Db::ROW_NO, B::Db::SKIP_LOCKED);
        let due = |from: &str, tried: &str| {
            format!(
                "SELECT * FROM (SELECT job_id, seq FROM {from} \
                 WHERE status = 'pending' AND {tried} AND partition = $4 AND not_before <= $3 \
                 ORDER BY not_before, {row_no} LIMIT $5{skip_locked})"
            )
        };
        let mut out = Query::new(format!(
            "UPDATE job_items SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
                 lease_expires_at = $2, first_attempt_at = COALESCE(first_attempt_at, $3), updated_at = $3 \
             WHERE (job_id, seq) IN ( \
                 SELECT job_id, seq FROM ({} AS tried UNION ALL {} AS fresh) AS due LIMIT $5) \
             RETURNING job_id, seq, key_id, partition, attempts, first_attempt_at, restore_state, restore_policy, \
                 (SELECT j.operation FROM jobs j WHERE j.id = job_items.job_id) AS operation, \
                 (SELECT j.params FROM jobs j WHERE j.id = job_items.job_id) AS params",
            due(B::Db::RETRIES_FROM, "attempts > 0"),
            due("job_items", "attempts = 0"),
        ))
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(partition)
        .bind(i64::from(limit))
        .all(self.writer(), claimed)
        .await?;
        out.sort_by_key(|c| (c.job_id, c.seq));
        Ok(out)
    }
    async fn holds_item(&self, job: JobId, seq: i64, attempt: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let held = Query::<B::Db>::new(
            "SELECT 1 AS held FROM job_items WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 \
             AND status = 'running' AND lease_expires_at > $4 AND attempts = $5",
        )
        .bind(job.to_string())
        .bind(seq)
        .bind(owner)
        .bind(now)
        .bind(attempt)
        .fetch_optional(self.reader())
        .await?;
        Ok(held.is_some())
    }
    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64> {
        // SKIP LOCKED: a row being written right now (finished by its worker, reaped, or passed over by a
        // cancel) is not waited for; the next heartbeat comes long before the lease ends. A lease is never
        // shortened: a heartbeat whose statement arrives late (its node paused after reading the clock) must
        // not cut the lease of an item claimed since, which the node counts on until the claim's own end.
        Query::<B::Db>::new(format!(
            "UPDATE job_items SET lease_expires_at = CASE WHEN lease_expires_at < $1 THEN $1 \
                 ELSE lease_expires_at END WHERE (job_id, seq) IN ( \
                 SELECT job_id, seq FROM job_items WHERE lease_owner = $2 AND status = 'running'{})",
            B::Db::SKIP_LOCKED
        ))
        .bind(lease_until)
        .bind(owner)
        .execute(self.writer())
        .await
    }
    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64> {
        // SKIP LOCKED: a row being written right now (its owner finishing it, another node's reaper) is
        // left alone; if it is still expired afterwards, the next pass returns it. Reapers never queue.
        Query::<B::Db>::new(format!(
            "UPDATE job_items SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE (job_id, seq) IN ( \
                 SELECT job_id, seq FROM job_items WHERE status = 'running' AND lease_expires_at < $1{})",
            B::Db::SKIP_LOCKED
        ))
        .bind(now)
        .execute(self.writer())
        .await
    }
    async fn finish_items(&self, batch: &FinishedBatch<'_>) -> Result<Vec<bool>> {
        let FinishedBatch { job: job_id, owner, at, items } = *batch;
        let changes: Vec<ItemChange> = items.iter().map(|i| ItemChange::of(i.outcome)).collect();
        let mut tx = self.writer().begin().await?;
        // Outcomes that count change the job too: job row first, then the items (the lock order). A batch of
        // retries changes only items and never waits while holding them.
        if changes.iter().any(|c| c.counter.is_some()) && !lock_job_row(&mut tx, job_id).await? {
            return Ok(vec![false; items.len()]);
        }
        // Every item's change in one multi-row UPDATE per chunk, fenced by its lease and claim: the rows it
        // returns are the items still held (the others' leases were lost: someone else, or a later claim of
        // this node, owns them now).
        let mut held = std::collections::HashSet::with_capacity(items.len());
        for (items, changes) in items.chunks(ITEMS_PER_FINISH).zip(changes.chunks(ITEMS_PER_FINISH)) {
            let mut q = Query::<B::Db>::new(
                "UPDATE job_items SET status = v.column2, detail = v.column3, \
                 last_error_code = COALESCE(v.column4, last_error_code), \
                 last_error_message = COALESCE(v.column5, last_error_message), \
                 state_before = COALESCE(v.column6, state_before), state_after = COALESCE(v.column7, state_after), \
                 not_before = v.column8, lease_owner = NULL, lease_expires_at = NULL, updated_at = $1, \
                 policy_before = COALESCE(v.column9, policy_before) \
                 FROM (VALUES ",
            )
            .bind(at)
            .bind(job_id.to_string())
            .bind(owner);
            for (k, (item, change)) in items.iter().zip(changes).enumerate() {
                q.push(if k == 0 { "(" } else { ", (" });
                q.push_bind(item.seq).push(", ");
                q.push_bind(change.status.as_str()).push(", ");
                q.push_bind(change.detail.clone()).push(", ");
                q.push_bind(change.error_code.clone()).push(", ");
                q.push_bind(change.error_message.clone()).push(", ");
                q.push_bind(change.state_before.clone()).push(", ");
                q.push_bind(change.state_after.clone()).push(", ");
                q.push_bind(change.not_before.map_or(0, to_micros)).push(", ");
                q.push_bind(item.policy_before.map(str::to_string)).push(", ");
                q.push_bind(item.attempt).push(")");
            }
            q.push(
                ") AS v WHERE job_id = $2 AND seq = v.column1 AND lease_owner = $3 AND status = 'running' \
                 AND attempts = COALESCE(v.column10, attempts) RETURNING seq",
            );
            for row in q.fetch_all(&mut tx).await? {
                held.insert(Fields::<B::Db>(&row).int("seq")?);
            }
        }
        let mut recorded = Vec::with_capacity(items.len());
        let mut ended = [(Counter::Succeeded, 0u64), (Counter::Failed, 0), (Counter::Skipped, 0)];
        // The cloud calls of the batch, audited together as the transaction's last statements.
        let mut audited = Vec::new();
        let (mut refreshed, mut deleted) = (Vec::new(), Vec::new());
        let job = job_id.to_string();
        for (item, change) in items.iter().zip(changes) {
            let written = held.contains(&item.seq);
            recorded.push(written);
            // Not written: the lease was lost (expired and reclaimed), someone else owns this item now.
            if !written {
                continue;
            }
            for call in item.cloud_calls {
                let outcome = change.detail.as_deref().unwrap_or("Retry");
                audited.push(keyfleet_core::audit::cloud_call(
                    call.cloud,
                    call.action,
                    &call.key,
                    call.request_id.as_deref(),
                    &job,
                    outcome,
                ));
            }
            if let Some(counter) = change.counter {
                ended.iter_mut().filter(|(c, _)| *c == counter).for_each(|(_, n)| *n += 1);
            }
            match item.effect {
                ItemEffect::None => {}
                ItemEffect::RefreshAwsKey(id, m) => refreshed.push((id, m)),
                ItemEffect::DeleteBackup(id) => {
                    if matches!(item.outcome, ItemOutcome::Succeeded { .. }) {
                        deleted.push(id.to_string());
                    }
                }
            }
        }
        // The items' effects on the inventory, a statement for many items.
        for keys in refreshed.chunks(KEYS_PER_REFRESH) {
            refresh_aws_keys(&mut tx, keys, at).await?;
        }
        for ids in deleted.chunks(B::Db::IDS_PER_LOOKUP) {
            let mut q = Query::<B::Db>::new("DELETE FROM azure_key_backups WHERE ");
            B::Db::push_in_list(&mut q, "id", ids.to_vec());
            q.execute(&mut tx).await?;
        }
        // Each counter moves once per batch; only the last move can complete the job, since every earlier
        // one leaves out items this batch ends.
        for (counter, n) in ended {
            if n > 0 {
                count_ended(&mut tx, job_id, counter, n, at).await?;
            }
        }
        append_all(&mut tx, &audited).await?;
        tx.commit().await?;
        Ok(recorded)
    }
}
