//! Inventory: AWS and Azure keys with filters, KMS containers and vaults, connections (never their secrets),
//! key synchronization jobs. One view at a time (`?view=`), each through the API's list call with the user's
//! caller: what the API refuses the user is said so in place of the table.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Request, State};
use keyfleet_api_types::aws::AwsKeyQuery;
use keyfleet_api_types::azure::{AzureKeyQuery, VaultQuery};
use keyfleet_core::{Cloud, Page};
use keyfleet_service::sync_jobs::SyncJobFilter;
use keyfleet_service::validate::AWS_KEY_STATES;
use keyfleet_service::{ServiceError, Services};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{Answer, ConsoleError, Session, page_of, query, some};
use crate::AppState;

const PATH: &str = "/console/inventory";

/// The views of the page: (value of `view`, tab text).
const VIEWS: [(&str, &str); 5] = [
    ("aws-keys", "AWS keys"),
    ("azure-keys", "Azure keys"),
    ("containers", "Containers and vaults"),
    ("connections", "Connections"),
    ("sync", "Key synchronization"),
];

#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Filters {
    view: String,
    kms: String,
    region: String,
    keystate: String,
    alias: String,
    tags: String,
    vault: String,
    name: String,
    page: Option<u64>,
}

/// `GET /console/inventory`.
pub(crate) async fn page(
    State(s): State<Arc<AppState>>,
    Extension(session): Extension<Session>,
    req: Request,
) -> Answer {
    let f: Filters = query(req.uri().query())?;
    let view = if f.view.is_empty() { "aws-keys" } else { f.view.as_str() };
    let n = f.page.unwrap_or(1).max(1);
    let shown = match view {
        "aws-keys" => aws_keys(&s.services, &session, &f, n).await,
        "azure-keys" => azure_keys(&s.services, &session, &f, n).await,
        "containers" => containers(&s.services, &session).await,
        "connections" => connections(&s.services, &session).await,
        "sync" => sync_jobs(&s.services, &session, n).await,
        other => return Err(ConsoleError(ServiceError::NotFound(format!("no inventory view {other:?}")))),
    };
    let shown = match shown {
        Ok(m) => m,
        Err(ServiceError::Forbidden(why)) => html! { p.error role="alert" { (why) } },
        Err(e) => return Err(e.into()),
    };
    let body = html! {
        nav.tabs aria-label="Inventory views" {
            ul.actions-bar {
                @for (v, text) in VIEWS {
                    li { a href=(format!("{PATH}?view={v}")) aria-current=[(v == view).then_some("page")] { (text) } }
                }
            }
        }
        (shown)
    };
    Ok(layout::page(&session, Nav::Inventory, "Inventory", body))
}

type Shown = Result<Markup, ServiceError>;

async fn aws_keys(s: &Services, session: &Session, f: &Filters, n: u64) -> Shown {
    let q = AwsKeyQuery {
        kms: some(&f.kms),
        region: some(&f.region),
        keystate: some(&f.keystate),
        alias: some(&f.alias),
        tags: some(&f.tags),
        ..Default::default()
    };
    let (keys, total) = s.list_aws_keys(&session.caller, q, &page_of(Some(n))).await?;
    let mut states = vec![(String::new(), "Any state".to_string())];
    states.extend(AWS_KEY_STATES.iter().map(|s| (s.to_string(), s.to_string())));
    let link = |n: u64| {
        layout::with_query(
            PATH,
            &[
                ("view", "aws-keys".into()),
                ("kms", f.kms.clone()),
                ("region", f.region.clone()),
                ("keystate", f.keystate.clone()),
                ("alias", f.alias.clone()),
                ("tags", f.tags.clone()),
                ("page", n.to_string()),
            ],
        )
    };
    Ok(html! {
        form.filters method="get" action=(PATH) aria-label="Filter AWS keys" {
            input type="hidden" name="view" value="aws-keys";
            (layout::text_input("kms", "Container", &f.kms, None))
            (layout::text_input("region", "Region", &f.region, None))
            (layout::select("keystate", "Key state", &states, &f.keystate))
            (layout::text_input("alias", "Alias", &f.alias, None))
            (layout::text_input("tags", "Tags", &f.tags, Some("team=blue, env")))
            button type="submit" { "Filter" }
        }
        div.table-wrap { table {
            caption.muted { "AWS KMS keys as last synchronized" }
            thead { tr {
                th scope="col" { "Key" } th scope="col" { "AWS key id" } th scope="col" { "Container" } th scope="col" { "Region" }
                th scope="col" { "State" } th scope="col" { "Aliases" } th scope="col" { "Tags" } th scope="col" { "Synchronized" }
            } }
            tbody { @for (k, container) in &keys { tr {
                td.mono { (k.id) } td.mono { (k.material.key_id) } td { (container) } td { (k.region) }
                td { (k.material.key_state) @if k.gone { " (gone)" } }
                td.mono { (k.material.aliases.join(", ")) }
                td.mono { @for (t, v) in &k.material.tags { (t) "=" (v) " " } }
                td { (layout::time(k.synced_at)) }
            } } }
        } }
        (layout::pager(n, keys.len(), total, link))
    })
}

async fn azure_keys(s: &Services, session: &Session, f: &Filters, n: u64) -> Shown {
    let q = AzureKeyQuery { key_vault: some(&f.vault), key_name: some(&f.name), ..Default::default() };
    let (keys, total) = s.list_azure_keys(&session.caller, q, &page_of(Some(n))).await?;
    let link = |n: u64| {
        layout::with_query(
            PATH,
            &[
                ("view", "azure-keys".into()),
                ("vault", f.vault.clone()),
                ("name", f.name.clone()),
                ("page", n.to_string()),
            ],
        )
    };
    Ok(html! {
        form.filters method="get" action=(PATH) aria-label="Filter Azure keys" {
            input type="hidden" name="view" value="azure-keys";
            (layout::text_input("vault", "Vault", &f.vault, Some("name or id")))
            (layout::text_input("name", "Key name", &f.name, None))
            button type="submit" { "Filter" }
        }
        div.table-wrap { table {
            caption.muted { "Azure Key Vault keys as last synchronized" }
            thead { tr {
                th scope="col" { "Key" } th scope="col" { "Name" } th scope="col" { "Vault" } th scope="col" { "Type" }
                th scope="col" { "Enabled" } th scope="col" { "Synchronized" }
            } }
            tbody { @for (k, vault) in &keys { tr {
                td.mono { (k.id) } td { (k.material.name) @if k.gone { " (gone)" } } td { (vault.name) }
                td { (k.material.kty) } td { (if k.material.enabled { "yes" } else { "no" }) } td { (layout::time(k.synced_at)) }
            } } }
        } }
        (layout::pager(n, keys.len(), total, link))
    })
}

/// Every row of a short list (containers, vaults, connections are few).
fn all() -> Page {
    Page { skip: 0, limit: 1000, sort: vec![] }
}

async fn containers(s: &Services, session: &Session) -> Shown {
    let c = &session.caller;
    let (kms, _) = s.list_kms(c, &all()).await?;
    let (vaults, _) = s.list_vaults(c, VaultQuery::default(), &all()).await?;
    Ok(html! {
        h2 { "AWS KMS containers" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Account" } th scope="col" { "Regions" } th scope="col" { "Connection" } th scope="col" { "Id" } } }
            tbody { @for (k, _, conn) in &kms { tr {
                td { (k.name) } td.mono { (k.account_id) } td { (k.regions.join(", ")) } td { (conn) } td.mono { (k.id) }
            } } }
        } }
        h2 { "Azure vaults" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Location" } th scope="col" { "Subscription" } th scope="col" { "Connection" } th scope="col" { "Id" } } }
            tbody { @for (v, _, conn) in &vaults { tr {
                td { (v.name) } td { (v.location) } td.mono { (v.subscription_id) } td { (conn) } td.mono { (v.id) }
            } } }
        } }
    })
}

/// Connections: names, endpoints and key ids only; the secrets are write-only in the API and never here.
async fn connections(s: &Services, session: &Session) -> Shown {
    let c = &session.caller;
    let (aws, _) = s.list_aws_connections(c, &all()).await?;
    let (azure, _) = s.list_azure_connections(c, &all()).await?;
    Ok(html! {
        h2 { "AWS connections" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Access key id" } th scope="col" { "Region" } th scope="col" { "Role" } th scope="col" { "Endpoint" } } }
            tbody { @for a in &aws { tr {
                td { (a.name) } td.mono { (a.access_key_id) } td { (a.aws_region) }
                td.mono { (a.assume_role_arn.as_deref().unwrap_or("")) } td.mono { (a.endpoint_url.as_deref().unwrap_or("")) }
            } } }
        } }
        h2 { "Azure connections" }
        div.table-wrap { table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Client id" } th scope="col" { "Tenant" } th scope="col" { "Cloud" } } }
            tbody { @for a in &azure { tr {
                td { (a.name) } td.mono { (a.client_id) } td.mono { (a.tenant_id) } td { (a.cloud_name) }
            } } }
        } }
        p.muted { "Secrets are write-only: neither the API nor the console shows them." }
    })
}

async fn sync_jobs(s: &Services, session: &Session, n: u64) -> Shown {
    let mut out = Vec::new();
    for cloud in Cloud::ALL {
        let (jobs, total) =
            s.list_sync_jobs(&session.caller, cloud, SyncJobFilter::default(), &page_of(Some(n))).await?;
        out.push(html! {
            h2 { "Key synchronization jobs: " (cloud.display()) }
            div.table-wrap { table {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Status" } th scope="col" { "Of" } th scope="col" { "Created at" } th scope="col" { "Detail" } } }
                tbody { @for (j, names) in &jobs { tr {
                    td.mono { (j.id) } td { (layout::status_badge(j.status.as_str())) } td { (names.join(", ")) }
                    td { (layout::time(j.created_at)) }
                    td { @for (k, v) in &j.detailed_status { (k) ": " (v) br; } }
                } } }
            } }
            p.muted { (total) " in all" }
        });
    }
    Ok(html! { @for m in out { (m) } })
}
