//! One save: the changed checkpoints written and, by the rules of [`super::retention`], the
//! records of streams no plan has any more dropped and the removal times written, in one go per
//! store (one file replaced, or one retained message per record published or cleared).
//!
//! The records are swept when the plan changed and otherwise at most every [`SWEEP_EVERY`]:
//! a sweep visits every record, and saves come every second.

use std::collections::{BTreeSet, HashSet};

use super::retention::{self, Entry, Sweep};
use super::{Backend, CheckpointError, Checkpoints, file, lock};

/// How often the records are swept when the plan did not change: a stream's "last planned"
/// time is this coarse, far below any useful retention.
pub const SWEEP_EVERY: u64 = 60;

/// The keys of every planned stream, and when the records were last swept against them.
#[derive(Debug, Default)]
pub struct Planned {
    /// The keys; `None` until the first plan (nothing is dropped before the resources are
    /// known: the ADR source brings them some time after the start).
    pub keys: Option<HashSet<String>>,
    /// The keys changed since the last sweep.
    pub fresh: bool,
    /// When the last sweep ran (unix seconds).
    pub swept_at: u64,
}

impl Checkpoints {
    /// Writes every checkpoint that changed since the last save and what the sweep asks for;
    /// the count of changed checkpoints written.
    pub(super) async fn write_changed(&self, now: u64) -> Result<usize, CheckpointError> {
        let changed = self.take_changed();
        let sweep = self.sweep(&changed, now);
        if changed.is_empty() && sweep.is_empty() {
            return Ok(0);
        }
        if let Err(e) = self.write(&changed, &sweep).await {
            self.redirty(&changed);
            return Err(e);
        }
        self.commit(&changed, &sweep);
        Ok(changed.len())
    }

    /// The checkpoints changed since the last save (each stream's progress is marked clean).
    fn take_changed(&self) -> Vec<(String, String)> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams
            .iter()
            .filter_map(|(k, p)| {
                let mut p = lock(p);
                if !p.dirty {
                    return None;
                }
                p.dirty = false;
                p.committed().map(|id| (k.clone(), id.to_string()))
            })
            .collect()
    }

    /// Marks streams `keys` as changed again (their write failed).
    fn redirty(&self, keys: &[(String, String)]) {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for (k, _) in keys {
            if let Some(p) = streams.get(k) {
                lock(p).dirty = true;
            }
        }
    }

    /// Takes the changed ids into the records, then, when a sweep is due, decides which
    /// records to drop and which to write again. On a broker, only records of streams this
    /// process reads are written again (another replica's stream: the id held here may be
    /// stale), and with `shared` only those are dropped.
    fn sweep(&self, changed: &[(String, String)], now: u64) -> Sweep {
        let mut planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        for (k, id) in changed {
            saved
                .entry(k.clone())
                .and_modify(|e| e.id.clone_from(id))
                .or_insert_with(|| Entry {
                    id: id.clone(),
                    seen: now,
                    stored_seen: None,
                });
        }
        let due = planned.fresh || now.saturating_sub(planned.swept_at) >= SWEEP_EVERY;
        let Some(keys) = planned.keys.as_ref().filter(|_| due) else {
            return Sweep::default();
        };
        let read_here = |k: &str| streams.contains_key(k);
        let prunable = |k: &str| !self.shared || read_here(k);
        let mut sweep = retention::sweep(&mut saved, keys, prunable, self.policy, now);
        if matches!(self.backend, Backend::Mqtt(_)) {
            sweep.mark.retain(|k| read_here(k));
        }
        planned.fresh = false;
        planned.swept_at = now;
        sweep
    }

    /// Writes the changed records and the sweep's, and removes the ones it drops.
    async fn write(
        &self,
        changed: &[(String, String)],
        sweep: &Sweep,
    ) -> Result<(), CheckpointError> {
        match &self.backend {
            Backend::None => Ok(()),
            Backend::File(path) => {
                let all = {
                    let mut all = self.saved.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    all.retain(|k, _| !sweep.prune.contains(k));
                    all
                };
                file::write(path, &all).await
            }
            Backend::Mqtt(store) => {
                for (key, e) in self.to_publish(changed, sweep) {
                    store.save(&key, &e.id, e.seen).await?;
                }
                for key in &sweep.prune {
                    store.clear(key).await?;
                }
                Ok(())
            }
        }
    }

    /// The records a broker save publishes: the changed ones and the sweep's, but none it drops.
    fn to_publish(&self, changed: &[(String, String)], sweep: &Sweep) -> Vec<(String, Entry)> {
        let dropped: HashSet<&String> = sweep.prune.iter().collect();
        let keys: BTreeSet<&String> = changed
            .iter()
            .map(|(k, _)| k)
            .chain(&sweep.mark)
            .filter(|k| !dropped.contains(k))
            .collect();
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        keys.into_iter()
            .filter_map(|k| Some((k.clone(), saved.get(k)?.clone())))
            .collect()
    }

    /// Records what the store now holds, forgets the dropped records (and their streams'
    /// progress), and says how many went. A stream planned again while its record was being
    /// dropped keeps it, marked to be written again.
    fn commit(&self, changed: &[(String, String)], sweep: &Sweep) {
        let planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(self.backend, Backend::File(_)) {
            // The file holds every record: each one's time is now stored.
            saved
                .values_mut()
                .for_each(|e| e.stored_seen = Some(e.seen));
        } else {
            for k in changed.iter().map(|(k, _)| k).chain(&sweep.mark) {
                if let Some(e) = saved.get_mut(k) {
                    e.stored_seen = Some(e.seen);
                }
            }
        }
        let mut dropped = 0usize;
        for k in &sweep.prune {
            if planned.keys.as_ref().is_some_and(|p| p.contains(k)) {
                if let Some(e) = saved.get_mut(k) {
                    e.stored_seen = None;
                }
                continue;
            }
            streams.remove(k);
            saved.remove(k);
            dropped += 1;
        }
        if dropped > 0 {
            tracing::info!(
                dropped,
                kept = sweep.absent,
                retention_secs = self.policy.retention.as_secs(),
                absent_max = self.policy.absent_max,
                "checkpoints of streams no longer in the resources dropped"
            );
        }
    }
}
