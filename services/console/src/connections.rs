//! The console's HTTP/1.1 connections, bounded: at most [`CONNECTIONS_MAX`] at once (more are
//! closed as they arrive), and a client has [`HEADER_READ_TIMEOUT`] to send a request's headers,
//! also while its connection idles between requests. Before, `axum::serve` set neither, so
//! anyone who could reach the port held a descriptor per half-sent request for as long as they
//! liked, until the process (the whole `sse-connector`) had none left.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use crate::auth::attempts::ClientAddr;

/// Most connections served at once: a browser holds six per tab and live view, so this is
/// dozens of people, and far below a process's descriptors.
pub const CONNECTIONS_MAX: usize = 256;
/// How long a client may take to send a request's headers, or to start its next request on an
/// idle keep-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one warning about refused connections this often (a flood must not flood the log).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Serves `router` on every connection `listener` accepts until `stop`, then lets the open ones
/// finish their current request and waits for them.
pub async fn serve<L>(mut listener: L, router: Router, stop: CancellationToken)
where
    L: Listener<Addr = std::net::SocketAddr>,
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
        tracker.spawn(async move {
            let _slot = slot;
            connection(io, remote, router, stop).await;
        });
    }
    tracker.close();
    tracker.wait().await;
}

/// Serves one connection until it ends or `stop` asks it to end after its current request.
async fn connection<Io>(
    io: Io,
    remote: std::net::SocketAddr,
    router: Router,
    stop: CancellationToken,
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // The login limit is per client.
        req.extensions_mut().insert(ConnectInfo(ClientAddr(remote)));
        let mut router = router.clone();
        async move { router.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%remote, error = %e, "console: connection ended");
    }
}
