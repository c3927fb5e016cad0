//! The hybrid logical clock of the `__ts` user property of Azure IoT Operations RPC requests
//! (state store and schema registry): `<unix ms, 15 digits>:<counter, 5 digits>:<client id>`,
//! never going backwards, even when the wall clock does.

use std::time::{SystemTime, UNIX_EPOCH};

/// A hybrid logical clock: wall-clock milliseconds plus a counter that orders stamps within the
/// same (or a backwards-moving) millisecond.
#[derive(Debug, Default)]
pub struct Hlc {
    last_ms: u64,
    counter: u32,
}

impl Hlc {
    /// The next timestamp given the wall clock `now_ms`: never goes backwards.
    pub fn tick(&mut self, now_ms: u64) -> (u64, u32) {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.counter = 0;
        } else {
            self.counter = self.counter.saturating_add(1);
        }
        (self.last_ms, self.counter)
    }

    /// The next `__ts` value for `client_id`, from the system clock.
    pub fn next_ts(&mut self, client_id: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let (ms, counter) = self.tick(now);
        format_ts(ms, counter, client_id)
    }
}

/// `<unix ms, 15 digits>:<counter, 5 digits>:<client id>`.
pub fn format_ts(ms: u64, counter: u32, client_id: &str) -> String {
    format!("{ms:015}:{counter:05}:{client_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ts() {
        assert_eq!(
            format_ts(1_700_000_000_123, 7, "pub-1"),
            "001700000000123:00007:pub-1"
        );
    }

    #[test]
    fn never_goes_backwards() {
        let mut c = Hlc::default();
        assert_eq!(c.tick(100), (100, 0));
        assert_eq!(c.tick(100), (100, 1));
        assert_eq!(c.tick(90), (100, 2));
        assert_eq!(c.tick(101), (101, 0));
        // The system clock is far past 101 ms: later stamps sort after earlier ones.
        let a = c.next_ts("me");
        let b = c.next_ts("me");
        assert!(a < b, "{a} then {b}");
        let parts: Vec<&str> = a.split(':').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].len(), 15);
        assert_eq!(parts[1].len(), 5);
        assert_eq!(parts[2], "me");
    }
}
