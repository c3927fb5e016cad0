//! Discovered event types: the SSE event types no asset routes, merged over every ingest
//! replica, each with its count, when it was first and last seen, the JSON Schema inferred from
//! its first payload, and a link that opens a new asset with the type as an event.

use std::collections::BTreeMap;

use axum::extract::State;
use maud::{Markup, html};
use sse_proto::v1::{DiscoveredEndpoint, DiscoveredType, ListDiscoveredRequest};

use crate::layout;
use crate::pages::query;
use crate::server::AppState;

/// The name of the overflow entry (`other`): types past the cap, counted together, no schema.
const OTHER: &str = "other";

/// One row: a type on one device endpoint, merged over the replicas that saw it.
#[derive(Debug, Default, PartialEq)]
struct Row {
    count: u64,
    first_seen: String,
    last_seen: String,
    schema: String,
    other: bool,
}

/// Rows by (device, endpoint, type).
type Rows = BTreeMap<(String, String, String), Row>;

/// `GET /discovered`.
pub async fn page(State(st): State<AppState>) -> Markup {
    let mut endpoints = Vec::new();
    let mut problems = Vec::new();
    for (addr, mut c) in st.backend.ingests() {
        match c.list_discovered(ListDiscoveredRequest::default()).await {
            Ok(r) => endpoints.extend(r.into_inner().endpoints),
            Err(e) => problems.push(format!("{addr}: {}", e.message())),
        }
    }
    let body = html! {
        @for p in &problems { (layout::problem(p)) }
        p.hint { "Event types that arrived on a device endpoint but that no asset routes." }
        (table(&merge(endpoints)))
    };
    layout::page("Discovered event types", "/discovered", body)
}

/// Merges every replica's endpoints: the same type seen by two replicas adds up, with the
/// earliest first and the latest last sighting (RFC 3339 in UTC sorts as text).
fn merge(endpoints: Vec<DiscoveredEndpoint>) -> Rows {
    let mut rows = Rows::new();
    for e in endpoints {
        let other = e.other.map(|o| (o, true));
        for (t, is_other) in e.types.into_iter().map(|t| (t, false)).chain(other) {
            let key = (e.device.clone(), e.endpoint.clone(), t.sse_type.clone());
            add(rows.entry(key).or_default(), t, is_other);
        }
    }
    rows
}

/// Adds one replica's sighting of a type to its row.
fn add(row: &mut Row, t: DiscoveredType, other: bool) {
    let first = row.count == 0;
    row.count += t.count;
    if first || t.first_seen < row.first_seen {
        row.first_seen = t.first_seen;
    }
    if t.last_seen > row.last_seen {
        row.last_seen = t.last_seen;
    }
    if row.schema.is_empty() {
        row.schema = t.schema;
    }
    row.other |= other;
}

/// The table, one row per type.
fn table(rows: &Rows) -> Markup {
    html! {
        table id="discovered" {
            thead { tr { th { "Device" } th { "Endpoint" } th { "Event type" } th { "Events" }
                th { "First seen" } th { "Last seen" } th { "Inferred schema" } th {} } }
            tbody {
                @for ((device, endpoint, sse_type), r) in rows {
                    tr data-device=(device) data-endpoint=(endpoint) data-type=(sse_type) {
                        td { (device) } td { (endpoint) } td { code { (sse_type) } }
                        td.num { (r.count) } td { (r.first_seen) } td { (r.last_seen) }
                        td { (schema(&r.schema)) }
                        td {
                            @if !r.other {
                                a.add-event href=(add_link(device, endpoint, sse_type)) {
                                    "Add as event"
                                }
                            } @else {
                                small { "types past --discovery-max-types (" (OTHER) ")" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The inferred schema, pretty-printed, folded away.
fn schema(text: &str) -> Markup {
    if text.is_empty() {
        return html! { small { "none (no JSON, or cut)" } };
    }
    let pretty = serde_json::from_str::<serde_json::Value>(text)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| text.to_string());
    html! { details { summary { "JSON Schema" } pre { (pretty) } } }
}

/// The new-asset form, prefilled with this type as an event.
fn add_link(device: &str, endpoint: &str, sse_type: &str) -> String {
    query::href(
        "/assets/new",
        &[
            ("device", device),
            ("endpoint", endpoint),
            ("event_name", sse_type),
            ("event_type", sse_type),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(count: u64, first: &str, last: &str) -> DiscoveredEndpoint {
        DiscoveredEndpoint {
            device: "dev".into(),
            endpoint: "sse".into(),
            types: vec![DiscoveredType {
                sse_type: "wind gust".into(),
                count,
                first_seen: first.into(),
                last_seen: last.into(),
                schema: r#"{"type":"object"}"#.into(),
                ..DiscoveredType::default()
            }],
            other: Some(DiscoveredType {
                sse_type: OTHER.into(),
                count: 1,
                ..DiscoveredType::default()
            }),
            asset_yaml: String::new(),
        }
    }

    #[test]
    fn two_replicas_sightings_of_one_type_add_up() {
        let rows = merge(vec![
            endpoint(2, "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
            endpoint(3, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
        ]);
        let key = (
            "dev".to_string(),
            "sse".to_string(),
            "wind gust".to_string(),
        );
        let row = &rows[&key];
        assert_eq!(row.count, 5);
        assert_eq!(row.first_seen, "2026-01-01T00:00:00Z");
        assert_eq!(row.last_seen, "2026-01-03T00:00:00Z");
        let html = table(&rows).into_string();
        assert!(
            html.contains(r#"href="/assets/new?device=dev&amp;endpoint=sse&amp;event_name=wind%20gust&amp;event_type=wind%20gust""#),
            "{html}"
        );
        assert_eq!(html.matches("add-event").count(), 1, "no link for `other`");
        assert!(
            html.contains("&quot;type&quot;: &quot;object&quot;"),
            "{html}"
        );
    }
}
