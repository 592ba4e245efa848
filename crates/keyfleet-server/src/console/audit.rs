//! Audit (admins): the audit records, newest first, with the API's filters. Whoever else opens it gets the
//! API's 403 (the same service call decides).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use keyfleet_api_types::audit::AuditListQuery;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{Answer, PAGE_SIZE, Session, query, some};
use crate::AppState;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Filters {
    user: String,
    action: String,
    resource: String,
    since: String,
    until: String,
    page: Option<u64>,
}

/// `GET /console/audit`.
pub(crate) async fn page(
    State(s): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    req: Request,
) -> Answer {
    let f: Filters = query(req.uri().query())?;
    let n = f.page.unwrap_or(1).max(1);
    let q = AuditListQuery {
        since: some(&f.since),
        until: some(&f.until),
        user: some(&f.user),
        action: some(&f.action),
        resource: some(&f.resource),
        skip: Some((n - 1) * PAGE_SIZE),
        limit: Some(PAGE_SIZE),
        sort: Some("-seq".into()),
    };
    let (records, total, _) = s.services.list_audit_records(&session.caller, q).await?;
    let params = |n: u64| {
        layout::with_query(
            "/console/audit",
            &[
                ("user", f.user.clone()),
                ("action", f.action.clone()),
                ("resource", f.resource.clone()),
                ("since", f.since.clone()),
                ("until", f.until.clone()),
                ("page", n.to_string()),
            ],
        )
    };
    let body = html! {
        form.filters method="get" action="/console/audit" aria-label="Filter audit records" {
            (layout::text_input("user", "User", &f.user, None))
            (layout::text_input("action", "Action", &f.action, Some("e.g. bulkjob.create")))
            (layout::text_input("resource", "Resource", &f.resource, Some("e.g. bulkjob:<id>")))
            (layout::text_input("since", "Since", &f.since, Some("RFC 3339")))
            (layout::text_input("until", "Until", &f.until, Some("RFC 3339")))
            button type="submit" { "Filter" }
        }
        div.table-wrap { table {
            caption.muted { "Audit records, newest first" }
            thead { tr {
                th.num scope="col" { "#" } th scope="col" { "At" } th scope="col" { "User" } th scope="col" { "Client" }
                th scope="col" { "Action" } th scope="col" { "Resource" } th scope="col" { "Outcome" } th scope="col" { "Details" }
            } }
            tbody { @for r in &records { tr {
                td.num { (r.seq) } td { (layout::time(r.at)) } td { (r.user) } td.mono { (r.client) }
                td.mono { (r.action) } td.mono { (r.resource) } td { (r.outcome) } td.mono { (r.details) }
            } } }
        } }
        (layout::pager(n, records.len(), total, params))
    };
    Ok(layout::page(&session, Nav::Audit, "Audit", body))
}
