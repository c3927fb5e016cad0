//! A small OTLP receiver (opentelemetry-proto on tonic and hyper) standing in for a collector,
//! which cannot be installed here: the published `TraceService`, `MetricsService` and
//! `LogsService` `Export` calls over gRPC (plaintext or TLS), or OTLP/HTTP with protobuf bodies
//! (`POST /v1/traces`, `/v1/metrics`, `/v1/logs`), each recorded flattened.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Span name.
    pub name: String,
    /// Trace id, lowercase hex.
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// Parent span id, lowercase hex (empty for a root).
    pub parent_span_id: String,
    /// Span kind, as OTLP numbers it (3: client, 4: producer, 5: consumer).
    pub kind: i32,
    /// The span's string, integer and boolean attributes, as text.
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// One received metric (its data points are not kept), flattened.
#[derive(Debug, Clone)]
pub struct MetricRecord {
    /// `service.name` of the exporting process.
    pub service: String,
    /// The instrument's OTel name (e.g. `sse_connector.labels.folded`).
    pub name: String,
}

/// One received log record, flattened.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// `service.name` of the exporting process.
    pub service: String,
    /// Severity text (`WARN`, `INFO`, ...).
    pub severity: String,
    /// The message, when the body is a string.
    pub body: String,
    /// Trace id, lowercase hex (empty when the record has none).
    pub trace_id: String,
    /// Span id, lowercase hex (empty when the record has none).
    pub span_id: String,
}

/// Everything received, by whichever transport.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    metrics: Arc<Mutex<Vec<MetricRecord>>>,
    logs: Arc<Mutex<Vec<LogRecord>>>,
}

fn push<T>(to: &Mutex<Vec<T>>, records: Vec<T>) {
    if let Ok(mut v) = to.lock() {
        v.extend(records);
    }
}

fn string(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

fn service_name(r: Option<&Resource>) -> String {
    let attr = r.and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"));
    string(attr.and_then(|a: &KeyValue| a.value.as_ref()))
}

impl Collector {
    fn add_spans(&self, req: ExportTraceServiceRequest) {
        let mut out = Vec::new();
        for rs in req.resource_spans {
            let service = service_name(rs.resource.as_ref());
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                out.push(SpanRecord {
                    service: service.clone(),
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    kind: s.kind,
                    attributes: s
                        .attributes
                        .iter()
                        .filter_map(|a| {
                            let text = match a.value.as_ref()?.value.as_ref()? {
                                Value::StringValue(v) => v.clone(),
                                Value::IntValue(v) => v.to_string(),
                                Value::BoolValue(v) => v.to_string(),
                                _ => return None,
                            };
                            Some((a.key.clone(), text))
                        })
                        .collect(),
                });
            }
        }
        push(&self.spans, out);
    }

    fn add_metrics(&self, req: ExportMetricsServiceRequest) {
        let mut out = Vec::new();
        for rm in req.resource_metrics {
            let service = service_name(rm.resource.as_ref());
            for m in rm.scope_metrics.into_iter().flat_map(|sm| sm.metrics) {
                out.push(MetricRecord {
                    service: service.clone(),
                    name: m.name,
                });
            }
        }
        push(&self.metrics, out);
    }

    fn add_logs(&self, req: ExportLogsServiceRequest) {
        let mut out = Vec::new();
        for rl in req.resource_logs {
            let service = service_name(rl.resource.as_ref());
            for l in rl.scope_logs.into_iter().flat_map(|sl| sl.log_records) {
                out.push(LogRecord {
                    service: service.clone(),
                    severity: l.severity_text,
                    body: string(l.body.as_ref()),
                    trace_id: hex(&l.trace_id),
                    span_id: hex(&l.span_id),
                });
            }
        }
        push(&self.logs, out);
    }
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.add_spans(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.add_metrics(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.add_logs(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A TLS connection accepted by the gRPC receiver.
struct TlsIo(tokio_rustls::server::TlsStream<TcpStream>);

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

impl tokio::io::AsyncRead for TlsIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A running receiver; stops when dropped.
pub struct OtlpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    tls: bool,
    collector: Collector,
    token: CancellationToken,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl OtlpReceiver {
    /// Starts an OTLP/gRPC receiver on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let me = Self::new(&listener, false)?;
        let (collector, t) = (me.collector.clone(), me.token.clone());
        tokio::spawn(async move {
            let _ = grpc(collector)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    t.cancelled_owned(),
                )
                .await;
        });
        Ok(me)
    }

    /// Starts an OTLP/gRPC receiver over TLS presenting `tls` (its ALPN set to `h2`).
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let me = Self::new(&listener, true)?;
        let mut config = (*tls).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let incoming = futures::stream::unfold((listener, acceptor), |(l, a)| async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else {
                    continue;
                };
                // A failed handshake (a client not trusting us) is that client's problem.
                if let Ok(tls) = a.accept(tcp).await {
                    return Some((Ok::<_, std::io::Error>(TlsIo(tls)), (l, a)));
                }
            }
        });
        let (collector, t) = (me.collector.clone(), me.token.clone());
        tokio::spawn(async move {
            let _ = grpc(collector)
                .serve_with_incoming_shutdown(incoming, t.cancelled_owned())
                .await;
        });
        Ok(me)
    }

    /// Starts an OTLP/HTTP (protobuf) receiver on a free loopback port.
    pub async fn start_http() -> anyhow::Result<Self> {
        Self::serve_http(None).await
    }

    /// Starts an OTLP/HTTP (protobuf) receiver over TLS presenting `tls`.
    pub async fn start_http_tls(tls: Arc<rustls::ServerConfig>) -> anyhow::Result<Self> {
        Self::serve_http(Some(tokio_rustls::TlsAcceptor::from(tls))).await
    }

    async fn serve_http(tls: Option<tokio_rustls::TlsAcceptor>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let me = Self::new(&listener, tls.is_some())?;
        let (collector, t) = (me.collector.clone(), me.token.clone());
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    () = t.cancelled() => return,
                };
                let (collector, tls) = (collector.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let collector = collector.clone();
                        async move { Ok::<_, Infallible>(http_export(&collector, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => {
                            http.serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                                .await
                        }
                        Some(a) => match a.accept(tcp).await {
                            Ok(io) => {
                                http.serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                                    .await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        Ok(me)
    }

    fn new(listener: &TcpListener, tls: bool) -> anyhow::Result<Self> {
        Ok(Self {
            addr: listener.local_addr()?,
            tls,
            collector: Collector::default(),
            token: CancellationToken::new(),
        })
    }

    /// `http://<addr>` (`https://localhost:<port>` over TLS), for the endpoint variables.
    pub fn endpoint(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// The spans received so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.collector
            .spans
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// The metrics received so far (one record per metric per export).
    pub fn metrics(&self) -> Vec<MetricRecord> {
        self.collector
            .metrics
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// The log records received so far.
    pub fn logs(&self) -> Vec<LogRecord> {
        self.collector
            .logs
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }
}

fn grpc(collector: Collector) -> tonic::transport::server::Router {
    tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .add_service(MetricsServiceServer::new(collector.clone()))
        .add_service(LogsServiceServer::new(collector))
}

/// The largest OTLP/HTTP body the receiver reads.
const MAX_BODY: usize = 16 << 20;

/// One OTLP/HTTP export: decodes the protobuf body by path, answers an empty success.
async fn http_export(
    collector: &Collector,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let status = |s: u16| {
        let mut r = http::Response::new(Full::new(Bytes::new()));
        *r.status_mut() = http::StatusCode::from_u16(s).unwrap_or_default();
        r
    };
    if req.method() != http::Method::POST {
        return status(405);
    }
    let path = req.uri().path().to_string();
    let Ok(body) = Limited::new(req.into_body(), MAX_BODY).collect().await else {
        return status(400);
    };
    let body = body.to_bytes();
    let ok = match path.as_str() {
        "/v1/traces" => ExportTraceServiceRequest::decode(body).map(|r| collector.add_spans(r)),
        "/v1/metrics" => {
            ExportMetricsServiceRequest::decode(body).map(|r| collector.add_metrics(r))
        }
        "/v1/logs" => ExportLogsServiceRequest::decode(body).map(|r| collector.add_logs(r)),
        _ => return status(404),
    };
    if ok.is_err() {
        return status(400);
    }
    let mut r = status(200);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    r
}
