//! The runtime health ADR hears from the connector: one [`HealthCache`] per device endpoint,
//! dataset and event, fed from ingest's status, deduplicated and re-reported by the SDK's rules,
//! paused when the definition it belongs to changes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::targets::Target;
use crate::adr::health::{HealthCache, IntervalTooShort, Observed};
use crate::adr::{HealthEvent, HealthStatus, RuntimeHealth};
use crate::status;

/// One reported component of a target.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The device endpoint itself.
    Endpoint,
    /// A dataset, by name.
    Dataset(String),
    /// An event: its group and name.
    Event(String, String),
}

/// A health as ingest's status shows it, for `version` of its definition, observed `at`.
pub fn observed(h: &status::RuntimeHealth, version: u64, at: SystemTime) -> Observed {
    Observed {
        version,
        status: if h.available() {
            HealthStatus::Available
        } else {
            HealthStatus::Unavailable
        },
        message: (!h.message.is_empty()).then(|| h.message.clone()),
        reason_code: (!h.reason_code.is_empty()).then(|| h.reason_code.clone()),
        at,
    }
}

/// The caches of every target's components.
#[derive(Debug)]
pub struct Healths {
    empty: HealthCache,
    owners: BTreeMap<Target, BTreeMap<Part, HealthCache>>,
    /// No cache is due before this (a lower bound, so most ticks skip the scan).
    next_due: Option<Instant>,
}

impl Healths {
    /// Caches re-reporting every `interval` (at least the SDK's minimum).
    pub fn new(interval: Duration) -> Result<Self, IntervalTooShort> {
        Ok(Self {
            empty: HealthCache::new(interval)?,
            owners: BTreeMap::new(),
            next_due: None,
        })
    }

    /// Takes the components of `owner` seen now (the ones not seen are forgotten); returns the
    /// events to send.
    pub fn observe(
        &mut self,
        owner: &Target,
        seen: Vec<(Part, Observed)>,
        now: Instant,
    ) -> Vec<HealthEvent> {
        let caches = self.owners.entry(owner.clone()).or_default();
        caches.retain(|p, _| seen.iter().any(|(s, _)| s == p));
        let mut out = Vec::new();
        for (part, health) in seen {
            let cache = caches
                .entry(part.clone())
                .or_insert_with(|| self.empty.clone());
            if let Some(h) = cache.report(health, now) {
                out.push((part, h));
            }
            if let Some(due) = cache.due() {
                self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
            }
        }
        events(owner, out)
    }

    /// Pauses the components of the targets `changed` picks (their definition changed).
    pub fn pause(&mut self, changed: impl Fn(&Target) -> bool) {
        for (_, caches) in self.owners.iter_mut().filter(|(t, _)| changed(t)) {
            caches.values_mut().for_each(HealthCache::pause);
        }
    }

    /// Forgets the targets `keep` refuses.
    pub fn retain(&mut self, keep: impl Fn(&Target) -> bool) {
        self.owners.retain(|t, _| keep(t));
    }

    /// The healths due again at `now`, stamped `wall`, by target.
    pub fn repeats(&mut self, now: Instant, wall: SystemTime) -> Vec<(Target, HealthEvent)> {
        if self.next_due.is_none_or(|d| now < d) {
            return Vec::new();
        }
        let mut next: Option<Instant> = None;
        let mut out = Vec::new();
        for (owner, caches) in &mut self.owners {
            let mut again = Vec::new();
            for (part, cache) in caches.iter_mut() {
                if let Some(h) = cache.repeat(now, wall) {
                    again.push((part.clone(), h));
                }
                if let Some(due) = cache.due() {
                    next = Some(next.map_or(due, |d| d.min(due)));
                }
            }
            out.extend(events(owner, again).into_iter().map(|e| (owner.clone(), e)));
        }
        self.next_due = next;
        out
    }
}

/// The telemetry carrying `sends` of `owner`: one per endpoint, one for an asset's datasets, one
/// for its events.
fn events(owner: &Target, sends: Vec<(Part, RuntimeHealth)>) -> Vec<HealthEvent> {
    let asset = match owner {
        Target::Asset { asset, .. } => asset.clone(),
        Target::Device { .. } => String::new(),
    };
    let (mut datasets, mut evs, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for (part, h) in sends {
        match part {
            Part::Endpoint => out.push(HealthEvent::Endpoint(h)),
            Part::Dataset(d) => datasets.push((d, h)),
            Part::Event(g, e) => evs.push((g, e, h)),
        }
    }
    if !datasets.is_empty() {
        out.push(HealthEvent::Datasets {
            asset: asset.clone(),
            datasets,
        });
    }
    if !evs.is_empty() {
        out.push(HealthEvent::Events { asset, events: evs });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adr::health::INTERVAL_MIN;

    fn asset() -> Target {
        Target::Asset {
            device: "d".into(),
            endpoint: "e".into(),
            asset: "a".into(),
        }
    }

    fn seen(version: u64, up: bool, at: SystemTime) -> Observed {
        let h = status::RuntimeHealth {
            status: if up { "Available" } else { "Unavailable" }.into(),
            last_update_time: String::new(),
            message: if up { "" } else { "connection refused" }.into(),
            reason_code: if up { "Connected" } else { "Disconnected" }.into(),
        };
        observed(&h, version, at)
    }

    #[test]
    fn an_assets_parts_go_together_once_each_change_and_again_when_due() {
        let mut h = Healths::new(INTERVAL_MIN).unwrap();
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let parts = |up: bool, v| {
            vec![
                (Part::Dataset("t".into()), seen(v, up, w0)),
                (Part::Event("g".into(), "e".into()), seen(v, true, w0)),
            ]
        };
        let sent = h.observe(&asset(), parts(true, 1), t0);
        assert_eq!(sent.len(), 2, "datasets and events: {sent:?}");
        assert!(
            h.observe(&asset(), parts(true, 1), t0).is_empty(),
            "deduplicated"
        );
        let down = h.observe(&asset(), parts(false, 1), t0);
        let [
            HealthEvent::Datasets {
                asset: name,
                datasets,
            },
        ] = &down[..]
        else {
            panic!("{down:?}")
        };
        assert_eq!(name, "a");
        assert_eq!(datasets[0].1.status, HealthStatus::Unavailable);
        assert_eq!(datasets[0].1.reason_code.as_deref(), Some("Disconnected"));
        assert!(h.repeats(t0, w0).is_empty(), "nothing due yet");
        let again = h.repeats(t0 + INTERVAL_MIN, w0);
        assert_eq!(again.len(), 2, "both parts repeat: {again:?}");
        // A new definition pauses the caches: the next report goes at once.
        h.pause(|t| *t == asset());
        assert!(h.repeats(t0 + 3 * INTERVAL_MIN, w0).is_empty(), "paused");
        assert_eq!(h.observe(&asset(), parts(false, 2), t0).len(), 2);
        h.retain(|_| false);
        assert!(h.repeats(t0 + 9 * INTERVAL_MIN, w0).is_empty(), "forgotten");
    }
}
