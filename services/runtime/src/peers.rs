//! Client-side balancing over every address of a peer service: resolves its URL (a Kubernetes
//! headless Service name resolves to one address per ready pod) to all its addresses, re-resolves
//! periodically and on request (after a connection failure), and publishes the current sorted
//! set on a watch channel; [`owner`] assigns a key to one address by rendezvous hashing, and
//! [`Dialer`] opens a gRPC channel to one address under the peer's name.
//!
//! A peer is written `http://host:port`, or as a comma-separated list of them
//! (`http://a:50053,http://b:50053`), or as hosts sharing one scheme and port
//! (`http://a,b:50053`, which is also a valid URI, so it fits a `Uri`-typed flag).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, watch};
use tonic::transport::{Endpoint, Uri};

use crate::link::{Link, Locals};
use crate::mtls::Mtls;
use crate::mtls::connect::PeerIo;
use crate::rendezvous;
use crate::shown_url::shown;

/// How often the addresses are resolved again when nothing asks for it sooner.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(10);
/// Resolutions asked for (after failures) are at least this far apart.
const MIN_RESOLVE_GAP: Duration = Duration::from_secs(1);

/// Why a peer URL cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeersError {
    /// Nothing given.
    #[error("no peer address given")]
    Empty,
    /// One entry is not `http(s)://host:port` (held as [`crate::shown_url::shown`] shows it).
    #[error("peer {0:?}: expected http://host:port or https://host:port")]
    Invalid(String),
}

/// One peer URL: its name (for `:authority` and TLS) and where to resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `scheme://host:port` of this one host.
    pub uri: Uri,
    host: String,
    port: u16,
}

impl Target {
    /// The host to resolve.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Parses a peer: one URL, a comma-separated list of URLs, or comma-separated hosts sharing a
/// scheme and port (`http://a,b:50053`).
pub fn parse_targets(s: &str) -> Result<Vec<Target>, PeersError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(PeersError::Empty);
    }
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    // One URL whose host may be a list (`http://a,b:port/`), or a list of URLs.
    let entries = if parts.iter().skip(1).all(|p| !p.contains("://")) {
        vec![s]
    } else {
        parts.into_iter().filter(|p| !p.is_empty()).collect()
    };
    let mut out = Vec::new();
    for e in entries {
        out.extend(entry_targets(e).ok_or_else(|| PeersError::Invalid(shown(e)))?);
    }
    if out.is_empty() {
        return Err(PeersError::Empty);
    }
    Ok(out)
}

/// The targets of one entry, `scheme://host[,host...]:port[/...]`; `None` when it is malformed.
fn entry_targets(entry: &str) -> Option<Vec<Target>> {
    let (scheme, rest) = entry.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (hosts, port) = split_port(authority, scheme)?;
    hosts
        .split(',')
        .map(|h| target(scheme, h.trim(), port))
        .collect()
}

/// Splits `host:port` (an IPv6 host in brackets); without a port, the scheme's default.
fn split_port<'a>(authority: &'a str, scheme: &str) -> Option<(&'a str, u16)> {
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        (&authority[..=end], authority[end + 1..].strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default,
    };
    Some((host, port))
}

fn target(scheme: &str, host: &str, port: u16) -> Option<Target> {
    if host.is_empty() || host.contains(['@', '/', ' ']) {
        return None;
    }
    let uri: Uri = format!("{scheme}://{host}:{port}").parse().ok()?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Some(Target {
        uri,
        host: bare,
        port,
    })
}

/// One address of a peer, with the URL it was resolved from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The URL it came from (the `:authority` of requests).
    pub uri: Uri,
}

impl PartialOrd for Peer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Peer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.addr, self.uri.to_string()).cmp(&(other.addr, other.uri.to_string()))
    }
}

/// The current addresses of a peer service, kept up to date by a resolver task that stops once
/// every [`Peers`] clone and receiver is gone.
#[derive(Debug, Clone)]
pub struct Peers {
    rx: watch::Receiver<Vec<Peer>>,
    refresh: Arc<Notify>,
}

impl Peers {
    /// Starts resolving `targets` now and every `every` (and whenever [`Peers::refresh`] asks).
    /// Must be called inside a tokio runtime.
    pub fn spawn(targets: Vec<Target>, every: Duration) -> Self {
        let (tx, rx) = watch::channel(Vec::new());
        let refresh = Arc::new(Notify::new());
        tokio::spawn(resolve_loop(targets, every, tx, refresh.clone()));
        Self { rx, refresh }
    }

    /// A set changed only through the returned sender (tests, or addresses from elsewhere);
    /// keep it sorted.
    pub fn manual(peers: Vec<Peer>) -> (watch::Sender<Vec<Peer>>, Self) {
        let (tx, rx) = watch::channel(peers);
        let me = Self {
            rx,
            refresh: Arc::new(Notify::new()),
        };
        (tx, me)
    }

    /// A receiver of the sorted address set (empty until the first resolution succeeds).
    pub fn subscribe(&self) -> watch::Receiver<Vec<Peer>> {
        self.rx.clone()
    }

    /// The current sorted address set.
    pub fn current(&self) -> Vec<Peer> {
        self.rx.borrow().clone()
    }

    /// Asks for a resolution soon (after a connection failure: the peer may have moved).
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }
}

/// Resolves until every receiver is gone. A target that fails to resolve keeps its previous
/// addresses, so a DNS hiccup does not drop live peers.
async fn resolve_loop(
    targets: Vec<Target>,
    every: Duration,
    tx: watch::Sender<Vec<Peer>>,
    refresh: Arc<Notify>,
) {
    let mut known: BTreeMap<usize, BTreeSet<Peer>> = BTreeMap::new();
    loop {
        for (i, t) in targets.iter().enumerate() {
            match tokio::net::lookup_host((t.host.as_str(), t.port)).await {
                Ok(addrs) => {
                    let set: BTreeSet<Peer> = addrs
                        .map(|addr| Peer {
                            addr,
                            uri: t.uri.clone(),
                        })
                        .collect();
                    if set.is_empty() {
                        tracing::debug!(peer = %t.uri, "peer resolved to no address");
                    }
                    known.insert(i, set);
                }
                Err(e) => {
                    tracing::debug!(peer = %t.uri, error = %e, "cannot resolve peer; keeping its last addresses");
                }
            }
        }
        let mut all: Vec<Peer> = known.values().flatten().cloned().collect();
        all.sort();
        all.dedup();
        tx.send_if_modified(|cur| {
            if *cur == all {
                return false;
            }
            tracing::info!(
                peers = ?all.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
                "peer addresses changed"
            );
            *cur = all;
            true
        });
        // Nothing known yet (the peer's pods are not ready): look again soon.
        let wait = if tx.borrow().is_empty() {
            MIN_RESOLVE_GAP
        } else {
            every
        };
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = refresh.notified() => {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tokio::time::sleep(MIN_RESOLVE_GAP) => {}
                }
            }
        }
    }
}

/// The address, among `peers`, that `key` belongs to: the highest SHA-256 weight of (key,
/// address), so all of one key goes to one peer and a change of the set moves only the keys it
/// must. `None` for an empty set.
pub fn owner<'a>(key: &str, peers: &'a [Peer]) -> Option<&'a Peer> {
    peers.iter().max_by_key(|p| {
        (
            rendezvous::weight(key, p.addr.to_string().as_bytes()),
            p.addr,
        )
    })
}

/// How a service reaches its peer's addresses: over TCP (with mTLS when the service has
/// certificates), except the addresses it was handed a server of this process for.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    mtls: Option<Arc<Mtls>>,
    locals: Locals,
}

impl Dialer {
    /// Dials over TCP, with `mtls` when given, except to the addresses `locals` names.
    pub fn new(mtls: Option<Arc<Mtls>>, locals: Locals) -> Self {
        Self { mtls, locals }
    }

    /// A link that reaches `addr` but speaks to it as `endpoint` (its name, timeouts and
    /// keepalives); connects on first use and reconnects by itself.
    pub fn connect_lazy(&self, endpoint: &Endpoint, addr: SocketAddr) -> Link {
        self.locals.get(addr).unwrap_or_else(|| {
            Link::Net(endpoint.connect_with_connector_lazy(To {
                addr,
                mtls: self.mtls.clone(),
            }))
        })
    }

    /// Connects now to `addr`, speaking to it as `endpoint`.
    pub async fn connect(
        &self,
        endpoint: &Endpoint,
        addr: SocketAddr,
    ) -> Result<Link, tonic::transport::Error> {
        if let Some(link) = self.locals.get(addr) {
            return Ok(link);
        }
        let to = To {
            addr,
            mtls: self.mtls.clone(),
        };
        Ok(Link::Net(endpoint.connect_with_connector(to).await?))
    }
}

/// A connector to one fixed socket address, whatever the URI says, over mTLS when the service
/// has certificates (the URI's host is the name the peer's certificate must carry).
#[derive(Debug, Clone)]
struct To {
    addr: SocketAddr,
    mtls: Option<Arc<Mtls>>,
}

impl tower_service::Service<Uri> for To {
    type Response = TokioIo<PeerIo>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let (addr, mtls) = (self.addr, self.mtls.clone());
        Box::pin(async move {
            let io = crate::mtls::connect::connect(addr, &uri, mtls.as_deref()).await?;
            Ok(TokioIo::new(io))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hosts(s: &str) -> Vec<(String, u16, String)> {
        parse_targets(s)
            .unwrap()
            .into_iter()
            .map(|t| (t.host.clone(), t.port, t.uri.to_string()))
            .collect()
    }

    #[test]
    fn parses_one_url_lists_and_shared_port_hosts() {
        assert_eq!(
            hosts("http://schema:50052"),
            [("schema".into(), 50052, "http://schema:50052/".into())]
        );
        assert_eq!(
            hosts("http://127.0.0.1:1, http://127.0.0.2:2"),
            [
                ("127.0.0.1".into(), 1, "http://127.0.0.1:1/".into()),
                ("127.0.0.2".into(), 2, "http://127.0.0.2:2/".into())
            ]
        );
        assert_eq!(
            hosts("http://a,b:7/"),
            [
                ("a".into(), 7, "http://a:7/".into()),
                ("b".into(), 7, "http://b:7/".into())
            ]
        );
        assert_eq!(hosts("http://[::1]:9")[0].0, "::1");
        assert_eq!(hosts("http://pub")[0].1, 80);
        // the shared-port form is a valid URI, so `Uri`-typed flags take it
        assert!("http://a,b:7".parse::<Uri>().is_ok());
        assert_eq!(parse_targets(""), Err(PeersError::Empty));
        assert!(parse_targets("pub:1").is_err());
        assert!(parse_targets("ftp://pub:1").is_err());
        assert!(parse_targets("http://pub:x").is_err());
    }

    fn peer(s: &str) -> Peer {
        Peer {
            addr: s.parse().unwrap(),
            uri: Uri::from_static("http://p:1"),
        }
    }

    #[test]
    fn owner_is_stable_and_moves_only_keys_of_a_removed_peer() {
        let three = [peer("10.0.0.1:1"), peer("10.0.0.2:1"), peer("10.0.0.3:1")];
        let two = [three[0].clone(), three[2].clone()];
        let mut on = [0usize; 3];
        for i in 0..900 {
            let k = format!("dev-{i}/sse|http://x/{i}");
            let a = owner(&k, &three).unwrap();
            on[three.iter().position(|p| p == a).unwrap()] += 1;
            let b = owner(&k, &two).unwrap();
            if a.addr != three[1].addr {
                assert_eq!(a, b, "{k} moved though its peer stayed");
            }
        }
        assert!(on.iter().all(|&n| n > 200), "{on:?}");
        assert_eq!(owner("k", &[]), None);
    }

    #[tokio::test]
    async fn resolves_names_and_literal_lists_sorted() {
        let p = Peers::spawn(
            parse_targets("http://127.0.0.2,127.0.0.1:5").unwrap(),
            Duration::from_secs(60),
        );
        let mut rx = p.subscribe();
        let set = rx.wait_for(|s| s.len() == 2).await.unwrap().clone();
        assert_eq!(
            set.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
            ["127.0.0.1:5", "127.0.0.2:5"]
        );
        assert_eq!(set[0].uri.to_string(), "http://127.0.0.1:5/");
        let p = Peers::spawn(parse_targets("http://localhost:6").unwrap(), RESOLVE_EVERY);
        let mut rx = p.subscribe();
        let set = rx.wait_for(|s| !s.is_empty()).await.unwrap().clone();
        assert!(
            set.iter()
                .all(|p| p.addr.ip().is_loopback() && p.addr.port() == 6)
        );
        p.refresh();
    }
}
