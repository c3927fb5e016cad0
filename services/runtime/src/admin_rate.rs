//! The rate limit on admin writes: one token bucket per service for its writing calls (the
//! schema registry's `PutSchema` and `InferSchema`, ingest's resource writes). Each such call
//! writes a file or parses a large document, so a caller looping on them would fill a volume or
//! keep a single-threaded service busy, stalling the event stream.

use std::sync::Mutex;
use std::time::Instant;

/// Default of `--admin-writes-per-second`: far above what a person or a console does, far
/// below what fills a volume or a CPU.
pub const WRITES_PER_SECOND_DEFAULT: f64 = 5.0;
/// Default of `--admin-write-burst`: a console importing a handful of schemas at once.
pub const WRITE_BURST_DEFAULT: u32 = 20;

/// A token bucket: `burst` calls at once, refilled at `per_second`.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: u32,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket. `burst` 0 refuses every call (admin writes off); `per_second` 0 allows
    /// `burst` calls for the life of the process.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self::new_at(per_second, burst, Instant::now())
    }

    fn new_at(per_second: f64, burst: u32, now: Instant) -> Self {
        Self {
            per_second,
            burst,
            state: Mutex::new(State {
                tokens: f64::from(burst),
                at: now,
            }),
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(s.at).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.per_second).min(f64::from(self.burst));
        s.at = now;
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The status a refused call gets: RESOURCE_EXHAUSTED naming the rule and its flags.
    pub fn refusal(&self) -> tonic::Status {
        let message = if self.burst == 0 {
            "admin writes (PutSchema, DeleteSchema, InferSchema) are off: --admin-write-burst is 0"
                .to_owned()
        } else {
            format!(
                "admin write rate limit: PutSchema, DeleteSchema and InferSchema share {} calls per second with bursts of {} (--admin-writes-per-second, --admin-write-burst); retry later",
                self.per_second, self.burst
            )
        };
        tonic::Status::resource_exhausted(message)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let t0 = Instant::now();
        let b = TokenBucket::new_at(2.0, 3, t0);
        assert!((0..3).all(|_| b.try_take_at(t0)));
        assert!(!b.try_take_at(t0));
        // Half a second refills one token at 2 per second, and no more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(b.try_take_at(t1));
        assert!(!b.try_take_at(t1));
        // A long pause refills up to the burst only.
        let t2 = t1 + Duration::from_secs(60);
        assert!((0..3).all(|_| b.try_take_at(t2)));
        assert!(!b.try_take_at(t2));
    }

    #[test]
    fn zero_burst_is_off_and_zero_rate_never_refills() {
        let t0 = Instant::now();
        let off = TokenBucket::new_at(5.0, 0, t0);
        assert!(!off.try_take_at(t0 + Duration::from_secs(9)));
        let s = off.refusal();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("are off"), "{s:?}");
        let once = TokenBucket::new_at(0.0, 1, t0);
        assert!(once.try_take_at(t0));
        assert!(!once.try_take_at(t0 + Duration::from_secs(3600)));
        let s = once.refusal();
        assert!(
            s.message().contains("--admin-writes-per-second")
                && s.message().contains("--admin-write-burst"),
            "{s:?}"
        );
    }
}
