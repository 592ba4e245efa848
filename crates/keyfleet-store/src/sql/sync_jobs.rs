use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keyfleet_core::*;

use super::audit::audited;
use super::{Backend, Db, Dialect, Fields, JsonParam, Query, list_page, order_by, row_by};
use crate::audit::event;
use crate::{Lease, Result, StoreError, SyncJobStore, SyncQueue};

fn sync_job<D: Db>(r: Fields<'_, D>) -> Result<SyncJobRecord> {
    let status = r.text("status")?;
    Ok(SyncJobRecord {
        id: r.parse("id")?,
        cloud: r.text("cloud")?,
        kms: r.json("kms")?,
        regions: r.json("regions")?,
        vaults: r.json("vaults")?,
        take_cloud_key_backup: r.flag("take_cloud_key_backup")?,
        synchronize_all: r.flag("synchronize_all")?,
        status: JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
        abort: r.flag("abort")?,
        detailed_status: r.json("detailed_status")?,
        created_by: r.parse("created_by")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        completed_at: r.opt_ts("completed_at")?,
    })
}

#[async_trait]
impl<B: Backend> SyncJobStore for B {
    async fn create_sync_job(&self, j: &SyncJobRecord) -> Result<()> {
        let query = Query::<B::Db>::new(
            "INSERT INTO sync_jobs (id, kms, regions, synchronize_all, status, abort, detailed_status, created_by, \
             created_at, updated_at, completed_at, cloud, vaults, take_cloud_key_backup) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(j.id.to_string())
        .bind(JsonParam(&j.kms))
        .bind(JsonParam(&j.regions))
        .bind(j.synchronize_all)
        .bind(j.status.as_str())
        .bind(j.abort)
        .bind(JsonParam(&j.detailed_status))
        .bind(j.created_by.to_string())
        .bind(j.created_at)
        .bind(j.updated_at)
        .bind(j.completed_at)
        .bind(&j.cloud)
        .bind(JsonParam(&j.vaults))
        .bind(j.take_cloud_key_backup);
        audited(self.writer(), query, event("syncjob.create", format!("sync-job:{}", j.id)), false).await?;
        Ok(())
    }

    async fn list_sync_jobs(
        &self,
        cloud: &str,
        status: Option<JobStatus>,
        page: &Page,
    ) -> Result<(Vec<SyncJobRecord>, u64)> {
        let filter = |q: &mut Query<B::Db>| {
            q.push(" WHERE cloud = ").push_bind(cloud);
            if let Some(s) = status {
                q.push(" AND status = ").push_bind(s.as_str());
            }
        };
        let columns = &[("createdAt", "created_at"), ("updatedAt", "updated_at"), ("id", "id")];
        let order = order_by(&page.sort, columns, "created_at DESC", B::Db::ROW_NO);
        let (select, count) = ("SELECT * FROM sync_jobs", "SELECT count(*) AS n FROM sync_jobs");
        list_page(self.reader(), select, count, filter, order, page, sync_job).await
    }

    async fn cancel_sync_job(&self, id: SyncJobId, at: DateTime<Utc>) -> Result<Option<SyncJobRecord>> {
        // A running sync notices `abort` between regions and ends itself as cancelled.
        let query = Query::<B::Db>::new(
            "UPDATE sync_jobs SET abort = true, \
             updated_at = CASE WHEN status = 'in_progress' THEN $1 ELSE updated_at END WHERE id = $2",
        )
        .bind(at)
        .bind(id.to_string());
        audited(self.writer(), query, event("syncjob.cancel", format!("sync-job:{id}")), true).await?;
        self.get_sync_job(id).await
    }
}

#[async_trait]
impl<B: Backend> SyncQueue for B {
    async fn claim_sync_job(&self, lease: Lease<'_>) -> Result<Option<SyncJobRecord>> {
        // SKIP LOCKED (PostgreSQL): two nodes claiming at once take different jobs (or one takes none);
        // neither waits.
        Query::new(format!(
            "UPDATE sync_jobs SET lease_owner = $1, lease_expires_at = $2 WHERE id = \
             (SELECT id FROM sync_jobs WHERE status = 'in_progress' \
              AND (lease_owner IS NULL OR lease_expires_at < $3) ORDER BY created_at, {} LIMIT 1{}) \
             RETURNING *",
            B::Db::ROW_NO,
            B::Db::SKIP_LOCKED
        ))
        .bind(lease.owner)
        .bind(lease.until)
        .bind(lease.now)
        .optional(self.writer(), sync_job)
        .await
    }
    async fn get_sync_job(&self, id: SyncJobId) -> Result<Option<SyncJobRecord>> {
        row_by(self.reader(), "sync_jobs", "id", id.to_string(), sync_job).await
    }
    async fn update_sync_job(&self, j: &SyncJobRecord, owner: &str, lease_until: DateTime<Utc>) -> Result<bool> {
        let lease_owner = if j.status.is_terminal() { None } else { Some(owner.to_owned()) };
        let updated = Query::<B::Db>::new(
            "UPDATE sync_jobs SET status = $1, detailed_status = $2, updated_at = $3, completed_at = $4, \
             lease_owner = $5, lease_expires_at = $6 \
             WHERE id = $7 AND lease_owner = $8 AND status = 'in_progress'",
        )
        .bind(j.status.as_str())
        .bind(JsonParam(&j.detailed_status))
        .bind(j.updated_at)
        .bind(j.completed_at)
        .bind(lease_owner)
        .bind(lease_until)
        .bind(j.id.to_string())
        .bind(owner)
        .execute(self.writer())
        .await?;
        Ok(updated == 1)
    }
}
