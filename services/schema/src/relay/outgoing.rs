//! The publisher side of one epoch of a Process stream: each prepared event goes into the
//! batch of the lane of its ingest stream key's publisher address (rendezvous hashing, so one SSE
//! stream stays in order on one publisher), and a batch is sent when full or flushed. Cut by
//! encoded size (the schema reference and trace context added here count), so no
//! `PublishRequest` exceeds the publisher's decode limit.
//!
//! When ingest asks for acks (`ack_now`: its window is full) while events are parked, the
//! publishers are asked again each time parked events are sent, until none is parked: otherwise
//! the acks of the events parked at the ask stay held by the publisher for its ack delay, and
//! ingest, its window full of them, waits that long.

use foldhash::HashMap;
use prost::Message;
use sse_contract::batch::Batcher;
use sse_contract::limits::GRPC_BATCH_BYTES;
use sse_proto::v1::{Event, PublishRequest};
use sse_runtime::peers::{self, Peer};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{BATCH_MAX_EVENTS, End, events_only, send};

/// Most stream keys whose lane one Process stream remembers (each lane is recomputed when
/// asked again).
const LANES_CACHED_MAX: usize = 65_536;

/// The lanes of one epoch, and the batch being filled for each.
pub(super) struct Outgoing<'l> {
    peers: &'l [Peer],
    lanes: &'l [mpsc::Sender<PublishRequest>],
    /// A cache of the owner rule, by stream key.
    lane_of: HashMap<String, usize>,
    batches: Vec<Batcher<Event>>,
    /// Ingest asked for acks while events were parked: ask again once they are sent.
    acks_owed: bool,
}

impl<'l> Outgoing<'l> {
    /// Batches for `lanes`, one per address of `peers` (in the same order).
    pub fn new(peers: &'l [Peer], lanes: &'l [mpsc::Sender<PublishRequest>]) -> Self {
        Self {
            peers,
            lanes,
            lane_of: HashMap::default(),
            batches: (0..lanes.len())
                .map(|_| Batcher::new(GRPC_BATCH_BYTES, BATCH_MAX_EVENTS))
                .collect(),
            acks_owed: false,
        }
    }

    /// Adds a prepared event to its lane's batch, sending the batch it closes.
    pub async fn push(&mut self, ev: Event, token: &CancellationToken) -> Result<(), End> {
        let lane = self.lane(&ev.stream_key);
        let size = ev.encoded_len();
        if let Some(full) = self.batches[lane].push(ev, size) {
            send(&self.lanes[lane], events_only(full), token).await?;
        }
        Ok(())
    }

    /// Sends every batch that holds events.
    pub async fn flush(&mut self, token: &CancellationToken) -> Result<(), End> {
        for (lane, batch) in self.batches.iter_mut().enumerate() {
            if !batch.is_empty() {
                send(&self.lanes[lane], events_only(batch.take()), token).await?;
            }
        }
        Ok(())
    }

    /// Sends `events`, parked until now, then asks for acks if ingest asked while they were
    /// parked; `still_parked`: whether others are still parked.
    pub async fn send_ready(
        &mut self,
        events: Vec<Event>,
        still_parked: bool,
        token: &CancellationToken,
    ) -> Result<(), End> {
        for ev in events {
            self.push(ev, token).await?;
        }
        self.flush(token).await?;
        if self.acks_owed {
            self.ask_for_acks(still_parked, token).await?;
        }
        Ok(())
    }

    /// Ingest waits for acks: every publisher stream is asked for the ones it holds, and asked
    /// again as parked events are sent while `still_parked`.
    pub async fn ask_for_acks(
        &mut self,
        still_parked: bool,
        token: &CancellationToken,
    ) -> Result<(), End> {
        self.acks_owed = still_parked;
        for lane in self.lanes {
            let ask = PublishRequest {
                events: vec![],
                ack_now: true,
            };
            send(lane, ask, token).await?;
        }
        Ok(())
    }

    fn lane(&mut self, stream_key: &str) -> usize {
        if let Some(lane) = self.lane_of.get(stream_key) {
            return *lane;
        }
        let lane = peers::owner(stream_key, self.peers)
            .and_then(|o| self.peers.iter().position(|p| p == o))
            .unwrap_or(0);
        // Emptied rather than grown by resource churn over the months a Process stream lasts.
        if self.lane_of.len() >= LANES_CACHED_MAX {
            self.lane_of.clear();
        }
        self.lane_of.insert(stream_key.to_string(), lane);
        lane
    }
}
