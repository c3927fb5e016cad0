//! The SSE client against a real HTTP server on 127.0.0.1:0, scripted per request by the test.
#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sse_ingest::sse::{
    ClientConfig, ClientEvent, HeaderSource, ParserNotice, ProxyConfig, SseEvent,
};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(5);

type Body = BoxBody<Bytes, Infallible>;
type BodyTx = mpsc::Sender<Result<Frame<Bytes>, Infallible>>;

/// One request the server received; the test answers it through `reply`.
struct Incoming_ {
    head: http::request::Parts,
    reply: oneshot::Sender<Response<Body>>,
}

/// A server that hands every request to the test.
struct Server {
    url: url::Url,
    requests: mpsc::Receiver<Incoming_>,
    token: CancellationToken,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, requests) = mpsc::channel(16);
        let token = CancellationToken::new();
        let stop = token.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted.unwrap(),
                };
                let tx = tx.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (reply, answer) = oneshot::channel();
                            let (head, _) = req.into_parts();
                            let _ = tx.send(Incoming_ { head, reply }).await;
                            Ok::<_, Infallible>(answer.await.unwrap_or_else(|_| status(500)))
                        }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        () = stop.cancelled() => {}
                        _ = conn => {}
                    }
                });
            }
        });
        Server {
            url: format!("http://{addr}/events").parse().unwrap(),
            requests,
            token,
        }
    }

    async fn next(&mut self) -> Incoming_ {
        tokio::time::timeout(DEADLINE, self.requests.recv())
            .await
            .expect("no request before the deadline")
            .expect("server gone")
    }

    /// Fails if a request arrives within `within`.
    async fn assert_no_request(&mut self, within: Duration) {
        if let Ok(Some(req)) = tokio::time::timeout(within, self.requests.recv()).await {
            panic!("unexpected request {}", req.head.uri);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn status(code: u16) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    r
}

fn with_header(mut r: Response<Body>, name: &'static str, value: &str) -> Response<Body> {
    r.headers_mut()
        .insert(name, HeaderValue::from_str(value).unwrap());
    r
}

/// A 200 event stream whose body the test writes to, and ends by dropping the sender.
fn stream() -> (Response<Body>, BodyTx) {
    let (tx, rx) = mpsc::channel(16);
    let body = StreamBody::new(ReceiverStream::new(rx)).boxed();
    let r = with_header(
        Response::new(body),
        "content-type",
        "text/event-stream; charset=utf-8",
    );
    (r, tx)
}

/// A 200 event stream with a fixed body that ends after it.
fn fixed_stream(text: &str) -> Response<Body> {
    let r = Response::new(Full::new(Bytes::from(text.to_owned())).boxed());
    with_header(r, "content-type", "text/event-stream")
}

async fn write(body: &BodyTx, text: &str) {
    body.send(Ok(Frame::data(Bytes::from(text.to_owned()))))
        .await
        .unwrap();
}

struct Reader {
    events: mpsc::Receiver<ClientEvent>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    fn start(cfg: ClientConfig, last_event_id: &str) -> Reader {
        let (tx, events) = mpsc::channel(16);
        let token = CancellationToken::new();
        let task = tokio::spawn(sse_ingest::sse::run(
            cfg,
            last_event_id.to_owned(),
            tx,
            token.clone(),
        ));
        Reader {
            events,
            token,
            task,
        }
    }

    async fn next(&mut self) -> ClientEvent {
        tokio::time::timeout(DEADLINE, self.events.recv())
            .await
            .expect("no client event before the deadline")
            .expect("reader ended")
    }

    async fn expect_connecting(&mut self) {
        match self.next().await {
            ClientEvent::Connecting { .. } => {}
            other => panic!("expected Connecting, got {other:?}"),
        }
    }

    async fn expect_connected(&mut self) {
        match self.next().await {
            ClientEvent::Connected => {}
            other => panic!("expected Connected, got {other:?}"),
        }
    }

    async fn expect_event(&mut self) -> SseEvent {
        match self.next().await {
            ClientEvent::Event(e) => e,
            other => panic!("expected Event, got {other:?}"),
        }
    }

    async fn expect_disconnected(&mut self) -> (String, Option<Duration>) {
        match self.next().await {
            ClientEvent::Disconnected {
                error, retry_in, ..
            } => (error, retry_in),
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    async fn expect_stopped(&mut self) -> String {
        let reason = match self.next().await {
            ClientEvent::Stopped { reason } => reason,
            other => panic!("expected Stopped, got {other:?}"),
        };
        // A stopped reader ends by itself.
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .unwrap()
            .unwrap();
        reason
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn tls() -> Arc<rustls::ClientConfig> {
    Arc::new(sse_runtime::tls::client_config(Vec::new()).unwrap())
}

fn config(url: &url::Url, headers: HeaderSource) -> ClientConfig {
    let mut cfg = ClientConfig::new(url.clone(), headers, tls());
    cfg.backoff = sse_runtime::Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
    cfg.read_timeout = Duration::from_secs(5);
    cfg.min_reconnect_delay = Duration::from_millis(10);
    cfg
}

fn no_headers() -> HeaderSource {
    Arc::new(|| Ok(HeaderMap::new()))
}

fn auth_headers() -> HeaderSource {
    Arc::new(|| {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        Ok(h)
    })
}

fn header<'a>(req: &'a Incoming_, name: &str) -> Option<&'a str> {
    req.head.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn sends_sse_headers_and_delivers_events() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, auth_headers()), "");
    reader.expect_connecting().await;
    let req = server.next().await;
    assert_eq!(req.head.method, http::Method::GET);
    assert_eq!(req.head.uri.path(), "/events");
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));
    assert_eq!(header(&req, "cache-control"), Some("no-cache"));
    assert_eq!(header(&req, "authorization"), Some("Bearer s3cret"));
    assert_eq!(header(&req, "last-event-id"), None);
    let (response, body) = stream();
    req.reply.send(response).unwrap();
    reader.expect_connected().await;

    write(
        &body,
        "\u{feff}: hello\n\nevent: temp\ndata: {\"t\":21}\nid: 1\n\n",
    )
    .await;
    let e = reader.expect_event().await;
    assert_eq!(
        (
            e.event_type.as_str(),
            e.data.as_str(),
            e.last_event_id.as_str()
        ),
        ("temp", "{\"t\":21}", "1")
    );
    // An event split over writes.
    write(&body, "data: a").await;
    write(&body, "b\r").await;
    write(&body, "\n\r\n").await;
    let e = reader.expect_event().await;
    assert_eq!(
        (
            e.event_type.as_str(),
            e.data.as_str(),
            e.last_event_id.as_str()
        ),
        ("message", "ab", "1")
    );
    reader.stop().await;
}

#[tokio::test]
async fn reconnects_with_last_event_id_and_drops_partial_block() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, no_headers()), "7");
    reader.expect_connecting().await;
    let req = server.next().await;
    assert_eq!(header(&req, "last-event-id"), Some("7"));
    req.reply
        .send(fixed_stream("id: 8\ndata: one\n\nid: 9\ndata: partial\n"))
        .unwrap();
    reader.expect_connected().await;
    let e = reader.expect_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("one", "8"));
    let (error, retry_in) = reader.expect_disconnected().await;
    assert_eq!(error, "server closed the stream");
    assert!(retry_in.unwrap() <= Duration::from_millis(40));
    reader.expect_connecting().await;

    // The reconnect goes to the same URL with the last committed id (not the partial block's 9).
    let req = server.next().await;
    assert_eq!(req.head.uri.path(), "/events");
    assert_eq!(header(&req, "last-event-id"), Some("8"));
    // The partial block's data must not leak into the next connection's first event.
    req.reply
        .send(fixed_stream("\n\ndata: two\n\nid\n\n"))
        .unwrap();
    reader.expect_connected().await;
    let e = reader.expect_event().await;
    assert_eq!((e.data.as_str(), e.last_event_id.as_str()), ("two", "8"));
    reader.expect_disconnected().await;
    reader.expect_connecting().await;

    // `id` reset the last event ID: no header now.
    let req = server.next().await;
    assert_eq!(header(&req, "last-event-id"), None);
    reader.stop().await;
}

/// A retried disconnect waiting the long backoff (60 s doubling to 5 min: the first wait is
/// 30 to 60 s with jitter), with its error.
async fn expect_long_wait(reader: &mut Reader) -> String {
    let (error, retry_in) = reader.expect_disconnected().await;
    let retry_in = retry_in.unwrap();
    assert!(
        retry_in >= Duration::from_secs(30) && retry_in <= Duration::from_secs(60),
        "{error}: {retry_in:?}"
    );
    assert!(error.contains("retried with the long backoff"), "{error}");
    error
}

/// 204 would stop a browser's EventSource for good; an unattended connector retries it with
/// the long backoff, and the error says why.
#[tokio::test]
async fn status_204_is_retried_with_the_long_backoff() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, no_headers()), "");
    reader.expect_connecting().await;
    server.next().await.reply.send(status(204)).unwrap();
    let error = expect_long_wait(&mut reader).await;
    assert!(error.contains("204"), "{error}");
    reader.stop().await;
}

#[tokio::test]
async fn wrong_content_type_and_other_2xx_are_retried_with_the_long_backoff() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, no_headers()), "");
    reader.expect_connecting().await;
    let r = with_header(status(200), "content-type", "text/html");
    server.next().await.reply.send(r).unwrap();
    let error = expect_long_wait(&mut reader).await;
    assert!(error.contains("text/html"), "{error}");
    reader.stop().await;

    let mut reader = Reader::start(config(&server.url, no_headers()), "");
    reader.expect_connecting().await;
    server.next().await.reply.send(status(205)).unwrap();
    let error = expect_long_wait(&mut reader).await;
    assert!(error.contains("205"), "{error}");
    reader.stop().await;
}

/// What remains permanent, a configuration that cannot work until it is changed, still stops
/// the reader without a request.
#[tokio::test]
async fn an_unusable_proxy_still_stops_for_good() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url, no_headers());
    cfg.proxy = ProxyConfig::Unusable("HTTPS_PROXY: unsupported proxy scheme".to_owned());
    let mut reader = Reader::start(cfg, "");
    reader.expect_connecting().await;
    let reason = reader.expect_stopped().await;
    assert!(reason.contains("HTTPS_PROXY"), "{reason}");
    server.assert_no_request(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn service_unavailable_then_recovers() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, no_headers()), "");
    reader.expect_connecting().await;
    server.next().await.reply.send(status(503)).unwrap();
    let (error, retry_in) = reader.expect_disconnected().await;
    assert_eq!(error, "HTTP 503 Service Unavailable");
    assert!(retry_in.unwrap() <= Duration::from_millis(40));
    reader.expect_connecting().await;
    let r = with_header(status(429), "retry-after", "0");
    server.next().await.reply.send(r).unwrap();
    let (error, retry_in) = reader.expect_disconnected().await;
    assert_eq!(error, "HTTP 429 Too Many Requests");
    // `Retry-After: 0` waits the backoff (here its second step, 10 to 20 ms), never zero.
    let retry_in = retry_in.unwrap();
    assert!(
        retry_in >= Duration::from_millis(10) && retry_in <= Duration::from_millis(20),
        "{retry_in:?}"
    );
    reader.expect_connecting().await;
    let (response, body) = stream();
    server.next().await.reply.send(response).unwrap();
    reader.expect_connected().await;
    write(&body, "data: ok\n\n").await;
    assert_eq!(reader.expect_event().await.data, "ok");
    reader.stop().await;
}

/// An overloaded device answering `503` with `Retry-After: 0` every time is not asked again at
/// every reconnect floor: the wait is the larger of its word and the backoff, which grows.
#[tokio::test]
async fn retry_after_zero_waits_the_growing_backoff() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url, no_headers());
    cfg.backoff = sse_runtime::Backoff::new(Duration::from_millis(40), Duration::from_secs(10));
    let mut reader = Reader::start(cfg, "");
    let mut waits = Vec::new();
    for _ in 0..4 {
        reader.expect_connecting().await;
        let r = with_header(status(503), "retry-after", "0");
        server.next().await.reply.send(r).unwrap();
        waits.push(reader.expect_disconnected().await.1.unwrap());
    }
    // The backoff's steps are 40, 80, 160 and 320 ms, each at least half of that with jitter.
    for (wait, step) in waits.iter().zip([40u64, 80, 160, 320]) {
        assert!(
            *wait >= Duration::from_millis(step / 2) && *wait <= Duration::from_millis(step),
            "{waits:?}"
        );
    }
    reader.stop().await;
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, no_headers()), "");
    reader.expect_connecting().await;
    let r = with_header(status(502), "retry-after", "120");
    server.next().await.reply.send(r).unwrap();
    let (error, retry_in) = reader.expect_disconnected().await;
    assert_eq!(error, "HTTP 502 Bad Gateway");
    assert_eq!(retry_in, Some(Duration::from_secs(120)));
    server.assert_no_request(Duration::from_millis(200)).await;
    reader.stop().await;
}

#[tokio::test]
async fn unauthorized_waits_long() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, auth_headers()), "");
    reader.expect_connecting().await;
    server.next().await.reply.send(status(401)).unwrap();
    let (error, retry_in) = reader.expect_disconnected().await;
    assert_eq!(error, "unauthorized (HTTP 401)");
    let retry_in = retry_in.unwrap();
    assert!(
        retry_in >= Duration::from_secs(30) && retry_in <= Duration::from_secs(300),
        "{retry_in:?}"
    );
    reader.stop().await;
}

#[tokio::test]
async fn header_source_error_waits_long_and_names_the_problem() {
    let server = Server::start().await;
    let headers: HeaderSource =
        Arc::new(|| Err("secret weather-creds/password not found".to_owned()));
    let mut reader = Reader::start(config(&server.url, headers), "");
    reader.expect_connecting().await;
    let (error, retry_in) = reader.expect_disconnected().await;
    assert!(
        error.contains("weather-creds/password not found"),
        "{error}"
    );
    assert!(retry_in.unwrap() >= Duration::from_secs(30));
    reader.stop().await;
}

#[tokio::test]
async fn server_retry_time_is_honoured() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, no_headers()), "");
    reader.expect_connecting().await;
    server
        .next()
        .await
        .reply
        .send(fixed_stream("retry: 150\ndata: x\n\n"))
        .unwrap();
    reader.expect_connected().await;
    let mut got_notice = false;
    let retry_in = loop {
        match reader.next().await {
            ClientEvent::Notice(ParserNotice::Retry(150)) => got_notice = true,
            ClientEvent::Event(_) => {}
            ClientEvent::Disconnected { retry_in, .. } => break retry_in,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(got_notice);
    assert_eq!(retry_in, Some(Duration::from_millis(150)));
    let disconnected = Instant::now();
    reader.expect_connecting().await;
    server.next().await;
    assert!(disconnected.elapsed() >= Duration::from_millis(140));
    reader.stop().await;
}

#[tokio::test]
async fn read_timeout_detects_a_hung_server() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url, no_headers());
    cfg.read_timeout = Duration::from_millis(500);
    let mut reader = Reader::start(cfg, "");
    reader.expect_connecting().await;
    let (response, body) = stream();
    server.next().await.reply.send(response).unwrap();
    reader.expect_connected().await;
    // Keep-alive comments count as traffic.
    for _ in 0..6 {
        write(&body, ": keep-alive\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write(&body, "data: alive\n\n").await;
    assert_eq!(reader.expect_event().await.data, "alive");
    // Now silence, with the connection left open.
    let (error, _) = reader.expect_disconnected().await;
    assert!(error.contains("read timeout"), "{error}");
    reader.expect_connecting().await;
    server.next().await;
    drop(body);
    reader.stop().await;
}

#[tokio::test]
async fn follows_redirects_but_reconnects_to_the_original_url() {
    let mut server = Server::start().await;
    let mut reader = Reader::start(config(&server.url, auth_headers()), "");
    reader.expect_connecting().await;
    let req = server.next().await;
    assert_eq!(req.head.uri.path(), "/events");
    req.reply
        .send(with_header(status(302), "location", "/moved?x=1"))
        .unwrap();
    let req = server.next().await;
    assert_eq!(req.head.uri.to_string(), "/moved?x=1");
    // Same origin: the headers still go.
    assert_eq!(header(&req, "authorization"), Some("Bearer s3cret"));
    req.reply.send(fixed_stream("data: moved\n\n")).unwrap();
    reader.expect_connected().await;
    assert_eq!(reader.expect_event().await.data, "moved");
    reader.expect_disconnected().await;
    reader.expect_connecting().await;
    assert_eq!(server.next().await.head.uri.path(), "/events");
    reader.stop().await;
}

#[tokio::test]
async fn connection_refused_retries_with_backoff() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url: url::Url = format!("http://{}/events", listener.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(listener);
    let mut reader = Reader::start(config(&url, no_headers()), "");
    for attempt in 1..=3 {
        match reader.next().await {
            ClientEvent::Connecting { attempt: a } => assert_eq!(a, attempt),
            other => panic!("expected Connecting, got {other:?}"),
        }
        let (error, retry_in) = reader.expect_disconnected().await;
        assert!(error.to_lowercase().contains("connect"), "{error}");
        assert!(retry_in.unwrap() <= Duration::from_millis(40));
    }
    reader.stop().await;
}

#[tokio::test]
async fn oversized_event_is_reported_and_the_stream_goes_on() {
    let mut server = Server::start().await;
    let mut cfg = config(&server.url, no_headers());
    cfg.max_event_bytes = 1024;
    let mut reader = Reader::start(cfg, "");
    reader.expect_connecting().await;
    let (response, body) = stream();
    server.next().await.reply.send(response).unwrap();
    reader.expect_connected().await;
    write(
        &body,
        &format!("data: {}\n\ndata: small\n\n", "x".repeat(4096)),
    )
    .await;
    match reader.next().await {
        ClientEvent::Event(e) => assert_eq!(e.data, "small"),
        ClientEvent::Notice(ParserNotice::EventTooLarge { bytes }) => {
            assert!(bytes > 1024);
            assert_eq!(reader.expect_event().await.data, "small");
        }
        other => panic!("unexpected {other:?}"),
    }
    reader.stop().await;
}

#[tokio::test]
async fn stops_when_the_consumer_goes_away() {
    let mut server = Server::start().await;
    let reader = Reader::start(config(&server.url, no_headers()), "");
    let Reader { events, task, .. } = reader;
    let (response, body) = stream();
    server.next().await.reply.send(response).unwrap();
    drop(events);
    write(&body, "data: nobody listens\n\n").await;
    tokio::time::timeout(DEADLINE, task).await.unwrap().unwrap();
}
