//! Streams: state, counters and last error of every stream of every ingest replica, with the
//! table refreshed live over server-sent events.
//!
//! Bounded: however many pages show the table, it is built (one `ListStreams` per ingest
//! replica) at most once per refresh and shared; and at most `--console-stream-views-max`
//! pages follow it at once.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use maud::{Markup, html};
use sse_proto::v1::{ListStreamsRequest, StreamStatus};
use tokio::sync::{Mutex, Semaphore};

use crate::layout;
use crate::server::AppState;

/// How often the live table is rebuilt.
const REFRESH: Duration = Duration::from_secs(1);
/// Default of `--console-stream-views-max`.
pub const STREAM_VIEWS_MAX: usize = 16;

/// The live table, shared by every page that follows it.
pub struct LiveTable {
    views: Arc<Semaphore>,
    max_views: usize,
    /// The last table built, and when.
    last: Mutex<Option<(Instant, Arc<str>)>>,
}

impl LiveTable {
    /// At most `max_views` pages following the table at once.
    pub fn new(max_views: usize) -> Self {
        Self {
            views: Arc::new(Semaphore::new(max_views)),
            max_views,
            last: Mutex::new(None),
        }
    }

    /// The table built less than a refresh before `now`, or `build`'s new one; callers
    /// arriving while it is built wait for it rather than building their own.
    async fn get<F, Fut>(&self, now: Instant, build: F) -> Arc<str>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = String>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, html)) = &*last
            && now.saturating_duration_since(*at) < REFRESH
        {
            return html.clone();
        }
        let html: Arc<str> = build().await.into();
        *last = Some((now, html.clone()));
        html
    }
}

/// `GET /streams`.
pub async fn page(State(st): State<AppState>) -> Markup {
    let body = html! {
        div hx-ext="sse" sse-connect="/streams/live" sse-swap="streams" hx-swap="innerHTML" {
            (table(&st).await)
        }
    };
    layout::page("Streams", "/streams", body)
}

/// `GET /streams/live`: the table as an SSE `streams` event every second, until the console
/// stops; 503 while `--console-stream-views-max` pages follow it.
pub async fn live(State(st): State<AppState>) -> Response {
    let Ok(permit) = st.streams.views.clone().try_acquire_owned() else {
        let msg = format!(
            "{} pages follow the streams table (--console-stream-views-max); close one and reload",
            st.streams.max_views
        );
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    };
    // The permit lives as long as the stream: a page that goes away frees its slot.
    let stop = st.stop.clone().cancelled_owned();
    let stream = futures::stream::unfold((st, permit), |(st, permit)| async move {
        tokio::time::sleep(REFRESH).await;
        let html = st
            .streams
            .get(Instant::now(), || async { table(&st).await.into_string() })
            .await;
        let event = Event::default().event("streams").data(&*html);
        Some((Ok::<_, Infallible>(event), (st, permit)))
    });
    Sse::new(stream.take_until(stop))
        .keep_alive(KeepAlive::default())
        .into_response()
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn many_pages_share_one_build_per_refresh() {
        let table = Arc::new(LiveTable::new(STREAM_VIEWS_MAX));
        let builds = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let view = |at: Instant, hold: Option<tokio::sync::oneshot::Receiver<()>>| {
            let (table, builds) = (table.clone(), builds.clone());
            async move {
                table
                    .get(at, || async {
                        let n = builds.fetch_add(1, Ordering::SeqCst) + 1;
                        // A slow ingest: the pages arriving meanwhile wait for this build.
                        if let Some(hold) = hold {
                            let _ = hold.await;
                        }
                        format!("table {n}")
                    })
                    .await
            }
        };
        let (release, hold) = tokio::sync::oneshot::channel();
        let first = tokio::spawn(view(start, Some(hold)));
        let others: Vec<_> = (1..STREAM_VIEWS_MAX)
            .map(|_| tokio::spawn(view(start, None)))
            .collect();
        // On this single-threaded runtime, every page is now waiting on the first build.
        for _ in 0..STREAM_VIEWS_MAX {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        assert_eq!(&*first.await.unwrap(), "table 1");
        for p in others {
            assert_eq!(&*p.await.unwrap(), "table 1");
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert_eq!(&*view(start + REFRESH / 2, None).await, "table 1");
        assert_eq!(&*view(start + REFRESH, None).await, "table 2");
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }
}
