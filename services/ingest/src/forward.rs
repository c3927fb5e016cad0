//! The `SchemaService.Process` streams to the schema service: one per address its name resolves
//! to (a headless Service: one per schema pod), each SSE stream assigned to one of them by
//! rendezvous hashing of its key, so the events of one SSE stream stay in order on one peer.
//! Sends routed events in batches, keeps every unacknowledged event in one bounded in-flight
//! window (a full window stops taking events, so readers block: backpressure), applies acks, and
//! after a broken stream reconnects with backoff and re-sends its unacknowledged events in order.
//! When the address set changes, the SSE streams of a removed address move to another one and
//! their unacknowledged events are re-sent there (at least once, same ids).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, SelectAll};
use futures::{Stream, StreamExt};
use prost::Message;
use sse_contract::batch::Batcher;
use sse_contract::drops;
use sse_contract::limits::{FORWARDED_EVENT_BYTES_MAX, GRPC_BATCH_BYTES, GRPC_MESSAGE_BYTES_MAX};
use sse_proto::paths;
use sse_proto::v1 as pb;
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_runtime::error_chain;
use sse_runtime::link::Messages;
use sse_runtime::peers::{self, Peer, Peers};
use sse_runtime::seq::SeqQueue;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::checkpoint::Checkpoints;
use crate::event::RoutedEvent;
use crate::grpc;
use crate::status::Status;

/// Batches queued for the request stream at most (more waits in the event channel).
const MAX_PENDING_BATCHES: usize = 4;

/// Unacknowledged items in send order, looked up by (stream key, seq); bounded in items and in
/// bytes (one item always fits, however large).
#[derive(Debug)]
pub struct InFlight<T> {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    next: u64,
    /// Boxed: a B-tree node shifts its values on insert and remove, and an event is large.
    order: BTreeMap<u64, Box<(T, usize)>>,
    /// Per stream key (looked up by `&str`, allocating nothing), seq to position in `order`.
    index: HashMap<String, SeqQueue<u64>>,
}

impl<T> InFlight<T> {
    /// An empty window of `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes: usize::MAX,
            bytes: 0,
            next: 0,
            order: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    /// Also bounds the window to `max_bytes` of data.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// Whether another item fits.
    pub fn has_room(&self) -> bool {
        self.order.is_empty() || (self.order.len() < self.capacity && self.bytes < self.max_bytes)
    }

    /// Items waiting for an ack.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Bytes of data waiting for an ack.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether nothing waits for an ack.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds an item of `bytes` data sent now (a repeated key replaces the older item and moves
    /// to the end).
    pub fn push(&mut self, key: &str, seq: u64, item: T, bytes: usize) {
        let seqs = match self.index.get_mut(key) {
            Some(s) => s,
            None => self.index.entry(key.to_string()).or_default(),
        };
        if let Some(old) = seqs.insert(seq, self.next)
            && let Some(old) = self.order.remove(&old)
        {
            self.bytes -= old.1;
        }
        self.order.insert(self.next, Box::new((item, bytes)));
        self.bytes += bytes;
        self.next += 1;
    }

    /// Removes the acknowledged item; `None` for an unknown or already acknowledged one.
    pub fn ack(&mut self, key: &str, seq: u64) -> Option<T> {
        let seqs = self.index.get_mut(key)?;
        let pos = seqs.take(seq)?;
        if seqs.is_empty() {
            self.index.remove(key);
        }
        let (item, b) = *self.order.remove(&pos)?;
        self.bytes -= b;
        Some(item)
    }

    /// Every unacknowledged item, in the order it was first sent.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.order.values().map(|b| &b.0)
    }
}

/// Splits events into batches of at most [`GRPC_BATCH_BYTES`] encoded (at least one event
/// each), so no `ProcessRequest` exceeds the schema service's decode limit.
fn batches(events: impl IntoIterator<Item = pb::Event>) -> VecDeque<pb::ProcessRequest> {
    let mut out = VecDeque::new();
    let mut batcher = Batcher::default();
    for e in events {
        let len = e.encoded_len();
        if let Some(events) = batcher.push(e, len) {
            out.push_back(pb::ProcessRequest { events });
        }
    }
    if !batcher.is_empty() {
        out.push_back(pb::ProcessRequest {
            events: batcher.take(),
        });
    }
    out
}

/// How the forwarder reaches the schema service and how it behaves.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// The schema service: its name, timeouts and keepalives. Every address the name resolves
    /// to gets its own Process stream.
    pub endpoint: tonic::transport::Endpoint,
    /// This service's certificates for mTLS to schema; `None`: plaintext.
    pub mtls: Option<Arc<sse_runtime::mtls::Mtls>>,
    /// Unacknowledged events at most (over every Process stream together).
    pub max_in_flight: usize,
    /// Unacknowledged data at most, in bytes.
    pub max_in_flight_bytes: usize,
    /// How long shutdown waits for outstanding acks.
    pub drain_timeout: Duration,
    /// Stream counters.
    pub status: Arc<Status>,
    /// Per-stream acknowledgement progress (the resume checkpoints).
    pub checkpoints: Arc<Checkpoints>,
    /// Whether a Process stream is open (drives health).
    pub open: watch::Sender<bool>,
}

/// Which schema address each SSE stream goes to: rendezvous hashing of the stream key over the
/// current address set, so every event of one stream travels, in order, on one Process stream.
#[derive(Debug, Default)]
pub struct Router {
    peers: Vec<Peer>,
    cache: HashMap<String, Option<SocketAddr>>,
}

impl Router {
    /// A router over `peers`.
    pub fn new(peers: Vec<Peer>) -> Self {
        Self {
            peers,
            cache: HashMap::new(),
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

/// An open Process stream: where requests go, and the responses.
struct Session {
    tx: mpsc::UnboundedSender<pb::ProcessRequest>,
    responses: Messages<pb::ProcessResponse>,
    /// Called in-process, messages unencoded (`sse-connector`), rather than over gRPC.
    in_process: bool,
}

/// A Process stream being opened: its address, its session number, the outcome.
type Opening = Pin<Box<dyn Future<Output = (SocketAddr, u64, Result<Session, String>)> + Send>>;
/// One session's responses, tagged; `None` marks the end of the stream.
type Responses = Pin<
    Box<
        dyn Stream<
                Item = (
                    SocketAddr,
                    u64,
                    Option<Result<pb::ProcessResponse, tonic::Status>>,
                ),
            > + Send,
    >,
>;

/// One schema address and its Process stream (open, being opened, or waiting to retry).
struct Lane {
    /// Failed to open or broke, and not open again yet: its SSE streams go elsewhere meanwhile.
    down: bool,
    session: u64,
    tx: Option<mpsc::UnboundedSender<pb::ProcessRequest>>,
    retry_at: Option<Instant>,
    backoff: sse_runtime::Backoff,
}

/// The forwarder's state across Process streams.
struct State {
    /// Kept as routed (the route shared, not copied); made into messages when (re-)sent.
    inflight: InFlight<RoutedEvent>,
    rx: mpsc::Receiver<RoutedEvent>,
    rx_open: bool,
    deadline: Option<Instant>,
    /// Every address the schema name resolves to.
    all: Vec<Peer>,
    /// Which address each SSE stream goes to: rendezvous over the addresses not down.
    router: Router,
    lanes: BTreeMap<SocketAddr, Lane>,
    openings: FuturesUnordered<Opening>,
    responses: SelectAll<Responses>,
    sessions: u64,
}

impl State {
    fn drained(&self) -> bool {
        self.inflight.is_empty() && (!self.rx_open || self.rx.is_empty())
    }

    fn any_open(&self) -> bool {
        self.lanes.values().any(|l| l.tx.is_some())
    }

    fn next_retry(&self) -> Option<Instant> {
        self.lanes.values().filter_map(|l| l.retry_at).min()
    }
}

impl Forwarder {
    /// Forwards events from `rx` until shutdown, over one Process stream per address the
    /// schema name resolves to (re-resolved periodically and after failures): on `token`, keeps
    /// the streams open up to the drain timeout for outstanding acks, then closes them and
    /// returns.
    pub async fn run(self, rx: mpsc::Receiver<RoutedEvent>, token: CancellationToken) {
        let uri = self.endpoint.uri().to_string();
        let peers = match peers::parse_targets(&uri) {
            Ok(targets) => Peers::spawn(targets, peers::RESOLVE_EVERY),
            Err(e) => {
                // Config validation rules this out; never read events we cannot forward.
                tracing::error!(schema = %uri, error = %e, "schema address unusable; not forwarding");
                token.cancelled().await;
                return;
            }
        };
        self.run_with(peers, rx, token).await;
    }

    /// [`Forwarder::run`] over a given address set (it follows the set's changes).
    pub async fn run_with(
        self,
        peers: Peers,
        rx: mpsc::Receiver<RoutedEvent>,
        token: CancellationToken,
    ) {
        let mut set = peers.subscribe();
        let mut set_live = true;
        let mut st = State {
            inflight: InFlight::new(self.max_in_flight).with_max_bytes(self.max_in_flight_bytes),
            rx,
            rx_open: true,
            deadline: None,
            all: Vec::new(),
            router: Router::default(),
            lanes: BTreeMap::new(),
            openings: FuturesUnordered::new(),
            responses: SelectAll::new(),
            sessions: 0,
        };
        let first = set.borrow_and_update().clone();
        self.on_peers(&mut st, first);
        let far = Duration::from_secs(365 * 24 * 3600);
        loop {
            if token.is_cancelled() && st.deadline.is_none() {
                st.deadline = Some(Instant::now() + self.drain_timeout);
            }
            if st.deadline.is_some() {
                if st.drained() {
                    break;
                }
                if !st.any_open() && st.openings.is_empty() {
                    tracing::warn!(
                        unacknowledged = st.inflight.len(),
                        "schema unavailable during shutdown"
                    );
                    break;
                }
            }
            let take = st.rx_open && st.inflight.has_room();
            let retry_at = st.next_retry().filter(|_| st.deadline.is_none());
            tokio::select! {
                biased;
                Some((addr, session, msg)) = st.responses.next(), if !st.responses.is_empty() => {
                    self.on_response(&mut st, &peers, addr, session, msg);
                }
                Some((addr, session, opened)) = st.openings.next(), if !st.openings.is_empty() => {
                    self.on_open(&mut st, &peers, addr, session, opened);
                }
                changed = set.changed(), if set_live => match changed {
                    Ok(()) => {
                        let next = set.borrow_and_update().clone();
                        self.on_peers(&mut st, next);
                    }
                    Err(_) => set_live = false,
                },
                ev = st.rx.recv(), if take => match ev {
                    None => st.rx_open = false,
                    Some(first) => {
                        let batch = self.take_batch(&mut st, first);
                        dispatch(&mut st, batch);
                    }
                },
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(|| Instant::now() + far)), if retry_at.is_some() => {
                    self.start_due(&mut st);
                }
                _ = token.cancelled(), if st.deadline.is_none() => {}
                _ = tokio::time::sleep_until(st.deadline.unwrap_or_else(|| Instant::now() + far)), if st.deadline.is_some() => {
                    tracing::warn!(unacknowledged = st.inflight.len(), "drain timeout: closing the Process streams with events unacknowledged");
                    break;
                }
            }
            let up = st.any_open();
            self.open
                .send_if_modified(|o| std::mem::replace(o, up) != up);
        }
        self.open.send_replace(false);
    }

    /// Follows a new address set: closes the streams of removed addresses, opens streams to new
    /// ones, and moves SSE streams as [`Forwarder::reroute`] says.
    fn on_peers(&self, st: &mut State, next: Vec<Peer>) {
        if next == st.all {
            return;
        }
        st.all = next.clone();
        st.lanes
            .retain(|addr, _| next.iter().any(|p| p.addr == *addr));
        for p in &next {
            if let std::collections::btree_map::Entry::Vacant(slot) = st.lanes.entry(p.addr) {
                slot.insert(Lane {
                    down: false,
                    session: 0,
                    tx: None,
                    retry_at: None,
                    backoff: sse_runtime::Backoff::standard(),
                });
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
    fn reroute(&self, st: &mut State, opening: Option<SocketAddr>) {
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
                send(tx, events);
            }
        }
        tracing::info!(
            live = ?st.router.peers().iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
            resent,
            "SSE streams reassigned over the schema addresses"
        );
    }

    /// Starts opening the Process stream of `addr`.
    fn start(&self, st: &mut State, addr: SocketAddr) {
        let Some(lane) = st.lanes.get_mut(&addr) else {
            return;
        };
        st.sessions += 1;
        let session = st.sessions;
        lane.session = session;
        lane.tx = None;
        lane.retry_at = None;
        let endpoint = self.endpoint.clone();
        let mtls = self.mtls.clone();
        st.openings.push(Box::pin(async move {
            let opened = open_session(&endpoint, addr, mtls.as_ref()).await;
            (addr, session, opened)
        }));
    }

    /// Retries every lane whose backoff is over.
    fn start_due(&self, st: &mut State) {
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

    /// A Process stream opened (or failed to): on success re-sends, in order, every
    /// unacknowledged event of the SSE streams it carries.
    fn on_open(
        &self,
        st: &mut State,
        peers: &Peers,
        addr: SocketAddr,
        session: u64,
        opened: Result<Session, String>,
    ) {
        let Some(lane) = st.lanes.get_mut(&addr) else {
            return; // removed meanwhile; dropping the session closes it
        };
        if lane.session != session {
            return;
        }
        match opened {
            Ok(s) => {
                lane.backoff.connected();
                lane.down = false;
                lane.tx = Some(s.tx.clone());
                st.responses.push(Box::pin(
                    s.responses
                        .map(Some)
                        .chain(futures::stream::once(async { None }))
                        .map(move |m| (addr, session, m)),
                ));
                self.reroute(st, Some(addr));
                let mut resend = Vec::new();
                for e in st.inflight.iter() {
                    if st.router.owner(&e.stream_key) == Some(addr) {
                        resend.push(grpc::event(e));
                    }
                }
                let link = if s.in_process { "in-process" } else { "grpc" };
                tracing::info!(schema = %self.endpoint.uri(), %addr, link, resend = resend.len(), "Process stream to schema open");
                send(&s.tx, resend);
            }
            Err(reason) => {
                let delay = lane.backoff.next_delay();
                lane.retry_at = Some(Instant::now() + delay);
                lane.down = true;
                tracing::warn!(schema = %self.endpoint.uri(), %addr, %reason, retry_in = ?delay, "Process stream to schema unavailable");
                peers.refresh();
                self.reroute(st, None);
            }
        }
    }

    /// Applies acks (from any session: an ack is an ack) and notices a broken stream.
    fn on_response(
        &self,
        st: &mut State,
        peers: &Peers,
        addr: SocketAddr,
        session: u64,
        msg: Option<Result<pb::ProcessResponse, tonic::Status>>,
    ) {
        let reason = match msg {
            Some(Ok(r)) => {
                self.apply_acks(&mut st.inflight, r.acks);
                return;
            }
            Some(Err(s)) => format!("{}: {}", s.code(), s.message()),
            None => "schema closed the stream".to_string(),
        };
        let Some(lane) = st.lanes.get_mut(&addr) else {
            return;
        };
        if lane.session != session || lane.tx.is_none() {
            return; // an older session of this address
        }
        lane.tx = None;
        lane.down = true;
        let delay = lane.backoff.next_delay();
        lane.retry_at = Some(Instant::now() + delay);
        tracing::warn!(schema = %self.endpoint.uri(), %addr, %reason, unacknowledged = st.inflight.len(), retry_in = ?delay, "Process stream to schema broke");
        peers.refresh();
        self.reroute(st, None);
    }

    /// Takes `first` and every event already queued (while the window has room), records them
    /// in flight and counts them forwarded.
    fn take_batch(&self, st: &mut State, first: RoutedEvent) -> Vec<pb::Event> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        let mut counts: HashMap<Arc<str>, u64> = HashMap::new();
        while let Some(ev) = next.take() {
            let p = grpc::event(&ev);
            // Everything held for the event counts: data, ids, key, route, trace context.
            let size = p.encoded_len();
            if let Some(reason) = oversized(size) {
                self.drop_oversized(&ev, &reason);
                next = st.rx.try_recv().ok();
                continue;
            }
            *counts.entry(ev.stream_key.clone()).or_default() += 1;
            bytes += size;
            st.inflight.push(&p.stream_key, p.seq, ev, size);
            out.push(p);
            if st.inflight.has_room() && bytes < GRPC_BATCH_BYTES * MAX_PENDING_BATCHES {
                next = st.rx.try_recv().ok();
            }
        }
        for (key, n) in counts {
            self.status.update(&key, |s| s.forwarded += n);
        }
        out
    }

    /// Drops a routed event too large to send (schema's decoder would refuse it and end the
    /// stream, and it would be re-sent forever): counted, named, and done for the checkpoint.
    fn drop_oversized(&self, ev: &RoutedEvent, reason: &str) {
        tracing::warn!(stream = %ev.stream_key, seq = ev.seq, "{reason}");
        self.checkpoints.acked(&ev.stream_key, ev.seq);
        self.status.update(&ev.stream_key, |s| {
            s.drop_event(drops::ENVELOPE_TOO_LARGE);
            s.last_error = reason.to_string();
        });
    }

    fn apply_acks(&self, inflight: &mut InFlight<RoutedEvent>, acks: Vec<pb::Ack>) {
        for a in acks {
            let Some(ev) = inflight.ack(&a.stream_key, a.seq) else {
                continue; // a duplicate after a re-send
            };
            self.checkpoints.acked(&a.stream_key, a.seq);
            if !a.error.is_empty() {
                tracing::warn!(stream = %a.stream_key, seq = a.seq, error = %a.error, "event delivery failed");
            }
            self.status.apply_ack(&ev.route, &a);
        }
    }
}

/// Why a routed event of `encoded` bytes cannot be sent, if it cannot.
fn oversized(encoded: usize) -> Option<String> {
    (encoded > FORWARDED_EVENT_BYTES_MAX).then(|| {
        format!(
            "{}: routed event of {encoded} bytes with its route dropped (limit {FORWARDED_EVENT_BYTES_MAX})",
            drops::ENVELOPE_TOO_LARGE
        )
    })
}

/// Sends new events on the Process stream of their SSE stream's address; events whose address
/// has no open stream wait in flight and go when it opens.
fn dispatch(st: &mut State, events: Vec<pb::Event>) {
    let mut by_lane: BTreeMap<SocketAddr, Vec<pb::Event>> = BTreeMap::new();
    for e in events {
        if let Some(a) = st.router.owner(&e.stream_key) {
            by_lane.entry(a).or_default().push(e);
        }
    }
    for (addr, events) in by_lane {
        if let Some(tx) = st.lanes.get(&addr).and_then(|l| l.tx.as_ref()) {
            send(tx, events);
        }
    }
}

/// Queues events on a Process stream in batches. The queue is bounded by the in-flight window
/// (every queued event is in flight); a closed stream is noticed on its response side.
fn send(tx: &mpsc::UnboundedSender<pb::ProcessRequest>, events: Vec<pb::Event>) {
    for batch in batches(events) {
        if tx.send(batch).is_err() {
            return;
        }
    }
}

/// Connects to one schema address and opens the Process stream.
async fn open_session(
    endpoint: &tonic::transport::Endpoint,
    addr: SocketAddr,
    mtls: Option<&Arc<sse_runtime::mtls::Mtls>>,
) -> Result<Session, String> {
    let link = peers::connect(endpoint, addr, mtls)
        .await
        .map_err(|e| error_chain(&e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = UnboundedReceiverStream::new(rx);
    // A schema service of this process (sse-connector): its messages as they are.
    if let Some(process) = link.stream(paths::SCHEMA_PROCESS) {
        let responses = process(Box::pin(requests.map(Ok)));
        return Ok(Session {
            tx,
            responses,
            in_process: true,
        });
    }
    // Both ways bounded by the contract: schema decodes up to the same limit, so a message
    // this side encodes is never refused there (and re-sent forever).
    let mut client = SchemaServiceClient::new(link)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let responses = client
        .process(requests)
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(Session {
        tx,
        responses: Box::pin(responses),
        in_process: false,
    })
}

#[cfg(test)]
mod tests;
