//! An SSE source over real HTTP/1.1 on loopback: serves, per request path, a stream of SSE text
//! chosen by a function of the request (so it can honour `Last-Event-ID`), and records every
//! request it received. Used by the end-to-end tests and by the local demo (`sse-demo-source`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A stream of SSE text chunks.
pub type Chunks = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// What the source saw of one request.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Request path (with query).
    pub path: String,
    /// Header name/value pairs, lowercase names.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Chooses the body for a request: `None` answers 404.
pub type Feed = Arc<dyn Fn(&SeenRequest) -> Option<Chunks> + Send + Sync>;

/// A running SSE source.
pub struct SseSource {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<SeenRequest>>>,
    token: CancellationToken,
}

impl Drop for SseSource {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl SseSource {
    /// Serves `feed` on `listener` until dropped.
    pub fn start(listener: TcpListener, feed: Feed) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (reqs, tok) = (requests.clone(), token.clone());
        tokio::spawn(async move {
            loop {
                let (sock, _) = tokio::select! {
                    _ = tok.cancelled() => return,
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                };
                let _ = sock.set_nodelay(true);
                let (feed, reqs, tok) = (feed.clone(), reqs.clone(), tok.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = SeenRequest {
                            path: req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect(),
                        };
                        let body = feed(&seen);
                        if let Ok(mut r) = reqs.lock() {
                            r.push(seen);
                        }
                        async move { Ok::<_, Infallible>(respond(body)) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = tok.cancelled() => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            token,
        })
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of the requests seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn respond(body: Option<Chunks>) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    match body {
        Some(chunks) => {
            let frames = chunks.map(|b| Ok::<_, Infallible>(Frame::data(b)));
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
        None => {
            let mut r = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from_static(b"not found\n"))));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        }
    }
}

/// The given SSE blocks, then the connection stays open with a keep-alive comment every 15 s.
pub fn blocks_then_hold(blocks: Vec<String>) -> Chunks {
    let head = futures::stream::iter(blocks.into_iter().map(Bytes::from));
    let keepalive = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some((Bytes::from_static(b": keep-alive\n\n"), ()))
    });
    Box::pin(head.chain(keepalive))
}

/// One SSE block: `id:` (when given), `event:` (when given) and `data:` lines for each data line.
pub fn block(id: Option<&str>, event: Option<&str>, data: &str) -> String {
    let mut s = String::new();
    if let Some(id) = id {
        s.push_str(&format!("id: {id}\n"));
    }
    if let Some(e) = event {
        s.push_str(&format!("event: {e}\n"));
    }
    for line in data.split('\n') {
        s.push_str(&format!("data: {line}\n"));
    }
    s.push('\n');
    s
}

/// The demo weather station: `/readings` emits a JSON reading every `interval` (`event: reading`)
/// and `/alerts` emits `temperature-threshold` alerts and `heartbeat`s. Ids are sequence numbers
/// and a `Last-Event-ID` resumes after it.
pub fn demo_feed(interval: Duration) -> Feed {
    Arc::new(move |req: &SeenRequest| {
        let after: u64 = req
            .header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let path = req.path.split('?').next().unwrap_or("").trim_end_matches('/').to_string();
        let kind = match path.rsplit('/').next() {
            Some("readings") => 0,
            Some("alerts") => 1,
            _ => return None,
        };
        let start = after + 1;
        let ticks = futures::stream::unfold(start, move |n| async move {
            tokio::time::sleep(interval).await;
            Some((n, n + 1))
        });
        let s = ticks.map(move |n| Bytes::from(demo_event(kind, n)));
        let hello = futures::stream::once(async { Bytes::from_static(b": demo weather station\nretry: 2000\n\n") });
        Some(Box::pin(hello.chain(s)) as Chunks)
    })
}

fn demo_event(kind: u8, n: u64) -> String {
    // A deterministic wobble, so readings look alive without a random source.
    let phase = (n % 60) as f64 / 60.0 * std::f64::consts::TAU;
    let temperature = 21.5 + 4.0 * phase.sin();
    let humidity = 48.0 + 6.0 * phase.cos();
    let now = humantime_now();
    if kind == 0 {
        let data = format!(
            r#"{{"station":"ws-01","seq":{n},"temperature":{temperature:.2},"humidity":{humidity:.1},"pressure":1013.2,"unit":"C","time":"{now}"}}"#
        );
        block(Some(&n.to_string()), Some("reading"), &data)
    } else if n % 4 == 0 {
        let data = format!(
            r#"{{"station":"ws-01","seq":{n},"threshold":24.0,"temperature":{:.2},"severity":"warning","time":"{now}"}}"#,
            temperature.max(24.1)
        );
        block(Some(&n.to_string()), Some("temperature-threshold"), &data)
    } else {
        let data = format!(r#"{{"station":"ws-01","seq":{n},"status":"ok"}}"#);
        block(Some(&n.to_string()), Some("heartbeat"), &data)
    }
}

fn humantime_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
