//! The console's connections, bounded: at most [`CONNECTIONS_MAX`] at once (more are closed as
//! they arrive). HTTP/1.1 gives a client [`HEADER_READ_TIMEOUT`] to send a request's headers,
//! also while its connection idles between requests. Before, `axum::serve` set neither, so
//! anyone who could reach the port held a descriptor per half-sent request for as long as they
//! liked, until the process (the whole `sse-connector`) had none left.
//!
//! HTTP/2 is served when a client asks for `h2` by ALPN in the TLS handshake (never on plain
//! HTTP: no h2c, no prior knowledge). A browser opens at most six HTTP/1.1 connections per host
//! and every live page holds one, so a seventh live tab waited forever; over HTTP/2 they share
//! one connection. One connection then carries many requests, so it is bounded in its own
//! right: [`H2_STREAMS_MAX`] requests at once, headers of at most [`H2_HEADER_LIST_BYTES_MAX`],
//! closed after [`H2_IDLE_TIMEOUT`] without a request or when its pings go unanswered, and
//! hyper's reset-flood limits pinned on. The body caps and read timeout of the guard
//! (`auth::guard`) apply per request, whatever the protocol.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::connect_info::ConnectInfo;
use axum::serve::Listener;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::auth::attempts::ClientAddr;

/// Most connections served at once: a browser holds six per tab and live view, so this is
/// dozens of people, and far below a process's descriptors.
pub const CONNECTIONS_MAX: usize = 256;
/// How long a client may take to send a request's headers, or to start its next request on an
/// idle keep-alive HTTP/1.1 connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2: requests open at once on one connection (`SETTINGS_MAX_CONCURRENT_STREAMS`; a
/// browser queues the next), with the default live view caps. Above every live view one browser
/// can hold then (16 pages following the streams table and 4 live event views) plus a page's
/// loads, and well below hyper's 200, so 256 connections cannot become 50,000 requests.
pub const H2_STREAMS_MAX: u32 = 32;
/// HTTP/2: requests on one connection besides its live views (a page's loads, a form).
pub const H2_PAGE_LOADS: u32 = 12;

/// The HTTP/2 stream limit for `live_views` live pages at once (both caps together): every one
/// of them fits on one browser's connection with room for page loads, never less than
/// [`H2_STREAMS_MAX`]. With raised caps a fixed 32 queued the 33rd live tab until another
/// closed; live views beyond the caps are refused at once, so they hold no stream for long.
pub fn h2_streams_max(live_views: usize) -> u32 {
    let views = u32::try_from(live_views).unwrap_or(u32::MAX);
    views.saturating_add(H2_PAGE_LOADS).max(H2_STREAMS_MAX)
}
/// HTTP/2: largest header list of a request (decoded, as HTTP/2 counts it); a larger one gets
/// 431. Far above a browser's headers with the console's two cookies.
pub const H2_HEADER_LIST_BYTES_MAX: u32 = 16 * 1024;
/// HTTP/2: a connection without any request open for this long is closed, the counterpart of
/// [`HEADER_READ_TIMEOUT`] (which hyper applies to HTTP/1.1 only). A live page keeps a request
/// open, so only a silent connection is closed.
pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2: how often a ping checks that the peer is still there, so a connection whose client
/// vanished (a laptop closed on a live page) does not hold its slot until TCP gives up.
pub const H2_PING_EVERY: Duration = Duration::from_secs(20);
/// HTTP/2: how long the answer to a ping may take before the connection is closed.
pub const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2: streams the client may reset before the server accepted them, then GOAWAY (hyper's
/// default, pinned: the "rapid reset" flood).
pub const H2_PENDING_RESETS_MAX: usize = 20;
/// HTTP/2: streams the server may reset for the client's protocol errors, then GOAWAY (hyper's
/// default, pinned: RUSTSEC-2024-0003).
pub const H2_LOCAL_RESETS_MAX: usize = 1024;
/// How long a connection asked to close (at shutdown, or an idle HTTP/2 one) may take to finish
/// its open requests before it is dropped. Live views end at shutdown on their own.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// At most one warning about refused connections this often (a flood must not flood the log).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// What a connection speaks, as its TLS handshake settled it.
pub trait Negotiated {
    /// Whether the client and the console agreed on HTTP/2 (`h2` by ALPN); else HTTP/1.1.
    fn is_h2(&self) -> bool;
}

impl Negotiated for tokio::net::TcpStream {
    /// Plain HTTP is HTTP/1.1 only: h2c was removed on purpose.
    fn is_h2(&self) -> bool {
        false
    }
}

/// Serves `router` on every connection `listener` accepts until `stop`, then lets the open ones
/// finish their current requests (at most [`CLOSE_GRACE`]) and waits for them.
pub async fn serve<L>(mut listener: L, router: Router, h2_streams: u32, stop: CancellationToken)
where
    L: Listener<Addr = std::net::SocketAddr>,
    L::Io: Negotiated,
{
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let tracker = TaskTracker::new();
    let mut warned: Option<Instant> = None;
    loop {
        let (io, remote) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                tracing::warn!(%remote, max = CONNECTIONS_MAX, "console: too many connections; closing new ones (logged at most every 10 s)");
                warned = Some(Instant::now());
            }
            continue;
        };
        let (router, stop) = (router.clone(), stop.clone());
        let h2 = io.is_h2();
        tracker.spawn(async move {
            let _slot = slot;
            connection(io, h2.then_some(h2_streams), remote, router, stop).await;
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Serves one connection, HTTP/2 with at most `h2_streams` requests at once when given, else
/// HTTP/1.1, until it ends, or until `stop` or (for HTTP/2) [`H2_IDLE_TIMEOUT`] without a
/// request ask it to end after its open requests.
pub(crate) async fn connection<Io>(
    io: Io,
    h2_streams: Option<u32>,
    remote: std::net::SocketAddr,
    router: Router,
    stop: CancellationToken,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let requests = Requests::default();
    let open = requests.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // The login limit is per client.
        req.extensions_mut().insert(ConnectInfo(ClientAddr(remote)));
        let mut router = router.clone();
        let counted = open.open();
        async move {
            let resp = router.call(req).await?;
            Ok::<_, Infallible>(resp.map(|body| Counted {
                body,
                _open: counted,
            }))
        }
    });
    let builder = builder(h2_streams);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = async {
        if h2_streams.is_some() {
            requests.idle_for(H2_IDLE_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let why = tokio::select! {
        ended = conn.as_mut() => {
            if let Err(e) = ended {
                tracing::debug!(%remote, error = %e, "console: connection ended");
            }
            return;
        }
        () = stop.cancelled() => "shutdown",
        () = idle => "idle",
    };
    conn.as_mut().graceful_shutdown();
    match tokio::time::timeout(CLOSE_GRACE, conn).await {
        Ok(Err(e)) => tracing::debug!(%remote, why, error = %e, "console: connection ended"),
        Ok(Ok(())) => tracing::debug!(%remote, why, "console: connection closed"),
        Err(_) => tracing::debug!(%remote, why, "console: requests still open; connection dropped"),
    }
}

/// The protocol's builder with the console's bounds: the other protocol is never tried, so a
/// plain connection cannot start HTTP/2 by sending its preface.
fn builder(h2_streams: Option<u32>) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    let Some(streams) = h2_streams else {
        b.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        return b.http1_only();
    };
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(streams)
        .max_header_list_size(H2_HEADER_LIST_BYTES_MAX)
        .keep_alive_interval(H2_PING_EVERY)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_pending_accept_reset_streams(H2_PENDING_RESETS_MAX)
        .max_local_error_reset_streams(H2_LOCAL_RESETS_MAX);
    b.http2_only()
}

/// The requests open on one connection: each holds an [`Open`] from its arrival until its
/// response has been sent (or dropped), so an HTTP/2 connection knows when it is idle.
#[derive(Clone)]
struct Requests(Arc<watch::Sender<usize>>);

impl Default for Requests {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }
}

impl Requests {
    /// Counts one more request open until the returned guard is dropped.
    fn open(&self) -> Open {
        self.0.send_modify(|n| *n += 1);
        Open(self.0.clone())
    }

    /// Resolves once no request has been open for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let mut open = self.0.subscribe();
        loop {
            if open.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            if tokio::time::timeout(idle, open.wait_for(|n| *n > 0))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// One open request (see [`Requests`]).
struct Open(Arc<watch::Sender<usize>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A response body that counts as an open request until hyper drops it (sent, or the stream
/// reset by the client).
struct Counted {
    body: Body,
    _open: Open,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
#[path = "connections_tests.rs"]
mod tests;
