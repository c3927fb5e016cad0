//! Incremental parser for `text/event-stream` bodies, following the WHATWG HTML rules.

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type: `message` when the server sent no `event:`.
    pub event_type: String,
    /// The data buffer without its final LF.
    pub data: String,
    /// The last event ID string at dispatch.
    pub last_event_id: String,
}

/// What the parser reports besides events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParserNotice {
    /// The server set the reconnection time (milliseconds).
    Retry(u64),
    /// A block whose data exceeded the limit was discarded.
    EventTooLarge {
        /// How many data bytes the block had when it was cut off.
        bytes: usize,
    },
}

/// Incremental WHATWG parser over byte chunks.
pub struct Parser {
    max_event_bytes: usize,
    last_event_id: String,
}

impl Parser {
    /// A parser that discards events whose data exceeds `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            last_event_id: String::new(),
        }
    }

    /// Feeds one chunk; pushes dispatched events and notices in stream order.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>, notices: &mut Vec<ParserNotice>) {
        let _ = (chunk, out, notices, self.max_event_bytes);
        todo!()
    }

    /// The last event ID string (to send as Last-Event-ID).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Sets the last event ID (resume from a checkpoint).
    pub fn set_last_event_id(&mut self, id: &str) {
        self.last_event_id = id.to_owned();
    }

    /// A new connection starts: drop any partial block/line, reset BOM and UTF-8 state, keep the last event ID.
    pub fn reset_connection(&mut self) {}
}
