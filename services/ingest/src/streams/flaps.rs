//! How loudly a stream's connects and disconnects are logged. One line per event while the
//! stream is healthy; once it is in trouble, the first disconnect at warn and the first connect
//! after it at info, the repeats at debug, and at most one summary line a minute saying how many
//! reconnects there were. A device flapping every 500 ms used to write about 7 lines a second
//! (each event twice, by the client and by the stream); the reconnect counter
//! (`sse_connector.stream.reconnects`) and `ListStreams` still count every one.

use std::time::{Duration, Instant};

/// How long a connection must stay up for its stream to count as healthy again: its next
/// disconnect is then news, logged at warn.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// Least time between two summary lines of one stream in trouble.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// How to log one connect or disconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A connect worth seeing: the first, or the first after the stream got into trouble.
    Info,
    /// The first disconnect of a healthy stream.
    Warn,
    /// A repeat while in trouble: counted for the next summary.
    Debug,
    /// A repeat that also closes a summary period: `reconnects` since the last line at info or
    /// warn, over `over`; `down` when the stream never connected meanwhile.
    Summary {
        /// Disconnects since the last line at info or warn, this one included.
        reconnects: u64,
        /// The time they span.
        over: Duration,
        /// Whether no connection was made in that time.
        down: bool,
    },
}

/// Since the stream got into trouble (its last disconnect at warn).
#[derive(Debug)]
struct Trouble {
    /// When the last line at info or warn was written.
    last_line: Instant,
    /// Disconnects logged at debug since then.
    quiet: u64,
    /// Whether a connect was logged at info since the trouble began.
    connect_logged: bool,
    /// Whether a connection was made since the last line.
    connected: bool,
}

/// One stream's logging state.
#[derive(Debug, Default)]
pub struct ReconnectLog {
    trouble: Option<Trouble>,
    connected_at: Option<Instant>,
}

impl ReconnectLog {
    /// The stream connected at `now`.
    pub fn connected(&mut self, now: Instant) -> Line {
        self.connected_at = Some(now);
        match &mut self.trouble {
            None => Line::Info,
            Some(t) => {
                t.connected = true;
                if t.connect_logged {
                    Line::Debug
                } else {
                    t.connect_logged = true;
                    Line::Info
                }
            }
        }
    }

    /// The stream's connection ended, or an attempt failed, at `now`.
    pub fn disconnected(&mut self, now: Instant) -> Line {
        let healthy = self
            .connected_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) >= HEALTHY_AFTER);
        if healthy {
            self.trouble = None;
        }
        let Some(t) = &mut self.trouble else {
            self.trouble = Some(Trouble {
                last_line: now,
                quiet: 0,
                connect_logged: false,
                connected: false,
            });
            return Line::Warn;
        };
        t.quiet += 1;
        let over = now.saturating_duration_since(t.last_line);
        if over < SUMMARY_EVERY {
            return Line::Debug;
        }
        let line = Line::Summary {
            reconnects: t.quiet,
            over,
            down: !t.connected,
        };
        (t.last_line, t.quiet, t.connected) = (now, 0, false);
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream dropping every 500 ms: three lines, then one a minute.
    #[test]
    fn a_flapping_stream_logs_a_summary_a_minute_not_every_event() {
        let mut log = ReconnectLog::default();
        let start = Instant::now();
        let mut lines = Vec::new();
        for i in 0..240u32 {
            let at = start + Duration::from_millis(500) * i;
            lines.push(log.connected(at));
            lines.push(log.disconnected(at + Duration::from_millis(100)));
        }
        let loud: Vec<Line> = lines.into_iter().filter(|l| *l != Line::Debug).collect();
        assert_eq!(loud[..3], [Line::Info, Line::Warn, Line::Info]);
        // Two minutes: a summary at each minute, of every reconnect since the last one.
        assert_eq!(loud.len(), 4, "{loud:?}");
        assert!(
            matches!(
                loud[3],
                Line::Summary {
                    reconnects: 120,
                    down: false,
                    ..
                }
            ),
            "{loud:?}"
        );
    }

    /// A stream that never connects (a 503 at every attempt) warns once, then summarises,
    /// saying it was down.
    #[test]
    fn a_stream_that_never_connects_warns_once_then_summarises() {
        let mut log = ReconnectLog::default();
        let start = Instant::now();
        assert_eq!(log.disconnected(start), Line::Warn);
        assert_eq!(
            log.disconnected(start + Duration::from_secs(1)),
            Line::Debug
        );
        let line = log.disconnected(start + Duration::from_secs(61));
        assert!(
            matches!(
                line,
                Line::Summary {
                    reconnects: 2,
                    down: true,
                    ..
                }
            ),
            "{line:?}"
        );
    }

    /// A connection that stayed up for the healthy period makes its end news again.
    #[test]
    fn a_disconnect_after_a_healthy_connection_warns_again() {
        let mut log = ReconnectLog::default();
        let start = Instant::now();
        assert_eq!(log.connected(start), Line::Info);
        assert_eq!(log.disconnected(start + Duration::from_secs(1)), Line::Warn);
        assert_eq!(log.connected(start + Duration::from_secs(2)), Line::Info);
        let later = start + Duration::from_secs(2) + HEALTHY_AFTER;
        assert_eq!(log.disconnected(later), Line::Warn);
        assert_eq!(log.connected(later + Duration::from_secs(1)), Line::Info);
    }
}
