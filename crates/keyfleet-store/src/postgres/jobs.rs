use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::azure::push_backup_selector;
use super::inventory::push_selector;
use super::*;
use crate::{ItemEffect, JobStore, Result};

/// Items per `INSERT ... SELECT FROM unnest(...)` of `create_job`: one round trip for a CCKM-sized job,
/// bounded statements for a key list without the limit.
const ITEMS_PER_INSERT: usize = 5_000;

fn job(row: &PgRow) -> Result<JobRecord> {
    let op: String = row.try_get("operation")?;
    let status: String = row.try_get("status")?;
    Ok(JobRecord {
        id: parse(row, "id")?,
        cloud: row.try_get("cloud")?,
        operation: Operation::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("operation {op:?}")))?,
        params: json(row, "params")?,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        abort: row.try_get("abort")?,
        created_by: parse(row, "created_by")?,
        total: row.try_get("total")?,
        succeeded: row.try_get("succeeded")?,
        failed: row.try_get("failed")?,
        skipped: row.try_get("skipped")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        completed_at: get_opt_ts(row, "completed_at")?,
    })
}

fn item(row: &PgRow) -> Result<ItemRecord> {
    let status: String = row.try_get("status")?;
    Ok(ItemRecord {
        job_id: parse(row, "job_id")?,
        seq: row.try_get("seq")?,
        key_id: parse(row, "key_id")?,
        status: ItemStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("item status {status:?}")))?,
        attempts: row.try_get("attempts")?,
        detail: row.try_get("detail")?,
        last_error_code: row.try_get("last_error_code")?,
        last_error_message: row.try_get("last_error_message")?,
        state_before: row.try_get("state_before")?,
        state_after: row.try_get("state_after")?,
        updated_at: get_ts(row, "updated_at")?,
    })
}

fn push_job_filter(qb: &mut QueryBuilder<Postgres>, f: &JobFilter) {
    qb.push(" WHERE true");
    if let Some(v) = f.id {
        qb.push(" AND id = ").push_bind(v.to_string());
    }
    if let Some(v) = f.status {
        qb.push(" AND status = ").push_bind(v.as_str());
    }
    if let Some(v) = &f.cloud {
        qb.push(" AND cloud = ").push_bind(v.clone());
    }
    if let Some(v) = f.operation {
        qb.push(" AND operation = ").push_bind(v.as_str());
    }
    if let Some(v) = f.created_by {
        qb.push(" AND created_by = ").push_bind(v.to_string());
    }
}

/// Reads the job and takes its row lock for the rest of the transaction (see the lock order in `mod.rs`).
async fn lock_job(conn: &mut PgConnection, id: JobId) -> Result<Option<JobRecord>> {
    sqlx::query("SELECT * FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(job)
        .transpose()
}

/// Takes the job row's lock for the rest of the transaction; false when there is no such job.
async fn lock_job_row(conn: &mut PgConnection, id: JobId) -> Result<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Ends the job if every item is terminal. Runs inside the caller's transaction, after it updated the job
/// row (so it holds the row's lock and sees every counter committed before).
async fn finalize_if_done(conn: &mut PgConnection, id: JobId, at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = CASE \
             WHEN abort THEN 'cancelled' \
             WHEN failed = total THEN 'failed' \
             ELSE 'completed' END, \
         completed_at = $1, updated_at = $1 \
         WHERE id = $2 AND status = 'in_progress' AND succeeded + failed + skipped >= total",
    )
    .bind(ts(at))
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_job(conn: &mut PgConnection, j: &JobRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, cloud, operation, params, status, abort, created_by, total, succeeded, failed, \
         skipped, created_at, updated_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(j.id.to_string())
    .bind(&j.cloud)
    .bind(j.operation.as_str())
    .bind(to_json(&j.params))
    .bind(j.status.as_str())
    .bind(j.abort)
    .bind(j.created_by.to_string())
    .bind(j.total)
    .bind(j.succeeded)
    .bind(j.failed)
    .bind(j.skipped)
    .bind(ts(j.created_at))
    .bind(ts(j.updated_at))
    .bind(j.completed_at.map(ts))
    .execute(conn)
    .await?;
    Ok(())
}

#[async_trait]
impl JobStore for PgStore {
    async fn create_job(&self, j: &JobRecord, items: &[NewItem]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, j).await?;
        let job_id = j.id.to_string();
        let at = ts(j.created_at);
        for (chunk_no, chunk) in items.chunks(ITEMS_PER_INSERT).enumerate() {
            let first = (chunk_no * ITEMS_PER_INSERT) as i64;
            let seqs: Vec<i64> = (first..first + chunk.len() as i64).collect();
            let keys: Vec<String> = chunk.iter().map(|i| i.key_id.to_string()).collect();
            let partitions: Vec<String> = chunk.iter().map(|i| i.partition.clone()).collect();
            // ORDER BY seq: row_no (claim order among equally due items) follows the caller's order.
            sqlx::query(
                "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) \
                 SELECT $1, u.seq, u.key_id, u.partition, 'pending', $2 \
                 FROM unnest($3::bigint[], $4::text[], $5::text[]) AS u(seq, key_id, partition) ORDER BY u.seq",
            )
            .bind(&job_id)
            .bind(at)
            .bind(seqs)
            .bind(keys)
            .bind(partitions)
            .execute(&mut *tx)
            .await?;
        }
        // Delivered at commit: other nodes wake at once instead of at their next poll.
        sqlx::query("SELECT pg_notify($1, '')").bind(super::JOBS_CHANNEL).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn count_selector(&self, selector: &KeySelector) -> Result<u64> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id");
        push_selector(&mut qb, selector);
        let n: i64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    async fn create_job_from_selector(&self, j: &JobRecord, selector: &KeySelector) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, j).await?;
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) SELECT ",
        );
        qb.push_bind(j.id.to_string())
            .push(
                ", row_number() OVER (ORDER BY m.account_id, k.region, k.row_no) - 1, k.id, \
                 m.account_id || '/' || k.region, 'pending', ",
            )
            .push_bind(ts(j.created_at))
            .push(" FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id");
        push_selector(&mut qb, selector);
        // Insert in seq order, so that row_no (the claim order) follows it.
        qb.push(" ORDER BY m.account_id, k.region, k.row_no");
        let n = qb.build().execute(&mut *tx).await?.rows_affected() as i64;
        sqlx::query("UPDATE jobs SET total = $1 WHERE id = $2")
            .bind(n)
            .bind(j.id.to_string())
            .execute(&mut *tx)
            .await?;
        // Delivered at commit: other nodes wake at once instead of at their next poll.
        sqlx::query("SELECT pg_notify($1, '')").bind(super::JOBS_CHANNEL).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn count_backup_selection(&self, selector: &BackupSelector) -> Result<u64> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT count(*) FROM azure_key_backups b");
        push_backup_selector(&mut qb, selector);
        let n: i64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
        Ok(n as u64)
    }

    async fn backup_selection_vaults(&self, selector: &BackupSelector) -> Result<Vec<VaultId>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT DISTINCT b.vault_id FROM azure_key_backups b");
        push_backup_selector(&mut qb, selector);
        qb.push(" ORDER BY b.vault_id");
        qb.build().fetch_all(&self.pool).await?.iter().map(|row| parse(row, "vault_id")).collect()
    }

    async fn create_job_from_backups(&self, j: &JobRecord, selector: &BackupSelector) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        insert_job(&mut tx, j).await?;
        // Oldest backup first; the partition is the backup's vault (`azure_partition`).
        let mut qb = QueryBuilder::<Postgres>::new(
            "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) SELECT ",
        );
        qb.push_bind(j.id.to_string())
            .push(", row_number() OVER (ORDER BY b.created_at, b.row_no) - 1, b.id, ")
            .push_bind(CLOUD_AZURE)
            .push(" || '/' || b.vault_id, 'pending', ")
            .push_bind(ts(j.created_at))
            .push(" FROM azure_key_backups b");
        push_backup_selector(&mut qb, selector);
        // Insert in seq order, so that row_no (the claim order) follows it.
        qb.push(" ORDER BY b.created_at, b.row_no");
        let n = qb.build().execute(&mut *tx).await?.rows_affected() as i64;
        sqlx::query("UPDATE jobs SET total = $1 WHERE id = $2")
            .bind(n)
            .bind(j.id.to_string())
            .execute(&mut *tx)
            .await?;
        // Delivered at commit: other nodes wake at once instead of at their next poll.
        sqlx::query("SELECT pg_notify($1, '')").bind(super::JOBS_CHANNEL).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_items(&self, job: JobId, status: Option<ItemStatus>, page: &Page) -> Result<(Vec<ItemRecord>, u64)> {
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM job_items WHERE job_id = ");
        count.push_bind(job.to_string());
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM job_items WHERE job_id = ");
        qb.push_bind(job.to_string());
        if let Some(st) = status {
            count.push(" AND status = ").push_bind(st.as_str());
            qb.push(" AND status = ").push_bind(st.as_str());
        }
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        qb.push(" ORDER BY seq").push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.pool).await?;
        Ok((rows.iter().map(item).collect::<Result<_>>()?, total as u64))
    }

    async fn fail_pending_for_connection(
        &self,
        job: JobId,
        connection: ConnectionId,
        code: &str,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        if !lock_job_row(&mut tx, job).await? {
            return Ok(0);
        }
        let n = sqlx::query(
            "UPDATE job_items SET status = 'failed', detail = $1, last_error_code = $2, last_error_message = $3, \
             updated_at = $4 WHERE job_id = $5 AND status = 'pending' AND key_id IN \
             (SELECT k.id FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id WHERE m.connection_id = $6)",
        )
        .bind(format!("Failed: {code}: {message}"))
        .bind(code)
        .bind(message)
        .bind(ts(at))
        .bind(job.to_string())
        .bind(connection.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query("UPDATE jobs SET failed = failed + $1, updated_at = $2 WHERE id = $3")
                .bind(n as i64)
                .bind(ts(at))
                .bind(job.to_string())
                .execute(&mut *tx)
                .await?;
            finalize_if_done(&mut tx, job, at).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job)
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter, page: &Page) -> Result<(Vec<JobRecord>, u64)> {
        let mut count = QueryBuilder::<Postgres>::new("SELECT count(*) FROM jobs");
        push_job_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM jobs");
        push_job_filter(&mut qb, filter);
        qb.push(order_by(
            &page.sort,
            &[
                ("createdAt", "created_at"),
                ("updatedAt", "updated_at"),
                ("completed_at", "completed_at"),
                ("overall_status", "status"),
                ("operation", "operation"),
                ("id", "id"),
            ],
            "created_at DESC",
            "row_no",
        ));
        qb.push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.pool).await?;
        Ok((rows.iter().map(job).collect::<Result<_>>()?, total as u64))
    }

    async fn job_items(&self, id: JobId) -> Result<Vec<ItemRecord>> {
        sqlx::query("SELECT * FROM job_items WHERE job_id = $1 ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(item)
            .collect()
    }

    async fn cancel_job(&self, id: JobId, at: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let mut tx = self.pool.begin().await?;
        let Some(current) = lock_job(&mut tx, id).await? else {
            return Ok(None);
        };
        if current.status.is_terminal() {
            // CCKM: cancel on a finished job only raises the flag.
            sqlx::query("UPDATE jobs SET abort = true WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        } else {
            // Items a worker claims meanwhile are `running` by the time this statement gets their row lock,
            // so they are left to finish (and counted then), exactly as if the claim had come first.
            let skipped = sqlx::query(
                "UPDATE job_items SET status = 'skipped', detail = 'Skipped: cancelled', updated_at = $1 \
                 WHERE job_id = $2 AND status = 'pending'",
            )
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE jobs SET abort = true, skipped = skipped + $1, updated_at = $2 WHERE id = $3")
                .bind(skipped as i64)
                .bind(ts(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            finalize_if_done(&mut tx, id, at).await?;
        }
        let after = sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id.to_string()).fetch_one(&mut *tx).await?;
        let after = job(&after)?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn delete_job(&self, id: JobId) -> Result<Option<bool>> {
        let mut tx = self.pool.begin().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(status) = status else {
            return Ok(None);
        };
        if status == JobStatus::InProgress.as_str() {
            return Ok(Some(false));
        }
        sqlx::query("DELETE FROM job_items WHERE job_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM jobs WHERE id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn job_aborted(&self, id: JobId) -> Result<bool> {
        let abort: Option<bool> = sqlx::query_scalar("SELECT abort FROM jobs WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(abort.unwrap_or(true))
    }

    async fn job_announced(&self) {
        self.listen_jobs().await
    }

    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT partition, min(not_before) AS due FROM job_items WHERE status = 'pending' \
             GROUP BY partition ORDER BY partition",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get("partition")?, get_ts(r, "due")?))).collect()
    }

    async fn acquire_partition(
        &self,
        partition: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO partition_leases (partition, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (partition) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE partition_leases.owner = excluded.owner OR partition_leases.expires_at < $4",
        )
        .bind(partition)
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("UPDATE partition_leases SET expires_at = $1 WHERE owner = $2")
            .bind(ts(until))
            .bind(owner)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM partition_leases WHERE partition = $1 AND owner = $2")
            .bind(partition)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn claim_items(
        &self,
        owner: &str,
        partition: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedItem>> {
        // One statement: lock the due items no one else is claiming (SKIP LOCKED: concurrent nodes take
        // disjoint sets and never wait on each other), mark them running with a lease, and return them with
        // their job's operation and parameters.
        let rows = sqlx::query(
            "WITH claimed AS ( \
                 UPDATE job_items SET status = 'running', attempts = attempts + 1, lease_owner = $1, \
                     lease_expires_at = $2, first_attempt_at = COALESCE(first_attempt_at, $3), updated_at = $3 \
                 WHERE (job_id, seq) IN ( \
                     SELECT job_id, seq FROM job_items \
                     WHERE status = 'pending' AND partition = $4 AND not_before <= $3 \
                     ORDER BY not_before, row_no LIMIT $5 FOR UPDATE SKIP LOCKED) \
                 RETURNING job_id, seq, key_id, partition, attempts, first_attempt_at) \
             SELECT c.*, j.operation, j.params FROM claimed c JOIN jobs j ON j.id = c.job_id",
        )
        .bind(owner)
        .bind(ts(lease_until))
        .bind(ts(now))
        .bind(partition)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows
            .iter()
            .map(|row| {
                let op: String = row.try_get("operation")?;
                Ok(ClaimedItem {
                    job_id: parse(row, "job_id")?,
                    seq: row.try_get("seq")?,
                    key_id: parse(row, "key_id")?,
                    operation: Operation::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("operation {op:?}")))?,
                    params: json(row, "params")?,
                    partition: row.try_get("partition")?,
                    attempts: row.try_get("attempts")?,
                    first_attempt_at: get_ts(row, "first_attempt_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|c| (c.job_id, c.seq));
        Ok(out)
    }

    async fn holds_item(&self, job: JobId, seq: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT 1::bigint FROM job_items WHERE job_id = $1 AND seq = $2 AND lease_owner = $3 \
             AND status = 'running' AND lease_expires_at > $4",
        )
        .bind(job.to_string())
        .bind(seq)
        .bind(owner)
        .bind(ts(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64> {
        // SKIP LOCKED: a row being written right now (finished by its worker, reaped, or passed over by a
        // cancel) is not waited for; the next heartbeat comes long before the lease ends.
        Ok(sqlx::query(
            "UPDATE job_items SET lease_expires_at = $1 WHERE (job_id, seq) IN ( \
                 SELECT job_id, seq FROM job_items WHERE lease_owner = $2 AND status = 'running' \
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(ts(lease_until))
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64> {
        // SKIP LOCKED: a row being written right now (its owner finishing it, another node's reaper) is
        // left alone; if it is still expired afterwards, the next pass returns it. Reapers never queue.
        Ok(sqlx::query(
            "UPDATE job_items SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = $1 \
             WHERE (job_id, seq) IN ( \
                 SELECT job_id, seq FROM job_items WHERE status = 'running' AND lease_expires_at < $1 \
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(ts(now))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn finish_item_with(
        &self,
        job_id: JobId,
        seq: i64,
        owner: &str,
        outcome: &ItemOutcome,
        at: DateTime<Utc>,
        effect: ItemEffect<'_>,
    ) -> Result<bool> {
        let (status, counter, detail, code, message, before, after, not_before) = match outcome {
            ItemOutcome::Succeeded { detail, state_before, state_after } => (
                ItemStatus::Succeeded,
                Some("succeeded"),
                Some(detail.clone()),
                None,
                None,
                state_before.clone(),
                state_after.clone(),
                0,
            ),
            ItemOutcome::Failed { code, message, state_before } => (
                ItemStatus::Failed,
                Some("failed"),
                Some(format!("Failed: {code}: {message}")),
                Some(code.clone()),
                Some(message.clone()),
                state_before.clone(),
                None,
                0,
            ),
            ItemOutcome::Retry { code, message, not_before } => (
                ItemStatus::Pending,
                None,
                None,
                Some(code.clone()),
                Some(message.clone()),
                None,
                None,
                ts(*not_before),
            ),
            ItemOutcome::Skipped { reason } => {
                (ItemStatus::Skipped, Some("skipped"), Some(format!("Skipped: {reason}")), None, None, None, None, 0)
            }
        };
        let mut tx = self.pool.begin().await?;
        // An outcome that counts changes the job too: job row first, then the item (the lock order).
        // A retry changes only the item and never waits while holding it.
        if counter.is_some() && !lock_job_row(&mut tx, job_id).await? {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE job_items SET status = $1, detail = $2, \
             last_error_code = COALESCE($3, last_error_code), last_error_message = COALESCE($4, last_error_message), \
             state_before = COALESCE($5, state_before), state_after = COALESCE($6, state_after), \
             not_before = $7, lease_owner = NULL, lease_expires_at = NULL, updated_at = $8 \
             WHERE job_id = $9 AND seq = $10 AND lease_owner = $11 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(detail)
        .bind(code)
        .bind(message)
        .bind(before)
        .bind(after)
        .bind(not_before)
        .bind(ts(at))
        .bind(job_id.to_string())
        .bind(seq)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // The lease was lost (expired and reclaimed): someone else owns this item now.
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(counter) = counter {
            // Under the job row's lock: finalize_if_done sees every other finisher's increment, and exactly
            // one of them ends the job.
            let sql = format!("UPDATE jobs SET {counter} = {counter} + 1, updated_at = $1 WHERE id = $2");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ts(at)).bind(job_id.to_string()).execute(&mut *tx).await?;
            finalize_if_done(&mut tx, job_id, at).await?;
        }
        match effect {
            ItemEffect::None => {}
            ItemEffect::RefreshAwsKey(id, m) => {
                sqlx::query(
                    "UPDATE aws_keys SET key_state = $1, enabled = $2, material = $3, gone = false, updated_at = $4 \
                     WHERE id = $5",
                )
                .bind(&m.key_state)
                .bind(m.enabled)
                .bind(to_json(m))
                .bind(ts(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            }
            ItemEffect::DeleteBackup(id) => {
                if matches!(outcome, ItemOutcome::Succeeded { .. }) {
                    sqlx::query("DELETE FROM azure_key_backups WHERE id = $1")
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}
