//! Live events: the messages the publishers acknowledged, as they are published, for one asset
//! (or all). `/events/live` opens `PublisherService/Tail` on every publisher pod, merges the
//! tails and pushes each message to the browser as an HTML fragment over server-sent events.
//! Bounded: a few live views at once (each holds one tail per publisher, whose slots are few),
//! payloads cut at a console limit; when the browser goes away the stream is dropped and with it
//! every tail it opened.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use maud::{Markup, html};
use serde::Deserialize;
use sse_proto::v1::tail_response::Item;
use sse_proto::v1::{GetStatusRequest, Qos, TailMessage, TailRequest, TailResponse};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::layout;
use crate::pages::query;
use crate::server::AppState;

/// Default of `--console-live-views-max`: each view holds one of a publisher's 8 tail slots
/// (`TAILS_MAX`), so the console leaves room for `ssectl tail`.
pub const LIVE_VIEWS_MAX: usize = 4;
/// Default of `--console-event-payload-bytes`: what a page shows of one payload (the
/// publisher caps any request at 16 KiB).
pub const EVENT_PAYLOAD_BYTES: u32 = 4096;
/// Default of `--console-live-list-max`: what one open page keeps of the list, so a view left
/// open on a wall for months holds a bounded page.
pub const LIVE_LIST_MAX: usize = 200;
/// The SSE event name the page swaps in.
const SSE_EVENT: &str = "event";

/// The live views' bounds, shared by every request.
#[derive(Clone)]
pub struct Live {
    views: Arc<Semaphore>,
    max_views: usize,
    payload_bytes: u32,
    list_max: usize,
}

impl Live {
    /// At most `max_views` live views at once, payloads cut at `payload_bytes`, each page
    /// keeping its newest `list_max` items.
    pub fn new(max_views: usize, payload_bytes: u32, list_max: usize) -> Self {
        Self {
            views: Arc::new(Semaphore::new(max_views)),
            max_views,
            payload_bytes,
            list_max,
        }
    }
}

/// The `?asset=` filter of both routes.
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    /// Only this asset's messages; empty or absent: every message.
    #[serde(default)]
    pub asset: String,
}

/// `GET /events`: the asset filter and the live list.
pub async fn page(State(st): State<AppState>, Query(f): Query<Filter>) -> Markup {
    let (assets, problems) = asset_names(&st).await;
    let live = if f.asset.is_empty() {
        "/events/live".to_string()
    } else {
        query::href("/events/live", &[("asset", &f.asset)])
    };
    let body = html! {
        @for p in &problems { (layout::problem(p)) }
        // A GET form: the filter is in the address, so a view can be bookmarked and reloaded.
        form id="event-filter" method="get" action="/events" {
            label for="asset" { "Asset " }
            select id="asset" name="asset" {
                option value="" selected[f.asset.is_empty()] { "every asset" }
                @for a in &assets {
                    option value=(a) selected[*a == f.asset] { (a) }
                }
            }
            " "
            button id="filter" type="submit" { "Show" }
        }
        p.hint { "Newest first. Messages appear once the broker has them." }
        div id="events" hx-ext="sse" sse-connect=(live) sse-swap=(SSE_EVENT) hx-swap="afterbegin" {}
    };
    layout::page("Live events", "/events", body)
}

/// `GET /events/live?asset=A`: every publisher's tail of A, merged, one SSE `event` per
/// message, until the console stops; 503 while every live view is taken.
pub async fn live(State(st): State<AppState>, Query(f): Query<Filter>) -> Response {
    let Ok(permit) = st.live.views.clone().try_acquire_owned() else {
        let msg = format!(
            "{} live views are open (--console-live-views-max); close one and reload",
            st.live.max_views
        );
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    };
    let tails = open_tails(&st, &f.asset).await;
    let trimmed = trimmed(stream::select_all(tails), st.live.list_max);
    let live = with_permit(trimmed, permit).take_until(st.stop.clone().cancelled_owned());
    Sse::new(live)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Opens a tail on every publisher pod; one that cannot be opened becomes a one-line stream
/// naming it.
async fn open_tails(st: &AppState, asset: &str) -> Vec<BoxStream<'static, Markup>> {
    let request = TailRequest {
        asset: asset.to_string(),
        max_payload_bytes: st.live.payload_bytes,
        ..TailRequest::default()
    };
    let opens = st.backend.publishers().into_iter().map(|(addr, mut c)| {
        let request = request.clone();
        async move {
            match c.tail(request).await {
                Ok(r) => r
                    .into_inner()
                    .map(move |item| match item {
                        Ok(t) => fragment(t),
                        Err(e) => layout::problem(&format!("{addr}: tail ended: {}", e.message())),
                    })
                    .boxed(),
                Err(e) => {
                    let line = layout::problem(&format!("{addr}: {}", e.message()));
                    stream::once(async move { line }).boxed()
                }
            }
        }
    });
    futures::future::join_all(opens).await
}

/// The items with, once the page holds `list_max`, an out-of-band swap that deletes its items
/// beyond the newest `list_max - 1` before the new one goes on top: the page never holds more
/// than `list_max` (what it kept from an earlier connection goes too). The page needs no script
/// of its own (the CSP allows none inline).
fn trimmed(
    items: impl Stream<Item = Markup> + Send + 'static,
    list_max: usize,
) -> impl Stream<Item = Markup> + Send + 'static {
    let trim = format!("delete:#events > :nth-child(n+{})", list_max.max(1));
    items.enumerate().map(move |(n, item)| {
        html! {
            (item)
            @if n >= list_max { div hx-swap-oob=(trim) {} }
        }
    })
}

/// The merged tails as SSE events, holding the view's slot until the browser goes away (the
/// stream is dropped, and with it every tail).
fn with_permit(
    tails: impl Stream<Item = Markup> + Send + 'static,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    tails.map(move |html| {
        let _slot = &permit;
        Ok(Event::default().event(SSE_EVENT).data(html.into_string()))
    })
}

/// One tail item as the page shows it.
fn fragment(item: TailResponse) -> Markup {
    match item.item {
        Some(Item::Message(m)) => message(&m),
        Some(Item::Dropped(d)) => html! {
            p.dropped role="status" {
                (d.count) " messages dropped: this view fell behind"
            }
        },
        None => html! {},
    }
}

/// A message: topic, route, MQTT properties, the CloudEvents attributes among the user
/// properties, and the payload as text.
pub fn message(m: &TailMessage) -> Markup {
    let payload = String::from_utf8_lossy(&m.payload);
    html! {
        article.event data-asset=(m.asset) data-device=(m.device) data-topic=(m.topic) {
            header {
                code.topic { (m.topic) }
                " " span.route { (m.device) " / " (m.asset) }
            }
            dl.properties {
                dt { "qos" } dd { (qos(m.qos())) }
                dt { "retain" } dd { (m.retain) }
                @if m.ttl_seconds > 0 { dt { "expiry" } dd { (m.ttl_seconds) " s" } }
                dt { "content type" } dd { (m.content_type) }
                @for p in &m.user_properties {
                    dt { (p.name) } dd { (p.value) }
                }
            }
            pre { (payload) }
            @if m.truncated {
                p.truncated { "cut: " (m.payload.len()) " of " (m.payload_bytes) " bytes shown" }
            }
        }
    }
}

/// QoS as the resources write it (unspecified is QoS 1 on the wire).
fn qos(q: Qos) -> &'static str {
    match q {
        Qos::AtMostOnce => "Qos0",
        Qos::AtLeastOnce | Qos::Unspecified => "Qos1",
    }
}

/// Every asset name of every ingest replica, sorted, and the replicas that did not answer.
async fn asset_names(st: &AppState) -> (Vec<String>, Vec<String>) {
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for (addr, mut c) in st.backend.ingests() {
        match c.get_status(GetStatusRequest {}).await {
            Ok(r) => names.extend(r.into_inner().assets.into_iter().map(|a| a.name)),
            Err(e) => problems.push(format!("{addr}: {}", e.message())),
        }
    }
    names.sort();
    names.dedup();
    (names, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_proto::v1::{TailDropped, UserProperty};

    #[tokio::test]
    async fn a_page_is_trimmed_once_it_holds_list_max_items() {
        let items = stream::iter((0..5).map(|n| html! { p { (n) } }));
        let sent: Vec<String> = trimmed(items, 3).map(|m| m.into_string()).collect().await;
        let trim = r#"<div hx-swap-oob="delete:#events &gt; :nth-child(n+3)"></div>"#;
        assert_eq!(sent[0], "<p>0</p>");
        assert_eq!(sent[2], "<p>2</p>");
        assert_eq!(sent[3], format!("<p>3</p>{trim}"));
        assert_eq!(sent[4], format!("<p>4</p>{trim}"));
    }

    #[test]
    fn a_message_shows_its_route_properties_and_cut_payload_escaped() {
        let m = TailMessage {
            topic: "factory/a".into(),
            qos: Qos::AtMostOnce.into(),
            user_properties: vec![UserProperty {
                name: "type".into(),
                value: "<reading>".into(),
            }],
            content_type: "application/json".into(),
            payload: b"{\"t\":1<".to_vec().into(),
            payload_bytes: 20,
            truncated: true,
            device: "dev".into(),
            asset: "asset-a".into(),
            ..TailMessage::default()
        };
        let html = message(&m).into_string();
        assert!(
            html.contains(
                r#"<article class="event" data-asset="asset-a" data-device="dev" data-topic="factory/a">"#
            ),
            "{html}"
        );
        assert!(
            html.contains("<dt>type</dt><dd>&lt;reading&gt;</dd>"),
            "{html}"
        );
        assert!(html.contains("{&quot;t&quot;:1&lt;</pre>"), "{html}");
        assert!(html.contains("cut: 7 of 20 bytes shown"), "{html}");
        assert!(html.contains("<dt>qos</dt><dd>Qos0</dd>"), "{html}");
    }

    #[test]
    fn a_drop_notice_is_a_visible_line() {
        let d = TailResponse {
            item: Some(Item::Dropped(TailDropped { count: 3 })),
        };
        let html = fragment(d).into_string();
        assert!(html.contains("3 messages dropped"), "{html}");
    }
}
