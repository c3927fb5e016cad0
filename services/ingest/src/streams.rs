//! One supervised task per SSE stream: runs the SSE client, turns its reports into status
//! updates, and each dispatched SSE event into routed events (one per matching dataset/event,
//! each with its own `seq`, id and the event's trace context) for the forwarder.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sse_contract::dead_letter::{HEAD_BYTES, Mark, Reason};
use sse_contract::drops;
use sse_contract::limits::{EVENT_ID_BYTES_MAX, EVENT_TYPE_BYTES_MAX};
use sse_runtime::telemetry::EventTrace;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::akri::mounts::EndpointFiles;
use crate::auth;
use crate::budget::{Budget, Held, Share};
use crate::checkpoint::{self, SharedProgress};
use crate::discovery::EndpointTypes;
use crate::event::{self, IdGen, RoutedEvent};
use crate::resources::options::{Method, Proxy, RequestOptions};
use crate::routing::{Dispatch, StreamPlan};
use crate::span::ReceiveSpan;
use crate::sse::{self, ClientConfig, ClientEvent, Owner, ParserNotice, SseEvent};
use crate::status::{Status, StreamState};

mod flaps;

use flaps::{Line, ReconnectLog};

/// What every stream reader is configured with.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Secrets directory for credentials.
    pub secrets_dir: Option<PathBuf>,
    /// Trust directory for extra CAs.
    pub trust_dir: Option<PathBuf>,
    /// Silence longer than this = dead connection.
    pub read_timeout: Duration,
    /// Largest event kept.
    pub max_event_bytes: usize,
    /// Shortest wait before a reconnect, whatever the server's `retry:` says.
    pub min_reconnect_delay: Duration,
    /// The in-flight byte budget every reader of this ingest shares.
    pub budget: Budget,
    /// SSE events one stream may hold read and not yet acknowledged (each reader its own
    /// [`Share`] of this many).
    pub per_stream: usize,
    /// Directory of CA certificates trusted for every endpoint.
    pub trust_bundle: Option<PathBuf>,
    /// Whether the system's root CAs are trusted.
    pub system_roots: bool,
    /// Whether the Akri mounts' other layouts apply (the ADR resource source): an endpoint's
    /// unified secretsync credential files and its trust bundle file (`akri::mounts`).
    pub akri_layouts: bool,
}

/// What outlives one reader of a stream, so a reader restarted after a resource change goes on
/// where the previous one stopped: the `seq` counter (acks are keyed by it) and the last event ID
/// whose routed events were all handed to the forwarder.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    seq: Arc<AtomicU64>,
    last_event_id: Arc<Mutex<String>>,
    progress: SharedProgress,
}

impl Resume {
    /// Resume state starting from `last_event_id` (empty: from the live end of the stream).
    pub fn from_last_event_id(last_event_id: impl Into<String>) -> Self {
        Self {
            seq: Arc::default(),
            last_event_id: Arc::new(Mutex::new(last_event_id.into())),
            progress: SharedProgress::default(),
        }
    }

    /// Records acknowledgement progress in `progress` (shared with the checkpoints).
    pub fn with_progress(mut self, progress: SharedProgress) -> Self {
        self.progress = progress;
        self
    }

    /// The last event ID whose events were all handed on.
    pub fn last_event_id(&self) -> String {
        self.last_event_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_last_event_id(&self, id: &str) {
        let mut last = self.last_event_id.lock().unwrap_or_else(|e| e.into_inner());
        if *last != id {
            last.clear();
            last.push_str(id);
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// One stream's reader: its plan, where events go and what it updates.
pub struct StreamTask {
    plan: Arc<StreamPlan>,
    key: Arc<str>,
    settings: StreamSettings,
    status: Arc<Status>,
    out: mpsc::Sender<RoutedEvent>,
    ids: IdGen,
    /// The subject of the route being dispatched, for its event id (a buffer kept).
    subject: String,
    resume: Resume,
    /// The names of its events' receive spans.
    receive: ReceiveSpan,
    /// Where its unrouted event types are counted (its endpoint's, shared with its other
    /// streams), and the data source of this stream for their snippet.
    discovered: (Arc<EndpointTypes>, Arc<str>),
    /// How many of its events it may hold unacknowledged.
    share: Share,
    /// How loudly its connects and disconnects are logged (a flapping stream must not flood
    /// the log).
    flaps: ReconnectLog,
}

/// The stream task as the SSE reader's owner: each report is handled in the reader's own task.
struct Reports<'a> {
    task: &'a mut StreamTask,
    token: &'a CancellationToken,
}

impl Owner for Reports<'_> {
    fn report(&mut self, event: ClientEvent) -> impl Future<Output = bool> + Send {
        self.task.handle(event, self.token)
    }
}

impl StreamTask {
    /// A reader of `plan` sending routed events to `out`.
    pub fn new(
        plan: Arc<StreamPlan>,
        settings: StreamSettings,
        status: Arc<Status>,
        out: mpsc::Sender<RoutedEvent>,
    ) -> Self {
        let types = status.discovery().endpoint(&plan.device, &plan.endpoint);
        let source = types.source_of(&plan.url);
        Self {
            discovered: (types, source),
            share: Share::new(settings.per_stream),
            key: Arc::from(plan.key.as_str()),
            receive: ReceiveSpan::new(&plan.device, &plan.endpoint),
            plan,
            settings,
            status,
            out,
            ids: IdGen::new(),
            subject: String::new(),
            resume: Resume::default(),
            flaps: ReconnectLog::default(),
        }
    }

    /// Goes on from `resume` (a previous reader's state) instead of starting afresh.
    pub fn resuming(mut self, resume: Resume) -> Self {
        self.resume = resume;
        self
    }

    /// Reads the stream until `token` is cancelled, its configuration turns out unusable (it
    /// is then `Stopped`), or the forwarder is gone.
    pub async fn run(mut self, token: CancellationToken) {
        let Some(connector) = self.tls(&token).await else {
            return;
        };
        let (tls, headers) = (connector.tls_config(), connector.header_source());
        let mut cfg = ClientConfig::new(self.plan.url.clone(), headers, tls);
        cfg.headers_read_files = connector.reads_files();
        cfg.tokens = connector.token_source();
        cfg.renew_after_401 = connector.renews_after_401();
        cfg.read_timeout = self.settings.read_timeout;
        cfg.max_event_bytes = self.settings.max_event_bytes;
        // Oversized events travel on, truncated, only where a dead letter can take them.
        cfg.keep_oversized = self.plan.has_dead_letter();
        cfg.min_reconnect_delay = self.settings.min_reconnect_delay;
        cfg.bytes_read = self.status.bytes_read(&self.key);
        (cfg.request, cfg.proxy) = request_of(&self.plan.options.request);
        let last_event_id = self.resume.last_event_id();
        let owner = Reports {
            task: &mut self,
            token: &token,
        };
        sse::run(cfg, last_event_id, owner, token.clone()).await;
        self.status.update(&self.key, |s| {
            if s.state != StreamState::Stopped {
                s.set_state(StreamState::Idle);
            }
        });
        tracing::debug!(stream = %self.key, "stream reader stopped");
    }

    /// The endpoint's connector (TLS configuration and credentials, re-read at each connect),
    /// retried with backoff while it cannot be built.
    async fn tls(&self, token: &CancellationToken) -> Option<auth::Connector> {
        let mut backoff = sse_runtime::Backoff::standard();
        let trust = auth::TrustSources {
            trust_dir: self.settings.trust_dir.clone(),
            trust_bundle: self.settings.trust_bundle.clone(),
            system_roots: self.settings.system_roots,
        };
        let akri = self.akri_files();
        loop {
            match auth::Connector::with_akri(
                &self.plan.url,
                &self.plan.auth,
                self.plan.trust_list.as_deref(),
                self.settings.secrets_dir.clone(),
                trust.clone(),
                akri.clone(),
            ) {
                Ok(c) => {
                    let endpoint = format!("{}/{}", self.plan.device, self.plan.endpoint);
                    return Some(
                        c.with_http_auth(self.plan.options.auth.as_ref(), &endpoint)
                            .with_request(self.plan.options.request.clone()),
                    );
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(stream = %self.key, error = %e, retry_in = ?delay, "cannot build the TLS configuration");
                    self.status.update(&self.key, |s| s.last_error = e);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = token.cancelled() => return None,
                    }
                }
            }
        }
    }

    /// The endpoint's own files in the Akri mounts, when their layouts apply and its names can
    /// make one (else only `<secret>/<key>` files and trust list folders are read: logged).
    fn akri_files(&self) -> Option<EndpointFiles> {
        if !self.settings.akri_layouts {
            return None;
        }
        EndpointFiles::new(&self.plan.device, &self.plan.endpoint)
            .inspect_err(|e| tracing::warn!(stream = %self.key, error = %e, "no Akri unified credential or trust bundle file for this endpoint"))
            .ok()
    }

    /// Handles one client report; false when the stream task must stop.
    async fn handle(&mut self, ev: ClientEvent, token: &CancellationToken) -> bool {
        let key = self.key.clone();
        match ev {
            ClientEvent::Connecting { attempt } => {
                tracing::debug!(stream = %key, attempt, "connecting");
                self.status.update(&key, |s| {
                    s.connects += 1;
                    if s.state != StreamState::Disconnected {
                        s.set_state(StreamState::Connecting);
                    }
                });
            }
            ClientEvent::Connected => {
                match self.flaps.connected(std::time::Instant::now()) {
                    Line::Debug => tracing::debug!(stream = %key, "SSE stream connected"),
                    _ => tracing::info!(stream = %key, "SSE stream connected"),
                }
                self.ids.connected();
                self.status.update(&key, |s| {
                    s.set_state(StreamState::Connected);
                    s.last_error.clear();
                });
            }
            ClientEvent::Disconnected {
                error,
                reason,
                retry_in,
            } => {
                self.log_disconnect(&error, retry_in);
                self.status.update(&key, |s| {
                    s.set_state(StreamState::Disconnected);
                    *s.reconnects.entry(reason).or_default() += 1;
                    s.last_error = error;
                });
            }
            ClientEvent::Stopped { reason } => {
                tracing::warn!(stream = %key, %reason, "SSE stream stopped; no reconnection until the resource changes");
                self.status.update(&key, |s| {
                    s.set_state(StreamState::Stopped);
                    s.last_error = reason;
                });
            }
            ClientEvent::Notice(
                n @ (ParserNotice::EventTooLarge { .. }
                | ParserNotice::EventTypeTooLong { .. }
                | ParserNotice::IdTooLong { .. }),
            ) => self.count_notice(&n),
            ClientEvent::Notice(ParserNotice::Retry(ms)) => {
                tracing::debug!(stream = %key, ms, "server set the reconnection time");
            }
            ClientEvent::Event(e) => return self.dispatch(e, token).await,
        }
        true
    }

    /// Logs a disconnect as loudly as [`ReconnectLog`] says: the first of a healthy stream at
    /// warn, repeats at debug, with a summary at most once a minute.
    fn log_disconnect(&mut self, error: &str, retry_in: Option<Duration>) {
        let key = &self.key;
        match self.flaps.disconnected(std::time::Instant::now()) {
            Line::Debug => {
                tracing::debug!(stream = %key, %error, ?retry_in, "SSE stream disconnected")
            }
            Line::Info | Line::Warn => {
                tracing::warn!(stream = %key, %error, ?retry_in, "SSE stream disconnected");
            }
            Line::Summary {
                reconnects,
                over,
                down,
            } => {
                let over = humantime::format_duration(Duration::from_secs(over.as_secs()));
                let message = "SSE stream keeps reconnecting; the attempts between these lines are logged at debug";
                if down {
                    tracing::warn!(stream = %key, reconnects, over = %over, last_error = %error, ?retry_in, "{message}");
                } else {
                    tracing::info!(stream = %key, reconnects, over = %over, last_error = %error, ?retry_in, "{message}");
                }
            }
        }
    }

    /// Counts a dropped event or an ignored `id:` in the stream's status, naming it in
    /// `last_error`.
    fn count_notice(&self, n: &ParserNotice) {
        let (reason, msg) = match *n {
            ParserNotice::EventTooLarge { bytes } => (
                drops::EVENT_TOO_LARGE,
                format!(
                    "{}: event of {bytes} data bytes dropped (limit {}, --max-event-bytes)",
                    drops::EVENT_TOO_LARGE,
                    self.settings.max_event_bytes
                ),
            ),
            ParserNotice::EventTypeTooLong { bytes } => (
                drops::EVENT_TYPE_TOO_LONG,
                format!(
                    "{}: event whose type has {bytes} bytes or more dropped (limit {EVENT_TYPE_BYTES_MAX})",
                    drops::EVENT_TYPE_TOO_LONG
                ),
            ),
            ParserNotice::IdTooLong { bytes } => (
                drops::ID_TOO_LONG,
                format!(
                    "{}: id of {bytes} bytes or more ignored (limit {EVENT_ID_BYTES_MAX}); the event kept the previous id",
                    drops::ID_TOO_LONG
                ),
            ),
            ParserNotice::Retry(_) => return,
        };
        tracing::warn!(stream = %self.key, reason, "{msg}");
        let notice = matches!(n, ParserNotice::IdTooLong { .. });
        self.status.update(&self.key, |s| {
            if notice {
                s.notice(reason);
            } else {
                s.drop_event(reason);
            }
            s.last_error = msg;
        });
    }

    /// The dead-letter mark of an event whose data passed the size limit at `size` bytes.
    /// The routes of `e`; the count of discovered types when `e` is the first of a new
    /// unrouted type; and, for an event cut at the size limit, its dead-letter mark (it then
    /// goes only to the routes that have a dead letter).
    fn routes_of(&self, e: &SseEvent) -> (Dispatch, Option<u64>, Option<Mark>) {
        let mut d = self.plan.dispatch(&e.event_type);
        // Routed nowhere: a discovered type (a lookup and a counter once the type is known).
        let new_type = if d.routes.is_empty() {
            let (types, source) = &self.discovered;
            types.record(&e.event_type, e.data.as_bytes(), source)
        } else {
            None
        };
        let mark = e.truncated_from.map(|size| self.too_large_mark(size));
        if mark.is_some() {
            d.routes.retain(|r| r.dead_letter.is_some());
        }
        (d, new_type, mark)
    }

    fn too_large_mark(&self, size: usize) -> Mark {
        Mark {
            reason: Reason::TooLarge,
            detail: format!(
                "event of {size} data bytes or more is over --max-event-bytes ({}); the first {HEAD_BYTES} bytes are kept",
                self.settings.max_event_bytes
            ),
            truncated_from: Some(u64::try_from(size).unwrap_or(u64::MAX)),
        }
    }

    /// Routes one SSE event and hands its routed events to the forwarder (waiting while the
    /// forwarder is full: backpressure). False when shut down or the forwarder is gone.
    async fn dispatch(&mut self, mut e: SseEvent, token: &CancellationToken) -> bool {
        let received_unix_nanos = event::unix_nanos_now();
        let (d, new_type, mark) = self.routes_of(&e);
        self.status
            .count_received(&self.key, d.unmatched, new_type, &e.last_event_id);
        let index = self.ids.next_index(&e.last_event_id);
        // The span (when traces are exported) lasts until the event is handed on, as before.
        let EventTrace {
            span: _span,
            traceparent,
            tracestate,
        } = EventTrace::start(|| self.receive.span(&self.key, &e, d.routes.len()), "", "");
        let seqs: Vec<u64> = d.routes.iter().map(|_| self.resume.next_seq()).collect();
        // Registered before any is sent, so no ack can come before its event is known.
        checkpoint::lock(&self.resume.progress).sent(&seqs, &e.last_event_id);
        if seqs.is_empty() {
            // Matched nothing: nothing is queued or held for it.
            self.resume.set_last_event_id(&e.last_event_id);
            return true;
        }
        let data = bytes::Bytes::from(std::mem::take(&mut e.data));
        let mut routed = Vec::with_capacity(seqs.len());
        // The data (shared by the copies) and the checkpoint's copy of the id count once.
        let mut bytes = data.len() + e.last_event_id.len();
        for (route, seq) in d.routes.into_iter().zip(seqs) {
            route.write_subject(&mut self.subject);
            let r = RoutedEvent {
                id: self
                    .ids
                    .id(&self.key, &self.subject, &e.last_event_id, index),
                seq,
                stream_key: self.key.clone(),
                data: data.clone(),
                sse_event: e.event_type.clone(),
                sse_id: e.last_event_id.clone(),
                received_unix_nanos,
                route,
                traceparent: traceparent.clone(),
                tracestate: tracestate.clone(),
                held: Held::none(),
                dead_letter: mark.clone(),
            };
            bytes += r.envelope_bytes();
            routed.push(r);
        }
        // Waits while the in-flight budget is spent (backpressure, like a full queue).
        let held = tokio::select! {
            biased;
            h = self.settings.budget.take(&self.share, bytes) => h,
            _ = token.cancelled() => return false,
        };
        for mut routed in routed {
            routed.held = held.clone();
            // The send goes first: with room in the queue no cancellation waiter is registered.
            tokio::select! {
                biased;
                r = self.out.send(routed) => if r.is_err() { return false },
                _ = token.cancelled() => return false,
            }
        }
        self.resume.set_last_event_id(&e.last_event_id);
        true
    }
}

/// The SSE client's request and proxy settings of an endpoint's options; the environment's
/// proxies are read now, when the stream starts.
fn request_of(options: &RequestOptions) -> (sse::RequestSpec, sse::ProxyConfig) {
    let spec = sse::RequestSpec {
        method: match options.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
        },
        body: options.body.as_deref().map(Arc::from),
        content_type: options
            .content_type
            .as_deref()
            .and_then(|ct| http::HeaderValue::from_str(ct).ok())
            .unwrap_or_else(|| http::HeaderValue::from_static("application/json")),
        compression: options.compression,
    };
    let proxy = match &options.proxy {
        Proxy::FromEnvironment => sse::ProxyConfig::from_env(),
        Proxy::Direct => sse::ProxyConfig::Direct,
        Proxy::Via { url, .. } => match sse::proxy::ProxyAddr::from_url(url) {
            Ok(p) => sse::ProxyConfig::Via(p),
            Err(e) => sse::ProxyConfig::Unusable(e),
        },
    };
    (spec, proxy)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resources::load_texts;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// One device whose SSE endpoint is `address`, read by one dataset.
    pub(crate) fn plan_for(address: &str) -> StreamPlan {
        let yaml = format!(
            r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{address}" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: a }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
    - {{ name: all, dataSource: "", destinations: [ {{ target: Mqtt, configuration: {{ topic: t }} }} ] }}
"#
        );
        let r = load_texts([("r.yaml", yaml.as_str())]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        crate::routing::plan(&r).remove(0)
    }

    pub(crate) fn settings() -> StreamSettings {
        StreamSettings {
            secrets_dir: None,
            trust_dir: None,
            read_timeout: Duration::from_secs(30),
            max_event_bytes: 1 << 20,
            min_reconnect_delay: Duration::from_millis(10),
            budget: Budget::new(1 << 20),
            per_stream: usize::MAX,
            trust_bundle: None,
            system_roots: false,
            akri_layouts: false,
        }
    }

    /// Accepts one SSE request and answers with the stream's head; the socket stays open.
    pub(crate) async fn accept_stream(listener: &TcpListener) -> TcpStream {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "request cut short");
            head.extend_from_slice(&buf[..n]);
        }
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
            .await
            .unwrap();
        sock
    }

    async fn started(
        out: mpsc::Sender<RoutedEvent>,
    ) -> (
        TcpListener,
        tokio::task::JoinHandle<()>,
        Arc<Status>,
        String,
    ) {
        started_with(out, settings()).await
    }

    async fn started_with(
        out: mpsc::Sender<RoutedEvent>,
        settings: StreamSettings,
    ) -> (
        TcpListener,
        tokio::task::JoinHandle<()>,
        Arc<Status>,
        String,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plan = plan_for(&format!("http://{}/", listener.local_addr().unwrap()));
        let key = plan.key.clone();
        let status = Arc::new(Status::new(std::slice::from_ref(&plan), Vec::new()));
        let task = StreamTask::new(Arc::new(plan), settings, status.clone(), out);
        let run = tokio::spawn(task.run(CancellationToken::new()));
        (listener, run, status, key)
    }

    #[tokio::test]
    async fn routes_each_event_with_its_own_seq_and_trace() {
        let (tx, mut rx) = mpsc::channel(8);
        let (listener, run, status, key) = started(tx).await;
        let mut sock = accept_stream(&listener).await;
        sock.write_all(b"id: 7\ndata: {\"a\":1}\n\nid: 8\ndata: {\"a\":2}\n\n")
            .await
            .unwrap();
        let (first, second) = (rx.recv().await.unwrap(), rx.recv().await.unwrap());
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(
            (first.sse_id.as_str(), &*first.data),
            ("7", &b"{\"a\":1}"[..])
        );
        assert_eq!(
            (second.sse_id.as_str(), &*second.data),
            ("8", &b"{\"a\":2}"[..])
        );
        assert_eq!(&*first.stream_key, key.as_str());
        assert!(
            first.traceparent.starts_with("00-"),
            "{}",
            first.traceparent
        );
        // Ingest starts each event's trace: a trace id of its own, not only a span id.
        let trace_id = |tp: &str| tp.split('-').nth(1).map(str::to_owned);
        assert_ne!(trace_id(&first.traceparent), trace_id(&second.traceparent));
        assert_eq!(trace_id(&first.traceparent).map(|t| t.len()), Some(32));
        let stream = status.get(&key).unwrap();
        assert_eq!((stream.received, stream.state), (2, StreamState::Connected));
        run.abort();
    }

    #[tokio::test]
    async fn an_unrouted_type_is_discovered_and_a_routed_one_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let group_only = format!(
            r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "http://{}/" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: a }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  eventGroups:
    - name: g
      events:
        - {{ name: r, dataSource: routed, destinations: [ {{ target: Mqtt, configuration: {{ topic: t }} }} ] }}
"#,
            listener.local_addr().unwrap()
        );
        let r = load_texts([("r.yaml", group_only.as_str())]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let plan = crate::routing::plan(&r).remove(0);
        let key = plan.key.clone();
        let status = Arc::new(Status::default());
        status.reconcile(std::slice::from_ref(&plan), &r);
        let (tx, mut rx) = mpsc::channel(8);
        let task = StreamTask::new(Arc::new(plan), settings(), status.clone(), tx);
        let run = tokio::spawn(task.run(CancellationToken::new()));
        let mut sock = accept_stream(&listener).await;
        sock.write_all(b"event: humidity\ndata: {\"rh\":40}\n\nevent: routed\ndata: 1\n\n")
            .await
            .unwrap();
        // The routed event comes after the unrouted one, which was recorded first.
        assert_eq!(rx.recv().await.unwrap().sse_event, "routed");
        assert_eq!(status.get(&key).unwrap().discovered_types, 1);
        let ep = status.discovery().endpoint("dev", "sse-0");
        let types = ep.lock();
        let names: Vec<&str> = types.by_type.keys().map(|k| &**k).collect();
        assert_eq!(names, ["humidity"]);
        assert_eq!(&*types.by_type["humidity"].sample, br#"{"rh":40}"#);
        drop(types);
        run.abort();
    }

    #[tokio::test]
    async fn every_byte_held_for_a_queued_event_counts_in_the_budget() {
        let budget = Budget::new(100 * 1024);
        let settings = StreamSettings {
            budget: budget.clone(),
            ..settings()
        };
        // Room in the queue for every event: only the budget holds the reader back.
        let (tx, mut rx) = mpsc::channel(8);
        let (listener, run, _status, key) = started_with(tx, settings).await;
        let mut sock = accept_stream(&listener).await;
        let data = "x".repeat(60 * 1024);
        let id = "i".repeat(EVENT_ID_BYTES_MAX);
        let events = format!("id: {id}\ndata: {data}\n\nid: 2\ndata: {data}\n\n");
        sock.write_all(events.as_bytes()).await.unwrap();
        let first = rx.recv().await.unwrap();
        let held = 100 * 1024 - budget.available();
        // Data, the checkpoint's and the event's copies of the id, the key, the CloudEvents id.
        let least = data.len() + 2 * id.len() + key.len() + first.id.len();
        assert!(
            held >= least,
            "{held} bytes held, at least {least} expected"
        );
        assert!(
            rx.try_recv().is_err(),
            "the second event is not queued while the first holds the budget"
        );
        drop(first);
        let second = rx.recv().await.unwrap();
        assert_eq!(second.sse_id, "2");
        drop(second);
        run.abort();
    }

    #[tokio::test]
    async fn stops_reading_when_the_forwarder_is_gone() {
        let (tx, mut rx) = mpsc::channel(1);
        let (listener, run, status, key) = started(tx).await;
        let mut sock = accept_stream(&listener).await;
        sock.write_all(b"data: one\n\n").await.unwrap();
        assert_eq!(&*rx.recv().await.unwrap().data, b"one");
        drop(rx);
        // The next event finds no forwarder: the task ends on its own (no cancellation), and
        // closes the connection.
        sock.write_all(b"data: two\n\n").await.unwrap();
        tokio::time::timeout(Duration::from_secs(20), run)
            .await
            .expect("the stream task did not stop")
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut rest));
        assert!(read.await.is_ok(), "the connection was left open");
        assert_eq!(status.get(&key).unwrap().state, StreamState::Idle);
    }
}
