//! The frame of every console page (head, navigation, sign-out form) and the small pieces pages share: the
//! CSRF field, status badges, progress bars, tables' pagers, times. Every control has a label; the navigation
//! is a list of links; the main content has a skip link.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use keyfleet_core::JobRecord;
use maud::{DOCTYPE, Markup, html};

use super::Session;

/// The pages of the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Jobs,
    NewJob,
    Inventory,
    Audit,
    None,
}

/// A whole page: `title` as the heading, `body` below it, the navigation for `session`'s user (Audit only for
/// admins, as only they may read it).
pub(crate) fn page(session: &Session, here: Nav, title: &str, body: Markup) -> Response {
    let c = &session.caller;
    let link = |nav: Nav, href: &str, text: &str| {
        html! {
            li { a href=(href) aria-current=[(nav == here).then_some("page")] { (text) } }
        }
    };
    let header = html! {
        header.top {
            a.brand href=(super::HOME) { "keyfleet" }
            nav aria-label="Main" {
                ul {
                    (link(Nav::Jobs, super::HOME, "Jobs"))
                    (link(Nav::NewJob, "/console/jobs/new", "New job"))
                    (link(Nav::Inventory, "/console/inventory", "Inventory"))
                    @if c.is_admin() { (link(Nav::Audit, "/console/audit", "Audit")) }
                }
            }
            form.signout method="post" action="/console/logout" {
                span.user { "Signed in as " strong { (c.username) } }
                (csrf_field(session))
                button type="submit" { "Sign out" }
            }
        }
    };
    shell(title, header, body)
}

fn shell(title: &str, header: Markup, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · keyfleet" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                (header)
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(doc.into_string()).into_response()
}

/// The sign-in page.
pub(crate) fn login_page(
    csrf: &str,
    next: &str,
    username: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let header = html! { header.top { span.brand { "keyfleet" } } };
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.card.signin method="post" action="/console/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label for="username" { "Username" }
            input #username name="username" type="text" autocomplete="username" required autofocus value=(username);
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
    };
    shell("Sign in", header, body)
}

/// A page saying what went wrong, with the way back.
pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let header = html! { header.top { a.brand href=(super::HOME) { "keyfleet" } } };
    let body = html! {
        p.error role="alert" { (message) }
        p { a href=(super::HOME) { "Back to the jobs" } }
    };
    shell(status.canonical_reason().unwrap_or("Error"), header, body)
}

/// The hidden CSRF field every form of a session carries.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A job's status as a badge (colour and text).
pub(crate) fn status_badge(status: &str) -> Markup {
    html! { span class={ "badge status-" (status) } { (status.replace('_', " ")) } }
}

/// A job's finished share: a labelled `<progress>` and the figures.
pub(crate) fn progress_bar(job: &JobRecord, label: &str) -> Markup {
    let done = job.finished();
    let percent = percent(done, job.total);
    html! {
        span.progress {
            progress max="100" value=(format!("{percent:.1}")) aria-label=(label) { (format!("{percent:.1} %")) }
            span.figures { (done) "/" (job.total) " · " (format!("{percent:.1}")) " %" }
        }
    }
}

pub(crate) use crate::views::percent;

pub(crate) fn time(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// "Previous" and "Next" links of a paged table; `link(n)` is the address of page `n`.
pub(crate) fn pager(page: u64, shown: usize, total: u64, link: impl Fn(u64) -> String) -> Markup {
    let size = super::PAGE_SIZE;
    let first = (page - 1) * size + 1;
    let last = (page - 1) * size + shown as u64;
    let more = last < total;
    html! {
        nav.pager aria-label="Pages" {
            @if page > 1 { a rel="prev" href=(link(page - 1)) { "Previous" } }
            span { @if shown == 0 { "None" } @else { (first) "–" (last) " of " (total) } }
            @if more { a rel="next" href=(link(page + 1)) { "Next" } }
        }
    }
}

/// A `<select>` with a label; `options` are (value, text); `selected` is the current value.
pub(crate) fn select(id: &str, label: &str, options: &[(String, String)], selected: &str) -> Markup {
    html! {
        span.field {
            label for=(id) { (label) }
            select #(id) name=(id) {
                @for (value, text) in options {
                    option value=(value) selected[value == selected] { (text) }
                }
            }
        }
    }
}

/// A text `<input>` with a label and an optional hint below it.
pub(crate) fn text_input(id: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        span.field {
            label for=(id) { (label) }
            input #(id) name=(id) type="text" value=(value) aria-describedby=[hint.map(|_| &hint_id)];
            @if let Some(h) = hint { small #(hint_id) { (h) } }
        }
    }
}

/// An address with its query parameters (empty ones left out).
pub(crate) fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() { path.to_string() } else { format!("{path}?{q}") }
}
