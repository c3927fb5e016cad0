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
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// A stream of SSE text chunks.
pub type Chunks = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// What the source saw of one request.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// Request method (`GET`, `POST`).
    pub method: String,
    /// Request path (with query).
    pub path: String,
    /// Header name/value pairs, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The client certificate presented on the TLS connection (DER), if any.
    pub client_cert: Option<Vec<u8>>,
    /// The request body (up to [`MAX_SEEN_BODY`] bytes).
    pub body: Vec<u8>,
}

/// Longest request body the source keeps.
pub const MAX_SEEN_BODY: usize = 64 * 1024;

impl SeenRequest {
    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the source answers to one request.
pub enum Reply {
    /// 200 with `text/event-stream` and this body.
    Sse(Chunks),
    /// Another response: status, extra headers, and a short body.
    Status(u16, Vec<(String, String)>, String),
    /// 200 with `text/event-stream`, these extra headers (e.g. `content-encoding`) and body.
    SseWith(Vec<(String, String)>, Chunks),
}

impl Reply {
    /// 404 Not Found.
    pub fn not_found() -> Self {
        Reply::Status(404, vec![], "not found\n".into())
    }
}

/// Chooses the reply for a request.
pub type Feed = Arc<dyn Fn(&SeenRequest) -> Reply + Send + Sync>;

/// A running SSE source.
pub struct SseSource {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<SeenRequest>>>,
    tls_errors: Arc<Mutex<Vec<String>>>,
    token: CancellationToken,
}

impl Drop for SseSource {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl SseSource {
    /// Serves `feed` over plain HTTP on `listener` until dropped.
    pub fn start(listener: TcpListener, feed: Feed) -> std::io::Result<Self> {
        Self::start_with(listener, feed, None)
    }

    /// Serves `feed` over HTTPS with `tls` (which may require client certificates).
    pub fn start_tls(
        listener: TcpListener,
        feed: Feed,
        tls: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        Self::start_with(listener, feed, Some(tokio_rustls::TlsAcceptor::from(tls)))
    }

    /// Every TLS handshake failure seen by the server, e.g. a rejected client certificate.
    pub fn tls_errors(&self) -> Vec<String> {
        self.tls_errors
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    fn start_with(
        listener: TcpListener,
        feed: Feed,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let tls_errors = Arc::new(Mutex::new(Vec::new()));
        let token = CancellationToken::new();
        let (reqs, tok, tls_errs) = (requests.clone(), token.clone(), tls_errors.clone());
        tokio::spawn(async move {
            loop {
                let (sock, _) = tokio::select! {
                    _ = tok.cancelled() => return,
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                };
                let _ = sock.set_nodelay(true);
                let (feed, reqs, tok) = (feed.clone(), reqs.clone(), tok.clone());
                let (tls, tls_errs) = (tls.clone(), tls_errs.clone());
                tokio::spawn(async move {
                    let http = hyper::server::conn::http1::Builder::new();
                    let Some(acceptor) = tls else {
                        let svc = service_fn(move |req| {
                            let (feed, reqs) = (feed.clone(), reqs.clone());
                            async move { Ok::<_, Infallible>(handle(&feed, &reqs, None, req).await) }
                        });
                        tokio::select! {
                            _ = http.serve_connection(TokioIo::new(sock), svc) => {}
                            _ = tok.cancelled() => {}
                        }
                        return;
                    };
                    match acceptor.accept(sock).into_fallible().await {
                        Ok(stream) => {
                            let client_cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| c.to_vec());
                            let svc = service_fn(move |req| {
                                let (feed, reqs) = (feed.clone(), reqs.clone());
                                let cert = client_cert.clone();
                                async move {
                                    Ok::<_, Infallible>(
                                        handle(&feed, &reqs, cert.as_deref(), req).await,
                                    )
                                }
                            });
                            tokio::select! {
                                _ = http.serve_connection(TokioIo::new(stream), svc) => {}
                                _ = tok.cancelled() => {}
                            }
                        }
                        Err((e, mut sock)) => {
                            if let Ok(mut v) = tls_errs.lock() {
                                v.push(e.to_string());
                            }
                            // The alert is sent; read what the client already sent until it
                            // closes, so closing does not reset the connection and lose the
                            // alert before the client reads it.
                            let mut sink = [0u8; 4096];
                            let drain = async {
                                while let Ok(n) = sock.read(&mut sink).await {
                                    if n == 0 {
                                        break;
                                    }
                                }
                            };
                            tokio::select! {
                                _ = drain => {}
                                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                                _ = tok.cancelled() => {}
                            }
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            tls_errors,
            token,
        })
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://<addr>`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops serving, as a device that went away: open connections close and the port is
    /// released (a new source may bind it).
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// A copy of the requests seen so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Records one request (with the connection's client certificate and its body) and answers it
/// with `feed`.
async fn handle(
    feed: &Feed,
    reqs: &Mutex<Vec<SeenRequest>>,
    client_cert: Option<&[u8]>,
    req: Request<hyper::body::Incoming>,
) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_SEEN_BODY);
    let body = match limited.collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let req = Request::from_parts(parts, ());
    let seen = SeenRequest {
        method: req.method().as_str().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        client_cert: client_cert.map(<[u8]>::to_vec),
        body,
    };
    let body = feed(&seen);
    if let Ok(mut r) = reqs.lock() {
        r.push(seen);
    }
    respond(body)
}

fn respond(reply: Reply) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    match reply {
        Reply::SseWith(headers, chunks) => {
            let mut r = respond(Reply::Sse(chunks));
            add_headers(&mut r, headers);
            r
        }
        Reply::Sse(chunks) => {
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
        Reply::Status(code, headers, body) => {
            let mut r = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from(body))));
            *r.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            add_headers(&mut r, headers);
            r
        }
    }
}

fn add_headers<B>(r: &mut Response<B>, headers: Vec<(String, String)>) {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(k.as_bytes()),
            hyper::header::HeaderValue::from_str(&v),
        ) {
            r.headers_mut().append(k, v);
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

/// Serves, for each request path in `streams`, its SSE blocks then holds the connection open
/// ([`blocks_then_hold`]); other paths get 404. Blocks are made by `streams` on each request, so
/// a reconnect gets them again.
pub fn by_path(streams: impl Fn(&str) -> Option<Vec<String>> + Send + Sync + 'static) -> Feed {
    Arc::new(move |req: &SeenRequest| {
        let path = req.path.split('?').next().unwrap_or_default();
        match streams(path) {
            Some(blocks) => Reply::Sse(blocks_then_hold(blocks)),
            None => Reply::not_found(),
        }
    })
}

/// A source whose `/` sends a numbered event (`{"n":<n>}`, id `<n>`) every 50 ms, for as long
/// as it is read: a stream that is always live, for the tests of what reads it.
pub fn ticking_root() -> Feed {
    Arc::new(|req: &SeenRequest| {
        if req.path.split('?').next() != Some("/") {
            return Reply::not_found();
        }
        let ticks = futures::stream::unfold(1u64, |n| async move {
            // the source's pace, not a synchronisation
            tokio::time::sleep(Duration::from_millis(50)).await;
            let b = block(Some(&n.to_string()), None, &format!(r#"{{"n":{n}}}"#));
            Some((Bytes::from(b), n + 1))
        });
        Reply::Sse(Box::pin(ticks))
    })
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
/// and `/alerts` emits `temperature-threshold` alerts, `heartbeat`s and `wind-gust`s (a type the
/// demo resources do not route: ingest lists it as discovered). Ids are sequence numbers and a
/// `Last-Event-ID` resumes after it.
pub fn demo_feed(interval: Duration) -> Feed {
    Arc::new(move |req: &SeenRequest| {
        let after: u64 = req
            .header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let path = req
            .path
            .split('?')
            .next()
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        let kind = match path.rsplit('/').next() {
            Some("readings") => 0,
            Some("alerts") => 1,
            _ => return Reply::not_found(),
        };
        let start = after + 1;
        let ticks = futures::stream::unfold(start, move |n| async move {
            tokio::time::sleep(interval).await;
            Some((n, n + 1))
        });
        let s = ticks.map(move |n| Bytes::from(demo_event(kind, n)));
        let hello = futures::stream::once(async {
            Bytes::from_static(b": demo weather station\nretry: 2000\n\n")
        });
        Reply::Sse(Box::pin(hello.chain(s)))
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
    } else if n.is_multiple_of(4) {
        let data = format!(
            r#"{{"station":"ws-01","seq":{n},"threshold":24.0,"temperature":{:.2},"severity":"warning","time":"{now}"}}"#,
            temperature.max(24.1)
        );
        block(Some(&n.to_string()), Some("temperature-threshold"), &data)
    } else if n % 5 == 2 {
        // No asset routes it: the discovery demo (`ListDiscovered`).
        let gust = 9.0 + 3.0 * phase.cos();
        let data = format!(
            r#"{{"station":"ws-01","seq":{n},"gust":{gust:.1},"unit":"m/s","time":"{now}"}}"#
        );
        block(Some(&n.to_string()), Some("wind-gust"), &data)
    } else {
        let data = format!(r#"{{"station":"ws-01","seq":{n},"status":"ok"}}"#);
        block(Some(&n.to_string()), Some("heartbeat"), &data)
    }
}

fn humantime_now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// `inner`, behind HTTP Basic: a request without `Authorization: Basic base64(user:password)`
/// gets 401 with a `WWW-Authenticate` challenge.
pub fn basic_auth(user: &str, password: &str, inner: Feed) -> Feed {
    let expected = format!("Basic {}", b64(format!("{user}:{password}").as_bytes()));
    Arc::new(move |req: &SeenRequest| {
        if req.header("authorization") == Some(expected.as_str()) {
            inner(req)
        } else {
            Reply::Status(
                401,
                vec![("www-authenticate".into(), "Basic realm=\"sse\"".into())],
                "unauthorized\n".into(),
            )
        }
    })
}

/// Standard base64 (RFC 4648, padded), as HTTP Basic uses it.
fn b64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// A weather station whose readings gain a field on demand: every path streams a reading every
/// [`GROWING_EVERY`] (`{"seq":n,"temperature":..}`); once `grown` is set, each reading also
/// carries `"humidity"`, so the schema service registers a second version.
pub fn growing_feed(grown: Arc<std::sync::atomic::AtomicBool>) -> Feed {
    Arc::new(move |_req: &SeenRequest| {
        let grown = grown.clone();
        let ticks = futures::stream::unfold(1u64, move |n| {
            let grown = grown.clone();
            async move {
                tokio::time::sleep(GROWING_EVERY).await;
                let temperature = 20.0 + (n % 10) as f64 / 2.0;
                let data = if grown.load(std::sync::atomic::Ordering::Relaxed) {
                    format!(
                        r#"{{"seq":{n},"temperature":{temperature:.1},"humidity":{}}}"#,
                        40 + n % 20
                    )
                } else {
                    format!(r#"{{"seq":{n},"temperature":{temperature:.1}}}"#)
                };
                Some((Bytes::from(block(Some(&n.to_string()), None, &data)), n + 1))
            }
        });
        Reply::Sse(Box::pin(ticks))
    })
}

/// How often [`growing_feed`] sends a reading.
pub const GROWING_EVERY: Duration = Duration::from_millis(200);
