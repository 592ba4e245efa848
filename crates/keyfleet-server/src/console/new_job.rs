//! New job: a form that builds the API's create request (AWS `selector`, Azure `delete_key_backups_param`),
//! always as a plan (`dry_run`); `Plan` stores it and shows it on the job's page, where `Confirm` starts it.
//! A refused request comes back as the form, filled in, with the API's message.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use keyfleet_api_types::azure::{CreateAzureBulkJob, DeleteKeyBackupsParam};
use keyfleet_api_types::bulkjob::{CreateAwsBulkJob, KeySelectorRequest};
use keyfleet_core::{Cloud, Page};
use keyfleet_service::validate::AWS_KEY_STATES;
use keyfleet_service::{Caller, ServiceError, Services};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, Nav};
use super::{Answer, Session, form, see_other, some};
use crate::AppState;

type S = State<Arc<AppState>>;

/// The form's fields, as submitted (and as shown again after a refusal).
#[derive(Deserialize, Serialize, Default, Clone)]
#[serde(default)]
pub(crate) struct NewJobForm {
    cloud: String,
    operation: String,
    containers: String,
    regions: String,
    tags: String,
    alias_prefix: String,
    key_state: String,
    days: String,
    policy_template: String,
    vault: String,
    key: String,
    created_after: String,
    created_before: String,
    /// Set when the form is drawn: a second submission of the same form (a double click) gives the same job.
    request: String,
}

/// The form, filled with `f`, with a new request id.
async fn form_page(s: &Services, session: &Session, f: &NewJobForm, error: Option<&str>) -> axum::response::Response {
    let templates = templates(s, &session.caller).await;
    let request = keyfleet_core::crypto::random_token(32).unwrap_or_default();
    let f = NewJobForm { request, ..f.clone() };
    layout::page(session, Nav::NewJob, "New job", render(session, &f, &templates, error))
}

/// `GET /console/jobs/new`.
pub(crate) async fn page(State(s): S, Extension(session): Extension<Session>) -> Answer {
    let f = NewJobForm { cloud: Cloud::Aws.name().into(), ..Default::default() };
    Ok(form_page(&s.services, &session, &f, None).await)
}

/// The policy templates the user may list, for the template field (none when they may not list them).
async fn templates(s: &Services, caller: &Caller) -> Vec<(String, String)> {
    let all = Page { skip: 0, limit: 1000, sort: vec![] };
    match s.list_templates(caller, &all).await {
        Ok((list, _)) => {
            list.into_iter().map(|(t, _)| (t.id.to_string(), format!("{} ({})", t.name, t.account_id))).collect()
        }
        Err(_) => Vec::new(),
    }
}

fn render(session: &Session, f: &NewJobForm, templates: &[(String, String)], error: Option<&str>) -> Markup {
    let clouds: Vec<(String, String)> =
        Cloud::ALL.iter().map(|c| (c.name().to_string(), c.display().to_string())).collect();
    let operations: Vec<(String, String)> = Cloud::ALL
        .iter()
        .flat_map(|c| {
            c.operations().iter().map(move |op| (op.as_str().to_string(), format!("{} ({})", op.as_str(), c.display())))
        })
        .collect();
    let mut states = vec![(String::new(), "Any state".to_string())];
    states.extend(AWS_KEY_STATES.iter().map(|s| (s.to_string(), s.to_string())));
    let mut template_options = vec![(String::new(), "None".to_string())];
    template_options.extend(templates.iter().cloned());
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        p.muted { "Plan first: the plan lists what the job would do, and nothing runs until you confirm it." }
        form.grid.card method="post" action="/console/jobs/new" {
            (layout::csrf_field(session))
            input type="hidden" name="request" value=(f.request);
            (layout::select("cloud", "Cloud", &clouds, &f.cloud))
            (layout::select("operation", "Operation", &operations, &f.operation))
            span.field {
                label for="days" { "Days" }
                input #days name="days" type="number" min="7" max="30" value=(f.days) aria-describedby="days-hint";
                small #days-hint { "schedulekeydeletion only: the waiting period, 7 to 30 days" }
            }
            (layout::select("policy_template", "Policy template", &template_options, &f.policy_template))
            fieldset {
                legend { "AWS keys" }
                (layout::text_input("containers", "Containers", &f.containers, Some("KMS container names, comma-separated")))
                (layout::text_input("regions", "Regions", &f.regions, Some("e.g. us-east-1, eu-west-1")))
                (layout::text_input("tags", "Tags", &f.tags, Some("team=blue, env (a tag without a value: any value)")))
                (layout::text_input("alias_prefix", "Alias prefix", &f.alias_prefix, Some("e.g. alias/app-")))
                (layout::select("key_state", "Key state", &states, &f.key_state))
            }
            fieldset {
                legend { "Azure key backups" }
                (layout::text_input("vault", "Vault", &f.vault, Some("the vault's id")))
                (layout::text_input("key", "Key", &f.key, Some("the key's id")))
                (layout::text_input("created_after", "Created after", &f.created_after, Some("RFC 3339, e.g. 2026-01-31T00:00:00Z")))
                (layout::text_input("created_before", "Created before", &f.created_before, Some("RFC 3339")))
            }
            div.actions { button type="submit" { "Plan" } a.button.secondary href=(super::HOME) { "Back to jobs" } }
        }
    }
}

/// A comma-separated field: its values, `None` when empty.
fn list(text: &str) -> Option<Vec<String>> {
    let v: Vec<String> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    (!v.is_empty()).then_some(v)
}

/// `team=blue, env`: a tag with a value, a tag with any value.
fn tags(text: &str) -> Option<BTreeMap<String, Option<String>>> {
    let map: BTreeMap<String, Option<String>> = list(text)?
        .into_iter()
        .map(|t| match t.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
            None => (t, None),
        })
        .collect();
    Some(map)
}

fn days(text: &str) -> Result<Option<i64>, ServiceError> {
    some(text)
        .map(|d| d.parse().map_err(|_| ServiceError::invalid("days", format!("{d:?} is not a number"))))
        .transpose()
}

/// `POST /console/jobs/new`: the plan, through the API's create (with `dry_run`), then the job's page.
pub(crate) async fn plan(State(s): S, Extension(session): Extension<Session>, body: Bytes) -> Answer {
    let f: NewJobForm = form(&body)?;
    match create(&s.services, &session.caller, &f).await {
        Ok(path) => Ok(see_other(&path)),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::Conflict(_)
            | ServiceError::Unprocessable(_)
            | ServiceError::Forbidden(_)),
        ) => {
            let (status, _, _) = crate::error::classify(&e);
            let page = form_page(&s.services, &session, &f, Some(&e.to_string())).await;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates the plan the form describes; the job's console address.
async fn create(s: &Services, caller: &Caller, f: &NewJobForm) -> Result<String, ServiceError> {
    let cloud = Cloud::parse(&f.cloud).ok_or_else(|| ServiceError::invalid("cloud", "choose AWS or Azure"))?;
    let key = some(&f.request);
    let job = match cloud {
        Cloud::Aws => {
            let selector = KeySelectorRequest {
                kms: list(&f.containers),
                regions: list(&f.regions),
                tags: tags(&f.tags),
                alias_prefix: some(&f.alias_prefix),
                key_state: some(&f.key_state),
                ..Default::default()
            };
            let req = CreateAwsBulkJob {
                operation: some(&f.operation),
                days: days(&f.days)?,
                policy_template_id: some(&f.policy_template),
                selector: Some(selector),
                dry_run: Some(true),
                ..Default::default()
            };
            s.create_once(caller, cloud, key.as_deref(), &req, s.create_aws_bulkjob(caller, req.clone())).await?
        }
        Cloud::Azure => {
            let param = DeleteKeyBackupsParam {
                key_id: some(&f.key),
                vault_id: some(&f.vault),
                created_after: some(&f.created_after),
                created_before: some(&f.created_before),
                ..Default::default()
            };
            let req = CreateAzureBulkJob {
                operation: some(&f.operation),
                delete_key_backups_param: Some(param),
                dry_run: Some(true),
                ..Default::default()
            };
            s.create_once(caller, cloud, key.as_deref(), &req, s.create_azure_bulkjob(caller, req.clone())).await?
        }
    };
    Ok(super::jobs::job_path(&job.job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_with_and_without_values() {
        let t = tags("team=blue, env ,").unwrap_or_default();
        assert_eq!(t.get("team"), Some(&Some("blue".to_string())));
        assert_eq!(t.get("env"), Some(&None));
        assert_eq!(t.len(), 2);
        assert_eq!(tags(" , "), None);
    }
}
