//! Schemas: every subject with its versions, and one subject's history — its versions, the
//! JSON Schema it uses now, and what changed between two versions, field by field (the diff of
//! `sse_schema::history`, the same `ssectl schemas diff` prints). Every schema replica is asked
//! and the answers merged, following the pages of `ListSchemas` and `ListSubjects` up to
//! [`PAGES_MAX`] per list and replica (the page says when it stopped there).

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use maud::{Markup, html};
use serde::Deserialize;
use sse_proto::v1::{ListSchemasRequest, ListSubjectsRequest, Schema};
use sse_schema::history::{self, Change, ChangeKind};
use sse_schema::paging::{PAGE_BYTES_MAX, PAGE_SIZE_MAX, read_pages};

use crate::layout;
use crate::server::AppState;

/// Most pages of one list (`ListSchemas`, `ListSubjects`) the console reads from one schema
/// replica for one view: up to 16,000 schema versions or subjects, and with pages of at most
/// 1 MiB ([`PAGE_BYTES_MAX`]) 16 MiB per list, so one view holds a bounded amount however
/// large the registry (64 MiB by default). A larger registry shows its first pages and a note.
pub const PAGES_MAX: usize = 16;

// Bytes the console may hold of one replica's list for one view.
const _: () = assert!(PAGES_MAX * PAGE_BYTES_MAX <= 16 * 1024 * 1024);

/// What the schema replicas answered.
#[derive(Debug, Default)]
pub struct Registry {
    /// Every registered version, duplicates across replicas included.
    pub schemas: Vec<Schema>,
    /// Subject -> the version its events are tagged with now (empty before the first).
    pub current: BTreeMap<String, String>,
    /// Replicas that did not answer, for the page to say so.
    pub problems: Vec<String>,
    /// Lists read only in part (cut at [`PAGES_MAX`] pages), for the page to say so.
    pub notes: Vec<String>,
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

/// Asks every schema replica for its schemas and its subjects' current versions, page by page.
async fn fetch(st: &AppState) -> Registry {
    let mut reg = Registry::default();
    let page_size = i32::try_from(PAGE_SIZE_MAX).unwrap_or(i32::MAX);
    for (addr, c) in st.backend.schemas() {
        let schemas = read_pages(PAGES_MAX, |page_token| {
            let mut c = c.clone();
            async move {
                let request = ListSchemasRequest {
                    page_size,
                    page_token,
                };
                let r = c.list_schemas(request).await?.into_inner();
                Ok::<_, tonic::Status>((r.schemas, r.next_page_token))
            }
        })
        .await;
        match schemas {
            Ok((schemas, whole)) => {
                if !whole {
                    reg.notes
                        .push(cut_note(&addr, schemas.len(), "schema versions"));
                }
                reg.schemas.extend(schemas);
            }
            Err(e) => reg.problems.push(format!("{addr}: {}", e.message())),
        }
        let subjects = read_pages(PAGES_MAX, |page_token| {
            let mut c = c.clone();
            async move {
                let request = ListSubjectsRequest {
                    page_size,
                    page_token,
                };
                let r = c.list_subjects(request).await?.into_inner();
                Ok::<_, tonic::Status>((r.subjects, r.next_page_token))
            }
        })
        .await;
        match subjects {
            Ok((subjects, whole)) => {
                if !whole {
                    reg.notes.push(cut_note(&addr, subjects.len(), "subjects"));
                }
                for s in subjects {
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

/// The note of a list of `addr` cut at [`PAGES_MAX`] pages, after `n` items.
fn cut_note(addr: &impl std::fmt::Display, n: usize, what: &str) -> String {
    format!(
        "{addr}: only the first {n} {what} are shown: the console reads at most {PAGES_MAX} pages of a list; ssectl or grpcurl list them all."
    )
}

/// The notes of lists read in part.
fn notes(reg: &Registry) -> Markup {
    html! { @for n in &reg.notes { p.note role="status" { (n) } } }
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
        (notes(reg))
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
            (notes(reg))
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
        (notes(reg))
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
