//! The process's readiness as the admin port's `/readyz` reports it: the same states the
//! services' `grpc.health.v1` reports (`health::set` records both), ready when every service
//! of the process is.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// The services of a process and whether each is ready.
#[derive(Debug)]
struct States {
    /// How many services the process runs; not ready before each reported.
    expected: usize,
    ready: HashMap<String, bool>,
}

impl States {
    fn ready(&self) -> bool {
        self.ready.len() >= self.expected && self.ready.values().all(|r| *r)
    }
}

fn states() -> &'static Mutex<States> {
    static STATES: OnceLock<Mutex<States>> = OnceLock::new();
    STATES.get_or_init(|| {
        Mutex::new(States {
            expected: 1,
            ready: HashMap::new(),
        })
    })
}

fn with<T>(f: impl FnOnce(&mut States) -> T) -> T {
    f(&mut states().lock().unwrap_or_else(|e| e.into_inner()))
}

/// Says the process runs `n` services (3 in `sse-connector`): ready only once all `n` are.
pub fn expect(n: usize) {
    with(|s| s.expected = n);
}

/// Records `service`'s readiness (called with every health change).
pub fn set(service: &str, ready: bool) {
    with(|s| s.ready.insert(service.to_string(), ready));
}

/// Whether every service of the process is ready.
pub fn ready() -> bool {
    with(|s| s.ready())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_expected_service_is() {
        let mut s = States {
            expected: 2,
            ready: HashMap::new(),
        };
        assert!(!s.ready(), "nothing reported");
        s.ready.insert("A".into(), true);
        assert!(!s.ready(), "one of two");
        s.ready.insert("B".into(), false);
        assert!(!s.ready());
        s.ready.insert("B".into(), true);
        assert!(s.ready());
        s.ready.insert("A".into(), false);
        assert!(!s.ready(), "both ways");
    }
}
