//! Azure bulk jobs (`/v1/cckm/azure/bulkjobs`): `delete-key-backups` with CCKM's selectors and rules; who may
//! read a job. Get, list, cancel, delete and items are shared with AWS (`crate::jobs`); execution happens in
//! `keyfleet-engine` like every bulk job.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use keyfleet_api_types::azure::{CreateAzureBulkJob, DeleteKeyBackupsParam, OneOrMany};
use keyfleet_core::time::now;
use keyfleet_core::*;

use crate::jobs::{JobWithItems, not_readable, parse_operation};
use crate::{Caller, Result, ServiceError, Services};

const PARAM: &str = "delete_key_backups_param";

fn field(name: &str) -> String {
    format!("{PARAM}.{name}")
}

fn parse_time(name: &str, v: Option<String>) -> Result<Option<DateTime<Utc>>> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => DateTime::parse_from_rfc3339(&s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| ServiceError::invalid(&field(name), format!("{s:?} is not an RFC 3339 time"))),
    }
}

/// Distinct ids parsed from their texts; 400 naming the malformed ones.
fn parse_ids<T: std::str::FromStr + Eq + std::hash::Hash + Copy>(name: &str, texts: &[String]) -> Result<Vec<T>> {
    if texts.is_empty() {
        return Err(ServiceError::invalid(&field(name), "must name at least one id"));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(texts.len());
    for t in texts {
        let id: T = t.parse().map_err(|_| ServiceError::invalid(&field(name), format!("{t:?} is not an id")))?;
        if !seen.insert(id) {
            return Err(ServiceError::invalid(&field(name), format!("{t} is listed twice")));
        }
        out.push(id);
    }
    Ok(out)
}

/// `delete_key_backups_param` with the conditions given at the top level of the request (seed-004's flat form)
/// folded in: each means exactly what it means inside the object; one given in both places with different
/// values is a 400. `None` when neither place gives anything.
fn merge_param(
    nested: Option<DeleteKeyBackupsParam>,
    top: Option<DeleteKeyBackupsParam>,
) -> Option<Result<DeleteKeyBackupsParam>> {
    let (mut p, top) = match (nested, top) {
        (None, None) => return None,
        (Some(p), None) | (None, Some(p)) => return Some(Ok(p)),
        (Some(p), Some(top)) => (p, top),
    };
    fn fold<T: PartialEq + serde::Serialize>(name: &str, inner: &mut Option<T>, outer: Option<T>) -> Result<()> {
        match (inner.as_ref(), outer) {
            (_, None) => Ok(()),
            (None, Some(v)) => {
                *inner = Some(v);
                Ok(())
            }
            (Some(a), Some(b)) if *a == b => Ok(()),
            (Some(a), Some(b)) => {
                let show = |v: &T| serde_json::to_string(v).unwrap_or_default();
                Err(ServiceError::invalid(
                    name,
                    format!("is {} at the top level but {} in {PARAM}; give it once", show(&b), show(a)),
                ))
            }
        }
    }
    let folded = (|| {
        let backups = |b: &OneOrMany| b.clone().into_vec();
        match (p.backups.as_ref(), top.backups.as_ref()) {
            (Some(a), Some(b)) if backups(a) != backups(b) => {
                return Err(ServiceError::invalid(
                    "backups",
                    format!("differs between the top level and {PARAM}; give it once"),
                ));
            }
            (None, Some(b)) => p.backups = Some(b.clone()),
            _ => {}
        }
        fold("key_id", &mut p.key_id, top.key_id)?;
        fold("keys", &mut p.keys, top.keys)?;
        fold("vault_id", &mut p.vault_id, top.vault_id)?;
        fold("created_after", &mut p.created_after, top.created_after)?;
        fold("created_before", &mut p.created_before, top.created_before)?;
        Ok(p)
    })();
    Some(folded)
}

impl Services {
    /// `POST /v1/cckm/azure/bulkjobs`.
    pub async fn create_azure_bulkjob(&self, caller: &Caller, req: CreateAzureBulkJob) -> Result<JobWithItems> {
        caller.require_cckm_user()?;
        let safety = req.safety();
        let operation = parse_operation(Cloud::Azure, req.operation.as_deref(), |op_text| {
            format!("unknown operation {op_text:?} for Azure bulk jobs; the one operation is delete-key-backups")
        })?;
        let top = req.top_level_param();
        let param = merge_param(req.delete_key_backups_param, top).ok_or_else(|| {
            ServiceError::invalid(PARAM, format!("is required with operation {}", operation.as_str()))
        })??;
        let echo = serde_json::to_value(&param).ok();
        let selector = self.resolve_backup_selector(param).await?;

        // A CCKM User needs keybulkoperation on every vault the job reaches.
        if !caller.is_cckm_admin() {
            for vault_id in self.store.backup_selection_vaults(&selector).await? {
                let vault = self
                    .store
                    .get_vault(vault_id)
                    .await?
                    .ok_or_else(|| ServiceError::Internal(format!("vault {vault_id} of a backup is missing")))?;
                self.require_on_vault(caller, &vault, "keybulkoperation").await?;
            }
        }

        let count = self.store.count_backup_selection(&selector).await?;
        self.check_blast_radius(&safety, count, "backups")?;
        let params = JobParams { delete_key_backups_param: echo, ..Default::default() };
        let mut job = self.new_job(caller, operation, params, &safety)?;
        let planned = job.status == JobStatus::Planned;
        if count == 0 && !planned {
            // Retention runs often find nothing old enough: that is a job with nothing to do, done at once.
            job.status = JobStatus::Completed;
            job.completed_at = Some(job.created_at);
            self.store.create_job(&job, &[]).await?;
        } else {
            job.total = self.store.create_job_from_backups(&job, &selector).await?;
            if planned {
                self.record_plan(&mut job).await?;
            } else {
                if job.total == 0 {
                    // The backups went between the count and the insert: nothing left to do; end the job.
                    self.store.cancel_job(job.id, now()).await?;
                }
                self.engine.notify_jobs();
            }
        }
        self.count_created(&job);
        tracing::info!(
            bulkjob.id = %job.id, operation = %operation, backups = job.total, user.name = %caller.username,
            "Azure bulk job created"
        );
        let job = self.store.get_job(job.id).await?.unwrap_or(job);
        self.with_items(job).await
    }

    /// CCKM's rules for `delete_key_backups_param`: `key_id`, `keys`, `vault_id` exclude each other, something
    /// must be selected, every id must exist, and the window must be a range.
    async fn resolve_backup_selector(&self, p: DeleteKeyBackupsParam) -> Result<BackupSelector> {
        let given: Vec<&str> =
            [("key_id", p.key_id.is_some()), ("keys", p.keys.is_some()), ("vault_id", p.vault_id.is_some())]
                .into_iter()
                .filter_map(|(n, set)| set.then_some(n))
                .collect();
        if given.len() > 1 {
            return Err(ServiceError::invalid(
                PARAM,
                format!("key_id, keys and vault_id exclude each other; got {}", given.join(" and ")),
            ));
        }
        let has_window = p.created_after.as_deref().is_some_and(|s| !s.is_empty())
            || p.created_before.as_deref().is_some_and(|s| !s.is_empty());
        if p.backups.is_none() && given.is_empty() && !has_window {
            return Err(ServiceError::invalid(
                PARAM,
                "selects nothing: give backups, key_id, keys or vault_id, and/or created_after/created_before; \
                 there is no implicit \"every backup\"",
            ));
        }
        let mut sel = BackupSelector {
            created_after: parse_time("created_after", p.created_after)?,
            created_before: parse_time("created_before", p.created_before)?,
            ..Default::default()
        };
        if let (Some(a), Some(b)) = (sel.created_after, sel.created_before)
            && a >= b
        {
            return Err(ServiceError::invalid(&field("created_after"), "must be earlier than created_before"));
        }
        if let Some(backups) = p.backups {
            let ids: Vec<BackupId> = parse_ids("backups", &backups.into_vec())?;
            let found: HashSet<BackupId> =
                self.store.key_backups_by_ids(&ids).await?.into_iter().map(|b| b.id).collect();
            let unknown: Vec<String> =
                ids.iter().filter(|id| !found.contains(id)).take(20).map(ToString::to_string).collect();
            if !unknown.is_empty() {
                return Err(ServiceError::invalid(
                    &field("backups"),
                    format!("unknown backups: {}", unknown.join(", ")),
                ));
            }
            sel.backups = ids;
        }
        let key_texts = match (p.key_id, p.keys) {
            (Some(k), _) => Some(("key_id", vec![k])),
            (None, Some(ks)) => Some(("keys", ks)),
            (None, None) => None,
        };
        if let Some((name, texts)) = key_texts {
            let ids: Vec<KeyId> = parse_ids(name, &texts)?;
            let found: HashSet<KeyId> = self.store.azure_keys_by_ids(&ids).await?.into_iter().map(|k| k.id).collect();
            let unknown: Vec<String> =
                ids.iter().filter(|id| !found.contains(id)).take(20).map(ToString::to_string).collect();
            if !unknown.is_empty() {
                return Err(ServiceError::invalid(&field(name), format!("unknown Azure keys: {}", unknown.join(", "))));
            }
            sel.keys = ids;
        }
        if let Some(v) = p.vault_id {
            let vault = self
                .find_vault(&v)
                .await?
                .ok_or_else(|| ServiceError::invalid(&field("vault_id"), format!("no vault {v:?}")))?;
            sel.vault = Some(vault.id);
        }
        Ok(sel)
    }
}

/// A CCKM User may read the Azure jobs they created (creating one checked their ACLs on every vault).
pub(crate) fn check_azure_job_readable(caller: &Caller, job: &JobRecord) -> Result<()> {
    if job.created_by == caller.user_id { Ok(()) } else { Err(not_readable(caller, job)) }
}
