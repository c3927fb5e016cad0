//! The in-flight window: every routed event sent and not yet acknowledged, bounded in events and
//! bytes (a full window stops the forwarder taking events, so readers block: backpressure), in
//! send order so a new Process stream re-sends them in order, and looked up by (stream key, seq)
//! when an ack arrives.

use std::collections::BTreeMap;

use sse_runtime::seq::SeqQueue;

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
    index: foldhash::HashMap<String, SeqQueue<u64>>,
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
            index: foldhash::HashMap::default(),
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
