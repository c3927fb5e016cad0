//! gRPC serving: a tonic server with `grpc.health.v1`, reflection (v1 and v1alpha, since grpcurl
//! 1.8 speaks only v1alpha), callers' trace context joined per request, and graceful shutdown.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::link::{Local, Messages};
use crate::mtls::Security;
use crate::mtls::accept;
use crate::mtls::guard::GuardLayer;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection descriptors are invalid (a build defect).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The health-only listener cannot be bound (a configuration error).
    #[error("cannot listen on {addr} (--health-listen): {source}")]
    HealthBind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds `addr` and prints `<service> listening on <addr>` on stdout (port 0 picks a free port),
/// so scripts and tests learn the address without guessing.
pub async fn bind(addr: SocketAddr, service: &str) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{service} listening on {local}");
    let _ = out.flush();
    Ok(listener)
}

/// A gRPC server under construction: health (and its reporter) and reflection are already in.
pub struct Serving {
    /// Health of the process; a service sets it serving once its dependencies are connected.
    pub health: HealthReporter,
    routes: RoutesBuilder,
    streams: crate::link::Streams,
    descriptors: Vec<&'static [u8]>,
    /// The services reflection lists: those added, health and reflection itself, and not the
    /// other services the descriptors describe (a call to one would be Unimplemented).
    names: Vec<&'static str>,
    security: Security,
    service: &'static str,
}

impl Serving {
    /// A server whose reflection describes `descriptor` (an encoded `FileDescriptorSet`).
    pub fn new(descriptor: &'static [u8]) -> Self {
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Self {
            health,
            routes,
            streams: Default::default(),
            // google.rpc's error details too, so a client reading reflection (grpcurl) can
            // show a refusal's field violations instead of an undecodable `Any`.
            descriptors: vec![
                descriptor,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_types::pb::FILE_DESCRIPTOR_SET,
            ],
            names: vec![
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
            ],
            security: Security::plaintext(),
            service: "grpc",
        }
    }

    /// Serves with `security` (mTLS and the access table, or plaintext with admin writes off
    /// outside loopback, and the health-only listener); `service` names it in logs and in the
    /// health listener's `<service> health listening on <addr>` line.
    pub fn secure(mut self, security: Security, service: &'static str) -> Self {
        self.security = security;
        self.service = service;
        self
    }

    /// Adds one of the service's own gRPC services.
    pub fn add_service<S>(mut self, svc: S) -> Self
    where
        S: tower_service::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(svc);
        self
    }

    /// Also serves the streaming method `path` (one of the services added) to callers in this
    /// process with its messages as they are (see [`crate::link`]); its gRPC route stays for
    /// everyone else.
    pub fn add_in_process_stream<Req, Resp>(
        mut self,
        path: &'static str,
        handler: impl Fn(Messages<Req>) -> Messages<Resp> + Send + Sync + 'static,
    ) -> Self
    where
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        self.streams.add(path, handler);
        self
    }

    /// This server as callers in this process reach it: its routes (reflection included) and
    /// its in-process streams, usable before [`Serving::run`] starts (`sse-connector` hands it to
    /// the service that calls this one, so no call of theirs ever goes over loopback TCP).
    pub fn local(&self) -> Result<Local, ServeError> {
        Ok(Local::new(self.routes()?, self.streams.clone()))
    }

    /// The service's routes with both reflection versions, which list the services this server
    /// serves, so a v1alpha client (grpcurl 1.8) and a v1 client list the same thing.
    fn routes(&self) -> Result<Routes, ServeError> {
        let mut v1 =
            tonic_reflection::server::Builder::configure().include_reflection_service(false);
        let mut v1alpha =
            tonic_reflection::server::Builder::configure().include_reflection_service(false);
        let reflection: [&'static [u8]; 2] = [
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ];
        for d in self.descriptors.iter().chain(reflection.iter()) {
            v1 = v1.register_encoded_file_descriptor_set(d);
            v1alpha = v1alpha.register_encoded_file_descriptor_set(d);
        }
        for name in &self.names {
            v1 = v1.with_service_name(*name);
            v1alpha = v1alpha.with_service_name(*name);
        }
        let mut routes = self.routes.clone();
        routes.add_service(v1.build_v1()?);
        routes.add_service(v1alpha.build_v1alpha()?);
        Ok(routes.routes())
    }

    /// Serves until `shutdown` is cancelled: health turns NOT_SERVING first, then open calls
    /// finish (stream handlers watch the same token) and the server returns.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        let routes = self.routes()?;
        // `liveness` answers SERVING while the process serves at all: liveness probes use it, so a
        // pod whose broker is away is taken out of rotation (readiness) but not restarted.
        self.health
            .set_service_status("liveness", ServingStatus::Serving)
            .await;
        let health = self.health.clone();
        let stop = shutdown.clone();
        let signal = async move {
            stop.cancelled().await;
            health
                .set_service_status("", ServingStatus::NotServing)
                .await;
        };
        let local = listener.local_addr();
        // The health-only listener outlives the main server's drain, so probes keep answering
        // (NOT_SERVING) until the process is done.
        let health_stop = CancellationToken::new();
        let _stop_health = health_stop.clone().drop_guard();
        let health_only = match self.security.health_listen {
            Some(addr) => {
                Some(health_server(addr, self.service, &self.health, health_stop.clone()).await?)
            }
            None => None,
        };
        let listen = local.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let policy = Arc::new(self.security.policy(listen, self.service));
        let server = tonic::transport::Server::builder()
            .trace_fn(request_span)
            .layer(GuardLayer(policy))
            .add_routes(routes);
        let served = match &self.security.mtls {
            Some(mtls) => {
                let incoming = accept::incoming(listener, mtls.clone(), shutdown.clone());
                server.serve_with_incoming_shutdown(incoming, signal).await
            }
            None => {
                // `Server::tcp_nodelay` applies only to listeners tonic binds itself; accepted
                // sockets of our own listener get it here (acks and flow-control updates go
                // out at once).
                let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
                server.serve_with_incoming_shutdown(incoming, signal).await
            }
        };
        health_stop.cancel();
        if let Some(h) = health_only {
            let _ = h.await;
        }
        Ok(served?)
    }
}

/// Binds the plaintext health-only listener and serves `grpc.health.v1` on it (the same
/// statuses as the main server) until `stop`.
async fn health_server(
    addr: SocketAddr,
    service: &str,
    health: &HealthReporter,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let listener = bind(addr, &format!("{service} health"))
        .await
        .map_err(|source| ServeError::HealthBind { addr, source })?;
    let health = HealthServer::new(HealthService::from_health_reporter(health.clone()));
    Ok(tokio::spawn(async move {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let r = tonic::transport::Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, "health listener stopped");
        }
    }))
}

/// One span per gRPC call, joined to the caller's trace; health and reflection stay untraced.
fn request_span(req: &http::Request<()>) -> tracing::Span {
    let path = req.uri().path();
    if path.starts_with("/grpc.health.") || path.starts_with("/grpc.reflection.") {
        return tracing::Span::none();
    }
    let span = tracing::info_span!("grpc.request", otel.name = %path, rpc.system = "grpc");
    let header = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    crate::telemetry::set_parent(&span, header("traceparent"), header("tracestate"));
    span
}
