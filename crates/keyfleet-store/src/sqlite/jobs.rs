use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::azure::push_backup_selector;
use super::*;
use crate::{ItemEffect, JobStore, Result};

fn job(row: &SqliteRow) -> Result<JobRecord> {
    let op: String = row.try_get("operation")?;
    let status: String = row.try_get("status")?;
    Ok(JobRecord {
        id: parse(row, "id")?,
        cloud: row.try_get("cloud")?,
        operation: Operation::parse(&op).ok_or_else(|| StoreError::Corrupt(format!("operation {op:?}")))?,
        params: json(row, "params")?,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        abort: row.try_get::<i64, _>("abort")? != 0,
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

fn item(row: &SqliteRow) -> Result<ItemRecord> {
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

fn push_job_filter(qb: &mut QueryBuilder<Sqlite>, f: &JobFilter) {
    qb.push(" WHERE 1 = 1");
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

/// Ends the job if every item is terminal. Runs inside the caller's transaction.
async fn finalize_if_done(conn: &mut sqlx::SqliteConnection, id: JobId, at: DateTime<Utc>) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET status = CASE \
             WHEN abort = 1 THEN 'cancelled' \
             WHEN failed = total THEN 'failed' \
             ELSE 'completed' END, \
         completed_at = ?, updated_at = ? \
         WHERE id = ? AND status = 'in_progress' AND succeeded + failed + skipped >= total",
    )
    .bind(ts(at))
    .bind(ts(at))
    .bind(id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_job(conn: &mut sqlx::SqliteConnection, j: &JobRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, cloud, operation, params, status, abort, created_by, total, succeeded, failed, \
         skipped, created_at, updated_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(j.id.to_string())
    .bind(&j.cloud)
    .bind(j.operation.as_str())
    .bind(to_json(&j.params))
    .bind(j.status.as_str())
    .bind(j.abort as i64)
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

/// `WHERE` for a selector over `aws_keys k JOIN aws_kms m`. Gone keys are never selected.
fn push_selector(qb: &mut QueryBuilder<Sqlite>, s: &KeySelector) {
    qb.push(" WHERE k.gone = 0");
    if !s.kms.is_empty() {
        qb.push(" AND k.kms_id IN (");
        let mut list = qb.separated(", ");
        for id in &s.kms {
            list.push_bind(id.to_string());
        }
        qb.push(")");
    }
    if !s.regions.is_empty() {
        qb.push(" AND k.region IN (");
        let mut list = qb.separated(", ");
        for r in &s.regions {
            list.push_bind(r.clone());
        }
        qb.push(")");
    }
    if let Some(state) = &s.key_state {
        qb.push(" AND k.key_state = ").push_bind(state.clone());
    }
    if let Some(prefix) = &s.alias_prefix {
        qb.push(" AND EXISTS (SELECT 1 FROM json_each(k.material, '$.aliases') WHERE substr(value, 1, ")
            .push_bind(prefix.len() as i64)
            .push(") = ")
            .push_bind(prefix.clone())
            .push(")");
    }
    for (key, value) in &s.tags {
        qb.push(" AND EXISTS (SELECT 1 FROM json_each(k.material, '$.tags') WHERE json_extract(value, '$[0]') = ")
            .push_bind(key.clone());
        if let Some(v) = value {
            qb.push(" AND json_extract(value, '$[1]') = ").push_bind(v.clone());
        }
        qb.push(")");
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(&self, j: &JobRecord, items: &[NewItem]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_job(&mut tx, j).await?;
        let job_id = j.id.to_string();
        let at = ts(j.created_at);
        // 6 variables per row; 150 rows stay far below SQLite's variable limit.
        for (chunk_no, chunk) in items.chunks(150).enumerate() {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) ",
            );
            qb.push_values(chunk.iter().enumerate(), |mut b, (i, item)| {
                b.push_bind(job_id.clone())
                    .push_bind((chunk_no * 150 + i) as i64)
                    .push_bind(item.key_id.to_string())
                    .push_bind(item.partition.clone())
                    .push_bind("pending")
                    .push_bind(at);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn count_selector(&self, selector: &KeySelector) -> Result<u64> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id");
        push_selector(&mut qb, selector);
        let n: i64 = qb.build_query_scalar().fetch_one(&self.reader).await?;
        Ok(n as u64)
    }

    async fn create_job_from_selector(&self, j: &JobRecord, selector: &KeySelector) -> Result<i64> {
        let mut tx = self.writer.begin().await?;
        insert_job(&mut tx, j).await?;
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) SELECT ",
        );
        qb.push_bind(j.id.to_string())
            .push(", row_number() OVER (ORDER BY m.account_id, k.region, k.rowid) - 1, k.id, m.account_id || '/' || k.region, 'pending', ")
            .push_bind(ts(j.created_at))
            .push(" FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id");
        push_selector(&mut qb, selector);
        let n = qb.build().execute(&mut *tx).await?.rows_affected() as i64;
        sqlx::query("UPDATE jobs SET total = ? WHERE id = ?").bind(n).bind(j.id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn count_backup_selection(&self, selector: &BackupSelector) -> Result<u64> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM azure_key_backups b");
        push_backup_selector(&mut qb, selector);
        let n: i64 = qb.build_query_scalar().fetch_one(&self.reader).await?;
        Ok(n as u64)
    }

    async fn backup_selection_vaults(&self, selector: &BackupSelector) -> Result<Vec<VaultId>> {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT DISTINCT b.vault_id FROM azure_key_backups b");
        push_backup_selector(&mut qb, selector);
        qb.push(" ORDER BY b.vault_id");
        qb.build().fetch_all(&self.reader).await?.iter().map(|row| parse(row, "vault_id")).collect()
    }

    async fn create_job_from_backups(&self, j: &JobRecord, selector: &BackupSelector) -> Result<i64> {
        let mut tx = self.writer.begin().await?;
        insert_job(&mut tx, j).await?;
        // Oldest backup first; the partition is the backup's vault (`azure_partition`).
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO job_items (job_id, seq, key_id, partition, status, updated_at) SELECT ",
        );
        qb.push_bind(j.id.to_string())
            .push(", row_number() OVER (ORDER BY b.created_at, b.rowid) - 1, b.id, ")
            .push_bind(CLOUD_AZURE)
            .push(" || '/' || b.vault_id, 'pending', ")
            .push_bind(ts(j.created_at))
            .push(" FROM azure_key_backups b");
        push_backup_selector(&mut qb, selector);
        // Insert in seq order, so that the items' rowid (the claim order) follows it.
        qb.push(" ORDER BY b.created_at, b.rowid");
        let n = qb.build().execute(&mut *tx).await?.rows_affected() as i64;
        sqlx::query("UPDATE jobs SET total = ? WHERE id = ?").bind(n).bind(j.id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_items(&self, job: JobId, status: Option<ItemStatus>, page: &Page) -> Result<(Vec<ItemRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM job_items WHERE job_id = ");
        count.push_bind(job.to_string());
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM job_items WHERE job_id = ");
        qb.push_bind(job.to_string());
        if let Some(st) = status {
            count.push(" AND status = ").push_bind(st.as_str());
            qb.push(" AND status = ").push_bind(st.as_str());
        }
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;
        qb.push(" ORDER BY seq").push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.reader).await?;
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
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE job_items SET status = 'failed', detail = ?, last_error_code = ?, last_error_message = ?, \
             updated_at = ? WHERE job_id = ? AND status = 'pending' AND key_id IN \
             (SELECT k.id FROM aws_keys k JOIN aws_kms m ON m.id = k.kms_id WHERE m.connection_id = ?)",
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
            sqlx::query("UPDATE jobs SET failed = failed + ?, updated_at = ? WHERE id = ?")
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
        sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(job)
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter, page: &Page) -> Result<(Vec<JobRecord>, u64)> {
        let mut count = QueryBuilder::<Sqlite>::new("SELECT count(*) FROM jobs");
        push_job_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.reader).await?;
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT * FROM jobs");
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
        ));
        qb.push(limit_offset(page));
        let rows = qb.build().fetch_all(&self.reader).await?;
        Ok((rows.iter().map(job).collect::<Result<_>>()?, total as u64))
    }

    async fn job_items(&self, id: JobId) -> Result<Vec<ItemRecord>> {
        sqlx::query("SELECT * FROM job_items WHERE job_id = ? ORDER BY seq")
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(item)
            .collect()
    }

    async fn cancel_job(&self, id: JobId, at: DateTime<Utc>) -> Result<Option<JobRecord>> {
        let mut tx = self.writer.begin().await?;
        let Some(current) = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(job)
            .transpose()?
        else {
            return Ok(None);
        };
        if current.status.is_terminal() {
            // CCKM: cancel on a finished job only raises the flag.
            sqlx::query("UPDATE jobs SET abort = 1 WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        } else {
            let skipped = sqlx::query(
                "UPDATE job_items SET status = 'skipped', detail = 'Skipped: cancelled', updated_at = ? \
                 WHERE job_id = ? AND status = 'pending'",
            )
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE jobs SET abort = 1, skipped = skipped + ?, updated_at = ? WHERE id = ?")
                .bind(skipped as i64)
                .bind(ts(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            finalize_if_done(&mut tx, id, at).await?;
        }
        let after = sqlx::query("SELECT * FROM jobs WHERE id = ?").bind(id.to_string()).fetch_one(&mut *tx).await?;
        let after = job(&after)?;
        tx.commit().await?;
        Ok(Some(after))
    }

    async fn delete_job(&self, id: JobId) -> Result<Option<bool>> {
        let mut tx = self.writer.begin().await?;
        let status: Option<String> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(status) = status else {
            return Ok(None);
        };
        if status == JobStatus::InProgress.as_str() {
            return Ok(Some(false));
        }
        sqlx::query("DELETE FROM job_items WHERE job_id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM jobs WHERE id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(true))
    }

    async fn job_aborted(&self, id: JobId) -> Result<bool> {
        let abort: Option<i64> = sqlx::query_scalar("SELECT abort FROM jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        Ok(abort.unwrap_or(1) != 0)
    }

    async fn job_announced(&self) {
        // One node per SQLite file: its own jobs wake it directly.
        std::future::pending().await
    }

    async fn pending_partitions(&self) -> Result<Vec<(String, DateTime<Utc>)>> {
        let rows = sqlx::query(
            "SELECT partition, min(not_before) AS due FROM job_items WHERE status = 'pending' GROUP BY partition",
        )
        .fetch_all(&self.reader)
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
            "INSERT INTO partition_leases (partition, owner, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (partition) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE partition_leases.owner = excluded.owner OR partition_leases.expires_at < ?",
        )
        .bind(partition)
        .bind(owner)
        .bind(ts(until))
        .bind(ts(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn renew_partitions(&self, owner: &str, until: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("UPDATE partition_leases SET expires_at = ? WHERE owner = ?")
            .bind(ts(until))
            .bind(owner)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn release_partition(&self, partition: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM partition_leases WHERE partition = ? AND owner = ?")
            .bind(partition)
            .bind(owner)
            .execute(&self.writer)
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
        let mut tx = self.writer.begin().await?;
        let rows = sqlx::query(
            "UPDATE job_items SET status = 'running', attempts = attempts + 1, lease_owner = ?, \
             lease_expires_at = ?, first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ? \
             WHERE rowid IN (SELECT rowid FROM job_items WHERE status = 'pending' AND partition = ? \
                             AND not_before <= ? ORDER BY not_before, rowid LIMIT ?) \
             RETURNING job_id, seq, key_id, partition, attempts, first_attempt_at",
        )
        .bind(owner)
        .bind(ts(lease_until))
        .bind(ts(now))
        .bind(ts(now))
        .bind(partition)
        .bind(ts(now))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let mut jobs: HashMap<String, (Operation, JobParams)> = HashMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let job_id: String = row.try_get("job_id")?;
            if !jobs.contains_key(&job_id) {
                let j = sqlx::query("SELECT * FROM jobs WHERE id = ?").bind(&job_id).fetch_one(&mut *tx).await?;
                let j = job(&j)?;
                jobs.insert(job_id.clone(), (j.operation, j.params));
            }
            let (operation, params) = jobs[&job_id].clone();
            out.push(ClaimedItem {
                job_id: parse(row, "job_id")?,
                seq: row.try_get("seq")?,
                key_id: parse(row, "key_id")?,
                operation,
                params,
                partition: row.try_get("partition")?,
                attempts: row.try_get("attempts")?,
                first_attempt_at: get_ts(row, "first_attempt_at")?,
            });
        }
        tx.commit().await?;
        out.sort_by_key(|c| (c.job_id, c.seq));
        Ok(out)
    }

    async fn holds_item(&self, job: JobId, seq: i64, owner: &str, now: DateTime<Utc>) -> Result<bool> {
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM job_items WHERE job_id = ? AND seq = ? AND lease_owner = ? \
             AND status = 'running' AND lease_expires_at > ?",
        )
        .bind(job.to_string())
        .bind(seq)
        .bind(owner)
        .bind(ts(now))
        .fetch_optional(&self.reader)
        .await?;
        Ok(held.is_some())
    }

    async fn renew_leases(&self, owner: &str, lease_until: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query("UPDATE job_items SET lease_expires_at = ? WHERE lease_owner = ? AND status = 'running'")
            .bind(ts(lease_until))
            .bind(owner)
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn release_expired_leases(&self, now: DateTime<Utc>) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE job_items SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = ? \
             WHERE status = 'running' AND lease_expires_at < ?",
        )
        .bind(ts(now))
        .bind(ts(now))
        .execute(&self.writer)
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
        let mut tx = self.writer.begin().await?;
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
        let done = sqlx::query(
            "UPDATE job_items SET status = ?, detail = ?, \
             last_error_code = COALESCE(?, last_error_code), last_error_message = COALESCE(?, last_error_message), \
             state_before = COALESCE(?, state_before), state_after = COALESCE(?, state_after), \
             not_before = ?, lease_owner = NULL, lease_expires_at = NULL, updated_at = ? \
             WHERE job_id = ? AND seq = ? AND lease_owner = ? AND status = 'running'",
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
            let sql = format!("UPDATE jobs SET {counter} = {counter} + 1, updated_at = ? WHERE id = ?");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ts(at)).bind(job_id.to_string()).execute(&mut *tx).await?;
            finalize_if_done(&mut tx, job_id, at).await?;
        }
        match effect {
            ItemEffect::None => {}
            ItemEffect::RefreshAwsKey(id, m) => {
                sqlx::query(
                    "UPDATE aws_keys SET key_state = ?, enabled = ?, material = ?, gone = 0, updated_at = ? \
                     WHERE id = ?",
                )
                .bind(&m.key_state)
                .bind(m.enabled as i64)
                .bind(to_json(m))
                .bind(ts(at))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            }
            ItemEffect::DeleteBackup(id) => {
                if matches!(outcome, ItemOutcome::Succeeded { .. }) {
                    sqlx::query("DELETE FROM azure_key_backups WHERE id = ?")
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
