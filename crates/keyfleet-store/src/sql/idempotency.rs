//! `Idempotency-Key`s of create requests (`idempotency_keys`).

use async_trait::async_trait;
use keyfleet_core::*;

use super::{Backend, Query};
use crate::{IdempotencyClaim, IdempotencyStore, Result};

#[async_trait]
impl<B: Backend> IdempotencyStore for B {
    async fn claim_idempotency_key(&self, claim: &IdempotencyClaim<'_>) -> Result<Option<(String, Option<JobId>)>> {
        let IdempotencyClaim { user, key, body_hash, at, reusable_before } = *claim;
        // One statement: two requests with the same key cannot both take it.
        let taken = Query::<B::Db>::new(
            "INSERT INTO idempotency_keys (user_id, idem_key, body_hash, job_id, created_at) \
             VALUES ($1, $2, $3, NULL, $4) \
             ON CONFLICT (user_id, idem_key) DO UPDATE SET body_hash = excluded.body_hash, job_id = NULL, \
             created_at = excluded.created_at WHERE idempotency_keys.created_at < $5",
        )
        .bind(user.to_string())
        .bind(key)
        .bind(body_hash)
        .bind(at)
        .bind(reusable_before)
        .execute(self.writer())
        .await?;
        if taken == 1 {
            return Ok(None);
        }
        Query::new("SELECT body_hash, job_id FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2")
            .bind(user.to_string())
            .bind(key)
            .optional(self.writer(), |r| Ok((r.text("body_hash")?, r.opt_parse("job_id")?)))
            .await
    }

    async fn set_idempotency_job(&self, user: UserId, key: &str, job: JobId) -> Result<()> {
        Query::<B::Db>::new("UPDATE idempotency_keys SET job_id = $1 WHERE user_id = $2 AND idem_key = $3")
            .bind(job.to_string())
            .bind(user.to_string())
            .bind(key)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn release_idempotency_key(&self, user: UserId, key: &str) -> Result<()> {
        Query::<B::Db>::new("DELETE FROM idempotency_keys WHERE user_id = $1 AND idem_key = $2 AND job_id IS NULL")
            .bind(user.to_string())
            .bind(key)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
