//! How a batch of messages on a gRPC stream is sized: by its encoded length, so that a batch
//! never exceeds [`GRPC_MESSAGE_BYTES_MAX`] (the peer's decoder would refuse it and end the
//! stream, and the sender would re-send the same batch forever).

use crate::limits::{GRPC_BATCH_BYTES, GRPC_MESSAGE_BYTES_MAX};

/// Encoded size of one element of a repeated message field (field number below 16) whose own
/// encoding is `len` bytes: one tag byte, the length varint, the bytes.
pub const fn framed_len(len: usize) -> usize {
    let mut varint = 1;
    let mut rest = len >> 7;
    while rest > 0 {
        varint += 1;
        rest >>= 7;
    }
    1 + varint + len
}

/// Accumulates items into batches whose encoded size stays within [`GRPC_BATCH_BYTES`]: a batch
/// is cut before an item that would take it over (an item alone always forms a batch; ingest's
/// limits keep every item within [`GRPC_MESSAGE_BYTES_MAX`]).
#[derive(Debug)]
pub struct Batcher<T> {
    max_bytes: usize,
    max_items: usize,
    bytes: usize,
    items: Vec<T>,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Self::new(GRPC_BATCH_BYTES, usize::MAX)
    }
}

impl<T> Batcher<T> {
    /// A batcher cutting at `max_bytes` encoded (at most [`GRPC_MESSAGE_BYTES_MAX`]) or
    /// `max_items` items.
    pub fn new(max_bytes: usize, max_items: usize) -> Self {
        Self {
            max_bytes: max_bytes.min(GRPC_MESSAGE_BYTES_MAX),
            max_items: max_items.max(1),
            bytes: 0,
            items: Vec::new(),
        }
    }

    /// Adds `item`, whose own encoding is `encoded_len` bytes; returns the batch it closed, if
    /// adding it would have taken that batch over a bound.
    pub fn push(&mut self, item: T, encoded_len: usize) -> Option<Vec<T>> {
        let size = framed_len(encoded_len);
        let full = !self.items.is_empty()
            && (self.items.len() >= self.max_items || self.bytes + size > self.max_bytes);
        let closed = full.then(|| self.take());
        self.bytes += size;
        self.items.push(item);
        closed
    }

    /// The batch being filled (possibly empty), leaving the batcher empty.
    pub fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }

    /// Encoded size of the batch being filled (its repeated field; the enclosing message adds
    /// nothing else).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framed_len_counts_the_tag_and_the_varint() {
        assert_eq!(framed_len(0), 2);
        assert_eq!(framed_len(127), 129);
        assert_eq!(framed_len(128), 131);
        assert_eq!(framed_len(16_383), 16_386);
        assert_eq!(framed_len(16_384), 16_388);
    }

    #[test]
    fn batches_stay_within_the_encoded_bound_and_one_item_always_goes() {
        let mut b = Batcher::new(1000, 10);
        assert!(b.push(1, 400).is_none());
        assert!(b.push(2, 400).is_none());
        assert_eq!(b.bytes(), 2 * framed_len(400));
        // A third would make 1209 encoded bytes.
        assert_eq!(b.push(3, 400), Some(vec![1, 2]));
        assert_eq!(
            b.push(4, 5000),
            Some(vec![3]),
            "a big item closes the batch"
        );
        assert_eq!(b.push(5, 1), Some(vec![4]), "and goes alone");
        assert_eq!(b.take(), vec![5]);
        assert!(b.is_empty());
    }

    #[test]
    fn batches_stay_within_the_item_bound() {
        let mut b = Batcher::new(usize::MAX, 2);
        assert!(b.push('a', 1).is_none());
        assert!(b.push('b', 1).is_none());
        assert_eq!(b.push('c', 1), Some(vec!['a', 'b']));
    }

    #[test]
    fn the_byte_bound_never_exceeds_the_grpc_message_limit() {
        let b = Batcher::<()>::new(usize::MAX, 1);
        assert_eq!(b.max_bytes, GRPC_MESSAGE_BYTES_MAX);
    }
}
