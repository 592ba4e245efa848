//! The Jobs page (both clouds, newest first, filtered, paged, live) and the Job page (live progress over
//! server-sent events, plan, error groups, items, and the actions the user may take on the job as it is).

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::Response;
use keyfleet_api_types::bulkjob::{ItemListQuery, Plan};
use keyfleet_core::rules::revert_operation;
use keyfleet_core::{Cloud, ErrorGroup, ItemStatus, JobRecord, JobStatus};
use keyfleet_service::ServiceError;
use keyfleet_service::safety::ItemEntry;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{Answer, ConsoleError, Session, cloud_of, page_of, query, see_other};
use crate::AppState;
use crate::views::report::ReportFormat;

type S = State<Arc<AppState>>;
type Ses = Extension<Session>;

/// The console's address of a job.
pub(crate) fn job_path(job: &JobRecord) -> String {
    format!("/console/jobs/{}/{}", job.cloud, job.id)
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    #[serde(default)]
    cloud: String,
    #[serde(default)]
    status: String,
    page: Option<u64>,
}

/// `GET /console/jobs`: every cloud's jobs, newest first; a CCKM User sees their own (the API's rule).
pub(crate) async fn list(State(s): S, Extension(session): Ses, req: Request) -> Answer {
    let q: ListQuery = query(req.uri().query())?;
    let cloud = match q.cloud.as_str() {
        "" => None,
        c => Some(cloud_of(c)?),
    };
    let n = q.page.unwrap_or(1).max(1);
    let c = &session.caller;
    let (jobs, total) = s.services.list_jobs_of_all_clouds(c, cloud, Some(&q.status), &page_of(Some(n))).await?;
    let creators: Vec<keyfleet_core::UserId> = jobs.iter().map(|j| j.created_by).collect();
    let names = s.services.usernames(creators).await?;
    let mut clouds = vec![(String::new(), "All clouds".to_string())];
    clouds.extend(Cloud::ALL.iter().map(|c| (c.name().to_string(), c.display().to_string())));
    let mut statuses = vec![(String::new(), "Any status".to_string())];
    statuses.extend(JobStatus::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().replace('_', " "))));
    let link = |n: u64| {
        layout::with_query(
            super::HOME,
            &[("cloud", q.cloud.clone()), ("status", q.status.clone()), ("page", n.to_string())],
        )
    };
    let body = html! {
        p { a.button href="/console/jobs/new" { "New job" } }
        form.filters method="get" action=(super::HOME) aria-label="Filter jobs" {
            (layout::select("cloud", "Cloud", &clouds, &q.cloud))
            (layout::select("status", "Status", &statuses, &q.status))
            button type="submit" { "Filter" }
        }
        div.table-wrap {
            table {
                caption.muted { "Bulk jobs, newest first" }
                thead { tr {
                    th scope="col" { "Job" } th scope="col" { "Cloud" } th scope="col" { "Operation" }
                    th scope="col" { "Status" } th scope="col" { "Progress" } th scope="col" { "Created by" }
                    th scope="col" { "Created at" }
                } }
                tbody #job-rows data-refresh data-poll="3000" {
                    @for j in &jobs {
                        tr {
                            td { a.mono href=(job_path(j)) { (j.id) } }
                            td { (cloud_name(j)) }
                            td { (j.operation.as_str()) }
                            td { (layout::status_badge(j.status.as_str())) }
                            td { (layout::progress_bar(j, &format!("Progress of job {}", j.id))) }
                            td { (names.get(&j.created_by).map(String::as_str).unwrap_or("(deleted user)")) }
                            td { (layout::time(j.created_at)) }
                        }
                    }
                    @if jobs.is_empty() { tr { td colspan="7" .muted { "No jobs." } } }
                }
            }
        }
        div #job-pager data-refresh { (layout::pager(n, jobs.len(), total, link)) }
    };
    Ok(layout::page(&session, Nav::Jobs, "Jobs", body))
}

fn cloud_name(job: &JobRecord) -> &'static str {
    Cloud::parse(&job.cloud).map_or("?", |c| c.display())
}

#[derive(Deserialize, Default)]
pub(crate) struct ItemsQuery {
    #[serde(default)]
    status: String,
    page: Option<u64>,
}

/// What the user may do to a job now: the API's rules (whoever may read a job may cancel, confirm, retry or
/// revert it) and the job's state (the same conditions the services check, so no button leads to a refusal).
struct Allowed {
    cancel: bool,
    confirm: bool,
    retry: bool,
    revert: bool,
}

fn allowed(job: &JobRecord) -> Allowed {
    let ended = job.status.is_terminal();
    let expired = job.plan_expires_at.is_some_and(|t| t <= keyfleet_core::time::now());
    Allowed {
        cancel: !ended,
        confirm: job.status == JobStatus::Planned && !expired,
        retry: ended && job.failed + job.skipped > 0,
        revert: ended && job.succeeded > 0 && revert_operation(job.operation).is_ok(),
    }
}

/// `GET /console/jobs/{cloud}/{id}`.
pub(crate) async fn show(
    State(s): S,
    Extension(session): Ses,
    Path((cloud, id)): Path<(String, String)>,
    req: Request,
) -> Answer {
    let cloud = cloud_of(&cloud)?;
    let c = &session.caller;
    let job = s.services.bulkjob_record(c, cloud, &id).await?;
    let q: ItemsQuery = query(req.uri().query())?;
    let n = q.page.unwrap_or(1).max(1);
    let items_q = ItemListQuery {
        status: Some(q.status.clone()),
        skip: Some((n - 1) * super::PAGE_SIZE),
        limit: Some(super::PAGE_SIZE),
    };
    let (items, items_total, _) = s.services.list_bulkjob_items(c, cloud, &id, items_q).await?;
    let (_, errors) = s.services.bulkjob_errors(c, cloud, &id).await?;
    let creator = s.services.usernames([job.created_by]).await?;
    let here = job_path(&job);
    let body = html! {
        (live(&job, &here))
        (actions(&session, &job, &here))
        (facts(&job, creator.get(&job.created_by).map(String::as_str)))
        @if let Some(plan) = job.plan.as_ref().and_then(|p| serde_json::from_value::<Plan>(p.clone()).ok()) {
            (plan_section(&job, &plan))
        }
        (error_groups(&errors))
        (items_section(&here, &q.status, n, &items, items_total))
    };
    Ok(layout::page(&session, Nav::None, &format!("Job {}", job.id), body))
}

fn facts(job: &JobRecord, creator: Option<&str>) -> Markup {
    let p = &job.params;
    html! {
        section #facts data-refresh aria-label="Job" {
            dl.facts {
                dt { "Cloud" } dd { (cloud_name(job)) }
                dt { "Operation" } dd { (job.operation.as_str()) }
                dt { "Created by" } dd { (creator.unwrap_or("(deleted user)")) }
                dt { "Created at" } dd { (layout::time(job.created_at)) }
                @if let Some(t) = job.completed_at { dt { "Completed at" } dd { (layout::time(t)) } }
                @if let Some(d) = p.days { dt { "Days" } dd { (d) } }
                @if let Some(t) = p.policy_template_id { dt { "Policy template" } dd.mono { (t) } }
                @if let Some(sel) = &p.selector { dt { "Selector" } dd.mono { (sel) } }
                @if let Some(d) = &p.delete_key_backups_param { dt { "Backups" } dd.mono { (d) } }
                @if let Some(r) = p.retry_of { dt { "Retries" } dd { a.mono href=(format!("/console/jobs/{}/{r}", job.cloud)) { (r) } } }
                @if let Some(r) = p.revert_of { dt { "Reverts" } dd { a.mono href=(format!("/console/jobs/{}/{r}", job.cloud)) { (r) } } }
                @if let Some(r) = &job.stop_reason { dt { "Stopped" } dd.error { (r) } }
                @if job.abort { dt { "Cancel" } dd { "requested" } }
            }
        }
    }
}

/// The live part: filled at render time from the job row, then by the job's event stream while it runs.
fn live(job: &JobRecord, here: &str) -> Markup {
    let done = job.finished();
    let percent = layout::percent(done, job.total);
    let open = if job.status.is_terminal() { job.total - done } else { 0 };
    let (planned, pending) = match job.status {
        JobStatus::Planned => (job.total - done, 0),
        _ if job.status.is_terminal() => (0, open),
        _ => (0, job.total - done),
    };
    let counts: [(&str, &str, i64); 6] = [
        ("planned", "Planned", planned),
        ("pending", "Pending", pending),
        ("running", "Running", 0),
        ("succeeded", "Succeeded", job.succeeded),
        ("failed", "Failed", job.failed),
        ("skipped", "Skipped", job.skipped),
    ];
    let events = (!job.status.is_terminal()).then(|| format!("{here}/events"));
    html! {
        section #live aria-labelledby="progress-heading" data-events=[events] {
            h2 #progress-heading { "Progress " span data-k="status" class={ "badge status-" (job.status.as_str()) } { (job.status.as_str().replace('_', " ")) } }
            div.big.progress {
                progress #job-progress data-live max="100" value=(format!("{percent:.1}")) aria-labelledby="progress-heading" { (format!("{percent:.1} %")) }
            }
            dl.counts aria-live="polite" {
                div { dt { "Done" } dd { span data-k="done" { (done) } " / " span data-k="total" { (job.total) } } }
                div { dt { "Percent" } dd data-k="percent" { (format!("{percent:.1} %")) } }
                div { dt { "Rate" } dd data-k="rate" { "—" } }
                div { dt { "Time left" } dd data-k="eta" { "—" } }
            }
            dl.counts {
                @for (key, label, n) in counts {
                    div { dt { (label) } dd data-count=(key) { (n) } }
                }
            }
        }
    }
}

fn plan_section(job: &JobRecord, plan: &Plan) -> Markup {
    let table = |title: &str, rows: &std::collections::BTreeMap<String, i64>| {
        html! {
            table {
                caption { (title) }
                tbody { @for (k, v) in rows { tr { th scope="row" { (k) } td.num { (v) } } } }
            }
        }
    };
    let planned = job.status == JobStatus::Planned;
    let contents = html! {
            dl.counts {
                div { dt { "Items" } dd #plan-items { (plan.items) } }
                div { dt { "No-ops" } dd #plan-noops { (plan.no_ops) } }
                @if planned { @if let Some(t) = job.plan_expires_at { div { dt { "Confirm before" } dd { (layout::time(t)) } } } }
            }
            div.table-wrap.plan-tables {
                (table("By container", &plan.by_container))
                (table("By region", &plan.by_region))
                (table("By current state", &plan.by_state))
            }
            h3 { "Sample" }
            div.table-wrap {
                table #plan-sample {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Current state" } th scope="col" { "Action" } } }
                    tbody { @for s in &plan.sample { tr {
                        td.mono { (s.key_id) } td { (s.current_state.as_deref().unwrap_or("—")) } td { (s.action) }
                    } } }
                }
            }
    };
    html! {
        section #plan data-refresh aria-labelledby="plan-heading" {
            @if planned {
                h2 #plan-heading { "Plan" }
                (contents)
            } @else {
                details {
                    summary { h2 #plan-heading .inline { "Plan, as confirmed" } }
                    (contents)
                }
            }
        }
    }
}

fn actions(session: &Session, job: &JobRecord, here: &str) -> Markup {
    let a = allowed(job);
    let button = |action: &str, text: &str, class: &str| {
        html! {
            form.inline method="post" action=(format!("{here}/{action}")) {
                (layout::csrf_field(session))
                button type="submit" class=(class) { (text) }
            }
        }
    };
    html! {
        section #actions data-refresh aria-label="Actions" {
            div.actions-bar {
                @if a.confirm { (button("confirm", "Confirm", "")) }
                @if a.cancel { (button("cancel", "Cancel", "danger")) }
                @if a.retry { (button("retry-failed", "Retry failed", "secondary")) }
                @if a.revert { (button("revert", "Revert", "secondary")) }
                a.button.secondary href=(format!("{here}/report.csv")) download { "Download report" }
            }
        }
    }
}

fn error_groups(groups: &[ErrorGroup]) -> Markup {
    html! {
        section #errors data-refresh aria-labelledby="errors-heading" {
            h2 #errors-heading { "Errors" }
            @if groups.is_empty() {
                p.muted { "No failed items." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Code" } th.num scope="col" { "Items" } th scope="col" { "Message" } th scope="col" { "Keys (sample)" } } }
                    tbody { @for g in groups { tr {
                        td.mono { @if g.code.is_empty() { "(none)" } @else { (g.code) } }
                        td.num { (g.count) }
                        td { (g.message.as_deref().unwrap_or("")) }
                        td.mono { @for k in &g.sample_keys { (k) " " } }
                    } } }
                } }
            }
        }
    }
}

fn items_section(here: &str, status: &str, n: u64, items: &[ItemEntry], total: u64) -> Markup {
    let mut statuses = vec![(String::new(), "Any status".to_string())];
    statuses.extend(ItemStatus::ALL.iter().map(|s| (s.as_str().to_string(), s.as_str().to_string())));
    let link = |n: u64| layout::with_query(here, &[("status", status.to_string()), ("page", n.to_string())]);
    html! {
        section #items data-refresh aria-labelledby="items-heading" {
            h2 #items-heading { "Items" }
            form.filters method="get" action=(here) aria-label="Filter items" {
                (layout::select("status", "Item status", &statuses, status))
                button type="submit" { "Filter" }
            }
            div.table-wrap { table {
                thead { tr {
                    th.num scope="col" { "#" } th scope="col" { "Key" } th scope="col" { "Status" }
                    th scope="col" { "Detail" } th.num scope="col" { "Attempts" } th scope="col" { "State before" }
                    th scope="col" { "State after" } th scope="col" { "Action" }
                } }
                tbody { @for e in items { tr {
                    td.num { (e.item.seq) }
                    td.mono { (e.item.key_id) }
                    td { (layout::status_badge(e.item.status.as_str())) }
                    td { (e.item.detail.as_deref().unwrap_or("")) }
                    td.num { (e.item.attempts) }
                    td { (e.item.state_before.as_deref().or(e.current_state.as_deref()).unwrap_or("—")) }
                    td { (e.item.state_after.as_deref().unwrap_or("—")) }
                    td { (e.action.as_deref().unwrap_or("")) }
                } } }
            } }
            (layout::pager(n, items.len(), total, link))
        }
    }
}

/// `GET /console/jobs/{cloud}/{id}/events`: the job's progress as server-sent events, from the same stream
/// the API serves (`routes::events::job_events`), for the session's user.
pub(crate) async fn events(
    State(s): S,
    Extension(session): Ses,
    Path((cloud, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let cloud = cloud_of(&cloud)?;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    crate::routes::events::job_events(s, session.caller, cloud, id, last).await.map_err(|e| ConsoleError(e.0))
}

/// `GET /console/jobs/{cloud}/{id}/report.csv`: the API's report, as a download.
pub(crate) async fn report(State(s): S, Extension(session): Ses, Path((cloud, id)): Path<(String, String)>) -> Answer {
    let cloud = cloud_of(&cloud)?;
    let job = s.services.report_job(&session.caller, cloud, &id).await?;
    Ok(crate::routes::jobs::report_download(s.services.clone(), job, ReportFormat::Csv))
}

/// `POST /console/jobs/{cloud}/{id}/{action}`: `cancel`, `confirm`, `retry-failed` or `revert`, through the
/// API's own service calls; then the job to look at (the new one for a retry or revert).
pub(crate) async fn act(
    State(s): S,
    Extension(session): Ses,
    Path((cloud, id, action)): Path<(String, String, String)>,
    _form: Bytes,
) -> Answer {
    let cloud = cloud_of(&cloud)?;
    let c = &session.caller;
    let services = &s.services;
    let job = match action.as_str() {
        "cancel" => services.cancel_bulkjob(c, cloud, &id).await?,
        "confirm" => services.confirm_bulkjob(c, cloud, &id).await?,
        "retry-failed" => services.retry_failed_bulkjob(c, cloud, &id, false).await?,
        "revert" => services.revert_bulkjob(c, cloud, &id).await?,
        other => return Err(ConsoleError(ServiceError::NotFound(format!("no job action {other:?}")))),
    };
    Ok(see_other(&job_path(&job.job)))
}
