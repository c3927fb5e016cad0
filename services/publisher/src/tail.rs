//! `PublisherService/Tail`: the messages this pod publishes, streamed to whoever watches, each
//! once the broker has it.
//!
//! The pipeline never waits for a watcher: each tail has a small bounded queue that the publish
//! path fills with a non-blocking `try_send`; a full queue drops the message and counts it, and
//! the reader is told the count before its next message. When nobody tails, the publish path
//! costs one atomic load: no lock, no allocation, no copy ([`Tail::tap`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Future, Stream};
use sse_contract::limits::TAIL_PAYLOAD_BYTES_MAX;
use sse_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::event::Qos;
use crate::properties::Message;
use crate::state_store;

/// Default of `--tail-queue`: messages queued towards one tail reader before further ones are
/// dropped and counted.
pub const TAIL_QUEUE: usize = 64;
/// Largest `--tail-queue`: a stalled reader holds up to this many payloads of
/// [`TAIL_PAYLOAD_BYTES_MAX`] (64 MiB at 4096).
pub const TAIL_QUEUE_CEILING: usize = 4096;
/// Default of `--tail-readers-max`: tails open at once on one publisher; one more is refused
/// with `RESOURCE_EXHAUSTED`.
pub const TAILS_MAX: usize = 8;
/// Largest `--tail-readers-max`: every open tail is visited on each publish that some tail wants.
pub const TAILS_CEILING: usize = 256;

/// The operator's tail limits (`--tail-readers-max`, `--tail-queue`), validated by the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailLimits {
    /// Tails open at once; one more is refused.
    pub readers_max: usize,
    /// Messages queued towards one reader before further ones are dropped (at least 1).
    pub queue: usize,
}

impl Default for TailLimits {
    fn default() -> Self {
        Self {
            readers_max: TAILS_MAX,
            queue: TAIL_QUEUE,
        }
    }
}

/// Why a tail is refused.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// Every tail slot is taken; carries the limit, so the message names the flag and its value.
    #[error(
        "all {0} tail slots of this publisher are taken (--tail-readers-max={0}); close a tail \
         or raise the flag"
    )]
    TooMany(usize),
    /// The topic filter is not an MQTT topic filter.
    #[error("invalid topic filter {}: `+` and `#` must fill a level, and `#` comes last", sse_runtime::echo::quoted(.0))]
    BadFilter(String),
}

impl From<TailError> for tonic::Status {
    fn from(e: TailError) -> Self {
        match e {
            TailError::TooMany(_) => tonic::Status::resource_exhausted(e.to_string()),
            TailError::BadFilter(_) => tonic::Status::invalid_argument(e.to_string()),
        }
    }
}

/// Which messages one tail wants: every set part must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Device name, or any.
    pub device: Option<String>,
    /// Asset name, or any.
    pub asset: Option<String>,
    /// MQTT topic filter, or any.
    pub topic: Option<String>,
}

impl Filter {
    /// The filter of a request (empty fields match everything); refuses a bad topic filter.
    pub fn from_request(r: &pb::TailRequest) -> Result<Self, TailError> {
        let set = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if !r.topic.is_empty() && !valid_topic_filter(&r.topic) {
            return Err(TailError::BadFilter(r.topic.clone()));
        }
        Ok(Self {
            device: set(&r.device),
            asset: set(&r.asset),
            topic: set(&r.topic),
        })
    }

    /// Whether a message of `device` and `asset` on `topic` passes.
    pub fn matches(&self, device: &str, asset: &str, topic: &str) -> bool {
        self.device.as_deref().is_none_or(|d| d == device)
            && self.asset.as_deref().is_none_or(|a| a == asset)
            && self
                .topic
                .as_deref()
                .is_none_or(|f| topic_matches(f, topic))
    }
}

/// Whether `filter` is an MQTT topic filter: `+` and `#` fill a level, `#` is the last level.
pub fn valid_topic_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| match *l {
        "#" => i + 1 == levels.len(),
        "+" => true,
        l => !l.contains(['+', '#']),
    })
}

/// MQTT matching of a topic name against a (valid) filter; wildcards at the first level do not
/// match `$` topics (MQTT 5 section 4.7.2).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (None, None) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// One open tail, as the publish path sees it.
struct Watcher {
    id: u64,
    filter: Filter,
    max_payload: usize,
    tx: mpsc::Sender<pb::TailMessage>,
    dropped: Arc<AtomicU64>,
}

struct Inner {
    /// `watchers.len()`, read without the lock on every publish.
    open: AtomicUsize,
    watchers: Mutex<Vec<Watcher>>,
    next_id: AtomicU64,
    /// Messages dropped for slow readers since the start, over every tail: read by
    /// `sse_connector.tail.dropped` when metrics are collected, touched only on a drop.
    dropped: AtomicU64,
    /// Read only when a tail opens: the publish path never looks at them.
    limits: TailLimits,
}

/// The registry of open tails, shared by the publish path and the `Tail` handler.
#[derive(Clone)]
pub struct Tail {
    inner: Arc<Inner>,
}

impl Default for Tail {
    /// A registry with the default limits ([`TAILS_MAX`] tails of [`TAIL_QUEUE`] messages).
    fn default() -> Self {
        Self::new(TailLimits::default())
    }
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("open", &self.inner.open.load(Ordering::Relaxed))
            .finish()
    }
}

/// A message the broker is about to get that some tail wants: handed to the tails by
/// [`Tapped::deliver`] once the broker has it.
#[derive(Debug)]
pub struct Tapped {
    tail: Tail,
    message: pb::TailMessage,
}

impl Tail {
    /// An empty registry enforcing `limits` (a queue of 0 is taken as 1: a channel needs room).
    pub fn new(limits: TailLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                watchers: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                limits: TailLimits {
                    readers_max: limits.readers_max,
                    queue: limits.queue.max(1),
                },
            }),
        }
    }

    /// The limits this registry enforces.
    pub fn limits(&self) -> TailLimits {
        self.inner.limits
    }

    /// Whether any tail is open (one atomic load: the whole cost of tailing when nobody does).
    pub fn active(&self) -> bool {
        self.inner.open.load(Ordering::Relaxed) > 0
    }

    /// Tails open now, for `sse_connector.tail.readers`.
    pub fn readers(&self) -> usize {
        self.inner.open.load(Ordering::Relaxed)
    }

    /// Messages dropped for slow readers since the registry was made, over every tail, for
    /// `sse_connector.tail.dropped` (the per-tail counts are reset by each notice).
    pub fn dropped_total(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    fn watchers(&self) -> MutexGuard<'_, Vec<Watcher>> {
        // A panic while holding the lock leaves the list consistent: keep using it.
        self.inner
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a tail of the messages passing `filter`, each payload cut to `max_payload` bytes
    /// (0 or more than [`TAIL_PAYLOAD_BYTES_MAX`]: that limit). It ends when `stop` is cancelled.
    pub fn open(
        &self,
        filter: Filter,
        max_payload: usize,
        stop: CancellationToken,
    ) -> Result<TailStream, TailError> {
        let max_payload = match max_payload {
            0 => TAIL_PAYLOAD_BYTES_MAX,
            n => n.min(TAIL_PAYLOAD_BYTES_MAX),
        };
        let limits = self.inner.limits;
        // Allocated before the lock, which the publish path takes too.
        let (tx, rx) = mpsc::channel(limits.queue);
        let dropped = Arc::new(AtomicU64::new(0));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut watchers = self.watchers();
        if watchers.len() >= limits.readers_max {
            return Err(TailError::TooMany(limits.readers_max));
        }
        watchers.push(Watcher {
            id,
            filter,
            max_payload,
            tx,
            dropped: dropped.clone(),
        });
        self.inner.open.store(watchers.len(), Ordering::Relaxed);
        Ok(TailStream {
            rx,
            dropped,
            stop: Box::pin(stop.cancelled_owned()),
            _guard: Guard {
                tail: self.clone(),
                id,
            },
        })
    }

    /// Takes what a tail needs of `message` (of `device` and `asset`, empty for none) before it
    /// goes to the broker: `None` at once when nobody tails, and when no tail wants it. State
    /// store requests are not tailed: no subscriber ever receives them.
    pub fn tap(&self, device: &str, asset: &str, message: &Message) -> Option<Tapped> {
        if !self.active() || message.topic == state_store::REQUEST_TOPIC {
            return None;
        }
        let keep = self
            .watchers()
            .iter()
            .filter(|w| w.filter.matches(device, asset, &message.topic))
            .map(|w| w.max_payload)
            .max()?;
        let payload = &message.payload;
        let props = &message.properties;
        Some(Tapped {
            tail: self.clone(),
            message: pb::TailMessage {
                topic: message.topic.clone(),
                qos: wire_qos(message.qos) as i32,
                retain: message.retain,
                user_properties: props
                    .user_properties
                    .iter()
                    .map(|(name, value)| pb::UserProperty {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                content_type: props.content_type.clone().unwrap_or_default(),
                // A copy of the kept bytes only: a queued message never pins a large payload.
                payload: Bytes::copy_from_slice(&payload[..payload.len().min(keep)]),
                payload_bytes: payload.len() as u64,
                truncated: payload.len() > keep,
                device: device.to_string(),
                asset: asset.to_string(),
                ttl_seconds: props.message_expiry_interval.unwrap_or_default(),
            },
        })
    }

    /// `w` lost a message: its reader is told, and the registry's total counts it.
    fn lost(&self, w: &Watcher) {
        w.dropped.fetch_add(1, Ordering::Relaxed);
        self.inner.dropped.fetch_add(1, Ordering::Relaxed);
    }

    fn close(&self, id: u64) {
        let mut watchers = self.watchers();
        watchers.retain(|w| w.id != id);
        self.inner.open.store(watchers.len(), Ordering::Relaxed);
    }
}

impl Tapped {
    /// The broker has the message: hands it to every tail that wants it, never waiting; a tail
    /// whose queue is full loses it and counts it.
    pub fn deliver(self) {
        let m = &self.message;
        for w in self.tail.watchers().iter() {
            if !w.filter.matches(&m.device, &m.asset, &m.topic) {
                continue;
            }
            if w.tx.capacity() == 0 {
                // Full: counted without the copy a stalled reader would never see.
                self.tail.lost(w);
                continue;
            }
            let mut copy = m.clone();
            if copy.payload.len() > w.max_payload {
                copy.payload.truncate(w.max_payload);
                copy.truncated = true;
            }
            if let Err(mpsc::error::TrySendError::Full(_)) = w.tx.try_send(copy) {
                self.tail.lost(w);
            }
        }
    }
}

/// The wire QoS of a message.
fn wire_qos(q: Qos) -> pb::Qos {
    match q {
        Qos::AtMostOnce => pb::Qos::AtMostOnce,
        Qos::AtLeastOnce => pb::Qos::AtLeastOnce,
    }
}

/// Removes its tail from the registry when the stream is dropped (the caller went away).
struct Guard {
    tail: Tail,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.tail.close(self.id);
    }
}

/// The response stream of one `Tail` call: a dropped-count notice whenever messages were
/// dropped since the last one, then the queued messages; it ends at shutdown.
pub struct TailStream {
    rx: mpsc::Receiver<pb::TailMessage>,
    dropped: Arc<AtomicU64>,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
    _guard: Guard,
}

impl Stream for TailStream {
    type Item = Result<pb::TailResponse, tonic::Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        // The notice first: a reader that keeps falling behind would otherwise never hear.
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let item = pb::tail_response::Item::Dropped(pb::TailDropped { count: dropped });
            return Poll::Ready(Some(Ok(pb::TailResponse { item: Some(item) })));
        }
        self.rx.poll_recv(cx).map(|m| {
            m.map(|m| {
                Ok(pb::TailResponse {
                    item: Some(pb::tail_response::Item::Message(m)),
                })
            })
        })
    }
}

#[cfg(test)]
mod tests;
