//! AWS bulk jobs: CCKM's validation rules, permission checks, creation in one transaction, views, cancel.

use std::collections::HashSet;

use keyfleet_api_types::bulkjob::{BulkJobListQuery, CreateAwsBulkJob};
use keyfleet_api_types::common::ListParams;
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::{Caller, Result, ServiceError, Services, paging};

/// CCKM's ceiling on `keys` in one job.
pub const MAX_KEYS: usize = 100;

/// A job with its items, what a view needs.
#[derive(Debug, Clone)]
pub struct JobWithItems {
    pub job: JobRecord,
    pub keys: Vec<KeyId>,
    pub items: Vec<ItemRecord>,
}

impl Services {
    /// `POST /v1/cckm/aws/bulkjob`.
    pub async fn create_aws_bulkjob(
        &self,
        caller: &Caller,
        req: CreateAwsBulkJob,
    ) -> Result<JobWithItems> {
        caller.require_cckm_user()?;
        let op_text = req
            .operation
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ServiceError::invalid("operation", "is required"))?;
        let operation = Operation::parse(op_text).ok_or_else(|| {
            let all: Vec<&str> = Operation::AWS.iter().map(|o| o.as_str()).collect();
            ServiceError::invalid(
                "operation",
                format!("unknown operation {op_text:?}; one of {}", all.join(", ")),
            )
        })?;

        let days = match (operation, req.days) {
            (Operation::ScheduleKeyDeletion, None) => Some(30),
            (Operation::ScheduleKeyDeletion, Some(d)) if (7..=30).contains(&d) => Some(d),
            (Operation::ScheduleKeyDeletion, Some(d)) => {
                return Err(ServiceError::invalid(
                    "days",
                    format!("must be between 7 and 30, got {d}"),
                ));
            }
            (_, Some(_)) => {
                return Err(ServiceError::invalid(
                    "days",
                    "is only allowed with operation schedulekeydeletion",
                ));
            }
            (_, None) => None,
        };
        let template_id = match (operation, req.policy_template_id.as_deref()) {
            (Operation::ApplyPolicyTemplate, None | Some("")) => {
                return Err(ServiceError::invalid(
                    "policy_template_id",
                    "is required with operation applypolicytemplate",
                ));
            }
            (Operation::ApplyPolicyTemplate, Some(t)) => Some(t),
            (_, Some(_)) => {
                return Err(ServiceError::invalid(
                    "policy_template_id",
                    "is only allowed with operation applypolicytemplate",
                ));
            }
            (_, None) => None,
        };

        let key_texts = req
            .keys
            .ok_or_else(|| ServiceError::invalid("keys", "is required"))?;
        if key_texts.is_empty() {
            return Err(ServiceError::invalid("keys", "must name at least one key"));
        }
        if key_texts.len() > MAX_KEYS {
            return Err(ServiceError::invalid(
                "keys",
                format!("at most {MAX_KEYS} keys per job, got {}", key_texts.len()),
            ));
        }
        let mut seen = HashSet::new();
        let mut ids = Vec::with_capacity(key_texts.len());
        let mut malformed = Vec::new();
        for k in &key_texts {
            if !seen.insert(k.as_str()) {
                return Err(ServiceError::invalid(
                    "keys",
                    format!("duplicate key id {k}"),
                ));
            }
            match k.parse::<KeyId>() {
                Ok(id) => ids.push(id),
                Err(_) => malformed.push(k.as_str()),
            }
        }
        let found = self.store.aws_keys_by_ids(&ids).await?;
        let found_ids: HashSet<KeyId> = found.iter().map(|k| k.id).collect();
        let mut unknown: Vec<&str> = malformed;
        unknown.extend(
            key_texts
                .iter()
                .filter(|k| k.parse::<KeyId>().is_ok_and(|id| !found_ids.contains(&id)))
                .map(String::as_str),
        );
        if !unknown.is_empty() {
            return Err(ServiceError::invalid(
                "keys",
                format!("unknown key ids: {}", unknown.join(", ")),
            ));
        }
        // Report in request order.
        let mut keys: Vec<AwsKeyRecord> = found;
        keys.sort_by_key(|k| ids.iter().position(|i| *i == k.id));
        self.require_on_keys(caller, &keys, "keybulkoperation")
            .await?;
        if let Some(gone) = keys.iter().find(|k| k.gone) {
            return Err(ServiceError::invalid(
                "keys",
                format!("key {} no longer exists in AWS (gone)", gone.id),
            ));
        }

        let policy_template_id = match template_id {
            Some(t) => {
                let tid: TemplateId = t.parse().map_err(|_| {
                    ServiceError::invalid("policy_template_id", format!("no policy template {t}"))
                })?;
                let template = self.store.get_template(tid).await?.ok_or_else(|| {
                    ServiceError::invalid("policy_template_id", format!("no policy template {t}"))
                })?;
                if let Some(k) = keys
                    .iter()
                    .find(|k| k.material.account_id != template.account_id)
                {
                    return Err(ServiceError::invalid(
                        "policy_template_id",
                        format!(
                            "template {} is for AWS account {} but key {} is in account {}",
                            template.id, template.account_id, k.id, k.material.account_id
                        ),
                    ));
                }
                Some(tid)
            }
            None => None,
        };

        let at = now();
        let job = JobRecord {
            id: JobId::new(),
            cloud: "aws".into(),
            operation,
            params: JobParams {
                days,
                policy_template_id,
            },
            status: JobStatus::InProgress,
            abort: false,
            created_by: caller.user_id,
            total: ids.len() as i64,
            succeeded: 0,
            failed: 0,
            skipped: 0,
            created_at: at,
            updated_at: at,
            completed_at: None,
        };
        self.store.create_job(&job, &ids).await?;
        self.engine.notify_jobs();
        tracing::info!(bulkjob.id = %job.id, operation = %operation, keys = ids.len(), user.name = %caller.username, "bulk job created");
        Ok(JobWithItems {
            job,
            keys: ids,
            items: Vec::new(),
        })
    }

    /// `GET /v1/cckm/aws/bulkjob/{id}`.
    pub async fn get_aws_bulkjob(&self, caller: &Caller, id: &str) -> Result<JobWithItems> {
        caller.require_cckm_user()?;
        let jid: JobId = id
            .parse()
            .map_err(|_| ServiceError::not_found("bulk job", id))?;
        let job = self
            .store
            .get_job(jid)
            .await?
            .filter(|j| j.cloud == "aws")
            .ok_or_else(|| ServiceError::not_found("bulk job", id))?;
        let with = self.with_items(job).await?;
        self.require_on_job(caller, &with).await?;
        Ok(with)
    }

    /// `POST /v1/cckm/aws/bulkjob/{id}/cancel`.
    pub async fn cancel_aws_bulkjob(&self, caller: &Caller, id: &str) -> Result<JobWithItems> {
        let current = self.get_aws_bulkjob(caller, id).await?;
        let job = self
            .store
            .cancel_job(current.job.id, now())
            .await?
            .ok_or_else(|| ServiceError::not_found("bulk job", id))?;
        tracing::info!(bulkjob.id = %job.id, user.name = %caller.username, "bulk job cancel requested");
        self.with_items(job).await
    }

    /// `GET /v1/cckm/aws/bulkjob`. A `CCKM Users` member sees the jobs they created.
    pub async fn list_aws_bulkjobs(
        &self,
        caller: &Caller,
        q: BulkJobListQuery,
    ) -> Result<(Vec<JobWithItems>, u64, Page)> {
        caller.require_cckm_user()?;
        let page = paging::page(
            &ListParams {
                skip: q.skip,
                limit: q.limit,
                sort: q.sort.clone(),
            },
            keyfleet_store::sort_fields::JOBS,
        )?;
        let mut filter = JobFilter {
            cloud: Some("aws".into()),
            ..Default::default()
        };
        if let Some(id) = q.id.as_deref().filter(|s| !s.is_empty()) {
            filter.id = Some(
                id.parse()
                    .map_err(|_| ServiceError::invalid("id", format!("{id:?} is not a job id")))?,
            );
        }
        if let Some(s) = q.overall_status.as_deref().filter(|s| !s.is_empty()) {
            filter.status = Some(JobStatus::parse(s).ok_or_else(|| {
                ServiceError::invalid(
                    "overall_status",
                    "must be in_progress, completed, failed or cancelled",
                )
            })?);
        }
        if let Some(c) = q.cloud.as_deref().filter(|s| !s.is_empty())
            && c != "aws"
        {
            return Ok((Vec::new(), 0, page));
        }
        if let Some(o) = q.operation.as_deref().filter(|s| !s.is_empty()) {
            filter.operation = Some(Operation::parse(o).ok_or_else(|| {
                ServiceError::invalid("operation", format!("unknown operation {o:?}"))
            })?);
        }
        if !caller.is_cckm_admin() {
            filter.created_by = Some(caller.user_id);
        }
        let (jobs, total) = self.store.list_jobs(&filter, &page).await?;
        let mut out = Vec::with_capacity(jobs.len());
        for j in jobs {
            out.push(self.with_items(j).await?);
        }
        Ok((out, total, page))
    }

    async fn with_items(&self, job: JobRecord) -> Result<JobWithItems> {
        let items = self.store.job_items(job.id).await?;
        let keys = items.iter().map(|i| i.key_id).collect();
        Ok(JobWithItems { job, keys, items })
    }

    async fn require_on_job(&self, caller: &Caller, job: &JobWithItems) -> Result<()> {
        if caller.is_cckm_admin() {
            return Ok(());
        }
        let keys = self.store.aws_keys_by_ids(&job.keys).await?;
        if keys.len() != job.keys.len() {
            return Err(ServiceError::Forbidden(format!(
                "user {} may not see this job: some of its keys were removed",
                caller.username
            )));
        }
        self.require_on_keys(caller, &keys, "keybulkoperation")
            .await
    }
}
