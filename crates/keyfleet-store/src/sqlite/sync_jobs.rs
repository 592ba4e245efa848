use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::*;
use crate::{Result, SyncJobStore};

fn sync_job(row: &SqliteRow) -> Result<SyncJobRecord> {
    let status: String = row.try_get("status")?;
    Ok(SyncJobRecord {
        id: parse(row, "id")?,
        cloud: row.try_get("cloud")?,
        kms: json(row, "kms")?,
        regions: json(row, "regions")?,
        vaults: json(row, "vaults")?,
        take_cloud_key_backup: row.try_get::<i64, _>("take_cloud_key_backup")? != 0,
        synchronize_all: row.try_get::<i64, _>("synchronize_all")? != 0,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        abort: row.try_get::<i64, _>("abort")? != 0,
        detailed_status: json(row, "detailed_status")?,
        created_by: parse(row, "created_by")?,
        created_at: get_ts(row, "created_at")?,
        updated_at: get_ts(row, "updated_at")?,
        completed_at: get_opt_ts(row, "completed_at")?,
    })
}

#[async_trait]
impl SyncJobStore for SqliteStore {
    async fn create_sync_job(&self, j: &SyncJobRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sync_jobs (id, kms, regions, synchronize_all, status, abort, detailed_status, created_by, \
             created_at, updated_at, completed_at, cloud, vaults, take_cloud_key_backup) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(j.id.to_string())
        .bind(to_json(&j.kms))
        .bind(to_json(&j.regions))
        .bind(j.synchronize_all as i64)
        .bind(j.status.as_str())
        .bind(j.abort as i64)
        .bind(to_json(&j.detailed_status))
        .bind(j.created_by.to_string())
        .bind(ts(j.created_at))
        .bind(ts(j.updated_at))
        .bind(j.completed_at.map(ts))
        .bind(&j.cloud)
        .bind(to_json(&j.vaults))
        .bind(j.take_cloud_key_backup as i64)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_sync_job(&self, id: SyncJobId) -> Result<Option<SyncJobRecord>> {
        sqlx::query("SELECT * FROM sync_jobs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(sync_job)
            .transpose()
    }

    async fn list_sync_jobs(
        &self,
        cloud: &str,
        status: Option<JobStatus>,
        page: &Page,
    ) -> Result<(Vec<SyncJobRecord>, u64)> {
        let filter = if status.is_some() { " WHERE cloud = ? AND status = ?" } else { " WHERE cloud = ?" };
        let order = order_by(
            &page.sort,
            &[("createdAt", "created_at"), ("updatedAt", "updated_at"), ("id", "id")],
            "created_at DESC",
        );
        let sql = format!("SELECT * FROM sync_jobs{filter}{order}{}", limit_offset(page));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        let mut c =
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM sync_jobs{filter}")));
        q = q.bind(cloud);
        c = c.bind(cloud);
        if let Some(s) = status {
            q = q.bind(s.as_str());
            c = c.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.reader).await?;
        let total = c.fetch_one(&self.reader).await?;
        Ok((rows.iter().map(sync_job).collect::<Result<_>>()?, total as u64))
    }

    async fn claim_sync_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<SyncJobRecord>> {
        sqlx::query(
            "UPDATE sync_jobs SET lease_owner = ?, lease_expires_at = ? WHERE id = \
             (SELECT id FROM sync_jobs WHERE status = 'in_progress' \
              AND (lease_owner IS NULL OR lease_expires_at < ?) ORDER BY created_at LIMIT 1) \
             RETURNING *",
        )
        .bind(owner)
        .bind(ts(lease_until))
        .bind(ts(now))
        .fetch_optional(&self.writer)
        .await?
        .as_ref()
        .map(sync_job)
        .transpose()
    }

    async fn update_sync_job(&self, j: &SyncJobRecord, owner: &str, lease_until: DateTime<Utc>) -> Result<bool> {
        let lease_owner = if j.status.is_terminal() { None } else { Some(owner) };
        let done = sqlx::query(
            "UPDATE sync_jobs SET status = ?, detailed_status = ?, updated_at = ?, completed_at = ?, \
             lease_owner = ?, lease_expires_at = ? \
             WHERE id = ? AND lease_owner = ? AND status = 'in_progress'",
        )
        .bind(j.status.as_str())
        .bind(to_json(&j.detailed_status))
        .bind(ts(j.updated_at))
        .bind(j.completed_at.map(ts))
        .bind(lease_owner)
        .bind(ts(lease_until))
        .bind(j.id.to_string())
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn cancel_sync_job(&self, id: SyncJobId, at: DateTime<Utc>) -> Result<Option<SyncJobRecord>> {
        // A running sync notices `abort` between regions and ends itself as cancelled.
        sqlx::query("UPDATE sync_jobs SET abort = 1, updated_at = CASE WHEN status = 'in_progress' THEN ? ELSE updated_at END WHERE id = ?")
            .bind(ts(at))
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        self.get_sync_job(id).await
    }
}
