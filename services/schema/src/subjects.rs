//! The subjects the pipeline holds state for: looked up by name on every event, listed in order
//! for `ListSubjects`, and bounded. Subjects come from ingest's routes, so deleting and adding
//! resources would otherwise leave the state of every subject ever seen in memory until a
//! restart. Past `--max-subjects`, the least recently seen tenth is forgotten in one pass: their
//! schemas stay in the registry, a forgotten subject's next event loads its state again (as after
//! a restart), and only its counters start over.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use foldhash::HashMap;

/// Default of `--max-subjects`: above the routes one ingest carries in practice (each subject
/// holds its merged schema, a few KiB), so only resource churn ever reaches it.
pub const HELD_MAX_DEFAULT: usize = 100_000;

/// One subject's state and when it was last seen.
#[derive(Debug)]
struct Held<S> {
    /// The [`Subjects::tick`] of its latest event.
    seen: u64,
    state: Arc<S>,
}

/// Every subject held: its state by name, and its name in order for the pages of `ListSubjects`
/// (looking a subject up stays a hash lookup on the event path).
#[derive(Debug)]
pub(crate) struct Subjects<S> {
    by_name: HashMap<String, Held<S>>,
    ordered: BTreeSet<String>,
    /// Counts lookups: the order in which subjects were last seen.
    tick: u64,
    /// Most subjects held.
    max: usize,
}

impl<S: Default> Subjects<S> {
    /// An empty table holding at most `max` subjects (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            by_name: HashMap::default(),
            ordered: BTreeSet::new(),
            tick: 0,
            max: max.max(1),
        }
    }

    /// The state of `subject`, made when new (forgetting the least recently seen subjects first
    /// when the table is full). Returns how many were forgotten, for the log.
    pub fn entry(&mut self, subject: &str) -> (Arc<S>, usize) {
        self.tick += 1;
        if let Some(held) = self.by_name.get_mut(subject) {
            held.seen = self.tick;
            return (held.state.clone(), 0);
        }
        let forgotten = if self.by_name.len() >= self.max {
            self.forget_least_recent()
        } else {
            0
        };
        let state = Arc::new(S::default());
        self.ordered.insert(subject.to_string());
        let held = Held {
            seen: self.tick,
            state: state.clone(),
        };
        self.by_name.insert(subject.to_string(), held);
        (state, forgotten)
    }

    /// Forgets the least recently seen tenth of `max` (at least one subject), so a stream of new
    /// subjects pays one pass over the table per tenth, not one per subject.
    fn forget_least_recent(&mut self) -> usize {
        let keep = self.max - (self.max / 10).max(1);
        let drop = self.by_name.len().saturating_sub(keep);
        if drop == 0 {
            return 0;
        }
        let mut seen: Vec<u64> = self.by_name.values().map(|h| h.seen).collect();
        // Ticks are distinct: exactly `drop` subjects are at or below the cut.
        let (_, cut, _) = seen.select_nth_unstable(drop - 1);
        let cut = *cut;
        let ordered = &mut self.ordered;
        self.by_name.retain(|name, held| {
            let keep = held.seen > cut;
            if !keep {
                ordered.remove(name);
            }
            keep
        });
        drop
    }

    /// At most `limit` subjects after `after` (from the first when `None`) whose names are at
    /// most `max_len` bytes, in order, with their states.
    pub fn after(
        &self,
        after: Option<&str>,
        limit: usize,
        max_len: usize,
    ) -> Vec<(String, Arc<S>)> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.ordered
            .range::<str, _>((start, Bound::Unbounded))
            .filter(|s| s.len() <= max_len)
            .take(limit)
            .filter_map(|s| Some((s.clone(), self.by_name.get(s)?.state.clone())))
            .collect()
    }

    /// How many subjects are held.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &Subjects<u8>) -> Vec<String> {
        t.after(None, usize::MAX, usize::MAX)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_seen_tenth() {
        let mut t = Subjects::<u8>::new(20);
        for i in 0..20 {
            assert_eq!(t.entry(&format!("s{i:02}")).1, 0);
        }
        // Seen again: no longer among the least recent.
        t.entry("s00");
        t.entry("s01");
        let (_, forgotten) = t.entry("new");
        assert_eq!(forgotten, 2, "a tenth of 20");
        assert_eq!(t.len(), 19);
        let held = names(&t);
        assert!(held.contains(&"s00".to_string()) && held.contains(&"s01".to_string()));
        assert!(!held.contains(&"s02".to_string()) && !held.contains(&"s03".to_string()));
        assert!(held.contains(&"s04".to_string()) && held.contains(&"new".to_string()));
        assert_eq!(held.len(), t.len(), "the order and the map agree");
    }

    #[test]
    fn churn_never_holds_more_than_max() {
        let mut t = Subjects::<u8>::new(1000);
        for i in 0..50_000 {
            t.entry(&format!("asset-{i}/dataset"));
            assert!(t.len() <= 1000);
        }
        assert_eq!(names(&t).len(), t.len());
        assert!(t.len() > 900, "a pass forgets one tenth: {}", t.len());
    }

    #[test]
    fn a_table_of_one_keeps_the_latest() {
        let mut t = Subjects::<u8>::new(0);
        t.entry("a");
        t.entry("b");
        assert_eq!(names(&t), ["b"]);
    }

    #[test]
    fn a_forgotten_subject_comes_back_with_a_new_state() {
        let mut t = Subjects::<std::sync::Mutex<u32>>::new(1);
        let (a, _) = t.entry("a");
        *a.lock().unwrap() = 7;
        t.entry("b");
        let (again, forgotten) = t.entry("a");
        assert_eq!(forgotten, 1);
        assert_eq!(*again.lock().unwrap(), 0);
    }
}
