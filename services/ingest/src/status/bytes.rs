//! A stream's count of body bytes read, shared between the status and the stream's reader so
//! the reader adds to it without taking the status lock for every read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Body bytes read by one stream's reader; clones share the count.
#[derive(Debug, Clone, Default)]
pub struct BytesRead(Arc<AtomicU64>);

impl BytesRead {
    /// The bytes read so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The counter itself, for the reader to add to.
    pub fn shared(&self) -> Arc<AtomicU64> {
        self.0.clone()
    }
}

/// Statuses compare by what they show: the count, not which counter holds it.
impl PartialEq for BytesRead {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

impl Eq for BytesRead {}
