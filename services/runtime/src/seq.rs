//! Values of one stream keyed by their `seq`, for the ack bookkeeping of ingest and schema:
//! events go out in `seq` order and their acks come back in it.

use std::collections::VecDeque;

/// Values in `seq` order: one comes in at the back and is taken from the front, so the common
/// case is O(1); a re-sent or out-of-order `seq` is found by binary search.
#[derive(Debug, Clone)]
pub struct SeqQueue<T> {
    items: VecDeque<(u64, T)>,
}

impl<T> Default for SeqQueue<T> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
        }
    }
}

impl<T> SeqQueue<T> {
    /// Puts `value` at `seq`; returns the value it replaces when `seq` was already there.
    pub fn insert(&mut self, seq: u64, value: T) -> Option<T> {
        match self.items.back() {
            Some(&(last, _)) if last >= seq => {
                match self.items.binary_search_by_key(&seq, |e| e.0) {
                    Ok(i) => Some(std::mem::replace(&mut self.items[i].1, value)),
                    Err(i) => {
                        self.items.insert(i, (seq, value));
                        None
                    }
                }
            }
            _ => {
                self.items.push_back((seq, value));
                None
            }
        }
    }

    /// Takes the value at `seq` out; `None` when there is none.
    pub fn take(&mut self, seq: u64) -> Option<T> {
        let i = if self.items.front().is_some_and(|e| e.0 == seq) {
            0
        } else {
            self.items.binary_search_by_key(&seq, |e| e.0).ok()?
        };
        self.items.remove(i).map(|(_, v)| v)
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_re_sent_and_out_of_order() {
        let mut q = SeqQueue::default();
        for (seq, v) in [(1, "a"), (2, "b"), (4, "d"), (3, "c")] {
            assert_eq!(q.insert(seq, v), None);
        }
        assert_eq!(q.insert(2, "B"), Some("b"), "a re-send replaces");
        assert_eq!(q.len(), 4);
        assert_eq!(q.take(1), Some("a"), "from the front");
        assert_eq!(q.take(3), Some("c"), "from the middle");
        assert_eq!(q.take(3), None, "only once");
        assert_eq!(q.take(9), None);
        assert_eq!(q.insert(1, "a again"), None, "before the front");
        assert_eq!(q.take(4), Some("d"));
        assert_eq!(q.take(1), Some("a again"));
        assert_eq!(q.take(2), Some("B"));
        assert!(q.is_empty());
    }
}
