//! When a runtime health event goes to ADR, following the SDK's health reporter (ADR 0028) so the
//! service sees what Microsoft's connectors send: nothing before the first report; a report
//! older than the last one (lower resource version, earlier time) is dropped; the same health
//! again within the interval only refreshes its time; anything else goes at once and restarts
//! the interval; when the interval passes with nothing sent, the last health goes again, stamped
//! now; after a definition change the cache is paused (emptied, no repeats) so the service can
//! age the component to Unknown.
//!
//! One [`HealthCache`] per reported component (a device endpoint, a dataset, an event). It holds
//! no clock: callers pass the time, so the rules are tested without waiting.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::{HealthStatus, RuntimeHealth};

/// The shortest re-report interval the SDK allows.
pub const INTERVAL_MIN: Duration = Duration::from_secs(60);
/// The SDK's default re-report interval.
pub const INTERVAL_DEFAULT: Duration = Duration::from_secs(600);

/// A health as the connector observed it, before it is stamped for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The version of the resource reported on.
    pub version: u64,
    /// Available or Unavailable.
    pub status: HealthStatus,
    /// Why, for humans.
    pub message: Option<String>,
    /// Why, as a CamelCase code.
    pub reason_code: Option<String>,
    /// When it was observed.
    pub at: SystemTime,
}

impl Observed {
    /// Whether `other` says the same (all but the time).
    fn same_as(&self, other: &Observed) -> bool {
        self.version == other.version
            && self.status == other.status
            && self.message == other.message
            && self.reason_code == other.reason_code
    }

    /// The wire form, stamped with `at`.
    fn stamped(&self, at: SystemTime) -> RuntimeHealth {
        RuntimeHealth {
            version: self.version,
            status: self.status,
            last_update_time: humantime::format_rfc3339_millis(at).to_string(),
            message: self.message.clone(),
            reason_code: self.reason_code.clone(),
        }
    }
}

/// The interval is below [`INTERVAL_MIN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("health report interval {0:?} is below the minimum of 60 s")]
pub struct IntervalTooShort(pub Duration);

/// The last health of one component and when it was last sent.
#[derive(Debug, Clone)]
pub struct HealthCache {
    interval: Duration,
    last: Option<(Observed, Instant)>,
}

impl HealthCache {
    /// A cache that re-reports every `interval` (at least [`INTERVAL_MIN`]).
    pub fn new(interval: Duration) -> Result<Self, IntervalTooShort> {
        if interval < INTERVAL_MIN {
            return Err(IntervalTooShort(interval));
        }
        Ok(Self {
            interval,
            last: None,
        })
    }

    /// Takes an observed health at `now`; returns what to send, if anything.
    pub fn report(&mut self, health: Observed, now: Instant) -> Option<RuntimeHealth> {
        if let Some((last, sent)) = &mut self.last {
            if health.version < last.version || health.at < last.at {
                return None; // stale
            }
            if health.same_as(last) && now < *sent + self.interval {
                last.at = health.at;
                return None;
            }
        }
        let wire = health.stamped(health.at);
        self.last = Some((health, now));
        Some(wire)
    }

    /// When the cached health is due again; `None` while there is nothing to repeat.
    pub fn due(&self) -> Option<Instant> {
        self.last.as_ref().map(|(_, sent)| *sent + self.interval)
    }

    /// The cached health again, stamped `wall`, when it is due at `now`.
    pub fn repeat(&mut self, now: Instant, wall: SystemTime) -> Option<RuntimeHealth> {
        let interval = self.interval;
        let (last, sent) = self.last.as_mut()?;
        if now < *sent + interval {
            return None;
        }
        last.at = wall;
        *sent = now;
        Some(last.stamped(wall))
    }

    /// Forgets the cached health and stops repeating it (a definition changed).
    pub fn pause(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(version: u64, status: HealthStatus, at: SystemTime) -> Observed {
        Observed {
            version,
            status,
            message: None,
            reason_code: None,
            at,
        }
    }

    fn epoch(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    #[test]
    fn the_interval_has_the_sdks_minimum() {
        assert_eq!(
            HealthCache::new(Duration::from_secs(59)).unwrap_err(),
            IntervalTooShort(Duration::from_secs(59))
        );
        assert!(HealthCache::new(INTERVAL_MIN).is_ok());
    }

    #[test]
    fn first_and_changed_health_go_at_once_the_same_only_refreshes() {
        let t0 = Instant::now();
        let mut c = HealthCache::new(INTERVAL_DEFAULT).unwrap();
        assert_eq!(c.due(), None, "nothing before the first report");
        let up = observed(3, HealthStatus::Available, epoch(0));
        let sent = c.report(up.clone(), t0).unwrap();
        assert_eq!(sent.last_update_time, "2023-11-14T22:13:20.000Z");
        assert_eq!(sent.version, 3);
        let again = observed(3, HealthStatus::Available, epoch(5));
        assert_eq!(c.report(again, t0 + Duration::from_secs(5)), None);
        let mut down = observed(3, HealthStatus::Unavailable, epoch(6));
        down.reason_code = Some("Disconnected".into());
        let sent = c.report(down, t0 + Duration::from_secs(6)).unwrap();
        assert_eq!(sent.status, HealthStatus::Unavailable);
        assert_eq!(sent.reason_code.as_deref(), Some("Disconnected"));
        assert_eq!(
            c.due(),
            Some(t0 + Duration::from_secs(606)),
            "the timer restarts"
        );
    }

    #[test]
    fn stale_health_is_dropped() {
        let t0 = Instant::now();
        let mut c = HealthCache::new(INTERVAL_MIN).unwrap();
        c.report(observed(4, HealthStatus::Available, epoch(10)), t0)
            .unwrap();
        let older_version = observed(3, HealthStatus::Unavailable, epoch(11));
        assert_eq!(c.report(older_version, t0), None);
        let older_time = observed(4, HealthStatus::Unavailable, epoch(9));
        assert_eq!(c.report(older_time, t0), None);
    }

    #[test]
    fn the_last_health_repeats_when_due_stamped_now_until_paused() {
        let t0 = Instant::now();
        let mut c = HealthCache::new(INTERVAL_MIN).unwrap();
        c.report(observed(1, HealthStatus::Available, epoch(0)), t0)
            .unwrap();
        assert_eq!(c.repeat(t0 + Duration::from_secs(59), epoch(59)), None);
        let again = c.repeat(t0 + INTERVAL_MIN, epoch(60)).unwrap();
        assert_eq!(again.last_update_time, "2023-11-14T22:14:20.000Z");
        assert_eq!(c.due(), Some(t0 + 2 * INTERVAL_MIN));
        // The same health past the interval is sent, not only refreshed.
        let late = t0 + 2 * INTERVAL_MIN;
        assert!(
            c.report(observed(1, HealthStatus::Available, epoch(120)), late)
                .is_some()
        );
        c.pause();
        assert_eq!(c.due(), None);
        assert_eq!(c.repeat(late + INTERVAL_MIN, epoch(300)), None);
        // After a pause the next report goes whatever it says.
        assert!(
            c.report(observed(1, HealthStatus::Available, epoch(301)), late)
                .is_some()
        );
    }
}
