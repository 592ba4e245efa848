//! What `/readyz` and `/metrics` ask of the database: a cheap write, whether the schema is current, pool use,
//! and job counts.

use chrono::{DateTime, Utc};
use keyfleet_core::time::to_micros;

use super::{Backend, Fields, Query};
use crate::{JobCount, MonitorStore, PoolStats, Result};

/// The `meta` row the readiness probe overwrites: one row for the whole cluster, so probes leave nothing behind.
const PROBE_KEY: &str = "ready_probe";

#[async_trait::async_trait]
impl<B: Backend> MonitorStore for B {
    async fn probe_write(&self, at: DateTime<Utc>) -> Result<()> {
        Query::<B::Db>::new(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(PROBE_KEY)
        .bind(to_micros(at).to_string())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<Vec<i64>> {
        let applied: Vec<i64> = Query::<B::Db>::new("SELECT version FROM _sqlx_migrations WHERE success")
            .all(self.reader(), |f: Fields<'_, B::Db>| f.int("version"))
            .await?;
        Ok(self
            .migrator()
            .iter()
            .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
            .map(|m| m.version)
            .collect())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        let stats = |name: &'static str, pool: &sqlx::Pool<B::Db>| PoolStats {
            pool: name,
            size: pool.size(),
            idle: pool.num_idle() as u32,
            max: pool.options().get_max_connections(),
        };
        if std::ptr::eq(self.reader(), self.writer()) {
            vec![stats("main", self.reader())]
        } else {
            vec![stats("reader", self.reader()), stats("writer", self.writer())]
        }
    }

    async fn job_counts(&self) -> Result<Vec<JobCount>> {
        Query::<B::Db>::new(
            "SELECT cloud, operation, status, count(*) AS n FROM jobs GROUP BY cloud, operation, status",
        )
        .all(self.reader(), |f| {
            Ok(JobCount {
                cloud: f.text("cloud")?,
                operation: f.text("operation")?,
                status: f.text("status")?,
                count: f.int("n")? as u64,
            })
        })
        .await
    }
}
