//! Which checkpoint records of streams no plan has any more are dropped, and when. Keeping one
//! for a while lets a resource removed and restored by an edit resume from its checkpoint;
//! keeping it for ever lets device churn (new names, new URLs) grow the store without bound. So
//! a record whose stream has been in no plan for the retention (`--checkpoint-retention`) is
//! dropped, and of the records of absent streams at most `--checkpoint-absent-max` are kept, the
//! ones absent longest dropped first, so a storm of renames within the retention is bounded too.
//!
//! Each record carries when its stream was last known planned (`seen`, unix seconds), so the
//! removal time survives a restart. Times are handed in by the caller: the rules are tested with
//! explicit times, never by waiting.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// The shortest time between two writes of a planned stream's record only to renew its `seen`
/// (the retention's quarter when that is longer), so a record read back after a restart is
/// never much older than its stream's last plan.
pub const REFRESH_MIN: Duration = Duration::from_secs(60);

/// How long records of absent streams are kept, and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long a record outlives its stream's last plan (zero: dropped at the next save).
    pub retention: Duration,
    /// Most records of absent streams kept.
    pub absent_max: usize,
}

impl Default for Policy {
    /// The flags' defaults: 7 days, 10,000 records.
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(7 * 24 * 3600),
            absent_max: 10_000,
        }
    }
}

impl Policy {
    /// How old a planned stream's stored `seen` may grow before its record is written again;
    /// `None` with a zero retention (a removal drops the record at once: `seen` is not used).
    fn refresh(&self) -> Option<u64> {
        (!self.retention.is_zero()).then(|| (self.retention / 4).max(REFRESH_MIN).as_secs())
    }
}

/// One stream's record as ingest holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The last event ID stored (or about to be).
    pub id: String,
    /// When the stream was last known planned, unix seconds (the last save, while it is).
    pub seen: u64,
    /// The `seen` the store holds; `None`: none (a record of an older version, or one the store
    /// lost and must be written again).
    pub stored_seen: Option<u64>,
}

impl Entry {
    /// A record read from the store at `now`: one without a time (written by an older version)
    /// counts as seen at load, and a time in the future as now, so neither is dropped early nor
    /// kept for ever.
    pub fn loaded(id: String, seen: Option<u64>, now: u64) -> Self {
        Self {
            id,
            seen: seen.map_or(now, |s| s.min(now)),
            stored_seen: seen,
        }
    }
}

/// What a save does beyond writing the changed checkpoints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Records to drop from the store.
    pub prune: Vec<String>,
    /// Records to write again for their `seen`: a stream just gone (its removal time), or a
    /// planned one whose stored time is old.
    pub mark: Vec<String>,
    /// Records of absent streams kept.
    pub absent: usize,
}

impl Sweep {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.prune.is_empty() && self.mark.is_empty()
    }
}

/// Decides, at `now`, which of `entries` to drop and which to write again, and renews `seen` of
/// every planned stream. Only records for which `prunable` holds are dropped (or count against
/// the cap): another pod's streams, which are in no plan of this one, are not its to drop.
pub fn sweep(
    entries: &mut BTreeMap<String, Entry>,
    planned: &HashSet<String>,
    prunable: impl Fn(&str) -> bool,
    policy: Policy,
    now: u64,
) -> Sweep {
    let mut out = Sweep::default();
    let refresh = policy.refresh();
    // (seen, key, stored seen) of each absent stream's record this pod may drop.
    let mut absent: Vec<(u64, String, Option<u64>)> = Vec::new();
    for (key, e) in entries.iter_mut() {
        if planned.contains(key) {
            e.seen = now;
            let stale = |r: u64| e.stored_seen.is_none_or(|s| now.saturating_sub(s) >= r);
            if refresh.is_some_and(stale) {
                out.mark.push(key.clone());
            }
            continue;
        }
        if !prunable(key) {
            continue;
        }
        if now.saturating_sub(e.seen) >= policy.retention.as_secs() {
            out.prune.push(key.clone());
        } else {
            absent.push((e.seen, key.clone(), e.stored_seen));
        }
    }
    // Oldest first (the key breaks ties, so the choice is the same on every replica).
    absent.sort();
    let over = absent.len().saturating_sub(policy.absent_max);
    out.prune.extend(absent.drain(..over).map(|(_, k, _)| k));
    out.absent = absent.len();
    // A removal time not stored yet is written, so it survives a restart.
    out.mark.extend(
        absent
            .into_iter()
            .filter(|(seen, _, stored)| *stored != Some(*seen))
            .map(|(_, k, _)| k),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 24 * 3600;

    fn entries(list: &[(&str, u64, Option<u64>)]) -> BTreeMap<String, Entry> {
        list.iter()
            .map(|(k, seen, stored)| {
                let e = Entry {
                    id: format!("id-{k}"),
                    seen: *seen,
                    stored_seen: *stored,
                };
                (k.to_string(), e)
            })
            .collect()
    }

    fn planned(keys: &[&str]) -> HashSet<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    fn week(absent_max: usize) -> Policy {
        Policy {
            retention: Duration::from_secs(7 * DAY),
            absent_max,
        }
    }

    #[test]
    fn an_absent_record_is_dropped_once_the_retention_has_passed() {
        let t0 = 1_000 * DAY;
        let mut e = entries(&[("live", t0, Some(t0)), ("gone", t0, Some(t0))]);
        let p = planned(&["live"]);
        let s = sweep(&mut e, &p, |_| true, week(100), t0 + 7 * DAY - 1);
        assert!(s.prune.is_empty(), "{s:?}: within the retention");
        assert_eq!(s.absent, 1);
        let s = sweep(&mut e, &p, |_| true, week(100), t0 + 7 * DAY);
        assert_eq!(s.prune, ["gone"]);
        assert_eq!(e["live"].seen, t0 + 7 * DAY, "a planned stream is seen now");
    }

    #[test]
    fn a_record_restored_within_the_retention_is_kept_and_its_clock_restarts() {
        let t0 = 1_000 * DAY;
        let mut e = entries(&[("s", t0, Some(t0))]);
        // Gone for six days: kept.
        let s = sweep(&mut e, &planned(&[]), |_| true, week(100), t0 + 6 * DAY);
        assert!(s.prune.is_empty());
        // Back: seen now, so a second removal waits a full retention again.
        sweep(&mut e, &planned(&["s"]), |_| true, week(100), t0 + 6 * DAY);
        let s = sweep(&mut e, &planned(&[]), |_| true, week(100), t0 + 12 * DAY);
        assert!(s.prune.is_empty(), "{s:?}");
        let s = sweep(&mut e, &planned(&[]), |_| true, week(100), t0 + 13 * DAY);
        assert_eq!(s.prune, ["s"]);
    }

    #[test]
    fn a_zero_retention_drops_at_once_and_renews_nothing() {
        let policy = Policy {
            retention: Duration::ZERO,
            absent_max: 100,
        };
        let mut e = entries(&[("live", 5, None), ("gone", 100, None)]);
        let s = sweep(&mut e, &planned(&["live"]), |_| true, policy, 100);
        assert_eq!(s.prune, ["gone"]);
        assert!(s.mark.is_empty(), "{s:?}: seen is not used");
    }

    #[test]
    fn the_absent_records_past_the_cap_go_oldest_first() {
        let t = 1_000 * DAY;
        let mut e = entries(&[
            ("a", t - 3, Some(t - 3)),
            ("b", t - 1, Some(t - 1)),
            ("c", t - 2, Some(t - 2)),
            ("d", t - 2, Some(t - 2)),
            ("live", t - 9, Some(t - 9)),
        ]);
        let s = sweep(&mut e, &planned(&["live"]), |_| true, week(2), t);
        assert_eq!(
            s.prune,
            ["a", "c"],
            "the oldest, then the key breaks the tie"
        );
        assert_eq!(s.absent, 2);
        let s = sweep(&mut e, &planned(&["live"]), |_| true, week(0), t);
        assert_eq!(s.prune.len(), 4, "{s:?}: none kept");
    }

    #[test]
    fn only_prunable_records_are_dropped_or_counted() {
        let t = 1_000 * DAY;
        let mut e = entries(&[("mine", 0, Some(0)), ("theirs", 0, Some(0))]);
        let s = sweep(&mut e, &planned(&[]), |k| k == "mine", week(0), t);
        assert_eq!(s.prune, ["mine"]);
        assert!(s.mark.is_empty());
        assert_eq!(e["theirs"].seen, 0, "not touched");
    }

    #[test]
    fn removal_times_and_old_times_of_planned_streams_are_written_again() {
        let t = 1_000 * DAY;
        let mut e = entries(&[
            ("fresh", t - 10, Some(t - 10)),
            ("stale", t - 2 * DAY, Some(t - 2 * DAY)),
            ("legacy", t, None),
        ]);
        let p = planned(&["fresh", "stale", "legacy"]);
        let s = sweep(&mut e, &p, |_| true, week(100), t);
        assert_eq!(
            s.mark,
            ["legacy", "stale"],
            "older than a quarter of the retention"
        );
        for k in ["legacy", "stale"] {
            e.get_mut(k).unwrap().stored_seen = Some(t); // written
        }
        // "fresh" goes: its last planned time is written once, then it waits quietly.
        let p = planned(&["stale", "legacy"]);
        let s = sweep(&mut e, &p, |_| true, week(100), t + 5);
        assert_eq!(s.mark, ["fresh"]);
        assert_eq!(e["fresh"].seen, t);
        e.get_mut("fresh").unwrap().stored_seen = Some(t);
        let s = sweep(&mut e, &p, |_| true, week(100), t + 6);
        assert!(s.is_empty(), "{s:?}");
    }

    #[test]
    fn a_loaded_record_without_a_time_counts_from_the_load() {
        let e = Entry::loaded("7".into(), None, 500);
        assert_eq!((e.seen, e.stored_seen), (500, None));
        let e = Entry::loaded("7".into(), Some(u64::MAX), 500);
        assert_eq!(e.seen, 500, "a time in the future is not kept for ever");
        let e = Entry::loaded("7".into(), Some(20), 500);
        assert_eq!((e.seen, e.stored_seen), (20, Some(20)));
    }
}
