//! Streams: state, counters and last error of every stream of every ingest replica, with the
//! table refreshed live over server-sent events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use maud::{Markup, html};
use sse_proto::v1::{ListStreamsRequest, StreamStatus};

use crate::layout;
use crate::server::AppState;

/// How often the live table is rebuilt.
const REFRESH: Duration = Duration::from_secs(1);

/// `GET /streams`.
pub async fn page(State(st): State<AppState>) -> Markup {
    let body = html! {
        div hx-ext="sse" sse-connect="/streams/live" sse-swap="streams" hx-swap="innerHTML" {
            (table(&st).await)
        }
    };
    layout::page("Streams", "/streams", body)
}

/// `GET /streams/live`: the table as an SSE `streams` event every second.
pub async fn live(
    State(st): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(st, |st| async move {
        tokio::time::sleep(REFRESH).await;
        let html = table(&st).await.into_string();
        Some((Ok(Event::default().event("streams").data(html)), st))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The streams of every replica, merged, in key order.
async fn table(st: &AppState) -> Markup {
    let mut rows: Vec<StreamStatus> = Vec::new();
    let mut problems = Vec::new();
    for (addr, mut c) in st.backend.ingests() {
        match c.list_streams(ListStreamsRequest {}).await {
            Ok(r) => rows.extend(r.into_inner().streams),
            Err(e) => problems.push(format!("{addr}: {}", e.message())),
        }
    }
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    html! {
        @for p in &problems { (layout::problem(p)) }
        table id="streams" {
            thead { tr { th { "Stream" } th { "State" } th { "Received" } th { "Forwarded" }
                th { "Acknowledged" } th { "Connects" } th { "Last error" } } }
            tbody {
                @for s in &rows {
                    tr data-stream=(s.key) {
                        td { (s.key) br; small { (s.url) } }
                        td class=(s.state) { (s.state) }
                        td.num { (s.events_received) }
                        td.num { (s.events_forwarded) }
                        td.num { (s.events_acknowledged) }
                        td.num { (s.connects) }
                        td { (s.last_error) }
                    }
                }
            }
        }
    }
}
