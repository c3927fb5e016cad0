//! Which status updates ADR still needs: each target's payload is sent once at start and again
//! only when what it says changes (everything but `config.lastTransitionTime`); one update per
//! target is in flight at a time, and a failed one stays due for the next pass.

use std::collections::{BTreeMap, BTreeSet};

use super::targets::Target;
use crate::adr::{AssetStatus, DeviceStatus};

/// A status update's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// `updateDeviceStatus` (the topic's endpoint only).
    Device(DeviceStatus),
    /// `updateAssetStatus`.
    Asset(AssetStatus),
}

impl Payload {
    /// What the payload says: all but the time it was decided.
    fn gist(&self) -> Payload {
        let mut p = self.clone();
        let config = match &mut p {
            Payload::Device(d) => &mut d.config,
            Payload::Asset(a) => &mut a.config,
        };
        if let Some(c) = config {
            c.last_transition_time = None;
        }
        p
    }
}

/// The updates sent, due and in flight, by target.
#[derive(Debug, Default)]
pub struct Updates {
    /// The gist of the last update ADR accepted.
    sent: BTreeMap<Target, Payload>,
    /// Updates whose gist differs from what ADR holds.
    due: BTreeMap<Target, Payload>,
    /// Targets with an update in flight.
    in_flight: BTreeSet<Target>,
}

impl Updates {
    /// The status `t` should have now: due unless ADR already holds what it says.
    pub fn want(&mut self, t: Target, p: Payload) {
        if self.sent.get(&t) == Some(&p.gist()) {
            self.due.remove(&t);
        } else {
            self.due.insert(t, p);
        }
    }

    /// The due updates of targets with none in flight, now counted in flight.
    pub fn take_due(&mut self) -> Vec<(Target, Payload)> {
        let picks: Vec<(Target, Payload)> = (self.due.iter())
            .filter(|(t, _)| !self.in_flight.contains(*t))
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        self.in_flight.extend(picks.iter().map(|(t, _)| t.clone()));
        picks
    }

    /// The update `p` of `t` ended; `ok`: ADR holds it now (else it stays due).
    pub fn done(&mut self, t: Target, p: &Payload, ok: bool) {
        self.in_flight.remove(&t);
        if !ok {
            return;
        }
        let gist = p.gist();
        if self.due.get(&t).is_some_and(|q| q.gist() == gist) {
            self.due.remove(&t);
        }
        self.sent.insert(t, gist);
    }

    /// Forgets the targets `keep` refuses (no longer allocated).
    pub fn retain(&mut self, keep: impl Fn(&Target) -> bool) {
        self.sent.retain(|t, _| keep(t));
        self.due.retain(|t, _| keep(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adr::{ConfigError, ConfigStatus, PartStatus};

    fn asset(version: u64, when: &str, error: Option<&str>) -> Payload {
        Payload::Asset(AssetStatus {
            config: Some(ConfigStatus {
                error: None,
                last_transition_time: Some(when.into()),
                version: Some(version),
            }),
            datasets: Some(vec![PartStatus {
                name: "t".into(),
                error: error.map(|m| ConfigError {
                    code: Some("DeliveryFailed".into()),
                    message: Some(m.into()),
                    details: None,
                }),
                message_schema_reference: None,
            }]),
            ..Default::default()
        })
    }

    fn target() -> Target {
        Target::Asset {
            device: "d".into(),
            endpoint: "e".into(),
            asset: "a".into(),
        }
    }

    #[test]
    fn sent_once_then_only_when_what_it_says_changes() {
        let mut u = Updates::default();
        let first = asset(1, "2026-01-01T00:00:00Z", None);
        u.want(target(), first.clone());
        let due = u.take_due();
        assert_eq!(due, vec![(target(), first.clone())], "once at start");
        // The same again while in flight is not sent twice.
        u.want(target(), first.clone());
        assert!(u.take_due().is_empty(), "one in flight per target");
        u.done(target(), &first, true);
        assert!(u.take_due().is_empty());
        // Only the time differs: nothing to send.
        u.want(target(), asset(1, "2026-01-02T00:00:00Z", None));
        assert!(
            u.take_due().is_empty(),
            "an unchanged status is not re-sent"
        );
        // A dataset error, then a new definition version, are changes.
        let failing = asset(1, "2026-01-02T00:00:00Z", Some("boom"));
        u.want(target(), failing.clone());
        assert_eq!(u.take_due(), vec![(target(), failing.clone())]);
        u.done(target(), &failing, true);
        let v2 = asset(2, "2026-01-02T00:00:00Z", Some("boom"));
        u.want(target(), v2.clone());
        assert_eq!(u.take_due(), vec![(target(), v2)]);
    }

    #[test]
    fn a_failed_update_stays_due_and_a_newer_one_replaces_it() {
        let mut u = Updates::default();
        let first = asset(1, "t", None);
        u.want(target(), first.clone());
        u.take_due();
        u.done(target(), &first, false);
        assert_eq!(u.take_due(), vec![(target(), first.clone())], "retried");
        // A change while in flight is sent after the one in flight ends.
        let second = asset(1, "t", Some("boom"));
        u.want(target(), second.clone());
        u.done(target(), &first, true);
        assert_eq!(u.take_due(), vec![(target(), second)]);
        u.retain(|_| false);
        u.want(target(), first.clone());
        assert_eq!(u.take_due(), vec![], "still in flight");
    }
}
