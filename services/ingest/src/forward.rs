//! The single `SchemaService.Process` stream to the schema service: sends routed events in
//! batches, keeps every unacknowledged event in a bounded in-flight window (a full window stops
//! taking events, so readers block: backpressure), applies acks, and after a broken stream
//! reconnects with backoff and re-sends every unacknowledged event in order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use sse_proto::v1 as pb;
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;

use crate::event::RoutedEvent;
use crate::grpc;
use crate::status::Status;

/// Upper bound of one batch's data, so a batch stays well under gRPC message limits.
const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Batches queued for the request stream at most (more waits in the event channel).
const MAX_PENDING_BATCHES: usize = 4;

/// Unacknowledged items in send order, looked up by (stream key, seq); bounded.
#[derive(Debug)]
pub struct InFlight<T> {
    capacity: usize,
    next: u64,
    order: BTreeMap<u64, T>,
    index: HashMap<(String, u64), u64>,
}

impl<T> InFlight<T> {
    /// An empty window of `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            next: 0,
            order: BTreeMap::new(),
            index: HashMap::new(),
        }
    }

    /// Whether another item fits.
    pub fn has_room(&self) -> bool {
        self.order.len() < self.capacity
    }

    /// Items waiting for an ack.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing waits for an ack.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Adds an item sent now (a repeated key replaces the older item and moves to the end).
    pub fn push(&mut self, key: &str, seq: u64, item: T) {
        if let Some(old) = self.index.insert((key.to_string(), seq), self.next) {
            self.order.remove(&old);
        }
        self.order.insert(self.next, item);
        self.next += 1;
    }

    /// Removes the acknowledged item; `None` for an unknown or already acknowledged one.
    pub fn ack(&mut self, key: &str, seq: u64) -> Option<T> {
        let pos = self.index.remove(&(key.to_string(), seq))?;
        self.order.remove(&pos)
    }

    /// Every unacknowledged item, in the order it was first sent.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.order.values()
    }
}

/// Splits events into batches of at most [`MAX_BATCH_BYTES`] of data (at least one event each).
fn batches(events: impl IntoIterator<Item = pb::Event>) -> VecDeque<pb::ProcessRequest> {
    let mut out = VecDeque::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for e in events {
        if !cur.is_empty() && bytes + e.data.len() > MAX_BATCH_BYTES {
            out.push_back(pb::ProcessRequest {
                events: std::mem::take(&mut cur),
            });
            bytes = 0;
        }
        bytes += e.data.len();
        cur.push(e);
    }
    if !cur.is_empty() {
        out.push_back(pb::ProcessRequest { events: cur });
    }
    out
}

/// How the forwarder reaches the schema service and how it behaves.
#[derive(Debug, Clone)]
pub struct Forwarder {
    /// The schema service.
    pub endpoint: tonic::transport::Endpoint,
    /// Unacknowledged events at most.
    pub max_in_flight: usize,
    /// How long shutdown waits for outstanding acks.
    pub drain_timeout: Duration,
    /// Stream counters.
    pub status: Arc<Status>,
    /// Whether the Process stream is open (drives health).
    pub open: watch::Sender<bool>,
}

/// Why a Process stream ended.
enum End {
    /// Shutdown finished (drained or timed out).
    Done,
    /// The stream broke; reconnect.
    Broken(String),
}

/// The forwarder's state across Process streams.
struct State {
    inflight: InFlight<pb::Event>,
    rx: mpsc::Receiver<RoutedEvent>,
    rx_open: bool,
    deadline: Option<Instant>,
}

impl State {
    fn drained(&self) -> bool {
        self.inflight.is_empty() && (!self.rx_open || self.rx.is_empty())
    }
}

impl Forwarder {
    /// Forwards events from `rx` until shutdown: on `token`, keeps the stream open up to the
    /// drain timeout for outstanding acks, then closes it and returns.
    pub async fn run(self, rx: mpsc::Receiver<RoutedEvent>, token: CancellationToken) {
        let mut st = State {
            inflight: InFlight::new(self.max_in_flight),
            rx,
            rx_open: true,
            deadline: None,
        };
        let mut backoff = sse_runtime::Backoff::standard();
        let far = Duration::from_secs(365 * 24 * 3600);
        loop {
            if token.is_cancelled() && st.deadline.is_none() {
                st.deadline = Some(Instant::now() + self.drain_timeout);
            }
            if st.deadline.is_some() && st.drained() {
                return;
            }
            let opened = tokio::select! {
                r = self.open() => r,
                _ = token.cancelled(), if st.deadline.is_none() => continue,
                _ = tokio::time::sleep_until(st.deadline.unwrap_or_else(|| Instant::now() + far)) => return,
            };
            let end = match opened {
                Ok((tx, responses)) => {
                    tracing::info!(schema = %self.endpoint.uri(), resend = st.inflight.len(), "Process stream to schema open");
                    backoff.connected();
                    self.open.send_replace(true);
                    let end = self.session(&mut st, tx, responses, &token).await;
                    self.open.send_replace(false);
                    end
                }
                Err(e) => End::Broken(e),
            };
            match end {
                End::Done => return,
                End::Broken(reason) => {
                    if st.deadline.is_some() {
                        tracing::warn!(unacknowledged = st.inflight.len(), %reason, "schema unavailable during shutdown");
                        return;
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(schema = %self.endpoint.uri(), %reason, retry_in = ?delay, "Process stream to schema unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = token.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Connects and opens the Process stream.
    async fn open(
        &self,
    ) -> Result<
        (
            mpsc::Sender<pb::ProcessRequest>,
            tonic::Streaming<pb::ProcessResponse>,
        ),
        String,
    > {
        let channel = self.endpoint.connect().await.map_err(|e| error_chain(&e))?;
        let mut client = SchemaServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(MAX_PENDING_BATCHES);
        let responses = client
            .process(ReceiverStream::new(rx))
            .await
            .map_err(|s| format!("{}: {}", s.code(), s.message()))?
            .into_inner();
        Ok((tx, responses))
    }

    /// Runs one Process stream: re-sends what is unacknowledged, then sends and acks.
    async fn session(
        &self,
        st: &mut State,
        tx: mpsc::Sender<pb::ProcessRequest>,
        mut responses: tonic::Streaming<pb::ProcessResponse>,
        token: &CancellationToken,
    ) -> End {
        let mut pending = batches(st.inflight.iter().cloned());
        let far = Duration::from_secs(365 * 24 * 3600);
        loop {
            if token.is_cancelled() && st.deadline.is_none() {
                st.deadline = Some(Instant::now() + self.drain_timeout);
            }
            if st.deadline.is_some() && pending.is_empty() && st.drained() {
                return End::Done;
            }
            let take = st.rx_open && st.inflight.has_room() && pending.len() < MAX_PENDING_BATCHES;
            tokio::select! {
                biased;
                msg = responses.message() => match msg {
                    Ok(Some(r)) => self.apply_acks(&mut st.inflight, r.acks),
                    Ok(None) => return End::Broken("schema closed the stream".into()),
                    Err(s) => return End::Broken(format!("{}: {}", s.code(), s.message())),
                },
                permit = tx.reserve(), if !pending.is_empty() => match (permit, pending.pop_front()) {
                    (Ok(p), Some(batch)) => p.send(batch),
                    _ => return End::Broken("request stream closed".into()),
                },
                ev = st.rx.recv(), if take => match ev {
                    None => st.rx_open = false,
                    Some(first) => {
                        let batch = self.take_batch(st, first);
                        pending.extend(batches(batch));
                    }
                },
                _ = token.cancelled(), if st.deadline.is_none() => {}
                _ = tokio::time::sleep_until(st.deadline.unwrap_or_else(|| Instant::now() + far)) => {
                    tracing::warn!(unacknowledged = st.inflight.len(), "drain timeout: closing the Process stream with events unacknowledged");
                    return End::Done;
                }
            }
        }
    }

    /// Takes `first` and every event already queued (while the window has room), records them
    /// in flight and counts them forwarded.
    fn take_batch(&self, st: &mut State, first: RoutedEvent) -> Vec<pb::Event> {
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        let mut counts: HashMap<Arc<str>, u64> = HashMap::new();
        while let Some(ev) = next.take() {
            *counts.entry(ev.stream_key.clone()).or_default() += 1;
            let p = grpc::event(ev);
            bytes += p.data.len();
            st.inflight.push(&p.stream_key, p.seq, p.clone());
            out.push(p);
            if st.inflight.has_room() && bytes < MAX_BATCH_BYTES * MAX_PENDING_BATCHES {
                next = st.rx.try_recv().ok();
            }
        }
        for (key, n) in counts {
            self.status.update(&key, |s| s.forwarded += n);
        }
        out
    }

    fn apply_acks(&self, inflight: &mut InFlight<pb::Event>, acks: Vec<pb::Ack>) {
        for a in acks {
            if inflight.ack(&a.stream_key, a.seq).is_none() {
                continue; // a duplicate after a re-send
            }
            if a.error.is_empty() {
                self.status.update(&a.stream_key, |s| s.acknowledged += 1);
            } else {
                tracing::warn!(stream = %a.stream_key, seq = a.seq, error = %a.error, "event delivery failed");
                self.status.update(&a.stream_key, |s| {
                    s.failed += 1;
                    s.last_error = format!("delivery failed: {}", a.error);
                });
            }
        }
    }
}

/// An error and its causes, joined (tonic's transport errors say little at the top level).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_bounded_acked_by_key_and_resent_in_order() {
        let mut w = InFlight::new(3);
        w.push("a", 1, "a1");
        w.push("b", 1, "b1");
        w.push("a", 2, "a2");
        assert!(!w.has_room());
        assert_eq!(w.ack("b", 1), Some("b1"));
        assert_eq!(w.ack("b", 1), None);
        assert_eq!(w.ack("c", 9), None);
        assert!(w.has_room());
        w.push("a", 3, "a3");
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), ["a1", "a2", "a3"]);
        assert_eq!(w.ack("a", 1), Some("a1"));
        assert_eq!(w.len(), 2);
        w.push("a", 2, "a2 again");
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), ["a3", "a2 again"]);
        assert_eq!(w.len(), 2);
    }

    fn ev(n: usize) -> pb::Event {
        pb::Event {
            data: bytes::Bytes::from(vec![b'x'; n]),
            ..Default::default()
        }
    }

    #[test]
    fn batches_respect_the_byte_bound_but_always_take_one() {
        let b = batches([ev(10), ev(20), ev(MAX_BATCH_BYTES), ev(1), ev(1)]);
        let sizes: Vec<usize> = b.iter().map(|r| r.events.len()).collect();
        assert_eq!(sizes, [2, 1, 2]);
        assert!(batches(Vec::new()).is_empty());
    }

    #[test]
    fn error_chain_joins_causes() {
        let e = std::io::Error::other("outer");
        assert_eq!(error_chain(&e), "outer");
    }
}
