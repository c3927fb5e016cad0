//! Exponential backoff with full jitter, for every reconnect loop (SSE, gRPC peers, MQTT).

use std::time::{Duration, Instant};

use rand::Rng;

/// Exponential backoff state: start, double, cap, and reset after a healthy period.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    healthy_after: Duration,
    current: Duration,
    connected_at: Option<Instant>,
}

impl Backoff {
    /// A backoff starting at `initial`, doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            healthy_after: Duration::from_secs(30),
            current: initial,
            connected_at: None,
        }
    }

    /// The project's default for peers: 500 ms, doubling, capped at 60 s.
    pub fn standard() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(60))
    }

    /// Sets how long a connection must stay up before the backoff starts again from `initial`.
    pub fn with_healthy_after(mut self, d: Duration) -> Self {
        self.healthy_after = d;
        self
    }

    /// Records that a connection succeeded now.
    pub fn connected(&mut self) {
        self.connected_at = Some(Instant::now());
    }

    /// The delay before the next attempt: a random value in [current/2, current], then doubles.
    /// A connection that stayed up for the healthy period resets the sequence first.
    pub fn next_delay(&mut self) -> Duration {
        if self
            .connected_at
            .take()
            .is_some_and(|at| at.elapsed() >= self.healthy_after)
        {
            self.current = self.initial;
        }
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// Starts the sequence again from `initial`.
    pub fn reset(&mut self) {
        self.current = self.initial;
        self.connected_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_cap_within_jitter_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let expected = [100u64, 200, 400, 400, 400];
        for e in expected {
            let d = b.next_delay().as_millis() as u64;
            assert!(d >= e / 2 && d <= e, "delay {d} not in [{}, {e}]", e / 2);
        }
    }

    #[test]
    fn resets_after_healthy_period() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(10))
            .with_healthy_after(Duration::ZERO);
        for _ in 0..5 {
            b.next_delay();
        }
        b.connected();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
