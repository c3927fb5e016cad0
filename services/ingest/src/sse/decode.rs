//! Decoding a compressed SSE body (`Content-Encoding: gzip` or `deflate`) as it arrives, in
//! bounded output pieces that go straight to the parser: the whole body is never in memory.
//!
//! A compression bomb (a few KiB that inflate to gigabytes) is cut at the event limit: when one
//! event's decoded data passes `max_event_bytes`, the parser discards it as it would on a plain
//! stream and the connection is closed with an error, since decoding on only burns CPU. Bytes
//! that make no event at all (endless comments) are cut the same way once more than
//! `max_event_bytes` (plus room for field names) of them came from a body compressed more than
//! [`BOMB_RATIO`] to 1 (heartbeats compress far less, so an idle stream is not cut). A plain
//! stream has no such cut: there the network bounds the rate.

use std::io::Write;

use flate2::write::{GzDecoder, ZlibDecoder};

use super::parser::{Parser, ParserNotice, SseEvent};

/// Decoded bytes per step: each step's output goes to the parser before the next step runs.
pub const DECODE_STEP_BYTES: usize = 16 * 1024;
/// Room over `max_event_bytes` for an event's `id:`, `event:`, `data:` prefixes and line ends
/// before a run of decoded bytes without an event counts as a bomb.
pub const EVENT_FRAMING_SLACK_BYTES: usize = 64 * 1024;

/// Decoded-to-compressed ratio above which a run of bytes without an event is a bomb.
pub const BOMB_RATIO: usize = 100;

/// Why decoding stopped the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not valid gzip or deflate.
    #[error("compressed stream: invalid {encoding} data")]
    Invalid {
        /// `gzip` or `deflate`.
        encoding: &'static str,
    },
    /// The decoded bytes of one event passed the limit.
    #[error(
        "compressed stream: event over {limit} bytes after decoding, possible compression bomb"
    )]
    Bomb {
        /// The event limit (`max_event_bytes`).
        limit: usize,
    },
}

enum Inflate {
    Gzip(GzDecoder<Vec<u8>>),
    Deflate(ZlibDecoder<Vec<u8>>),
}

/// One response body's decoder.
pub struct Decoder {
    inflate: Inflate,
    limit: usize,
    /// Decoded bytes since the last dispatched event.
    since_event: usize,
    /// Compressed bytes since the last dispatched event.
    wire_since_event: usize,
    /// Set once decoding failed: later input is ignored (the connection is closing).
    failed: Option<DecodeError>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("encoding", &self.encoding())
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// The decoder for a response's `Content-Encoding` (`None` when the body is not encoded);
    /// an encoding it cannot decode is an error naming it.
    pub fn for_encoding(
        content_encoding: Option<&http::HeaderValue>,
        max_event_bytes: usize,
    ) -> Result<Option<Self>, String> {
        let Some(value) = content_encoding else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(value.as_bytes())
            .trim()
            .to_ascii_lowercase();
        let inflate = match text.as_str() {
            "" | "identity" => return Ok(None),
            "gzip" | "x-gzip" => Inflate::Gzip(GzDecoder::new(Vec::new())),
            "deflate" => Inflate::Deflate(ZlibDecoder::new(Vec::new())),
            _ => {
                return Err(format!(
                    "unsupported Content-Encoding {:?} (gzip and deflate are decoded)",
                    text.chars().take(40).collect::<String>()
                ));
            }
        };
        Ok(Some(Self {
            inflate,
            limit: max_event_bytes,
            since_event: 0,
            wire_since_event: 0,
            failed: None,
        }))
    }

    fn encoding(&self) -> &'static str {
        match self.inflate {
            Inflate::Gzip(_) => "gzip",
            Inflate::Deflate(_) => "deflate",
        }
    }

    /// Decodes `input` into the parser, a bounded piece at a time; after an error every later
    /// call returns it again without decoding.
    pub fn feed(
        &mut self,
        input: &[u8],
        parser: &mut Parser,
        events: &mut Vec<SseEvent>,
        notices: &mut Vec<ParserNotice>,
    ) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.wire_since_event = self.wire_since_event.saturating_add(input.len());
        let result = self.run(input, parser, events, notices);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn run(
        &mut self,
        mut input: &[u8],
        parser: &mut Parser,
        events: &mut Vec<SseEvent>,
        notices: &mut Vec<ParserNotice>,
    ) -> Result<(), DecodeError> {
        let invalid = DecodeError::Invalid {
            encoding: self.encoding(),
        };
        while !input.is_empty() {
            // At most one step of input per write, so one write's output stays near one step.
            let step = &input[..input.len().min(DECODE_STEP_BYTES)];
            let used = match &mut self.inflate {
                Inflate::Gzip(d) => d.write(step),
                Inflate::Deflate(d) => d.write(step),
            }
            .map_err(|_| invalid.clone())?;
            self.deliver(parser, events, notices)?;
            if used == 0 {
                // The compressed stream has ended: anything after it is not part of it.
                return Ok(());
            }
            input = &input[used..];
        }
        // Output the decoder still holds for the input it took.
        match &mut self.inflate {
            Inflate::Gzip(d) => d.flush(),
            Inflate::Deflate(d) => d.flush(),
        }
        .map_err(|_| invalid)?;
        self.deliver(parser, events, notices)
    }

    /// Hands the decoded bytes to the parser and checks the bomb limit.
    fn deliver(
        &mut self,
        parser: &mut Parser,
        events: &mut Vec<SseEvent>,
        notices: &mut Vec<ParserNotice>,
    ) -> Result<(), DecodeError> {
        let out = match &mut self.inflate {
            Inflate::Gzip(d) => d.get_mut(),
            Inflate::Deflate(d) => d.get_mut(),
        };
        if out.is_empty() {
            return Ok(());
        }
        let before = events.len();
        let noticed = notices.len();
        parser.feed(out, events, notices);
        let decoded = out.len();
        out.clear();
        if out.capacity() > 4 * DECODE_STEP_BYTES {
            out.shrink_to(DECODE_STEP_BYTES);
        }
        if events.len() > before {
            self.since_event = 0;
            self.wire_since_event = 0;
        } else {
            self.since_event = self.since_event.saturating_add(decoded);
        }
        let too_large = notices[noticed..]
            .iter()
            .any(|n| matches!(n, ParserNotice::EventTooLarge { .. }));
        let eventless = self.since_event > self.limit.saturating_add(EVENT_FRAMING_SLACK_BYTES)
            && self.since_event / BOMB_RATIO > self.wire_since_event;
        if too_large || eventless {
            return Err(DecodeError::Bomb { limit: self.limit });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flate2::Compression;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn decoder(encoding: &str, limit: usize) -> Decoder {
        let v = http::HeaderValue::from_str(encoding).unwrap();
        Decoder::for_encoding(Some(&v), limit).unwrap().unwrap()
    }

    #[test]
    fn gzip_and_deflate_decode_however_the_input_is_split() {
        let plain: Vec<u8> = (0..2000)
            .flat_map(|i| format!("id: {i}\ndata: {{\"n\":{i}}}\n\n").into_bytes())
            .collect();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), Compression::fast());
        zlib.write_all(&plain).unwrap();
        for (encoding, wire) in [("gzip", gzip(&plain)), ("deflate", zlib.finish().unwrap())] {
            for piece in [1, 7, 1460, wire.len()] {
                let mut d = decoder(encoding, 1024);
                let mut parser = Parser::new(1024);
                let (mut events, mut notices) = (Vec::new(), Vec::new());
                for chunk in wire.chunks(piece) {
                    d.feed(chunk, &mut parser, &mut events, &mut notices)
                        .unwrap();
                }
                assert_eq!(events.len(), 2000, "{encoding} in pieces of {piece}");
                assert_eq!(events[1999].data, "{\"n\":1999}");
                assert!(notices.is_empty());
            }
        }
        assert!(Decoder::for_encoding(None, 1).unwrap().is_none());
        let identity = http::HeaderValue::from_static("identity");
        assert!(Decoder::for_encoding(Some(&identity), 1).unwrap().is_none());
        let br = http::HeaderValue::from_static("br");
        assert!(
            Decoder::for_encoding(Some(&br), 1)
                .unwrap_err()
                .contains("\"br\"")
        );
    }

    /// 64 MiB of one event's data, in about 64 KiB of gzip: decoding stops just past the limit,
    /// having decoded a bounded amount, and stays stopped.
    #[test]
    fn a_bomb_is_cut_at_the_limit_with_bounded_work() {
        let limit = 64 * 1024;
        let mut plain = b"data: ".to_vec();
        plain.resize(64 * 1024 * 1024, b'a');
        let wire = gzip(&plain);
        let mut d = decoder("gzip", limit);
        let mut parser = Parser::new(limit);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        let mut fed = 0;
        let mut error = None;
        for chunk in wire.chunks(1460) {
            fed += chunk.len();
            if let Err(e) = d.feed(chunk, &mut parser, &mut events, &mut notices) {
                error = Some(e);
                break;
            }
        }
        assert_eq!(error, Some(DecodeError::Bomb { limit }));
        assert!(
            fed < wire.len() / 10,
            "cut after {fed} of {} bytes",
            wire.len()
        );
        assert!(events.is_empty());
        assert!(matches!(notices[..], [ParserNotice::EventTooLarge { .. }]));
        let e = d
            .feed(b"more", &mut parser, &mut events, &mut notices)
            .unwrap_err();
        assert!(e.to_string().contains("possible compression bomb"), "{e}");
    }

    /// Endless comment lines make no event: also a bomb, though the parser discards no event.
    #[test]
    fn decoded_bytes_without_an_event_count_too() {
        let plain: Vec<u8> = b": keep-alive\n".repeat(100_000);
        let mut d = decoder("gzip", 1024);
        let mut parser = Parser::new(1024);
        let (mut events, mut notices) = (Vec::new(), Vec::new());
        let e = d
            .feed(&gzip(&plain), &mut parser, &mut events, &mut notices)
            .unwrap_err();
        assert_eq!(e, DecodeError::Bomb { limit: 1024 });
        // The same comments, each flushed on its own as a live server sends them: not a bomb.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        let mut d = decoder("gzip", 1024);
        for _ in 0..20_000 {
            e.write_all(b": keep-alive\n").unwrap();
            e.flush().unwrap();
            let wire = std::mem::take(e.get_mut());
            d.feed(&wire, &mut parser, &mut events, &mut notices)
                .unwrap();
        }
        let mut d = decoder("gzip", 1024);
        let e = d
            .feed(b"not gzip at all", &mut parser, &mut events, &mut notices)
            .unwrap_err();
        assert_eq!(e, DecodeError::Invalid { encoding: "gzip" });
    }
}
