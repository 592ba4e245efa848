//! Operator safety around bulk jobs, for every cloud (issue 10): plans (`dry_run`) and their confirmation, the
//! blast-radius cap, failure thresholds and idempotent creation. Each cloud's create calls in here.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use keyfleet_api_types::bulkjob::{JobSafety, Plan, PlanSample};
use keyfleet_core::rules::{planned_action, planned_no_op};
use keyfleet_core::time::now;
use keyfleet_core::*;

use keyfleet_store::IdempotencyClaim;

use crate::jobs::JobWithItems;
use crate::{Caller, Result, ServiceError, Services};

/// How many items a plan's `sample` shows.
pub const PLAN_SAMPLE: u64 = 10;

/// The server's safety settings.
#[derive(Debug, Clone)]
pub struct SafetySettings {
    /// How long a plan can be confirmed.
    pub plan_ttl: Duration,
    /// A request that resolves to more items needs `max_items` (or a confirmed plan).
    pub confirm_above: u64,
    /// `max_failure_percent` of jobs whose request gives none.
    pub max_failure_percent: u64,
    /// How long an `Idempotency-Key` is remembered (at least).
    pub idempotency_ttl: Duration,
}

impl Default for SafetySettings {
    fn default() -> Self {
        Self {
            plan_ttl: Duration::from_secs(3600),
            confirm_above: 1000,
            max_failure_percent: 50,
            idempotency_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// A job's item with, for a planned job, what confirming it will do.
#[derive(Debug, Clone)]
pub struct ItemEntry {
    pub item: ItemRecord,
    pub current_state: Option<String>,
    pub action: Option<String>,
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

impl Services {
    /// A new job of a create request: planned (with its expiry) for `dry_run`, else started; with the
    /// request's failure thresholds, or the server's default percentage, in its parameters.
    pub(crate) fn new_job(
        &self,
        caller: &Caller,
        operation: Operation,
        mut params: JobParams,
        safety: &JobSafety,
    ) -> Result<JobRecord> {
        if let Some(p) = safety.max_failure_percent
            && p > 100
        {
            return Err(ServiceError::invalid("max_failure_percent", format!("must be between 0 and 100, got {p}")));
        }
        let to_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        params.max_failures = safety.max_failures.map(to_i64);
        params.max_failure_percent =
            Some(to_i64(safety.max_failure_percent.unwrap_or(self.settings.safety.max_failure_percent)));
        let request_id = keyfleet_store::audit::actor().request_id;
        params.request_id = (!request_id.is_empty()).then_some(request_id);
        let at = now();
        let mut job = JobRecord::started(Cloud::of(operation), operation, params, caller.user_id, at);
        if safety.dry_run {
            job.status = JobStatus::Planned;
            job.plan_expires_at =
                Some(at + chrono::Duration::from_std(self.settings.safety.plan_ttl).unwrap_or_default());
        }
        Ok(job)
    }

    /// The blast-radius cap: 409 (and nothing created) when a request resolving to `count` items asks for
    /// fewer with `max_items`, or is over the server's `confirm_above` without `max_items` and is not a plan.
    pub(crate) fn check_blast_radius(&self, safety: &JobSafety, count: u64, what: &str) -> Result<()> {
        if let Some(max) = safety.max_items {
            if count > max {
                return Err(ServiceError::Conflict(format!(
                    "the request matches {count} {what}, more than its max_items {max}; nothing was created: \
                     narrow the selection, or give \"max_items\": {count} if all of them are meant"
                )));
            }
            return Ok(());
        }
        let cap = self.settings.safety.confirm_above;
        if count > cap && !safety.dry_run {
            return Err(ServiceError::Conflict(format!(
                "the request matches {count} {what}, more than {cap} (the server's safety_confirm_above); nothing \
                 was created: plan it with \"dry_run\": true and confirm the plan, or repeat it with \
                 \"max_items\": {count}"
            )));
        }
        Ok(())
    }

    /// After a planned job's items are stored: its summary, recorded with it and set on `job`.
    pub(crate) async fn record_plan(&self, job: &mut JobRecord) -> Result<()> {
        let op = job.operation;
        let mut plan = Plan::default();
        for g in self.store.plan_groups(job.id, Cloud::of(op)).await? {
            plan.items += g.items;
            *plan.by_container.entry(g.container).or_default() += g.items;
            *plan.by_region.entry(g.region).or_default() += g.items;
            if planned_no_op(op, &g.state, g.restore_state.as_deref()) {
                plan.no_ops += g.items - g.restore_policies;
            }
            *plan.by_state.entry(g.state).or_default() += g.items;
        }
        let first = Page { skip: 0, limit: PLAN_SAMPLE, sort: vec![] };
        let sample = self.planned_items(op, self.store.list_items(job.id, None, &first).await?.0).await?;
        plan.sample = sample
            .into_iter()
            .map(|e| PlanSample {
                key_id: e.item.key_id.to_string(),
                current_state: e.current_state,
                action: e.action.unwrap_or_default(),
            })
            .collect();
        let value = serde_json::to_value(&plan).map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.store.set_job_plan(job.id, &value).await?;
        job.plan = Some(value);
        Ok(())
    }

    /// Items with their target's current state and intended action (planned items only; others as they are).
    pub(crate) async fn planned_items(&self, op: Operation, items: Vec<ItemRecord>) -> Result<Vec<ItemEntry>> {
        let planned: Vec<KeyId> = items.iter().filter(|i| i.status == ItemStatus::Planned).map(|i| i.key_id).collect();
        let states: HashMap<KeyId, String> = if planned.is_empty() {
            HashMap::new()
        } else {
            match Cloud::of(op) {
                Cloud::Aws => self
                    .store
                    .aws_keys_by_ids(&planned)
                    .await?
                    .into_iter()
                    .filter(|k| !k.gone)
                    .map(|k| (k.id, k.material.key_state))
                    .collect(),
                Cloud::Azure => {
                    let ids: Vec<BackupId> = planned.iter().map(|k| BackupId(k.0)).collect();
                    let found = self.store.key_backups_by_ids(&ids).await?;
                    found.into_iter().map(|b| (KeyId(b.id.0), "stored".to_string())).collect()
                }
            }
        };
        Ok(items
            .into_iter()
            .map(|item| {
                if item.status != ItemStatus::Planned {
                    return ItemEntry { item, current_state: None, action: None };
                }
                let state = states.get(&item.key_id).cloned();
                let action = Some(planned_action(op, &item, state.as_deref()));
                ItemEntry { item, current_state: state, action }
            })
            .collect())
    }

    /// `POST .../bulkjob(s)/{id}/confirm`: starts a plan on exactly its frozen items. Who may cancel the job
    /// may confirm it; a job that is not a plan, or a plan past its expiry, is a 409.
    pub async fn confirm_bulkjob(&self, caller: &Caller, cloud: Cloud, id: &str) -> Result<JobWithItems> {
        let job = self.readable_job(caller, cloud, id).await?;
        let not_planned = |status: JobStatus| {
            ServiceError::Conflict(format!(
                "bulk job {id} is {}, not planned: only a job created with \"dry_run\": true can be confirmed",
                status.as_str()
            ))
        };
        if job.status != JobStatus::Planned {
            return Err(not_planned(job.status));
        }
        if let Some(expired) = job.plan_expires_at.filter(|t| *t <= now()) {
            return Err(ServiceError::Conflict(format!(
                "the plan of bulk job {id} expired at {}; plan again (the inventory may have changed)",
                expired.to_rfc3339()
            )));
        }
        let started = match self.store.start_planned_job(job.id, now()).await? {
            Some(j) => j,
            None => {
                let now_status = self.store.get_job(job.id).await?.map_or(JobStatus::Cancelled, |j| j.status);
                return Err(not_planned(now_status));
            }
        };
        self.engine.notify_jobs();
        tracing::info!(
            bulkjob.id = %started.id, %cloud, keys = started.total, user.name = %caller.username,
            "bulk job plan confirmed"
        );
        self.with_items(started).await
    }

    /// Runs `create` at most once per (user, `Idempotency-Key`): a repeat with the same body answers the job the
    /// first request created; with another body it is a 422. Without a key, just runs `create`.
    pub async fn create_once<F>(
        &self,
        caller: &Caller,
        cloud: Cloud,
        key: Option<&str>,
        body: &impl serde::Serialize,
        create: F,
    ) -> Result<JobWithItems>
    where
        F: Future<Output = Result<JobWithItems>>,
    {
        let Some(key) = key else {
            return create.await;
        };
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ServiceError::invalid(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            ));
        }
        let hash = body_hash(cloud, body)?;
        let at = now();
        let reusable_before = at - chrono::Duration::from_std(self.settings.safety.idempotency_ttl).unwrap_or_default();
        let claim = IdempotencyClaim { user: caller.user_id, key, body_hash: &hash, at, reusable_before };
        match self.store.claim_idempotency_key(&claim).await? {
            None => match create.await {
                Ok(created) => {
                    self.store.set_idempotency_job(caller.user_id, key, created.job.id).await?;
                    Ok(created)
                }
                Err(e) => {
                    self.store.release_idempotency_key(caller.user_id, key).await?;
                    Err(e)
                }
            },
            Some((earlier, _)) if earlier != hash => Err(ServiceError::Unprocessable(format!(
                "Idempotency-Key {key} was already used with a different request; use a new key for a new request"
            ))),
            Some((_, None)) => Err(ServiceError::Conflict(format!(
                "a request with Idempotency-Key {key} is still being processed; retry it later"
            ))),
            Some((_, Some(job))) => {
                let job = self.store.get_job(job).await?.ok_or_else(|| {
                    ServiceError::Conflict(format!("the job created with Idempotency-Key {key} was deleted"))
                })?;
                tracing::info!(bulkjob.id = %job.id, user.name = %caller.username, "idempotent create replayed");
                self.with_items(job).await
            }
        }
    }
}

/// SHA-256 (hex) of the request as the server read it (canonical JSON: fields in a fixed order, no
/// whitespace), with the cloud it was sent to.
fn body_hash(cloud: Cloud, body: &impl serde::Serialize) -> Result<String> {
    let json = serde_json::to_vec(body).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(cloud.name().as_bytes());
    ctx.update(b"\n");
    ctx.update(&json);
    Ok(ctx.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
}
