//! The routed event (one SSE event bound for one dataset or event) and its CloudEvents id,
//! stable across a redelivery of the same event.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::budget::{self, Held};
use crate::routing::Route;

/// Now as Unix time in nanoseconds (the `received_unix_nanos` of an event).
pub fn unix_nanos_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One SSE event routed to one dataset or event, on its way to the schema service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedEvent {
    /// CloudEvents id.
    pub id: String,
    /// Position in its stream (from 1, strictly increasing).
    pub seq: u64,
    /// The stream it was read from.
    pub stream_key: Arc<str>,
    /// The SSE data, shared by the routed events of one SSE event and with the message sent.
    pub data: bytes::Bytes,
    /// The SSE event type.
    pub sse_event: String,
    /// The SSE last event ID at dispatch.
    pub sse_id: String,
    /// When ingest received it, Unix nanoseconds.
    pub received_unix_nanos: i64,
    /// What it belongs to and where it goes.
    pub route: Arc<Route>,
    /// W3C trace context of its trace.
    pub traceparent: String,
    /// W3C trace state.
    pub tracestate: String,
    /// Its SSE event's share of the in-flight byte budget (shared by the routed copies).
    pub held: Held,
    /// Set when the event already failed for good here (over the size limit): it goes to its
    /// route's dead-letter destination, with `data` its first bytes.
    pub dead_letter: Option<sse_contract::dead_letter::Mark>,
}

impl RoutedEvent {
    /// Bytes this routed copy holds besides the SSE data its copies share: the strings it owns
    /// and an allowance for its route and framing. Counted in the in-flight budget.
    pub fn envelope_bytes(&self) -> usize {
        self.id.len()
            + self.stream_key.len()
            + self.sse_event.len()
            + self.sse_id.len()
            + self.traceparent.len()
            + self.tracestate.len()
            + budget::ROUTED_COPY_BYTES
    }
}

/// Derives CloudEvents ids on one stream: a hash of the stream key, the route subject, the SSE
/// last event ID and the index of the event since that ID last changed. While the stream has
/// no last event ID a random per-connection nonce is mixed in, so ids never collide.
#[derive(Debug)]
pub struct IdGen {
    last_id: Option<String>,
    index: u64,
    nonce: [u8; 16],
}

impl Default for IdGen {
    fn default() -> Self {
        Self::new()
    }
}

impl IdGen {
    /// A generator for a stream that has seen no event yet.
    pub fn new() -> Self {
        Self {
            last_id: None,
            index: 0,
            nonce: rand::random(),
        }
    }

    /// A new connection starts: new nonce; events after the last ID count on from it (the event
    /// that carried the ID was index 0, a resumed stream continues with 1).
    pub fn connected(&mut self) {
        self.nonce = rand::random();
        self.index = 0;
    }

    /// The index of the next SSE event, whose last event ID is `last_event_id`.
    pub fn next_index(&mut self, last_event_id: &str) -> u64 {
        match &mut self.last_id {
            Some(last) if last == last_event_id => self.index += 1,
            Some(last) => {
                // Reuses the string: the last ID changes with almost every event.
                last.clear();
                last.push_str(last_event_id);
                self.index = 0;
            }
            None => {
                self.last_id = Some(last_event_id.to_string());
                self.index = 0;
            }
        }
        self.index
    }

    /// The id of the routed event for `subject` of the SSE event at `index`.
    pub fn id(&self, stream_key: &str, subject: &str, last_event_id: &str, index: u64) -> String {
        let mut h = Sha256::new();
        for part in [stream_key, subject, last_event_id] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(index.to_be_bytes());
        if last_event_id.is_empty() {
            h.update(self.nonce);
        }
        uuid_like(&h.finalize()[..16])
    }
}

/// Formats 16 bytes as 32 lowercase hex digits grouped like a UUID (8-4-4-4-12).
fn uuid_like(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(HEX[usize::from(byte >> 4)]));
        s.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(g: &mut IdGen, last_ids: &[&str]) -> Vec<String> {
        last_ids
            .iter()
            .map(|l| {
                let i = g.next_index(l);
                g.id("k", "a/d", l, i)
            })
            .collect()
    }

    #[test]
    fn ids_are_uuid_like() {
        let mut g = IdGen::new();
        let id = ids(&mut g, &["1"]).remove(0);
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
        assert_eq!(id.replace('-', "").len(), 32);
        assert!(id.replace('-', "").chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn same_events_get_the_same_ids_on_redelivery() {
        let seq = ["1", "1", "2", "3", "3", "3"];
        let first = ids(&mut IdGen::new(), &seq);
        let again = ids(&mut IdGen::new(), &seq);
        assert_eq!(first, again);
        let unique: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(unique.len(), first.len());
    }

    #[test]
    fn resumed_connection_continues_the_index() {
        // First connection: "5" then two events without a new id; cut; resume from "5".
        let mut a = IdGen::new();
        let all = ids(&mut a, &["5", "5", "5"]);
        let mut b = IdGen::new();
        let before = ids(&mut b, &["5"]);
        b.connected();
        let after = ids(&mut b, &["5", "5"]);
        assert_eq!(before[0], all[0]);
        assert_eq!(after, all[1..]);
    }

    #[test]
    fn subject_and_stream_change_the_id() {
        let g = IdGen::new();
        let a = g.id("k", "a/d", "1", 0);
        assert_ne!(a, g.id("k", "a/e", "1", 0));
        assert_ne!(a, g.id("k2", "a/d", "1", 0));
        assert_ne!(a, g.id("k", "a/d", "1", 1));
        assert_eq!(a, IdGen::new().id("k", "a/d", "1", 0));
    }

    #[test]
    fn without_last_event_id_ids_never_collide_across_connections() {
        let mut g = IdGen::new();
        let first = ids(&mut g, &["", ""]);
        g.connected();
        let second = ids(&mut g, &["", ""]);
        assert_ne!(first[0], first[1]);
        assert!(first.iter().all(|i| !second.contains(i)));
        let other = ids(&mut IdGen::new(), &["", ""]);
        assert!(first.iter().all(|i| !other.contains(i)));
    }
}
