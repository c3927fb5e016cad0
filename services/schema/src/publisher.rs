//! The connection to the publisher: every address its name resolves to (a headless Service: one
//! per publisher pod; or a list, `http://a,b:50053`), followed as it changes, with one lazily
//! connected gRPC channel per address shared by every stream; a reachability probe (the
//! publisher's `grpc.health.v1` Check) with backoff, and the readiness follower that says
//! whether a publisher is reachable now (health SERVING) or none is (NOT_SERVING).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sse_runtime::Backoff;
use sse_runtime::link::Link;
use sse_runtime::peers::{self, Dialer, Peer, Peers};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// How often, while a publisher is reachable, it is checked again: losing every publisher
/// turns this service NOT_SERVING within about this long (plus the probe's timeout).
const RECHECK_EVERY: Duration = Duration::from_secs(2);

/// How long an address whose stream failed is left out before it is probed again.
const DOWN_FOR: Duration = Duration::from_secs(10);
/// How long probing a left-out address may hold up its caller (forwarding waits meanwhile).
const REPROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a reachability probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The publisher's addresses and a channel to each; cheap to clone.
#[derive(Debug, Clone)]
pub struct Publishers {
    peers: Peers,
    channels: Arc<Mutex<HashMap<SocketAddr, Link>>>,
    /// Addresses whose stream failed, left out until the instant given.
    down: Arc<Mutex<HashMap<SocketAddr, Instant>>>,
    /// How an address is reached: TCP (mTLS with this service's certificates, if any), or the
    /// publisher of this process in `sse-connector`.
    dialer: Dialer,
}

/// The publisher at `uri`, reached through `dialer`: resolves it to every address now and
/// periodically (must be called inside a tokio runtime).
pub fn channel(uri: &Uri, dialer: Dialer) -> Publishers {
    let peers = match peers::parse_targets(&uri.to_string()) {
        Ok(targets) => Peers::spawn(targets, peers::RESOLVE_EVERY),
        Err(e) => {
            // Config validation rules this out; with no address nothing is ever reachable.
            tracing::error!(publisher = %uri, error = %e, "publisher address unusable");
            Peers::manual(Vec::new()).1
        }
    };
    Publishers::new(peers).with_dialer(dialer)
}

impl Publishers {
    /// Publishers at the addresses `peers` yields.
    pub fn new(peers: Peers) -> Self {
        Self {
            peers,
            channels: Arc::default(),
            down: Arc::default(),
            dialer: Dialer::default(),
        }
    }

    /// Reaches the publishers through `dialer` (by default: plaintext TCP).
    pub fn with_dialer(mut self, dialer: Dialer) -> Self {
        self.dialer = dialer;
        self
    }

    fn down(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Instant>> {
        self.down.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Leaves `addr` out for a while: its stream failed (the pod may be gone while the name
    /// still lists it, or a listed host is down).
    pub fn mark_down(&self, addr: SocketAddr) {
        self.down().insert(addr, Instant::now() + DOWN_FOR);
        self.refresh();
    }

    /// When the earliest address left out is due to be probed again.
    pub fn next_probe(&self) -> Option<Instant> {
        self.down().values().min().copied()
    }

    /// The addresses to use now: the current set without those left out (all of them when every
    /// one is). An address whose time out is over is probed first (for at most a second) and used
    /// only if it answers.
    pub async fn live(&self) -> Vec<Peer> {
        let all = self.current();
        let now = Instant::now();
        let due: Vec<Peer> = {
            let down = self.down();
            all.iter()
                .filter(|p| down.get(&p.addr).is_some_and(|t| *t <= now))
                .cloned()
                .collect()
        };
        for p in due {
            let ok = probe(&self.channel_to(&p), p.addr, REPROBE_TIMEOUT).await;
            let mut down = self.down();
            if ok {
                down.remove(&p.addr);
            } else {
                down.insert(p.addr, Instant::now() + DOWN_FOR);
            }
        }
        let mut down = self.down();
        down.retain(|a, _| all.iter().any(|p| p.addr == *a));
        let live: Vec<Peer> = all
            .iter()
            .filter(|p| !down.contains_key(&p.addr))
            .cloned()
            .collect();
        if live.is_empty() { all } else { live }
    }

    /// The current sorted address set.
    pub fn current(&self) -> Vec<Peer> {
        self.peers.current()
    }

    /// A receiver of the address set, to follow its changes.
    pub fn subscribe(&self) -> watch::Receiver<Vec<Peer>> {
        self.peers.subscribe()
    }

    /// Asks for the addresses to be resolved again soon (after a failure).
    pub fn refresh(&self) {
        self.peers.refresh();
    }

    /// The channel to one address; it connects on first use and reconnects by itself.
    pub fn channel_to(&self, peer: &Peer) -> Link {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.len() > 64 {
            let live = self.peers.current();
            channels.retain(|a, _| live.iter().any(|p| p.addr == *a));
        }
        channels
            .entry(peer.addr)
            .or_insert_with(|| {
                let endpoint = Endpoint::from(peer.uri.clone())
                    .connect_timeout(Duration::from_secs(5))
                    .http2_keep_alive_interval(Duration::from_secs(20))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(true);
                self.dialer.connect_lazy(&endpoint, peer.addr)
            })
            .clone()
    }
}

/// Probes one publisher address: true when it answered the health check at all.
async fn probe(channel: &Link, addr: SocketAddr, timeout: Duration) -> bool {
    let mut client = HealthClient::new(channel.clone());
    let req = HealthCheckRequest {
        service: String::new(),
    };
    match tokio::time::timeout(timeout, client.check(req)).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => {
            tracing::debug!(%addr, error = %status.message(), "publisher not reachable");
            false
        }
        Err(_) => false,
    }
}

/// Probes the publisher once: true when one of its addresses answered the health check at all.
pub async fn reachable(publishers: &Publishers) -> bool {
    let probes = publishers.current().into_iter().map(|p| {
        let channel = publishers.channel_to(&p);
        async move { probe(&channel, p.addr, PROBE_TIMEOUT).await }
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .any(|ok| ok)
}

/// Waits, with backoff, until the publisher is reachable. False when `token` was cancelled first.
pub async fn wait_reachable(publishers: &Publishers, token: &CancellationToken) -> bool {
    let mut backoff = Backoff::standard().with_healthy_after(Duration::from_secs(30));
    let mut attempts = 0u32;
    loop {
        tokio::select! {
            _ = token.cancelled() => return false,
            ok = reachable(publishers) => if ok { return true },
        }
        publishers.refresh();
        attempts += 1;
        if attempts == 5 {
            tracing::warn!("publisher still not reachable; retrying");
        }
        tokio::select! {
            _ = token.cancelled() => return false,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Follows whether a publisher is reachable into `ready` (false until one has been reached,
/// false again once none answers), until `token` is cancelled. Health follows `ready`.
pub async fn follow_reachable(
    publishers: Publishers,
    ready: watch::Sender<bool>,
    token: CancellationToken,
) {
    while wait_reachable(&publishers, &token).await {
        tracing::info!("publisher reached; serving");
        ready.send_replace(true);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(RECHECK_EVERY) => {}
            }
            let ok = tokio::select! {
                () = token.cancelled() => return,
                ok = reachable(&publishers) => ok,
            };
            if !ok {
                break;
            }
        }
        tracing::warn!("no publisher reachable; not serving");
        ready.send_replace(false);
        publishers.refresh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(addr: &str) -> Peer {
        Peer {
            addr: addr.parse().unwrap(),
            uri: Uri::from_static("http://publisher:50053"),
        }
    }

    #[tokio::test]
    async fn an_address_marked_down_is_left_out_unless_all_are() {
        let (a, b) = (peer("10.0.0.1:50053"), peer("10.0.0.2:50053"));
        let (_set, peers) = Peers::manual(vec![a.clone(), b.clone()]);
        let p = Publishers::new(peers);
        assert_eq!(p.live().await, [a.clone(), b.clone()]);
        assert_eq!(p.next_probe(), None);
        p.mark_down(b.addr);
        assert_eq!(p.live().await.as_slice(), std::slice::from_ref(&a));
        assert!(p.next_probe().is_some());
        p.mark_down(a.addr);
        assert_eq!(
            p.live().await,
            [a, b],
            "with every address down, try them all"
        );
    }

    #[tokio::test]
    async fn unreachable_publisher_waits_until_cancelled() {
        // A port nothing listens on: bind, learn the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let uri: Uri = format!("http://127.0.0.1:{port}").parse().unwrap();
        let ch = channel(&uri, Dialer::default());
        assert!(!reachable(&ch).await);
        let token = CancellationToken::new();
        let t = token.clone();
        let waiter = tokio::spawn(async move { wait_reachable(&ch, &t).await });
        token.cancel();
        assert!(!waiter.await.unwrap());
    }
}
