//! A gRPC link to one peer address: a tonic channel over TCP or, when the peer is served in this
//! very process (`sse-connector` runs all three services in one), a direct call into the peer's
//! gRPC routes, with no HTTP/2 framing, socket or wake-up of another thread in between.
//!
//! Messages are still encoded and decoded on the way, and a call still goes through the peer's
//! generated server, so a service cannot tell an in-process caller from a remote one. Only a
//! process that calls [`serve_in_process`] ever links in-process; the services' own binaries
//! never do.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

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
    /// The routes of a server in this process, called directly.
    Local(Routes),
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
}

impl Service<http::Request<Body>> for Link {
    type Response = http::Response<Body>;
    type Error = LinkError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, LinkError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), LinkError>> {
        match self {
            Link::Net(c) => Service::poll_ready(c, cx).map_err(Into::into),
            Link::Local(r) => {
                Service::<http::Request<Body>>::poll_ready(r, cx).map_err(|e| match e {})
            }
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            Link::Net(c) => {
                let f = c.call(req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Link::Local(r) => {
                let f = r.call(req);
                Box::pin(async move { f.await.map_err(|e| match e {}) })
            }
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);

fn servers() -> &'static Mutex<HashMap<SocketAddr, Routes>> {
    static SERVERS: OnceLock<Mutex<HashMap<SocketAddr, Routes>>> = OnceLock::new();
    SERVERS.get_or_init(Default::default)
}

/// Lets this process's servers be called in-process by its own clients (`sse-connector`).
pub fn serve_in_process() {
    ENABLED.store(true, Ordering::SeqCst);
}

fn local(addr: SocketAddr) -> Option<Routes> {
    if !ENABLED.load(Ordering::SeqCst) {
        return None;
    }
    let servers = servers().lock().unwrap_or_else(|e| e.into_inner());
    servers.get(&addr).cloned()
}

/// While alive, `routes` answer in-process calls to `addrs`; dropped when the server stops.
pub(crate) struct Registered(Vec<SocketAddr>);

impl Registered {
    /// Registers `routes` under `addr` (and, for a wildcard address, under loopback with the same
    /// port, which is how a peer in this process names it); nothing unless enabled.
    pub(crate) fn new(addr: SocketAddr, routes: &Routes) -> Self {
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
        let mut servers = servers().lock().unwrap_or_else(|e| e.into_inner());
        for a in &addrs {
            servers.insert(*a, routes.clone());
        }
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
