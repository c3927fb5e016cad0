//! One aggregation of the status per collection, shared by the instruments that read it: each
//! instrument's callback takes the latest aggregate unless it already took that one (then a new
//! collection has begun, and it aggregates afresh). So a collection walks the status once, not
//! once per instrument, and needs no clock to tell collections apart.

use std::sync::{Arc, Mutex};

/// The latest aggregate and which readers took it (one bit each).
#[derive(Debug)]
pub(super) struct Shared<T> {
    latest: Mutex<(Option<Arc<T>>, u32)>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Self {
            latest: Mutex::new((None, 0)),
        }
    }
}

impl<T> Shared<T> {
    /// The aggregate for reader `who` (0 to 31): the latest one unless `who` already had it,
    /// else a new one made by `make`.
    pub fn get(&self, who: u32, make: impl FnOnce() -> T) -> Arc<T> {
        let bit = 1u32 << who;
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let (agg, taken) = &mut *latest;
        let agg = match agg {
            Some(a) if *taken & bit == 0 => a.clone(),
            _ => {
                *taken = 0;
                agg.insert(Arc::new(make())).clone()
            }
        };
        *taken |= bit;
        agg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reader_takes_each_aggregate_once() {
        let shared = Shared::default();
        let mut made = 0;
        let mut get = |who| {
            *shared.get(who, || {
                made += 1;
                made
            })
        };
        assert_eq!((get(0), get(1), get(2)), (1, 1, 1), "one collection");
        assert_eq!(
            (get(1), get(0), get(2)),
            (2, 2, 2),
            "the next, in any order"
        );
        assert_eq!(get(1), 3);
    }
}
