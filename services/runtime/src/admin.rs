//! The admin HTTP port (`--admin-listen`, off by default): `GET /metrics` (Prometheus text
//! format 0.0.4), `GET /healthz` (200 while the process runs) and `GET /readyz` (200 when every
//! service of the process is ready, else 503), for scrapers and for probes without gRPC.
//!
//! Bounded: HTTP/1.1 only, request heads of at most [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`]
//! headers, read within [`HEAD_TIMEOUT`]; a connection lives at most [`CONNECTION_TIMEOUT`];
//! at most [`MAX_CONNECTIONS`] at once (later ones wait in the backlog). Request bodies are never
//! read. It serves nothing secret: instrument values, and readiness.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The largest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 32;
/// How long a client may take to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one connection may stay open, whatever it does.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// The pause after a failed accept.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the admin port, exiting [`crate::EXIT_CONFIG`] naming the address when it cannot be
/// bound; prints `<service> admin listening on <addr>`.
pub async fn bind_or_exit(service: &str, addr: SocketAddr) -> TcpListener {
    match TcpListener::bind(addr).await {
        Ok(l) => {
            let at = l.local_addr().unwrap_or(addr);
            println!("{service} admin listening on {at}");
            l
        }
        Err(e) => crate::exit_config_error(
            service,
            &format!("cannot listen on {addr} (--admin-listen): {e}"),
        ),
    }
}

/// Serves the admin port on `listener` until `token` is cancelled; `/metrics` encodes
/// `registry`.
pub async fn serve(
    listener: TcpListener,
    registry: prometheus::Registry,
    token: CancellationToken,
) {
    let registry = Arc::new(registry);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p,
            () = token.cancelled() => return,
        };
        let Ok(permit) = permit else { return };
        let (stream, _) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin on the error.
                    tracing::debug!(error = %e, "admin port: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = token.cancelled() => return,
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(respond(&req, &registry)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .max_headers(MAX_HEADERS)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

/// The response to one request.
fn respond(req: &Request<Incoming>, registry: &prometheus::Registry) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /healthz or /readyz\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/metrics" => metrics(registry),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ if crate::readiness::ready() => text(StatusCode::OK, "ready\n"),
        _ => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
    }
}

fn metrics(registry: &prometheus::Registry) -> Response<Full<Bytes>> {
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut body) {
        tracing::warn!(error = %e, "admin port: cannot encode the metrics");
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        );
    }
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
