//! Which schema address each SSE stream goes to, and the lane of each address: rendezvous hashing
//! of the stream key over the addresses whose Process stream is not down, so every event of one
//! SSE stream travels, in order, on one Process stream; when the address set or a lane's health
//! changes, the SSE streams that moved re-send their unacknowledged events on their new lane.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use sse_proto::v1 as pb;
use sse_runtime::peers::{self, Peer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::session::send;
use super::{Forwarder, State};
use crate::grpc;

/// Which schema address each SSE stream goes to: rendezvous hashing of the stream key over the
/// current address set, so every event of one stream travels, in order, on one Process stream.
#[derive(Debug, Default)]
pub struct Router {
    peers: Vec<Peer>,
    cache: foldhash::HashMap<String, Option<SocketAddr>>,
}

impl Router {
    /// A router over `peers`.
    pub fn new(peers: Vec<Peer>) -> Self {
        Self {
            peers,
            cache: foldhash::HashMap::default(),
        }
    }

    /// The current address set.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The address the stream `key` goes to; `None` while no address is known.
    pub fn owner(&mut self, key: &str) -> Option<SocketAddr> {
        if let Some(a) = self.cache.get(key) {
            return *a;
        }
        let a = peers::owner(key, &self.peers).map(|p| p.addr);
        self.cache.insert(key.to_string(), a);
        a
    }

    /// Switches to a new address set; returns the previous one.
    pub fn replace(&mut self, peers: Vec<Peer>) -> Vec<Peer> {
        self.cache.clear();
        std::mem::replace(&mut self.peers, peers)
    }
}

/// One schema address and its Process stream (open, being opened, or waiting to retry).
pub(super) struct Lane {
    /// Failed to open or broke, and not open again yet: its SSE streams go elsewhere meanwhile.
    pub(super) down: bool,
    /// The number of its latest session: answers of an older one are stale.
    pub(super) session: u64,
    /// Where requests of its open Process stream go; `None` while not open.
    pub(super) tx: Option<mpsc::UnboundedSender<pb::ProcessRequest>>,
    /// When to try opening it again, after a failure.
    pub(super) retry_at: Option<Instant>,
    /// How long to wait before the next attempt.
    pub(super) backoff: sse_runtime::Backoff,
    /// Whether a Process stream of it was ever open: what it sends when it opens again is
    /// counted as re-sent.
    pub(super) was_open: bool,
}

impl Lane {
    /// A lane not opened yet.
    fn new() -> Self {
        Self {
            down: false,
            session: 0,
            tx: None,
            retry_at: None,
            backoff: sse_runtime::Backoff::standard(),
            was_open: false,
        }
    }
}

impl Forwarder {
    /// Follows a new address set: closes the streams of removed addresses, opens streams to new
    /// ones, and moves SSE streams as [`Forwarder::reroute`] says.
    pub(super) fn on_peers(&self, st: &mut State, next: Vec<Peer>) {
        if next == st.all {
            return;
        }
        st.all = next.clone();
        st.lanes
            .retain(|addr, _| next.iter().any(|p| p.addr == *addr));
        for p in &next {
            if let std::collections::btree_map::Entry::Vacant(slot) = st.lanes.entry(p.addr) {
                slot.insert(Lane::new());
                self.start(st, p.addr);
            }
        }
        tracing::info!(
            schema = ?next.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
            "schema addresses changed"
        );
        self.reroute(st, None);
    }

    /// Assigns the SSE streams over the addresses that are not down (all of them when every one
    /// is), and re-sends the unacknowledged events of every SSE stream that moved to an open
    /// Process stream (except `opening`'s, which re-sends all its own; the others re-send when
    /// theirs opens). At least once: an event may then arrive twice, with the same id.
    pub(super) fn reroute(&self, st: &mut State, opening: Option<SocketAddr>) {
        let mut live: Vec<Peer> = st
            .all
            .iter()
            .filter(|p| st.lanes.get(&p.addr).is_some_and(|l| !l.down))
            .cloned()
            .collect();
        if live.is_empty() {
            live = st.all.clone();
        }
        if live.as_slice() == st.router.peers() {
            return;
        }
        let old = st.router.replace(live);
        let mut moved: BTreeMap<SocketAddr, Vec<pb::Event>> = BTreeMap::new();
        for e in st.inflight.iter() {
            let before = peers::owner(&e.stream_key, &old).map(|p| p.addr);
            let after = st.router.owner(&e.stream_key);
            if let Some(a) = after.filter(|a| before != Some(*a) && opening != Some(*a)) {
                moved.entry(a).or_default().push(grpc::event(e));
            }
        }
        let mut resent = 0;
        for (addr, events) in moved {
            if let Some(tx) = st.lanes.get(&addr).and_then(|l| l.tx.as_ref()) {
                resent += events.len();
                send(tx, events, &mut st.asked);
            }
        }
        self.meters.resent(resent);
        tracing::info!(
            live = ?st.router.peers().iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
            resent,
            "SSE streams reassigned over the schema addresses"
        );
    }

    /// Retries every lane whose backoff is over.
    pub(super) fn start_due(&self, st: &mut State) {
        let now = Instant::now();
        let due: Vec<SocketAddr> = st
            .lanes
            .iter()
            .filter(|(_, l)| l.retry_at.is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            self.start(st, addr);
        }
    }
}

/// Sends new events on the Process stream of their SSE stream's address; events whose address
/// has no open stream wait in flight and go when it opens.
pub(super) fn dispatch(st: &mut State, events: Vec<pb::Event>) {
    let mut by_lane: BTreeMap<SocketAddr, Vec<pb::Event>> = BTreeMap::new();
    for e in events {
        if let Some(a) = st.router.owner(&e.stream_key) {
            by_lane.entry(a).or_default().push(e);
        }
    }
    for (addr, events) in by_lane {
        if let Some(tx) = st.lanes.get(&addr).and_then(|l| l.tx.as_ref()) {
            send(tx, events, &mut st.asked);
        }
    }
}
