//! One connection served by [`connection`] over an in-memory pipe, driven by hyper's client, on
//! tokio's paused clock: time moves only when every task waits, so "still 32 after a second"
//! and "closed after 30 s" are exact, not races.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use axum::routing::get;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

/// Longer than any wait below: a wrong expectation fails instead of hanging.
const DEADLINE: Duration = Duration::from_secs(600);

/// `/` answers at once; `/hold` counts itself in `held` and answers with a body that never
/// ends (a live view).
fn router(held: Arc<watch::Sender<usize>>) -> Router {
    let hold = move || {
        held.send_modify(|n| *n += 1);
        async { Body::from_stream(futures::stream::pending::<Result<Bytes, Infallible>>()) }
    };
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/hold", get(hold))
}

/// A connection served over a pipe, HTTP/2 if `h2`; the client's end, the server's task, the
/// stop token and the count of `/hold` requests that reached the router.
struct Served {
    client: DuplexStream,
    task: JoinHandle<()>,
    stop: CancellationToken,
    held: watch::Receiver<usize>,
}

fn served(h2: bool) -> Served {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let held = Arc::new(watch::Sender::new(0));
    let stop = CancellationToken::new();
    let remote = SocketAddr::from(([127, 0, 0, 1], 40000));
    let task = tokio::spawn(connection(
        server,
        h2.then_some(H2_STREAMS_MAX),
        remote,
        router(held.clone()),
        stop.clone(),
    ));
    Served {
        client,
        task,
        stop,
        held: held.subscribe(),
    }
}

/// An HTTP/2 client on `io`, its connection driven in a task of its own.
async fn h2_client<Io>(io: Io) -> SendRequest<Body>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    send
}

/// A client's end that goes silent when `frozen` is set: nothing more is read or written, and
/// the pipe stays open (a peer that vanished without closing). hyper's client answers pings in
/// a task of its own, so the client's IO is what must stop.
struct Freezable {
    io: DuplexStream,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl Freezable {
    fn is_frozen(&self) -> bool {
        self.frozen.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl tokio::io::AsyncRead for Freezable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.is_frozen() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Freezable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.is_frozen() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.is_frozen() {
            return Poll::Pending;
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn get_req(path: &str) -> Request<Body> {
    Request::get(format!("http://127.0.0.1:8080{path}"))
        .body(Body::empty())
        .unwrap()
}

async fn wait_held(held: &mut watch::Receiver<usize>, n: usize) {
    tokio::time::timeout(DEADLINE, held.wait_for(|h| *h >= n))
        .await
        .unwrap()
        .unwrap();
}

/// How long the server's task takes to end from now.
async fn ends_within(task: JoinHandle<()>) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn one_http2_connection_serves_its_stream_limit_at_once_and_queues_the_next() {
    let mut s = served(true);
    let mut send = h2_client(s.client).await;
    // One answered request first: the client then knows the server's SETTINGS.
    let first = send.send_request(get_req("/")).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let max = H2_STREAMS_MAX as usize;
    let (tx, mut rx) = mpsc::unbounded_channel::<Response<Incoming>>();
    for _ in 0..=max {
        let (mut send, tx) = (send.clone(), tx.clone());
        tokio::spawn(async move {
            let resp = send.send_request(get_req("/hold")).await.unwrap();
            let _ = tx.send(resp);
        });
    }
    wait_held(&mut s.held, max).await;
    // Every task waits now: the one beyond the limit has not reached the server.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(*s.held.borrow(), max);
    // A live view closed (its stream reset) lets the queued one in.
    drop(rx.recv().await.unwrap());
    wait_held(&mut s.held, max + 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_header_list_over_the_limit_gets_431() {
    let s = served(true);
    let mut send = h2_client(s.client).await;
    let mut req = get_req("/");
    let big = "a".repeat(H2_HEADER_LIST_BYTES_MAX as usize);
    req.headers_mut().insert("x-big", big.parse().unwrap());
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // The connection serves the next request.
    let ok = send.send_request(get_req("/")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_is_closed_after_its_idle_timeout_but_not_while_a_request_is_open() {
    let mut s = served(true);
    let mut send = h2_client(s.client).await;
    let live = send.send_request(get_req("/hold")).await.unwrap();
    wait_held(&mut s.held, 1).await;
    // A live view keeps its connection however long it stays open (its pings answered).
    tokio::time::sleep(H2_IDLE_TIMEOUT * 3).await;
    assert!(!s.task.is_finished(), "closed with a request open");
    drop(live);
    let took = ends_within(s.task).await;
    assert!(
        took >= H2_IDLE_TIMEOUT && took < H2_IDLE_TIMEOUT + Duration::from_secs(1),
        "closed {took:?} after the last request"
    );
}

#[tokio::test(start_paused = true)]
async fn an_http2_connection_that_never_sends_a_request_is_closed() {
    // A client that completed TLS and went silent, before or after HTTP/2's preface.
    for preface in [false, true] {
        let s = served(true);
        // The client's end stays open, silent, until the server closes.
        let (_io, _send) = if preface {
            (None, Some(h2_client(s.client).await))
        } else {
            (Some(s.client), None)
        };
        let took = ends_within(s.task).await;
        let most = H2_IDLE_TIMEOUT + CLOSE_GRACE + Duration::from_secs(1);
        assert!(
            took >= H2_IDLE_TIMEOUT && took < most,
            "preface {preface}: closed after {took:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_http2_peer_that_stops_answering_pings_is_closed() {
    let mut s = served(true);
    let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let io = Freezable {
        io: s.client,
        frozen: frozen.clone(),
    };
    let mut send = h2_client(io).await;
    let _live = send.send_request(get_req("/hold")).await.unwrap();
    wait_held(&mut s.held, 1).await;
    frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    let took = ends_within(s.task).await;
    let most = H2_PING_EVERY + H2_PING_TIMEOUT + Duration::from_secs(1);
    assert!(took < most, "closed after {took:?}, not within {most:?}");
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_a_connection_closes_at_once_or_after_the_grace_if_a_request_holds_it() {
    for h2 in [true, false] {
        // Nothing open: closed at once.
        let s = served(h2);
        let (_io, _send) = if h2 {
            let mut send = h2_client(s.client).await;
            send.send_request(get_req("/")).await.unwrap();
            (None, Some(send))
        } else {
            (Some(s.client), None)
        };
        s.stop.cancel();
        let took = ends_within(s.task).await;
        assert!(took < Duration::from_secs(1), "h2 {h2}: idle took {took:?}");

        // A response that never ends: dropped after the grace.
        let mut s = served(h2);
        let _live = if h2 {
            let mut send = h2_client(s.client).await;
            send.send_request(get_req("/hold")).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s.client))
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(get_req("/hold")).await.unwrap()
        };
        wait_held(&mut s.held, 1).await;
        s.stop.cancel();
        let took = ends_within(s.task).await;
        assert!(
            took >= CLOSE_GRACE && took < CLOSE_GRACE + Duration::from_secs(1),
            "h2 {h2}: held took {took:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_h2_by_alpn_never_speaks_http2() {
    // A client sending HTTP/2's preface straight away (prior knowledge, h2c) gets no answer.
    let s = served(false);
    let mut send = h2_client(s.client).await;
    let answered = tokio::time::timeout(DEADLINE, send.send_request(get_req("/")))
        .await
        .unwrap();
    assert!(answered.is_err(), "answered over HTTP/2: {answered:?}");
    ends_within(s.task).await;
}

#[test]
fn the_stream_limit_follows_the_live_view_caps() {
    let defaults = crate::pages::events::LIVE_VIEWS_MAX + crate::pages::streams::STREAM_VIEWS_MAX;
    assert_eq!(
        h2_streams_max(defaults),
        H2_STREAMS_MAX,
        "the default caps fit in 32"
    );
    assert_eq!(h2_streams_max(0), H2_STREAMS_MAX);
    // Both caps at their flags' maximum: every live page of one browser still gets a stream.
    assert_eq!(h2_streams_max(64 + 256), 64 + 256 + H2_PAGE_LOADS);
}
