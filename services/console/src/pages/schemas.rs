//! Schemas: every subject with its versions, and one subject's history — its versions, the
//! JSON Schema it uses now, and what changed between two versions, field by field (the diff of
//! `sse_schema::history`, the same `ssectl schemas diff` prints). Every schema replica is asked
//! and the answers merged.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use sse_proto::v1::{ListSchemasRequest, ListSubjectsRequest, Schema};
use sse_schema::history::{self, Change, ChangeKind};

use crate::layout;
use crate::server::AppState;

/// What the schema replicas answered.
#[derive(Debug, Default)]
pub struct Registry {
    /// Every registered version, duplicates across replicas included.
    pub schemas: Vec<Schema>,
    /// Subject -> the version its events are tagged with now (empty before the first).
    pub current: BTreeMap<String, String>,
    /// Replicas that did not answer, for the page to say so.
    pub problems: Vec<String>,
}

/// The query of `GET /schemas/view`.
#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    /// The subject shown.
    pub subject: String,
    /// The older version of the diff (default: the one before `to`).
    pub from: Option<String>,
    /// The newer version of the diff (default: the latest).
    pub to: Option<String>,
}

/// `GET /schemas`.
pub async fn list(State(st): State<AppState>) -> Markup {
    let reg = fetch(&st).await;
    layout::page("Schemas", "/schemas", list_body(&reg))
}

/// `GET /schemas/view?subject=S[&from=A&to=B]`; 404 when no replica knows the subject.
pub async fn view(State(st): State<AppState>, Query(q): Query<ViewQuery>) -> (StatusCode, Markup) {
    let reg = fetch(&st).await;
    let (status, body) = view_body(&reg, &q);
    (status, layout::page(&q.subject, "/schemas", body))
}

/// Asks every schema replica for its schemas and its subjects' current versions.
async fn fetch(st: &AppState) -> Registry {
    let mut reg = Registry::default();
    for (addr, mut c) in st.backend.schemas() {
        match c.list_schemas(ListSchemasRequest {}).await {
            Ok(r) => reg.schemas.extend(r.into_inner().schemas),
            Err(e) => reg.problems.push(format!("{addr}: {}", e.message())),
        }
        match c.list_subjects(ListSubjectsRequest {}).await {
            Ok(r) => {
                for s in r.into_inner().subjects {
                    let v = s.schema.map(|r| r.version).unwrap_or_default();
                    let slot = reg.current.entry(s.subject).or_default();
                    if history::newer(&v, slot) {
                        *slot = v;
                    }
                }
            }
            Err(e) => reg.problems.push(format!("{addr}: {}", e.message())),
        }
    }
    reg
}

/// The list of subjects: each with its number of versions and its current one.
pub fn list_body(reg: &Registry) -> Markup {
    let mut subjects: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for s in &reg.schemas {
        for subject in history::subjects_of(s) {
            subjects.entry(subject).or_default().insert(&s.version);
        }
    }
    for k in reg.current.keys() {
        subjects.entry(k).or_default();
    }
    html! {
        @for p in &reg.problems { (layout::problem(p)) }
        table id="schemas" {
            thead { tr { th { "Subject" } th { "Versions" } th { "Current" } } }
            tbody {
                @for (subject, versions) in &subjects {
                    tr data-subject=(subject) {
                        td { a href=(view_href(subject, None)) { (subject) } }
                        td.num { (versions.len()) }
                        td { (reg.current.get(*subject).map(String::as_str).unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// One subject's page: versions, current schema, diff. The status is 404 for an unknown
/// subject.
pub fn view_body(reg: &Registry, q: &ViewQuery) -> (StatusCode, Markup) {
    let versions = history::subject_versions(&reg.schemas, &q.subject);
    let Some(latest) = versions.last() else {
        let body = html! {
            @for p in &reg.problems { (layout::problem(p)) }
            (layout::problem("No schema is registered for this subject."))
        };
        return (StatusCode::NOT_FOUND, body);
    };
    let current = reg
        .current
        .get(&q.subject)
        .and_then(|v| versions.iter().find(|s| s.version == *v))
        .unwrap_or(latest);
    let body = html! {
        @for p in &reg.problems { (layout::problem(p)) }
        h2 { "Versions" }
        ul id="versions" {
            @for s in &versions {
                li data-version=(s.version) {
                    a href=(view_href(&q.subject, Some(&s.version))) { "version " (s.version) }
                    @if s.version == current.version { " (current)" }
                    " " small { (s.name) }
                }
            }
        }
        h2 { "Schema (version " (current.version) ")" }
        pre id="schema" { (pretty(&current.content)) }
        @if versions.len() >= 2 { (diff_section(&versions, q)) }
    };
    (StatusCode::OK, body)
}

/// The changes between the two versions the query names (by default the latest two).
fn diff_section(versions: &[Schema], q: &ViewQuery) -> Markup {
    let picked = history::pick(versions, &q.subject, q.from.as_deref(), q.to.as_deref());
    let result = picked.and_then(|(a, b)| Ok((a, b, history::diff_schemas(a, b)?)));
    html! {
        section id="diff" {
            @match result {
                Ok((a, b, changes)) => {
                    h2 { "Changes from version " (a.version) " to " (b.version) }
                    @if changes.is_empty() { p { "No field changed." } }
                    ul { @for c in &changes { li class=(class(c)) { (c.to_string()) } } }
                }
                Err(e) => { (layout::problem(&e.to_string())) }
            }
        }
    }
}

/// The CSS class of a change: added, removed, or any other change.
fn class(c: &Change) -> &'static str {
    match c.kind {
        ChangeKind::Added { .. } => "diff-added",
        ChangeKind::Removed => "diff-removed",
        _ => "diff-changed",
    }
}

/// A schema's content pretty-printed (as stored when it is not JSON).
fn pretty(content: &str) -> String {
    serde_json::from_str::<serde_json::Value>(content)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| content.to_owned())
}

/// The link to a subject's page, showing the diff up to `to` when given.
fn view_href(subject: &str, to: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("subject", subject);
    if let Some(v) = to {
        q.append_pair("to", v);
    }
    let mut href = String::from("/schemas/view?");
    href.push_str(&q.finish());
    href
}

#[cfg(test)]
#[path = "schemas_tests.rs"]
mod tests;
