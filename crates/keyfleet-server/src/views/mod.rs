//! Stored records → CCKM wire views. The only place that knows both shapes: what both clouds share here (lists,
//! bulk jobs and their items, ACLs, users), each cloud's own resources in `aws` and `azure`.

/// A resource view (a struct `resource!` declares): its header (`id`, `account`, the timestamps) filled from the
/// record `$rec` (a local, whose other fields the view's own may move), `uri` as given, then the view's own fields.
macro_rules! resource_view {
    ($view:ident { $rec:ident, uri: $uri:expr, $($own:tt)* }) => {
        $view {
            id: $rec.id.to_string(),
            uri: $uri,
            account: keyfleet_api_types::common::ROOT_ACCOUNT.into(),
            created_at: $rec.created_at.into(),
            updated_at: $rec.updated_at.into(),
            $($own)*
        }
    };
}

/// A job view (a struct `job_resource!` declares): the resource header, the job's status fields from the job
/// record `$job`, `detailed_status` and `cloud` as given, then the view's own fields.
macro_rules! job_view {
    ($view:ident { $job:ident, kind: $kind:expr, detailed_status: $detailed:expr, cloud: $cloud:expr, $($own:tt)* }) => {
        resource_view!($view {
            $job,
            uri: $crate::views::uri($kind, $job.id),
            completed_at: $job.completed_at.map(Into::into),
            overall_status: $job.status.as_str().into(),
            detailed_status: $detailed,
            abort: $job.abort,
            cloud: $cloud,
            $($own)*
        })
    };
}

pub mod aws;
pub mod azure;
pub mod rendered;
pub mod report;

use std::collections::BTreeMap;

use keyfleet_api_types::ListEnvelope;
use keyfleet_api_types::audit::AuditRecordView;
use keyfleet_api_types::auth::RefreshTokenView;
use keyfleet_api_types::bulkjob::{BulkJobView, ItemView, Progress};
use keyfleet_api_types::common::AclView;
use keyfleet_api_types::usermgmt::{GroupView, UserView};
use keyfleet_core::*;
use keyfleet_service::jobs::JobWithItems;
use keyfleet_service::safety::ItemEntry;
use keyfleet_store::audit::AuditRecord;

pub fn list<T, U>(items: Vec<T>, total: u64, page: &Page, f: impl Fn(T) -> U) -> ListEnvelope<U> {
    ListEnvelope { skip: page.skip, limit: page.limit, total, resources: items.into_iter().map(f).collect() }
}

pub(crate) fn uri(kind: &str, id: impl std::fmt::Display) -> String {
    format!("kylo:kylo:{kind}:{id}")
}

pub fn bulkjob(j: JobWithItems) -> BulkJobView {
    // Only finished items appear in detailed_status, as in CCKM.
    let detailed_status: BTreeMap<String, String> = j
        .items
        .iter()
        .filter(|i| i.status.is_terminal())
        .map(|i| (i.key_id.to_string(), i.detail.clone().unwrap_or_else(|| i.status.as_str().to_string())))
        .collect();
    let job = j.job;
    let progress = progress(&job);
    let (kind, cloud) = if job.cloud == CLOUD_AZURE {
        ("cckm:azure-bulkjob", AZURE_CLOUD_NAME.to_string())
    } else {
        ("cckm:bulkjob", job.cloud.clone())
    };
    job_view!(BulkJobView {
        job,
        kind: kind,
        detailed_status: detailed_status,
        cloud: cloud,
        keys: j.keys.iter().map(ToString::to_string).collect(),
        operation: job.operation.as_str().into(),
        days: job.params.days,
        policy_template_id: job.params.policy_template_id.map(|t| t.to_string()),
        selector: job.params.selector.clone(),
        delete_key_backups_param: job.params.delete_key_backups_param.clone(),
        progress: Some(progress),
        plan: job.plan,
        plan_expires_at: job.plan_expires_at.map(Into::into),
        max_failures: job.params.max_failures,
        stop_reason: job.stop_reason,
        retry_of: job.params.retry_of.map(|j| j.to_string()),
        revert_of: job.params.revert_of.map(|j| j.to_string()),
    })
}

/// Finished items in percent of all, one decimal, rounded down (`progress.percent`; the console's bars).
pub(crate) fn percent(finished: i64, total: i64) -> f64 {
    if total == 0 { 100.0 } else { (finished as f64 * 1000.0 / total as f64).floor() / 10.0 }
}

fn progress(job: &JobRecord) -> Progress {
    let finished = job.finished();
    let percent = percent(finished, job.total);
    Progress {
        total: job.total,
        succeeded: job.succeeded,
        failed: job.failed,
        skipped: job.skipped,
        pending: job.total - finished,
        percent,
    }
}

pub fn item(e: ItemEntry) -> ItemView {
    let i = e.item;
    ItemView {
        key_id: i.key_id.to_string(),
        seq: i.seq,
        status: i.status.as_str().into(),
        detail: i.detail,
        attempts: i.attempts,
        last_error_code: i.last_error_code,
        last_error_message: i.last_error_message,
        state_before: i.state_before,
        state_after: i.state_after,
        current_state: e.current_state,
        action: e.action,
        updated_at: i.updated_at.into(),
    }
}

pub(crate) fn acl(e: AclEntry) -> AclView {
    match e.principal {
        Principal::User(u) => AclView { user_id: Some(u.wire()), group: None, actions: e.actions },
        Principal::Group(g) => AclView { user_id: None, group: Some(g), actions: e.actions },
    }
}

pub fn user((u, groups): (UserRecord, Vec<String>)) -> UserView {
    UserView {
        user_id: u.id.wire(),
        username: u.username,
        name: u.name,
        email: u.email,
        nickname: u.nickname,
        groups,
        created_at: u.created_at.into(),
        updated_at: u.updated_at.into(),
        last_login: u.last_login.map(Into::into),
        logins_count: u.logins_count,
        disabled: u.disabled,
    }
}

pub fn refresh_token(t: RefreshTokenRecord) -> RefreshTokenView {
    RefreshTokenView {
        id: t.id.to_string(),
        user_id: t.user_id.wire(),
        client_id: t.client_id,
        created_at: t.created_at.into(),
        expires_at: t.expires_at.into(),
    }
}

pub fn audit_record(r: AuditRecord) -> AuditRecordView {
    AuditRecordView {
        seq: r.seq,
        at: r.at.into(),
        user: r.user,
        client: r.client,
        request_id: r.request_id,
        action: r.action,
        resource: r.resource,
        outcome: r.outcome,
        details: r.details,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

pub fn group(g: GroupRecord) -> GroupView {
    GroupView {
        name: g.name,
        description: g.description,
        created_at: g.created_at.into(),
        updated_at: g.updated_at.into(),
        users_count: g.users_count,
    }
}
