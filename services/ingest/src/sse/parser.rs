//! Incremental parser for `text/event-stream` bodies, following the WHATWG HTML rules
//! ("Server-sent events", parsing and interpreting an event stream).
//!
//! Works on bytes: line ends (CR, LF) and field syntax (`:`, space) are ASCII, and an ASCII byte
//! always ends an incomplete UTF-8 sequence, so decoding each complete line (or the joined data
//! buffer) with U+FFFD replacement gives exactly what decoding the whole stream would. Each byte
//! is scanned once (`memchr`); memory is bounded by `max_event_bytes` plus a few bytes.
//!
//! `id:` and `event:` values are bounded too ([`EVENT_ID_BYTES_MAX`], [`EVENT_TYPE_BYTES_MAX`]),
//! and so is every line that is not a `data` line: a long `id` is copied into every following
//! event, so an unbounded one would let a server grow ingest's memory without limit.

use std::mem;

use sse_contract::limits::{EVENT_ID_BYTES_MAX, EVENT_TYPE_BYTES_MAX};

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
/// Buffers grown past this by a big event are shrunk back after use.
const KEEP_CAPACITY: usize = 64 * 1024;
/// The longest prefix before a `data` value (`data: `): a line longer than the limit plus this
/// cannot hold a data value within the limit.
const DATA_PREFIX: usize = 6;
/// The longest prefix before an `event` or `id` value (`event: `).
const FIELD_PREFIX: usize = 7;

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event type: `message` when the server sent no `event:`.
    pub event_type: String,
    /// The data buffer without its final LF.
    pub data: String,
    /// The last event ID string at dispatch.
    pub last_event_id: String,
    /// `Some(size)` for an event over the size limit, dispatched only by a parser that keeps
    /// them ([`Parser::keep_oversized`]): `data` is then its first
    /// [`HEAD_BYTES`](sse_contract::dead_letter::HEAD_BYTES) and `size` the data bytes seen when
    /// the limit was passed.
    pub truncated_from: Option<usize>,
}

/// What the parser reports besides events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParserNotice {
    /// The server set the reconnection time (milliseconds).
    Retry(u64),
    /// A block whose data exceeded the limit was discarded.
    EventTooLarge {
        /// How many data bytes the block held when it was cut off.
        bytes: usize,
    },
    /// A block whose `event:` value exceeded the type limit was discarded (it cannot be routed).
    EventTypeTooLong {
        /// The bytes of the value seen (up to the line limit).
        bytes: usize,
    },
    /// An `id:` value over the id limit was ignored: the last event ID stays as it was.
    IdTooLong {
        /// The bytes of the value seen (up to the line limit).
        bytes: usize,
    },
}

/// Where the parser stands on the stream's leading byte order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// Still at the stream start: this many BOM bytes matched so far.
    Matching(usize),
    /// Past the start: BOM bytes are content.
    Done,
}

/// Incremental WHATWG parser over byte chunks.
#[derive(Debug)]
pub struct Parser {
    max_event_bytes: usize,
    max_id_bytes: usize,
    max_type_bytes: usize,
    /// Longest `data` line kept in memory; longer lines are handled by their prefix only.
    line_limit: usize,
    /// Longest other line kept in memory (`id`, `event`, comments, ...).
    field_line_limit: usize,
    bom: Bom,
    /// The bytes of the current line so far (when it spans chunks).
    line: Vec<u8>,
    /// The current line is over the limit and was already handled: drop bytes up to its end.
    skipping_line: bool,
    /// The previous chunk ended with CR: an LF starting the next one belongs to it.
    skip_lf: bool,
    data: Vec<u8>,
    event_type: String,
    id_buffer: String,
    last_event_id: String,
    /// The current block went over the limit: it will not fire.
    too_large: bool,
    /// The current block's `event:` value was over the type limit (this many bytes seen): it
    /// will not fire, unless a later `event:` line of the block sets a valid type.
    type_too_long: Option<usize>,
    /// Dispatch a block over the data limit as a truncated event (its first bytes kept in
    /// `data`) instead of discarding it: for a stream with a dead-letter destination.
    keep_oversized: bool,
    /// The data bytes seen when the current block passed the limit (with `too_large`).
    too_large_bytes: usize,
}

impl Parser {
    /// A parser that discards events whose data exceeds `max_event_bytes`, with the contract's
    /// `id:` and `event:` limits.
    pub fn new(max_event_bytes: usize) -> Self {
        Self::with_limits(max_event_bytes, EVENT_ID_BYTES_MAX, EVENT_TYPE_BYTES_MAX)
    }

    /// A parser with its own `id:` and `event:` limits (tests of the limits use small ones).
    pub fn with_limits(max_event_bytes: usize, max_id_bytes: usize, max_type_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            max_id_bytes,
            max_type_bytes,
            line_limit: max_event_bytes.saturating_add(DATA_PREFIX),
            field_line_limit: max_id_bytes
                .max(max_type_bytes)
                .saturating_add(FIELD_PREFIX),
            bom: Bom::Matching(0),
            line: Vec::new(),
            skipping_line: false,
            skip_lf: false,
            data: Vec::new(),
            event_type: String::new(),
            id_buffer: String::new(),
            last_event_id: String::new(),
            too_large: false,
            type_too_long: None,
            keep_oversized: false,
            too_large_bytes: 0,
        }
    }

    /// Makes the parser dispatch events over the data limit truncated to their first
    /// [`HEAD_BYTES`](sse_contract::dead_letter::HEAD_BYTES), marked with their size, instead
    /// of discarding them (the [`ParserNotice::EventTooLarge`] notice comes as before).
    pub fn keep_oversized(mut self, keep: bool) -> Self {
        self.keep_oversized = keep;
        self
    }

    /// Feeds one chunk; pushes dispatched events and notices in stream order.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>, notices: &mut Vec<ParserNotice>) {
        let mut rest = chunk;
        while let Bom::Matching(matched) = self.bom {
            let Some((&byte, tail)) = rest.split_first() else {
                return;
            };
            if byte == BOM[matched] {
                rest = tail;
                self.bom = if matched + 1 == BOM.len() {
                    Bom::Done
                } else {
                    Bom::Matching(matched + 1)
                };
            } else {
                // Not a BOM after all: the matched bytes are content (they hold no line end).
                self.bom = Bom::Done;
                self.push_partial(&BOM[..matched], notices);
            }
        }
        if self.skip_lf {
            let Some((&byte, tail)) = rest.split_first() else {
                return;
            };
            self.skip_lf = false;
            if byte == b'\n' {
                rest = tail;
            }
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
            let terminator = rest[i];
            self.end_line(&rest[..i], out, notices);
            rest = &rest[i + 1..];
            if terminator == b'\r' {
                match rest.first() {
                    None => self.skip_lf = true,
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                }
            }
        }
        if !rest.is_empty() {
            self.push_partial(rest, notices);
        }
    }

    /// The last event ID string (to send as Last-Event-ID).
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Sets the last event ID (resume from a checkpoint).
    pub fn set_last_event_id(&mut self, id: &str) {
        id.clone_into(&mut self.last_event_id);
        id.clone_into(&mut self.id_buffer);
    }

    /// A new connection starts: drop any partial block/line, reset BOM and UTF-8 state, keep the last event ID.
    pub fn reset_connection(&mut self) {
        self.bom = Bom::Matching(0);
        self.line.clear();
        self.line.shrink_to(KEEP_CAPACITY);
        self.skipping_line = false;
        self.skip_lf = false;
        self.data.clear();
        self.data.shrink_to(KEEP_CAPACITY);
        self.event_type.clear();
        // An id from a block that never dispatched is not committed.
        self.id_buffer.clone_from(&self.last_event_id);
        self.too_large = false;
        self.type_too_long = None;
    }

    /// Adds bytes of a line whose end has not arrived yet.
    fn push_partial(&mut self, part: &[u8], notices: &mut Vec<ParserNotice>) {
        if self.skipping_line {
            return;
        }
        if self.line.len() + part.len() > self.limit_of(part) {
            self.overlong_from_buffer(part, notices);
            self.skipping_line = true;
        } else {
            self.line.extend_from_slice(part);
        }
    }

    /// The line whose last bytes are `part` has ended.
    fn end_line(&mut self, part: &[u8], out: &mut Vec<SseEvent>, notices: &mut Vec<ParserNotice>) {
        if self.skipping_line {
            self.skipping_line = false;
        } else if self.line.is_empty() {
            // Most lines are short: only a long one needs its field looked at for its limit.
            let limit = if part.len() <= self.field_line_limit.min(self.line_limit) {
                part.len()
            } else {
                self.limit_of(part)
            };
            if part.len() > limit {
                self.overlong_line(&part[..=limit], notices);
            } else {
                self.process_line(part, out, notices);
            }
        } else if self.line.len() + part.len() > self.limit_of(part) {
            self.overlong_from_buffer(part, notices);
        } else {
            self.line.extend_from_slice(part);
            let line = mem::take(&mut self.line);
            self.process_line(&line, out, notices);
            self.line = line;
            self.line.clear();
            self.line.shrink_to(KEEP_CAPACITY);
        }
    }

    /// The line limit of the current line (the buffered bytes followed by `part`): a `data`
    /// line may hold a whole event, any other line only an id or a type.
    fn limit_of(&self, part: &[u8]) -> usize {
        const DATA: &[u8] = b"data:";
        let buffered = self.line.len().min(DATA.len());
        let from_part = (DATA.len() - buffered).min(part.len());
        let is_data = self.line.len() + part.len() >= DATA.len()
            && self.line[..buffered] == DATA[..buffered]
            && part[..from_part] == DATA[buffered..buffered + from_part];
        if is_data {
            self.line_limit
        } else {
            // A line too short to tell yet is within both limits' reach.
            self.field_line_limit.max(DATA.len())
        }
    }

    /// The buffered line plus `part` goes over its limit: handle it by its first `limit + 1` bytes.
    fn overlong_from_buffer(&mut self, part: &[u8], notices: &mut Vec<ParserNotice>) {
        let need = (self.limit_of(part) + 1).saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..need.min(part.len())]);
        let line = mem::take(&mut self.line);
        self.overlong_line(&line, notices);
        self.line = line;
        self.line.clear();
        self.line.shrink_to(KEEP_CAPACITY);
    }

    /// A line longer than its limit, known by its prefix: a `data` line makes its block too
    /// large, an `event` line makes its type too long, an `id` line is ignored; comments,
    /// unknown fields and (absurd) `retry` values are ignored.
    fn overlong_line(&mut self, prefix: &[u8], notices: &mut Vec<ParserNotice>) {
        if prefix.first() == Some(&b':') {
            return;
        }
        let Some(colon) = memchr::memchr(b':', prefix) else {
            return;
        };
        let value = strip_space(&prefix[colon + 1..]);
        match &prefix[..colon] {
            b"data" if !self.too_large => {
                self.mark_too_large(self.data.len() + value.len(), value, notices);
            }
            b"event" => self.mark_type_too_long(value.len()),
            b"id" => notices.push(ParserNotice::IdTooLong { bytes: value.len() }),
            _ => {}
        }
    }

    /// The block's type is over the limit: the block will not fire unless a later `event:`
    /// line sets a valid type (reported at dispatch, as only a block with data would fire).
    fn mark_type_too_long(&mut self, bytes: usize) {
        self.event_type.clear();
        self.event_type.shrink_to(self.max_type_bytes);
        self.type_too_long = Some(bytes);
    }

    /// The block went over the data limit with `bytes` (the line value `value` did it): it will
    /// not fire whole. Its first bytes are kept when the parser keeps oversized events.
    fn mark_too_large(&mut self, bytes: usize, value: &[u8], notices: &mut Vec<ParserNotice>) {
        if !self.too_large {
            self.too_large = true;
            self.too_large_bytes = bytes;
            notices.push(ParserNotice::EventTooLarge { bytes });
        }
        if self.keep_oversized {
            let head = sse_contract::dead_letter::HEAD_BYTES;
            self.data.truncate(head);
            let room = head.saturating_sub(self.data.len());
            self.data.extend_from_slice(&value[..room.min(value.len())]);
            // The final LF that dispatch drops.
            self.data.push(b'\n');
        } else {
            self.data.clear();
        }
        self.data.shrink_to(KEEP_CAPACITY);
    }

    /// One complete line (without its terminator), within the line limit.
    fn process_line(
        &mut self,
        line: &[u8],
        out: &mut Vec<SseEvent>,
        notices: &mut Vec<ParserNotice>,
    ) {
        let (field, value) = match memchr::memchr(b':', line) {
            None if line.is_empty() => return self.dispatch(out, notices),
            None => (line, &[][..]),
            Some(0) => return, // comment
            Some(i) => (&line[..i], strip_space(&line[i + 1..])),
        };
        match field {
            b"data" => {
                if self.too_large {
                    return;
                }
                let bytes = self.data.len() + value.len();
                if bytes > self.max_event_bytes {
                    self.mark_too_large(bytes, value, notices);
                } else {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
            }
            b"event" if value.len() > self.max_type_bytes => self.mark_type_too_long(value.len()),
            b"event" => {
                self.type_too_long = None;
                self.event_type.clear();
                self.event_type.push_str(&lossy(value));
            }
            b"id" if value.len() > self.max_id_bytes => {
                notices.push(ParserNotice::IdTooLong { bytes: value.len() });
            }
            b"id" if memchr::memchr(0, value).is_none() => {
                self.id_buffer.clear();
                self.id_buffer.push_str(&lossy(value));
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                notices.push(ParserNotice::Retry(ms));
            }
            _ => {}
        }
    }

    /// A blank line: commit the id, fire the block's event if it has data, start a new block.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>, notices: &mut Vec<ParserNotice>) {
        if self.last_event_id != self.id_buffer {
            self.last_event_id.clone_from(&self.id_buffer);
        }
        let too_large = mem::replace(&mut self.too_large, false);
        let type_too_long = self.type_too_long.take();
        let truncated_from = (too_large && self.keep_oversized).then_some(self.too_large_bytes);
        if (too_large && truncated_from.is_none()) || self.data.is_empty() {
            self.data.clear();
            self.event_type.clear();
            return;
        }
        if let Some(bytes) = type_too_long {
            notices.push(ParserNotice::EventTypeTooLong { bytes });
            self.data.clear();
            self.data.shrink_to(KEEP_CAPACITY);
            return;
        }
        let len = self.data.len() - 1; // drop the final LF
        let data = lossy(&self.data[..len]).into_owned();
        self.data.clear();
        self.data.shrink_to(KEEP_CAPACITY);
        let event_type = if self.event_type.is_empty() {
            "message".to_owned()
        } else {
            mem::take(&mut self.event_type)
        };
        out.push(SseEvent {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
            truncated_from,
        });
    }
}

/// Removes one leading U+0020 from a field value.
/// `bytes` as UTF-8 with U+FFFD for what is not, as the SSE standard decodes a stream. Nearly
/// every event is valid: `str::from_utf8` checks that a word at a time, where
/// `String::from_utf8_lossy` walks it a byte at a time (3% of ingest's instructions per event).
fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn strip_space(value: &[u8]) -> &[u8] {
    value.strip_prefix(b" ").unwrap_or(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use sse_contract::limits::EVENT_BYTES_DEFAULT;

    const DEFAULT_MAX: usize = 16 * 1024 * 1024;

    #[derive(Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        chunks: Vec<Chunk>,
        events: Vec<ExpectedEvent>,
        last_event_id: String,
        #[serde(default)]
        notices: Vec<ExpectedNotice>,
        max_event_bytes: Option<usize>,
        max_id_bytes: Option<usize>,
        max_type_bytes: Option<usize>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Chunk {
        Text(String),
        Bytes(Vec<u8>),
    }

    impl Chunk {
        fn bytes(&self) -> &[u8] {
            match self {
                Chunk::Text(s) => s.as_bytes(),
                Chunk::Bytes(b) => b,
            }
        }
    }

    #[derive(Deserialize)]
    struct ExpectedEvent {
        #[serde(rename = "type")]
        event_type: String,
        data: String,
        id: String,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum ExpectedNotice {
        Retry(u64),
        TooLarge(usize),
        TypeTooLong(usize),
        IdTooLong(usize),
    }

    #[derive(Debug, PartialEq)]
    struct Outcome {
        events: Vec<SseEvent>,
        notices: Vec<ParserNotice>,
        last_event_id: String,
    }

    /// Data, id and type limits.
    type Limits = (usize, usize, usize);

    fn parse<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut parser = Parser::with_limits(limits.0, limits.1, limits.2);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        for chunk in chunks {
            parser.feed(chunk, &mut events, &mut notices);
        }
        Outcome {
            events,
            notices,
            last_event_id: parser.last_event_id().to_owned(),
        }
    }

    fn expected(v: &Vector) -> Outcome {
        Outcome {
            events: v
                .events
                .iter()
                .map(|e| SseEvent {
                    event_type: e.event_type.clone(),
                    data: e.data.clone(),
                    last_event_id: e.id.clone(),
                    truncated_from: None,
                })
                .collect(),
            notices: v
                .notices
                .iter()
                .map(|n| match n {
                    ExpectedNotice::Retry(ms) => ParserNotice::Retry(*ms),
                    ExpectedNotice::TooLarge(bytes) => {
                        ParserNotice::EventTooLarge { bytes: *bytes }
                    }
                    ExpectedNotice::TypeTooLong(bytes) => {
                        ParserNotice::EventTypeTooLong { bytes: *bytes }
                    }
                    ExpectedNotice::IdTooLong(bytes) => ParserNotice::IdTooLong { bytes: *bytes },
                })
                .collect(),
            last_event_id: v.last_event_id.clone(),
        }
    }

    fn vectors() -> Vec<Vector> {
        let text = include_str!("../../tests/data/sse_vectors.json");
        serde_json::from_str::<Vectors>(text).unwrap().vectors
    }

    #[test]
    fn conformance_vectors_whatever_the_chunking() {
        let vectors = vectors();
        assert!(vectors.len() > 80);
        for v in &vectors {
            let max = (
                v.max_event_bytes.unwrap_or(DEFAULT_MAX),
                v.max_id_bytes.unwrap_or(EVENT_ID_BYTES_MAX),
                v.max_type_bytes.unwrap_or(EVENT_TYPE_BYTES_MAX),
            );
            let want = expected(v);
            let all: Vec<u8> = v.chunks.iter().flat_map(|c| c.bytes().to_vec()).collect();

            let given = parse(max, v.chunks.iter().map(Chunk::bytes));
            assert_eq!(given, want, "vector {:?} as given", v.name);
            let one = parse(max, [all.as_slice()]);
            assert_eq!(one, want, "vector {:?} in one chunk", v.name);
            let bytes = parse(max, all.chunks(1));
            assert_eq!(bytes, want, "vector {:?} one byte per chunk", v.name);
            for split in 0..=all.len() {
                let (a, b) = all.split_at(split);
                let two = parse(max, [a, b]);
                assert_eq!(two, want, "vector {:?} split at {split}", v.name);
            }
        }
    }

    #[test]
    fn eight_mib_event_in_tcp_sized_chunks_is_delivered_intact() {
        let payload: String = (0..8 * 1024 * 1024)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let stream = format!("id: big\ndata: {payload}\n\ndata: after\n\n");
        let mut parser = Parser::new(DEFAULT_MAX);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        for chunk in stream.as_bytes().chunks(1460) {
            parser.feed(chunk, &mut events, &mut notices);
        }
        assert!(notices.is_empty());
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data.len(), payload.len());
        assert!(events[0].data == payload);
        assert_eq!(events[0].last_event_id, "big");
        assert_eq!(events[1].data, "after");
        assert!(parser.line.capacity() <= KEEP_CAPACITY);
        assert!(parser.data.capacity() <= KEEP_CAPACITY);
    }

    #[test]
    fn event_over_the_limit_is_discarded_with_bounded_memory_and_the_stream_goes_on() {
        let max = 64 * 1024;
        let big = "x".repeat(1024 * 1024);
        let stream = format!("data: small\n\ndata: {big}\ndata: {big}\n\n: {big}\ndata: next\n\n");
        let mut parser = Parser::new(max);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        for chunk in stream.as_bytes().chunks(1460) {
            parser.feed(chunk, &mut events, &mut notices);
            assert!(parser.line.len() <= max + DATA_PREFIX);
            assert!(parser.data.len() <= max + 1);
        }
        let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["small", "next"]);
        assert_eq!(notices, [ParserNotice::EventTooLarge { bytes: max + 1 }]);
    }

    /// Feeds `stream` in TCP-sized chunks, checking after each that the parser holds no more
    /// than `bound` bytes of line and value buffers.
    fn parse_bounded(parser: &mut Parser, stream: &[u8], bound: usize) -> Outcome {
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        for chunk in stream.chunks(1460) {
            parser.feed(chunk, &mut events, &mut notices);
            let held = parser.line.len()
                + parser.event_type.len()
                + parser.id_buffer.len()
                + parser.last_event_id.len();
            assert!(held <= bound, "parser holds {held} bytes");
        }
        Outcome {
            events,
            notices,
            last_event_id: parser.last_event_id().to_owned(),
        }
    }

    #[test]
    fn long_ids_are_ignored_and_never_buffered_whole() {
        let long = "i".repeat(200 * 1024);
        let stream = format!(
            "id: 1\ndata: a\n\nid: {long}\ndata: b\n\nid: {}\ndata: c\n\nid: 2\ndata: d\n\n",
            "j".repeat(EVENT_ID_BYTES_MAX + 1)
        );
        let mut parser = Parser::new(EVENT_BYTES_DEFAULT);
        let got = parse_bounded(&mut parser, stream.as_bytes(), 4 * EVENT_ID_BYTES_MAX);
        let ids: Vec<(&str, &str)> = got
            .events
            .iter()
            .map(|e| (e.data.as_str(), e.last_event_id.as_str()))
            .collect();
        assert_eq!(ids, [("a", "1"), ("b", "1"), ("c", "1"), ("d", "2")]);
        assert_eq!(
            got.notices,
            [
                ParserNotice::IdTooLong {
                    bytes: EVENT_ID_BYTES_MAX + 4
                },
                ParserNotice::IdTooLong {
                    bytes: EVENT_ID_BYTES_MAX + 1
                },
            ]
        );
        // The id at the limit is kept.
        let at = "k".repeat(EVENT_ID_BYTES_MAX);
        let got = parse(
            (
                EVENT_BYTES_DEFAULT,
                EVENT_ID_BYTES_MAX,
                EVENT_TYPE_BYTES_MAX,
            ),
            [format!("id: {at}\ndata: e\n\n").as_bytes()],
        );
        assert_eq!(got.events[0].last_event_id, at);
        assert!(got.notices.is_empty());
    }

    #[test]
    fn long_event_types_drop_their_event_and_are_never_buffered_whole() {
        let long = "t".repeat(200 * 1024);
        let stream = format!(
            "event: {long}\ndata: a\n\nevent: {}\ndata: b\n\nevent: {}\ndata: c\n\n",
            "u".repeat(EVENT_TYPE_BYTES_MAX + 1),
            "v".repeat(EVENT_TYPE_BYTES_MAX)
        );
        let mut parser = Parser::new(EVENT_BYTES_DEFAULT);
        let got = parse_bounded(&mut parser, stream.as_bytes(), 4 * EVENT_TYPE_BYTES_MAX);
        assert_eq!(got.events.len(), 1);
        assert_eq!(got.events[0].data, "c");
        assert_eq!(got.events[0].event_type.len(), EVENT_TYPE_BYTES_MAX);
        assert_eq!(
            got.notices,
            [
                ParserNotice::EventTypeTooLong {
                    bytes: EVENT_TYPE_BYTES_MAX + 1
                },
                ParserNotice::EventTypeTooLong {
                    bytes: EVENT_TYPE_BYTES_MAX + 1
                },
            ]
        );
    }

    #[test]
    fn a_long_data_line_still_reaches_the_event_limit() {
        // The short line limit of id and event lines does not apply to data lines, however
        // they are split.
        let payload = "x".repeat(EVENT_BYTES_DEFAULT);
        let stream = format!("data: {payload}\n\n");
        for size in [1, 3, 1460] {
            let mut parser = Parser::new(EVENT_BYTES_DEFAULT);
            let (mut events, mut notices) = (Vec::new(), Vec::new());
            for chunk in stream.as_bytes().chunks(size) {
                parser.feed(chunk, &mut events, &mut notices);
            }
            assert!(notices.is_empty(), "{notices:?}");
            assert_eq!(events.len(), 1);
            assert!(events[0].data == payload);
        }
    }

    #[test]
    fn reset_connection_drops_partial_block_and_restarts_bom_and_utf8() {
        let mut parser = Parser::new(DEFAULT_MAX);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        parser.feed(
            b"id: 1\ndata: a\n\nid: 2\ndata: partial",
            &mut events,
            &mut notices,
        );
        parser.feed(&[0xE2, 0x82], &mut events, &mut notices);
        parser.reset_connection();
        parser.feed(&[0xEF, 0xBB, 0xBF], &mut events, &mut notices);
        parser.feed(b"data: b\r", &mut events, &mut notices);
        parser.reset_connection();
        parser.feed(b"\ndata: c\n\n", &mut events, &mut notices);
        let got: Vec<(&str, &str)> = events
            .iter()
            .map(|e| (e.data.as_str(), e.last_event_id.as_str()))
            .collect();
        // "b" never got its blank line; the LF after the reset is a blank line of its own.
        assert_eq!(got, [("a", "1"), ("c", "1")]);
        assert_eq!(parser.last_event_id(), "1");
    }

    #[test]
    fn set_last_event_id_is_inherited_by_events() {
        let mut parser = Parser::new(DEFAULT_MAX);
        parser.set_last_event_id("42");
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        parser.feed(b"data: a\n\n", &mut events, &mut notices);
        assert_eq!(events[0].last_event_id, "42");
        assert_eq!(parser.last_event_id(), "42");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod oversized;
