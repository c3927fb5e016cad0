//! The load-generating SSE server: `streams` streams at `/s/<i>`, each sending events `1..=until`
//! of the current [`Plan`] either as fast as the reader takes them or on a schedule spread evenly
//! over the streams, resuming after `Last-Event-ID`, with keep-alive comments when idle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::payload::write_sse_event;

/// Bytes per body frame when sending as fast as possible (about 75 events).
const FRAME_BYTES: usize = 16 * 1024;

/// What every stream sends: events up to `until`, the ones from `from` on at `rate`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// First sequence number of the current burst (the schedule counts from it).
    pub from: u64,
    /// Last sequence number to send.
    pub until: u64,
    /// Events per second over all streams together; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// When the burst started.
    pub t0: Instant,
}

struct Shared {
    streams: u32,
    keepalive: Duration,
    plan: watch::Sender<Plan>,
    open: AtomicUsize,
    requests: AtomicU64,
    keepalives: AtomicU64,
}

/// A running load source; stops when dropped.
pub struct LoadSource {
    addr: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
}

impl Drop for LoadSource {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl LoadSource {
    /// Serves `streams` streams on a free loopback port; nothing is sent until [`Self::send_until`].
    pub async fn start(streams: u32, keepalive: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (plan, _) = watch::channel(Plan {
            from: 1,
            until: 0,
            rate: None,
            t0: Instant::now(),
        });
        let shared = Arc::new(Shared {
            streams,
            keepalive,
            plan,
            open: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            keepalives: AtomicU64::new(0),
        });
        let token = CancellationToken::new();
        tokio::spawn(accept(listener, shared.clone(), token.clone()));
        Ok(Self {
            addr,
            shared,
            token,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The path of stream `i`.
    pub fn path(i: u32) -> String {
        format!("/s/{i}")
    }

    /// Streams currently being served (open responses).
    pub fn open_streams(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Stream requests served so far (reconnects included).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Keep-alive comments sent so far.
    pub fn keepalives(&self) -> u64 {
        self.shared.keepalives.load(Ordering::Relaxed)
    }

    /// Starts a burst: every stream sends its events up to `until`, at `rate` events/s over all
    /// streams, or as fast as possible.
    pub fn send_until(&self, until: u64, rate: Option<f64>) {
        let from = self.shared.plan.borrow().until + 1;
        self.shared.plan.send_replace(Plan {
            from,
            until,
            rate,
            t0: Instant::now(),
        });
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken) {
    loop {
        let sock = tokio::select! {
            _ = token.cancelled() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                // Out of file descriptors or similar: back off instead of spinning.
                Err(_) => { tokio::time::sleep(Duration::from_millis(10)).await; continue }
            },
        };
        let _ = sock.set_nodelay(true);
        let (shared, token) = (shared.clone(), token.clone());
        tokio::spawn(async move {
            let tok = token.clone();
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let resp = respond(&req, &shared, &tok);
                async move { Ok::<_, Infallible>(resp) }
            });
            tokio::select! {
                _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc) => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn respond(
    req: &Request<hyper::body::Incoming>,
    shared: &Arc<Shared>,
    token: &CancellationToken,
) -> Response<Body> {
    let stream = req
        .uri()
        .path()
        .strip_prefix("/s/")
        .and_then(|i| i.parse::<u32>().ok())
        .filter(|i| *i < shared.streams);
    let Some(stream) = stream else {
        let mut r = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from_static(
            b"no such stream\n",
        ))));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    };
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let after: u64 = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(feed(
        stream,
        after + 1,
        shared.clone(),
        tx,
        token.child_token(),
    ));
    let frames = ReceiverStream::new(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
    let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// Counts a stream as open while its feed runs.
struct Open<'a>(&'a AtomicUsize);

impl<'a> Open<'a> {
    fn new(n: &'a AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        Self(n)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Sends stream `stream` from `next` on, following the plan, until the reader goes away.
async fn feed(
    stream: u32,
    mut next: u64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Bytes>,
    token: CancellationToken,
) {
    let _open = Open::new(&shared.open);
    let mut plan_rx = shared.plan.subscribe();
    if tx
        .send(Bytes::from_static(b": sse-bench\nretry: 500\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let plan = *plan_rx.borrow_and_update();
        while next <= plan.until {
            let mut buf = Vec::with_capacity(FRAME_BYTES + 512);
            match plan.rate {
                None => {
                    while next <= plan.until && buf.len() < FRAME_BYTES {
                        write_sse_event(&mut buf, stream, next, crate::payload::now_ns());
                        next += 1;
                    }
                }
                Some(rate) => {
                    let k = next.saturating_sub(plan.from);
                    let slot = k * u64::from(shared.streams) + u64::from(stream);
                    let at = plan.t0 + Duration::from_secs_f64(slot as f64 / rate);
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = token.cancelled() => return,
                        _ = tx.closed() => return,
                    }
                    write_sse_event(&mut buf, stream, next, crate::payload::now_ns());
                    next += 1;
                }
            }
            if tx.send(Bytes::from(buf)).await.is_err() {
                return;
            }
        }
        tokio::select! {
            r = plan_rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(shared.keepalive) => {
                if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
                shared.keepalives.fetch_add(1, Ordering::Relaxed);
            }
            _ = tx.closed() => return,
            _ = token.cancelled() => return,
        }
    }
}

/// Reads every stream of `source` over raw TCP as fast as possible and counts events (blank
/// lines), to measure the source alone. Returns when `events` events arrived.
pub async fn drain_count(
    addr: &str,
    streams: u32,
    per_stream: u64,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tasks = Vec::new();
    for i in 0..streams {
        let mut sock = tokio::net::TcpStream::connect(addr).await?;
        sock.set_nodelay(true)?;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n",
            LoadSource::path(i)
        );
        sock.write_all(req.as_bytes()).await?;
        tasks.push(tokio::spawn(async move {
            let finder = memchr::memmem::Finder::new(b"\n\n");
            let mut buf = vec![0u8; 64 * 1024];
            // The greeting comment ends in a blank line too.
            let want = per_stream + 1;
            let (mut seen, mut carry) = (0u64, false);
            while seen < want {
                let n = sock.read(&mut buf).await?;
                anyhow::ensure!(n > 0, "stream {i} closed after {seen} events");
                let chunk = &buf[..n];
                if carry && chunk.first() == Some(&b'\n') {
                    seen += 1;
                }
                seen += finder.find_iter(chunk).count() as u64;
                carry = chunk.last() == Some(&b'\n');
            }
            Ok(seen - 1)
        }));
    }
    Ok(tasks)
}
