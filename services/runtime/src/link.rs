//! A gRPC link to one peer address: a tonic channel over TCP or, when the peer is served in this
//! very process (`sse-connector` runs all three services in one), a direct call into the peer's
//! gRPC routes, with no HTTP/2 framing, socket or wake-up of another thread in between.
//!
//! A call still goes through the peer's generated server, its messages encoded and decoded on
//! the way, so a service cannot tell an in-process caller from a remote one; except for the
//! streaming methods a server also registers as [`Streams`] (the event streams, once per event):
//! those take and yield their messages as they are.
//!
//! Nothing is global: a service links in-process only to the peers it is handed as [`Locals`]
//! (`sse-connector` hands each service the next one's [`Local`], taken from its
//! [`crate::Serving`] before anything runs); the services' own binaries hand none.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use tonic::body::Body;
use tonic::service::Routes;
use tonic::transport::Channel;
use tower_service::Service;

/// The error of a call on a [`Link`].
pub type LinkError = Box<dyn std::error::Error + Send + Sync>;

/// Where a client's calls go: over the network, or into routes served in this process.
#[derive(Clone)]
pub enum Link {
    /// A tonic channel (HTTP/2 over TCP).
    Net(Channel),
    /// A server in this process: its routes and its in-process streams, called directly.
    Local(Local),
}

/// One direction of an in-process stream call: the messages as they are, not encoded.
pub type Messages<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A streaming method served in-process: takes the caller's messages, returns the responses.
pub type StreamHandler<Req, Resp> = Arc<dyn Fn(Messages<Req>) -> Messages<Resp> + Send + Sync>;

/// The streaming methods a server also serves in-process without encoding, by method path
/// (`/package.Service/Method`): every event crosses them, so sparing protobuf and tonic's framing
/// there is measurable (99 -> 91 µs of CPU per event in one process, docs/performance.md).
#[derive(Clone, Default)]
pub struct Streams(Arc<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>);

impl Streams {
    /// Serves the method `path` in-process with `handler`.
    pub fn add<Req: 'static, Resp: 'static>(
        &mut self,
        path: &'static str,
        handler: impl Fn(Messages<Req>) -> Messages<Resp> + Send + Sync + 'static,
    ) {
        let handler: StreamHandler<Req, Resp> = Arc::new(handler);
        Arc::make_mut(&mut self.0).insert(path, Arc::new(handler));
    }

    fn get<Req: 'static, Resp: 'static>(&self, path: &str) -> Option<StreamHandler<Req, Resp>> {
        self.0
            .get(path)?
            .downcast_ref::<StreamHandler<Req, Resp>>()
            .cloned()
    }
}

/// A server of this process as its in-process callers reach it.
#[derive(Clone)]
pub struct Local {
    routes: Routes,
    streams: Streams,
}

impl Local {
    /// A server reached in-process through `routes` (every gRPC call) and `streams` (the
    /// streaming methods it also takes unencoded).
    pub fn new(routes: Routes, streams: Streams) -> Self {
        Self { routes, streams }
    }

    /// A server of in-process streams only (any other call is `UNIMPLEMENTED`): a test's fake
    /// peer is one closure, not a whole generated service.
    pub fn streams(streams: Streams) -> Self {
        Self::new(tonic::service::RoutesBuilder::default().routes(), streams)
    }
}

/// The peers of this process a service calls in-process, by the address its peer URL resolves
/// to; every other address is reached over the network.
#[derive(Clone, Default)]
pub struct Locals(Arc<HashMap<SocketAddr, Local>>);

impl Locals {
    /// Calls to `addr` go to `local`.
    pub fn with(mut self, addr: SocketAddr, local: Local) -> Self {
        Arc::make_mut(&mut self.0).insert(addr, local);
        self
    }

    /// The server `addr` names in this process, if it was handed one.
    pub fn get(&self, addr: SocketAddr) -> Option<Link> {
        self.0.get(&addr).cloned().map(Link::Local)
    }
}

impl std::fmt::Debug for Locals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Net(c) => f.debug_tuple("Net").field(c).finish(),
            Link::Local(_) => f.write_str("Local"),
        }
    }
}

impl Link {
    /// The peer's in-process handler of the streaming method `path` (with these message
    /// types), when the peer is in this process and registered one: call it instead of the
    /// generated client, and the messages go as they are.
    pub fn stream<Req: 'static, Resp: 'static>(
        &self,
        path: &str,
    ) -> Option<StreamHandler<Req, Resp>> {
        match self {
            Link::Net(_) => None,
            Link::Local(l) => l.streams.get(path),
        }
    }
}

impl Service<http::Request<Body>> for Link {
    type Response = http::Response<Body>;
    type Error = LinkError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, LinkError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        match self {
            Link::Net(c) => Service::poll_ready(c, cx).map_err(Into::into),
            Link::Local(l) => Service::<http::Request<Body>>::poll_ready(&mut l.routes, cx)
                .map_err(|e| match e {}),
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            Link::Net(c) => {
                let f = c.call(req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Link::Local(l) => {
                let f = l.routes.call(req);
                Box::pin(async move { f.await.map_err(|e| match e {}) })
            }
        }
    }
}
