//! When the registry fails (a disk full or read-only, an external registry unreachable), the
//! subject waits before it calls the registry again, 1 s doubling to 5 min: retrying on every
//! event cost a write attempt and a warning per event (about 200 lines a second from two
//! streams on a full disk, which holds the logs too). Its events go on without a schema
//! meanwhile, counted under `registry_error` as before.

use std::time::{Duration, Instant};

/// The first wait after a failure.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// The longest wait.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// One subject's registry failures in a row, and when it may call again.
#[derive(Debug, Default)]
pub(crate) struct RegistryRetry {
    after: Option<Instant>,
    failures: u32,
}

impl RegistryRetry {
    /// Whether the registry may be called now.
    pub fn due(&self) -> bool {
        self.after.is_none_or(|t| Instant::now() >= t)
    }

    /// Records a failure: the wait before the next call, and whether it is the first in a row
    /// (the one worth a warning).
    pub fn failed(&mut self) -> (Duration, bool) {
        let wait = RETRY_FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(RETRY_MAX);
        self.failures = self.failures.saturating_add(1);
        self.after = Some(Instant::now() + wait);
        (wait, self.failures == 1)
    }

    /// Records a success: the next failure waits [`RETRY_FIRST`] again.
    pub fn succeeded(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_the_maximum_and_a_success_starts_over() {
        let mut r = RegistryRetry::default();
        assert!(r.due());
        assert_eq!(r.failed(), (RETRY_FIRST, true));
        assert!(!r.due());
        assert_eq!(r.failed(), (RETRY_FIRST * 2, false));
        for _ in 0..20 {
            r.failed();
        }
        assert_eq!(r.failed().0, RETRY_MAX);
        r.succeeded();
        assert!(r.due());
        assert_eq!(r.failed(), (RETRY_FIRST, true));
    }
}
