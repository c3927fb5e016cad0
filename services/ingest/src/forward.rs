//! The `SchemaService.Process` streams to the schema service: one per address its name resolves
//! to (a headless Service: one per schema pod), each SSE stream assigned to one of them by
//! rendezvous hashing of its key, so the events of one SSE stream stay in order on one peer.
//! Sends routed events in batches, keeps every unacknowledged event in one bounded in-flight
//! window (a full window stops taking events, so readers block: backpressure), applies acks, and
//! after a broken stream reconnects with backoff and re-sends its unacknowledged events in order.
//! When the address set changes, the SSE streams of a removed address move to another one and
//! their unacknowledged events are re-sent there (at least once, same ids).
//!
//! This file holds the [`Forwarder`] and its run loop; [`window`] the in-flight window,
//! [`router`] the per-address lanes and the rendezvous routing, [`session`] one Process stream.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{FuturesUnordered, SelectAll};
use prost::Message;
use sse_contract::drops;
use sse_contract::limits::{FORWARDED_EVENT_BYTES_MAX, GRPC_BATCH_BYTES};
use sse_proto::v1 as pb;
use sse_runtime::peers::{self, Peer, Peers};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::budget::Budget;
use crate::checkpoint::Checkpoints;
use crate::event::RoutedEvent;
use crate::grpc;
use crate::metrics::ForwardMeters;
use crate::routing::Route;
use crate::status::Status;

mod router;
mod session;
mod window;

pub use router::Router;
pub use window::InFlight;

use router::{Lane, dispatch};
use session::{Opening, Responses};

/// Batches queued for the request stream at most (more waits in the event channel).
const MAX_PENDING_BATCHES: usize = 4;

/// How the forwarder reaches the schema service and how it behaves.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// The schema service: its name, timeouts and keepalives. Every address the name resolves
    /// to gets its own Process stream.
    pub endpoint: tonic::transport::Endpoint,
    /// How a schema address is reached: TCP (mTLS with ingest's certificates, if any), or the
    /// schema service of this process in `sse-connector`.
    pub dialer: sse_runtime::peers::Dialer,
    /// Unacknowledged events at most (over every Process stream together).
    pub max_in_flight: usize,
    /// Unacknowledged data at most, in bytes.
    pub max_in_flight_bytes: usize,
    /// The readers' byte budget, which also knows when a reader waits for it or for its
    /// stream's share: the acks held downstream are then asked for.
    pub budget: Budget,
    /// How long shutdown waits for outstanding acks.
    pub drain_timeout: Duration,
    /// Stream counters.
    pub status: Arc<Status>,
    /// Per-stream acknowledgement progress (the resume checkpoints).
    pub checkpoints: Arc<Checkpoints>,
    /// Whether a Process stream is open (drives health).
    pub open: watch::Sender<bool>,
    /// What the metrics read of the forwarder (window fill, re-sends).
    pub meters: ForwardMeters,
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
    /// Whether the open Process streams were asked for their held acks (`ack_now`) after the
    /// last events sent on them (events clear a publisher's `ack_now`) and since a stream last
    /// opened. While ingest is stuck, it keeps this true.
    asked: bool,
    /// What a batch forwards, counted per stream and route; kept, so a batch of one event (at a
    /// steady rate, every batch) makes no maps.
    tally: Tally,
}

/// Events of one batch per stream key and per route (by address: the routes of a batch are a
/// few shared `Arc`s), emptied after each batch.
#[derive(Default)]
struct Tally {
    streams: foldhash::HashMap<Arc<str>, u64>,
    routes: foldhash::HashMap<usize, (Arc<Route>, u64)>,
}

impl State {
    /// Nothing in flight or waiting: an empty state reading `rx`.
    fn new(rx: mpsc::Receiver<RoutedEvent>, inflight: InFlight<RoutedEvent>) -> Self {
        Self {
            inflight,
            rx,
            rx_open: true,
            deadline: None,
            all: Vec::new(),
            router: Router::default(),
            lanes: BTreeMap::new(),
            openings: FuturesUnordered::new(),
            responses: SelectAll::new(),
            sessions: 0,
            asked: false,
            tally: Tally::default(),
        }
    }

    /// Nothing left to acknowledge, and nothing waiting to be taken.
    fn drained(&self) -> bool {
        self.inflight.is_empty() && (!self.rx_open || self.rx.is_empty())
    }

    /// Whether some Process stream is open.
    fn any_open(&self) -> bool {
        self.lanes.values().any(|l| l.tx.is_some())
    }

    /// When the earliest lane waiting to retry is due.
    fn next_retry(&self) -> Option<Instant> {
        self.lanes.values().filter_map(|l| l.retry_at).min()
    }
}

/// A `sleep_until` target for a timer that is off (its `select!` arm disabled): far away.
fn never() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
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
        let window = InFlight::new(self.max_in_flight).with_max_bytes(self.max_in_flight_bytes);
        let mut st = State::new(rx, window);
        let first = set.borrow_and_update().clone();
        self.on_peers(&mut st, first);
        // Made once: a new `cancelled()` at every turn registered and removed a waiter (two
        // locks) for every event. Once it fires, `done` starts the drain and the branch is off.
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        while !self.done(&mut st, &token) {
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
                ev = st.rx.recv(), if take => self.on_event(&mut st, ev),
                // A reader waits for the budget or its share: the check below asks for acks.
                () = self.budget.starved(), if !st.inflight.is_empty() => {}
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(never)), if retry_at.is_some() => {
                    self.start_due(&mut st);
                }
                () = &mut cancelled, if st.deadline.is_none() => {}
                _ = tokio::time::sleep_until(st.deadline.unwrap_or_else(never)), if st.deadline.is_some() => {
                    tracing::warn!(unacknowledged = st.inflight.len(), "drain timeout: closing the Process streams with events unacknowledged");
                    break;
                }
            }
            // A full window, or a reader waiting for the budget or its share, takes nothing more
            // until acks come: ask for them instead of waiting out the ack delay downstream.
            let stuck = !st.inflight.has_room() || self.budget.has_waiters();
            if stuck && !st.asked && !st.inflight.is_empty() {
                session::ask_for_acks(&mut st);
            }
            self.meters.set_inflight(st.inflight.len());
            let up = st.any_open();
            self.open
                .send_if_modified(|o| std::mem::replace(o, up) != up);
        }
        self.open.send_replace(false);
    }

    /// Whether the run is over: once `token` is cancelled (which starts the drain deadline),
    /// when nothing is left to acknowledge or no Process stream can take it.
    fn done(&self, st: &mut State, token: &CancellationToken) -> bool {
        if token.is_cancelled() && st.deadline.is_none() {
            st.deadline = Some(Instant::now() + self.drain_timeout);
        }
        if st.deadline.is_none() {
            return false;
        }
        if st.drained() {
            return true;
        }
        if !st.any_open() && st.openings.is_empty() {
            tracing::warn!(
                unacknowledged = st.inflight.len(),
                "schema unavailable during shutdown"
            );
            return true;
        }
        false
    }

    /// A routed event from the readers (or their end): sent with every event already queued.
    fn on_event(&self, st: &mut State, ev: Option<RoutedEvent>) {
        match ev {
            None => st.rx_open = false,
            Some(first) => {
                let batch = self.take_batch(st, first);
                dispatch(st, batch);
            }
        }
    }

    /// Takes `first` and every event already queued (while the window has room), records them
    /// in flight and counts them forwarded.
    fn take_batch(&self, st: &mut State, first: RoutedEvent) -> Vec<pb::Event> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        let Tally {
            streams: counts,
            routes,
        } = &mut st.tally;
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
            routes
                .entry(Arc::as_ptr(&ev.route) as usize)
                .or_insert_with(|| (ev.route.clone(), 0))
                .1 += 1;
            bytes += size;
            st.inflight.push(&p.stream_key, p.seq, ev, size);
            out.push(p);
            if st.inflight.has_room() && bytes < GRPC_BATCH_BYTES * MAX_PENDING_BATCHES {
                next = st.rx.try_recv().ok();
            }
        }
        self.status.count_forwarded(
            counts.iter().map(|(k, n)| (&**k, *n)),
            routes.values().map(|(r, n)| (&**r, *n)),
        );
        counts.clear();
        routes.clear();
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

    /// Applies acks to the window, the checkpoints and the status.
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

#[cfg(test)]
mod tests;
