//! A gRPC link to one peer address: a tonic channel over TCP or, when the peer is served in this
//! very process (`sse-connector` runs all three services in one), a direct call into the peer's
//! gRPC routes, with no HTTP/2 framing, socket or wake-up of another thread in between.
//!
//! A call still goes through the peer's generated server, its messages encoded and decoded on
//! the way, so a service cannot tell an in-process caller from a remote one; except for the
//! streaming methods a server also registers as [`Streams`] (the event streams, once per event):
//! those take and yield their messages as they are. Only a process that calls
//! [`serve_in_process`] ever links in-process; the services' own binaries never do.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Net(c) => f.debug_tuple("Net").field(c).finish(),
            Link::Local(_) => f.write_str("Local"),
        }
    }
}

impl Link {
    /// The in-process link to `addr` when a server of this process serves it, else `net()`.
    pub fn to(addr: SocketAddr, net: impl FnOnce() -> Channel) -> Link {
        Self::in_process(addr).unwrap_or_else(|| Link::Net(net()))
    }

    /// The in-process link to `addr`, when a server of this process serves it.
    pub fn in_process(addr: SocketAddr) -> Option<Link> {
        local(addr).map(Link::Local)
    }

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

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Woken whenever a server registers.
static REGISTERED: tokio::sync::Notify = tokio::sync::Notify::const_new();

fn servers() -> &'static Mutex<HashMap<SocketAddr, Local>> {
    static SERVERS: OnceLock<Mutex<HashMap<SocketAddr, Local>>> = OnceLock::new();
    SERVERS.get_or_init(Default::default)
}

/// Lets this process's servers be called in-process by its own clients (`sse-connector`).
pub fn serve_in_process() {
    ENABLED.store(true, Ordering::SeqCst);
}

fn local(addr: SocketAddr) -> Option<Local> {
    if !ENABLED.load(Ordering::SeqCst) {
        return None;
    }
    let servers = servers().lock().unwrap_or_else(|e| e.into_inner());
    servers.get(&addr).cloned()
}

/// Waits until a server of this process answers in-process calls to `addr` (it registers as it
/// starts serving). `sse-connector` starts a service only once the one it calls is registered:
/// a link made before that would go over TCP for good.
pub async fn served(addr: SocketAddr) {
    loop {
        let registered = REGISTERED.notified();
        tokio::pin!(registered);
        registered.as_mut().enable();
        if local(addr).is_some() {
            return;
        }
        registered.await;
    }
}

/// While alive, a server answers in-process calls to `addrs`; dropped when the server stops.
pub(crate) struct Registered(Vec<SocketAddr>);

impl Registered {
    /// Registers `routes` and `streams` under `addr` (and, for a wildcard address, under
    /// loopback with the same port, which is how a peer in this process names it); nothing
    /// unless enabled.
    pub(crate) fn new(addr: SocketAddr, routes: &Routes, streams: &Streams) -> Self {
        if !ENABLED.load(Ordering::SeqCst) {
            return Self(vec![]);
        }
        let mut addrs = vec![addr];
        if addr.ip().is_unspecified() {
            let loopback: std::net::IpAddr = match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            };
            addrs.push(SocketAddr::new(loopback, addr.port()));
        }
        let local = Local {
            routes: routes.clone(),
            streams: streams.clone(),
        };
        let mut servers = servers().lock().unwrap_or_else(|e| e.into_inner());
        for a in &addrs {
            servers.insert(*a, local.clone());
        }
        drop(servers);
        REGISTERED.notify_waiters();
        Self(addrs)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut servers = servers().lock().unwrap_or_else(|e| e.into_inner());
        for a in &self.0 {
            servers.remove(a);
        }
    }
}
