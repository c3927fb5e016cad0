//! Reads one SSE stream over HTTP(S), reconnecting with backoff and `Last-Event-ID`.
//!
//! Policy (the WHATWG processing model, with the retries production SDKs add):
//! 200 + `text/event-stream` streams; 204, other 2xx and a wrong content type, which a browser
//! would not retry, retry with the long backoff below (an unattended connector must come back
//! once the device does: a restarting device may answer with its web page for a while);
//! 5xx and 429 retry with backoff, no sooner than `Retry-After`; a 401 with renewable
//! credentials (a bearer token file, an OAuth2 token: [`ClientConfig::renew_after_401`]) retries
//! once after the minimum reconnect delay with a fresh token; a second 401 in a row, 403, other
//! 4xx, credential errors (the header source) and TLS verification failures (expired, untrusted
//! or misnamed server certificate, client certificate rejected) retry with a long backoff (60 s
//! doubling to 5 min), each with its own message; only a configuration that cannot work (an
//! unusable proxy, an unsupported URL scheme) stops for good; network errors, a closed body and
//! silence past `read_timeout` reconnect after the server's `retry:` time or the backoff.
//! Redirects (up to 10) are followed, but every reconnect starts again at the configured URL;
//! the per-connection headers and the client certificate go to the configured origin only, and a
//! redirect from `https` to `http` is refused (it would expose the stream, and any credentials
//! in the next URL, on the network).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use sse_runtime::{Backoff, error_chain};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::decode::Decoder;
use super::http::{self as transport, Body, Conn, Wire};
use super::parser::{Parser, ParserNotice, SseEvent};
use super::proxy::{self, ProxyAddr, ProxyConfig};
use super::request::{
    RequestSpec, after_redirect, build_request, is_redirect, redirect_target, without_credentials,
};
use super::tokens::Tokens;

/// Redirects followed for one connection attempt.
const MAX_REDIRECTS: usize = 10;
/// Longest server `retry:` time honoured: a larger value would park the stream for days.
pub const MAX_SERVER_RETRY: Duration = Duration::from_secs(3600);
/// Default of [`ClientConfig::min_reconnect_delay`]: the backoff floor (`Backoff::standard()`'s
/// first delay), so `retry: 0` cannot make a hot reconnect loop.
pub const DEFAULT_MIN_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What a stream reader reports to its owner, in order.
#[derive(Debug)]
pub enum ClientEvent {
    /// A connection attempt starts (1 for the first).
    Connecting {
        /// The attempt number since the reader started.
        attempt: u64,
    },
    /// The server answered 200 with `text/event-stream`: events follow.
    Connected,
    /// One dispatched event.
    Event(SseEvent),
    /// The connection ended or failed; `error` names the problem (no secrets); reconnect follows after `retry_in` unless stopped.
    Disconnected {
        /// What went wrong, without secrets.
        error: String,
        /// Why, as one of the fixed label values of [`super::ended`].
        reason: &'static str,
        /// How long the reader waits before the next attempt.
        retry_in: Option<Duration>,
    },
    /// The configuration cannot work (an unusable proxy, an unsupported URL scheme): no
    /// reconnection until the resource changes.
    Stopped {
        /// Why the reader stopped.
        reason: String,
    },
    /// A parser notice (e.g. an event over the size limit was discarded).
    Notice(ParserNotice),
}

/// Builds the per-connection request headers (auth); called at every connect so rotated secrets apply. Errors name the problem, never the secret.
pub type HeaderSource = Arc<dyn Fn() -> Result<http::HeaderMap, String> + Send + Sync>;

/// How to read one SSE stream.
#[derive(Clone)]
pub struct ClientConfig {
    /// The stream's URL (reconnects always go back to it, not to a redirect target).
    pub url: url::Url,
    /// Per-connection headers (auth).
    pub headers: HeaderSource,
    /// Whether [`ClientConfig::headers`] reads files (secrets, trust lists): it then runs on the
    /// blocking pool, so a slow disk never stalls the other streams of the runtime thread.
    pub headers_read_files: bool,
    /// Fetched credentials (OAuth2): an `Authorization` value got asynchronously after the
    /// headers at each connect, and told when a server refused it.
    pub tokens: Option<Tokens>,
    /// Whether the next connect reads credentials afresh (a bearer token file, an OAuth2
    /// token): a 401 is then retried once after the minimum reconnect delay, not the long backoff.
    pub renew_after_401: bool,
    /// TLS settings for `https` URLs.
    pub tls: Arc<rustls::ClientConfig>,
    /// Silence longer than this = dead connection (default 60 s); also bounds connect + response headers.
    pub read_timeout: Duration,
    /// Events with more data than this are discarded (default
    /// [`sse_contract::limits::EVENT_BYTES_DEFAULT`], 1 MiB).
    pub max_event_bytes: usize,
    /// Hand on events over `max_event_bytes` truncated and marked instead of discarding them
    /// (a stream with a dead-letter destination; default off).
    pub keep_oversized: bool,
    /// Reconnect delays after network errors, closed streams and 5xx (default `Backoff::standard()`).
    pub backoff: Backoff,
    /// No reconnect comes sooner than this after a disconnect, whatever the server's `retry:` or
    /// `Retry-After` says (default [`DEFAULT_MIN_RECONNECT_DELAY`]).
    pub min_reconnect_delay: Duration,
    /// Counts the body bytes read (after chunked decoding, before gzip: as on the wire) over
    /// every connection: shared with the stream's status, which the metrics read (one relaxed
    /// add per read, not per event).
    pub bytes_read: Arc<AtomicU64>,
    /// Method, body and compression of the request (default: a GET).
    pub request: RequestSpec,
    /// How connections travel (default: directly).
    pub proxy: ProxyConfig,
}

impl ClientConfig {
    /// A config with the defaults: 60 s read timeout, 1 MiB events, standard backoff.
    pub fn new(url: url::Url, headers: HeaderSource, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            url,
            headers,
            headers_read_files: false,
            tokens: None,
            renew_after_401: false,
            tls,
            read_timeout: Duration::from_secs(60),
            max_event_bytes: sse_contract::limits::EVENT_BYTES_DEFAULT,
            keep_oversized: false,
            backoff: Backoff::standard(),
            min_reconnect_delay: DEFAULT_MIN_RECONNECT_DELAY,
            bytes_read: Arc::default(),
            request: RequestSpec::default(),
            proxy: ProxyConfig::Direct,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &display_url(&self.url))
            .field("read_timeout", &self.read_timeout)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("min_reconnect_delay", &self.min_reconnect_delay)
            .field("method", &self.request.method)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

/// Where a reader's reports go, in order. The reader awaits each one before it reads on, so a
/// slow owner stops the reading (backpressure).
pub trait Owner: Send {
    /// Takes one report; false when the reader must stop (the owner is gone or stopping).
    fn report(&mut self, event: ClientEvent) -> impl Future<Output = bool> + Send;
}

/// A channel as owner, for tools and tests that read the reports from the receiver; the reader
/// stops when the receiver is dropped.
impl Owner for mpsc::Sender<ClientEvent> {
    async fn report(&mut self, event: ClientEvent) -> bool {
        self.send(event).await.is_ok()
    }
}

/// Reads the stream until `token` is cancelled or it is stopped for good, reconnecting with backoff;
/// hands every ClientEvent to `owner` in the reader's own task (no queue between them).
/// Returns when cancelled, when stopped, or when the owner says stop.
pub async fn run(
    cfg: ClientConfig,
    last_event_id: String,
    owner: impl Owner,
    token: CancellationToken,
) {
    Reader::new(cfg, &last_event_id, owner, token).run().await;
}

/// How long to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delay {
    /// An established stream ended: the server's `retry:` time, else the backoff.
    AfterStream,
    /// No stream was established: the backoff, but never sooner than the server's `retry:` time.
    Backoff,
    /// A problem that needs someone to act (auth, 4xx, bad headers): the long backoff.
    Long,
    /// HTTP 401: once after the floor with fresh credentials when they renew, else long.
    Unauthorized,
    /// The server said when (`Retry-After`): no sooner, nor sooner than the backoff.
    AtLeast(Duration),
}

/// How one connection attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Retry {
        error: String,
        /// One of [`super::ended`].
        reason: &'static str,
        delay: Delay,
    },
    Stop(String),
    /// Cancelled, or the consumer is gone.
    Quit,
}

struct Reader<O> {
    cfg: ClientConfig,
    parser: Parser,
    backoff: Backoff,
    long_backoff: Backoff,
    server_retry: Option<Duration>,
    owner: O,
    token: CancellationToken,
    /// The fetched `Authorization` sent on the last attempt, to forget if it is refused.
    sent_token: Option<HeaderValue>,
    /// Whether the last attempt ended with 401 (a second one in a row backs off long).
    after_401: bool,
}

impl<O: Owner> Reader<O> {
    fn new(cfg: ClientConfig, last_event_id: &str, owner: O, token: CancellationToken) -> Self {
        let mut parser = Parser::new(cfg.max_event_bytes).keep_oversized(cfg.keep_oversized);
        parser.set_last_event_id(last_event_id);
        Self {
            backoff: cfg.backoff.clone(),
            long_backoff: Backoff::new(Duration::from_secs(60), Duration::from_secs(300)),
            cfg,
            parser,
            server_retry: None,
            owner,
            token,
            sent_token: None,
            after_401: false,
        }
    }

    async fn run(mut self) {
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            if !self.send(ClientEvent::Connecting { attempt }).await {
                return;
            }
            let span = tracing::info_span!(
                "sse_connection",
                otel.name = "sse connection",
                url = %display_url(&self.cfg.url),
                attempt
            );
            let outcome = self.connect_and_read().instrument(span).await;
            let (error, reason, delay) = match outcome {
                Attempt::Quit => return,
                // The owner logs the stream's connects, disconnects and stops, once each.
                Attempt::Stop(reason) => {
                    tracing::debug!(url = %display_url(&self.cfg.url), %reason, "sse stream stopped");
                    self.send(ClientEvent::Stopped { reason }).await;
                    return;
                }
                Attempt::Retry {
                    error,
                    reason,
                    delay,
                } => (error, reason, delay),
            };
            let wait = self.delay(delay);
            self.after_401 = delay == Delay::Unauthorized;
            tracing::debug!(
                url = %display_url(&self.cfg.url),
                %error,
                retry_in_ms = wait.as_millis() as u64,
                "sse stream disconnected"
            );
            let event = ClientEvent::Disconnected {
                error,
                reason,
                retry_in: Some(wait),
            };
            if !self.send(event).await {
                return;
            }
            self.parser.reset_connection();
            tokio::select! {
                () = self.token.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The wait before the next attempt, never below the configured floor.
    fn delay(&mut self, delay: Delay) -> Duration {
        let wait = match delay {
            Delay::AfterStream => match self.server_retry {
                Some(retry) => retry,
                None => self.backoff.next_delay(),
            },
            Delay::Backoff => {
                let backoff = self.backoff.next_delay();
                self.server_retry
                    .map_or(backoff, |retry| retry.max(backoff))
            }
            Delay::Long => self.long_backoff.next_delay(),
            Delay::Unauthorized if self.cfg.renew_after_401 && !self.after_401 => {
                // The token may have expired or been rotated: the next connect takes a fresh
                // one (a forgotten OAuth2 token is fetched again), so retry at the floor.
                if let (Some(tokens), Some(sent)) = (&self.cfg.tokens, &self.sent_token) {
                    tokens.refused(sent);
                }
                Duration::ZERO
            }
            Delay::Unauthorized => self.long_backoff.next_delay(),
            // The backoff keeps growing while the server is unwell: `Retry-After: 0` on every
            // answer must not make a request at every floor, hammering an overloaded device.
            Delay::AtLeast(d) => d.max(self.backoff.next_delay()),
        };
        wait.max(self.cfg.min_reconnect_delay)
    }

    /// Hands one report to the owner; false when cancelled or the owner says stop. The owner
    /// goes first: when it takes the report at once, no cancellation waiter is registered.
    async fn send(&mut self, event: ClientEvent) -> bool {
        tokio::select! {
            biased;
            taken = self.owner.report(event) => taken,
            () = self.token.cancelled() => false,
        }
    }

    /// This connection's headers, with the secrets and trust files read off the runtime thread
    /// when there are any to read.
    async fn headers(&self) -> Result<http::HeaderMap, String> {
        let source = self.cfg.headers.clone();
        if !self.cfg.headers_read_files {
            return source();
        }
        tokio::task::spawn_blocking(move || source())
            .await
            .unwrap_or_else(|e| Err(format!("reading credentials failed: {e}")))
    }

    /// The fetched `Authorization` (OAuth2) into `headers`; a failure is the attempt's outcome.
    async fn add_token(&mut self, headers: &mut HeaderMap) -> Result<(), Attempt> {
        let Some(tokens) = self.cfg.tokens.clone() else {
            return Ok(());
        };
        let got = tokio::select! {
            () = self.token.cancelled() => return Err(Attempt::Quit),
            got = tokens.authorization() => got,
        };
        match got {
            Ok(value) => {
                headers.insert(header::AUTHORIZATION, value.clone());
                self.sent_token = Some(value);
                Ok(())
            }
            Err(e) => Err(Attempt::Retry {
                error: e.message,
                reason: super::ended::CREDENTIALS,
                delay: if e.lasting {
                    Delay::Long
                } else {
                    Delay::Backoff
                },
            }),
        }
    }

    /// This connection's headers: the files' (secrets, headers, proxy credentials) and the
    /// fetched token; a failure is the attempt's outcome.
    async fn connection_headers(&mut self) -> Result<HeaderMap, Attempt> {
        // Self-describing errors (e.g. "secret c/key is missing"), never a secret value.
        let mut extra = self
            .headers()
            .await
            .map_err(|error| retry(error, super::ended::CREDENTIALS, Delay::Long))?;
        if let ProxyConfig::Unusable(reason) = &self.cfg.proxy {
            return Err(Attempt::Stop(reason.clone()));
        }
        self.add_token(&mut extra).await?;
        Ok(extra)
    }

    /// One connection: request (following redirects), then read the stream until it ends.
    async fn connect_and_read(&mut self) -> Attempt {
        let mut extra = match self.connection_headers().await {
            Ok(extra) => extra,
            Err(attempt) => return attempt,
        };
        // The proxy's credentials go to the proxy on every hop, never to a server.
        let proxy_auth = extra.remove(header::PROXY_AUTHORIZATION);
        let mut url = without_credentials(&self.cfg.url);
        let origin = url.origin();
        let mut same_origin = true;
        let mut hop = self.cfg.request.first_hop();
        // Built on the first hop to another origin: the same trust, no client certificate.
        let mut foreign_tls = None;
        for redirects in 0..=MAX_REDIRECTS {
            let tls = if same_origin {
                &self.cfg.tls
            } else {
                foreign_tls.get_or_insert_with(|| without_client_cert(&self.cfg.tls))
            };
            let request = match build_request(
                &url,
                same_origin.then_some(&extra),
                self.parser.last_event_id(),
                (&self.cfg.request, &hop),
            ) {
                Ok(request) => request,
                Err(reason) => return Attempt::Stop(reason),
            };
            let route = Route {
                proxy: self.cfg.proxy.for_url(&url),
                auth: proxy_auth.as_ref(),
                body: self.cfg.request.body_of(&hop),
            };
            let (mut conn, response, body) = match self.open_hop(&url, tls, &request, route).await {
                Ok(opened) => opened,
                Err(attempt) => return attempt,
            };
            if !is_redirect(response.status()) {
                return match classify(&response) {
                    Some(outcome) => outcome,
                    None => self.read_stream(&mut conn, body, &response).await,
                };
            }
            if redirects == MAX_REDIRECTS {
                break;
            }
            match redirect_target(&url, &response) {
                Ok(next) => {
                    tracing::debug!(to = %display_url(&next), status = response.status().as_u16(), "sse redirect");
                    same_origin &= next.origin() == origin;
                    hop = after_redirect(&hop, response.status());
                    url = next;
                }
                Err(error) => {
                    return Attempt::Retry {
                        error,
                        reason: super::ended::REDIRECT,
                        delay: Delay::Long,
                    };
                }
            }
        }
        Attempt::Retry {
            error: format!("too many redirects (more than {MAX_REDIRECTS})"),
            reason: super::ended::REDIRECT,
            delay: Delay::Long,
        }
    }

    /// Opens one hop within the read timeout; a failure is the attempt's outcome (quit on
    /// cancellation, else a retry whose delay says whether waiting longer could help).
    async fn open_hop(
        &self,
        url: &url::Url,
        tls: &Arc<rustls::ClientConfig>,
        request: &Request<()>,
        route: Route<'_>,
    ) -> Result<(Conn, Response<()>, Body), Attempt> {
        let opened = tokio::select! {
            () = self.token.cancelled() => return Err(Attempt::Quit),
            r = tokio::time::timeout(self.cfg.read_timeout, open(url, tls, request, route)) => r,
        };
        match opened {
            Err(_) => Err(Attempt::Retry {
                error: format!(
                    "no response within {}",
                    humantime::format_duration(self.cfg.read_timeout)
                ),
                reason: super::ended::TIMEOUT,
                delay: Delay::Backoff,
            }),
            Ok(Err(e)) => Err(match tls_problem(&e, url) {
                Some(error) => Attempt::Retry {
                    error,
                    reason: super::ended::TLS,
                    delay: Delay::Long,
                },
                None => Attempt::Retry {
                    error: error_chain(&e),
                    reason: super::ended::of_open_error(&e),
                    delay: Delay::Backoff,
                },
            }),
            Ok(Ok(opened)) => Ok(opened),
        }
    }

    /// Feeds the body (decoded when compressed) to the parser and the events to the owner until
    /// the stream ends.
    async fn read_stream(
        &mut self,
        conn: &mut Conn,
        mut body: Body,
        response: &Response<()>,
    ) -> Attempt {
        let encoding = response.headers().get(header::CONTENT_ENCODING);
        let mut decoder = match Decoder::for_encoding(encoding, self.cfg.max_event_bytes) {
            Ok(decoder) => decoder,
            Err(error) => return retry(error, super::ended::DECODE, Delay::Long),
        };
        if !self.send(ClientEvent::Connected).await {
            return Attempt::Quit;
        }
        tracing::debug!(url = %display_url(&self.cfg.url), "sse stream connected");
        self.backoff.connected();
        self.long_backoff.reset();
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        let mut cut = None;
        // One cancellation waiter and one timer for the whole connection, not one of each per
        // read: the timer is moved on only when it fires before the silence is long enough.
        let cancelled = self.token.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let mut last_data = Instant::now();
        let silence = tokio::time::sleep_until(last_data + self.cfg.read_timeout);
        tokio::pin!(silence);
        loop {
            let parser = &mut self.parser;
            let bytes_read = &self.cfg.bytes_read;
            let read = tokio::select! {
                biased;
                () = &mut cancelled => return Attempt::Quit,
                r = body.read(conn, |data| {
                    bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
                    match &mut decoder {
                        None => parser.feed(data, &mut events, &mut notices),
                        Some(d) => {
                            if let Err(e) = d.feed(data, parser, &mut events, &mut notices) {
                                cut.get_or_insert(e);
                            }
                        }
                    }
                }) => r,
                () = &mut silence => {
                    let due = last_data + self.cfg.read_timeout;
                    if Instant::now() < due {
                        silence.as_mut().reset(due);
                        continue;
                    }
                    return Attempt::Retry {
                        error: format!(
                            "read timeout: no data for {}",
                            humantime::format_duration(self.cfg.read_timeout)
                        ),
                        reason: super::ended::TIMEOUT,
                        delay: Delay::AfterStream,
                    };
                }
            };
            last_data = Instant::now();
            if !self.dispatch(&mut events, &mut notices).await {
                return Attempt::Quit;
            }
            return match (read, cut.take()) {
                (_, Some(e)) => retry(e.to_string(), super::ended::DECODE, Delay::AfterStream),
                (Err(e), None) => retry(
                    format!("stream broke: {}", error_chain(&e)),
                    super::ended::READ_ERROR,
                    Delay::AfterStream,
                ),
                (Ok(true), None) => continue,
                (Ok(false), None) => retry(
                    "server closed the stream".to_owned(),
                    super::ended::EOF,
                    Delay::AfterStream,
                ),
            };
        }
    }

    /// Hands parsed events and notices to the owner; false when it is gone or cancelled.
    async fn dispatch(
        &mut self,
        events: &mut Vec<SseEvent>,
        notices: &mut Vec<ParserNotice>,
    ) -> bool {
        for event in events.drain(..) {
            if !self.send(ClientEvent::Event(event)).await {
                return false;
            }
        }
        for notice in notices.drain(..) {
            match notice {
                ParserNotice::Retry(ms) => {
                    self.server_retry = Some(server_retry(ms, self.cfg.min_reconnect_delay));
                }
                ParserNotice::EventTooLarge { bytes } => {
                    tracing::warn!(
                        bytes,
                        limit = self.cfg.max_event_bytes,
                        "sse event over the size limit discarded"
                    );
                }
                // Counted and logged by the stream's owner.
                ParserNotice::EventTypeTooLong { .. } | ParserNotice::IdTooLong { .. } => {}
            }
            if !self.send(ClientEvent::Notice(notice)).await {
                return false;
            }
        }
        true
    }
}

/// A retry after `error`, with its reason label and delay.
fn retry(error: String, reason: &'static str, delay: Delay) -> Attempt {
    Attempt::Retry {
        error,
        reason,
        delay,
    }
}

/// A server's `retry:` time clamped to `[floor, MAX_SERVER_RETRY]`: `retry: 0` must not make a
/// hot reconnect loop (each attempt re-reads secrets and may do a TLS handshake), and a huge value
/// must not park the stream for days.
fn server_retry(ms: u64, floor: Duration) -> Duration {
    Duration::from_millis(ms).clamp(floor.min(MAX_SERVER_RETRY), MAX_SERVER_RETRY)
}

/// How one hop travels: through which proxy (with which credentials), with which body.
#[derive(Clone, Copy)]
struct Route<'a> {
    proxy: Option<&'a ProxyAddr>,
    auth: Option<&'a HeaderValue>,
    body: Option<&'a [u8]>,
}

/// One request: connect (through the proxy, if any), send, read the response head.
async fn open(
    url: &url::Url,
    tls: &Arc<rustls::ClientConfig>,
    request: &Request<()>,
    route: Route<'_>,
) -> Result<(Conn, Response<()>, Body), transport::HttpError> {
    let (mut conn, absolute) = match route.proxy {
        None => (transport::connect(url, tls).await?, false),
        Some(p) => proxy::connect(p, url, tls, route.auth).await?,
    };
    let wire = Wire {
        body: route.body,
        proxy: absolute.then(|| route.proxy.and_then(|p| p.auth()).or(route.auth)),
    };
    transport::send(&mut conn, request, wire).await?;
    let (response, body) = transport::read_head(&mut conn).await?;
    if let (true, Some(p)) = (absolute, route.proxy)
        && response.status() == StatusCode::PROXY_AUTHENTICATION_REQUIRED
    {
        let what = if wire.proxy.flatten().is_some() {
            "refused the proxy credentials"
        } else {
            "requires authentication"
        };
        return Err(transport::HttpError::Proxy(format!(
            "proxy {}: {what} (HTTP 407)",
            p.name()
        )));
    }
    Ok((conn, response, body))
}

/// The URL for logs: scheme, host, port and path; no credentials, no query (it may hold tokens).
fn display_url(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

mod response;
mod tls;

use response::classify;
use tls::{tls_problem, without_client_cert};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod renew_tests;
