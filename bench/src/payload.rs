//! The event every load source sends: about 200 bytes of JSON carrying the stream, a sequence
//! number and the send time, so the subscriber can count and time each event on its own.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Size of the JSON payload in bytes (the `data` of an SSE event, the body of an MQTT message).
pub const PAYLOAD_BYTES: usize = 200;

/// Nanoseconds since the Unix epoch: the send timestamp, comparable across processes.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Appends the JSON payload of event `seq` of `stream`, sent at `ts` (ns), padded to
/// [`PAYLOAD_BYTES`].
pub fn write_payload(out: &mut Vec<u8>, stream: u32, seq: u64, ts: u64) {
    let start = out.len();
    // Writing to a Vec cannot fail.
    let _ = write!(out, r#"{{"ts":{ts},"seq":{seq},"stream":{stream},"pad":""#);
    let used = out.len() - start + 2;
    out.resize(out.len() + PAYLOAD_BYTES.saturating_sub(used), b'x');
    out.extend_from_slice(b"\"}");
}

/// The payload as a fresh buffer.
pub fn payload(stream: u32, seq: u64, ts: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(PAYLOAD_BYTES);
    write_payload(&mut v, stream, seq, ts);
    v
}

/// Appends one SSE event (`id:` = the sequence number, `data:` = the payload).
pub fn write_sse_event(out: &mut Vec<u8>, stream: u32, seq: u64, ts: u64) {
    let _ = write!(out, "id: {seq}\ndata: ");
    write_payload(out, stream, seq, ts);
    out.extend_from_slice(b"\n\n");
}

/// What the subscriber reads back from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Stream index.
    pub stream: u32,
    /// Sequence number (1-based, per stream).
    pub seq: u64,
    /// Send time, ns since the Unix epoch.
    pub ts: u64,
}

/// Reads the stamp from a payload written by [`write_payload`]; `None` for anything else.
pub fn parse(payload: &[u8]) -> Option<Stamp> {
    let mut rest = payload;
    let mut field = |name: &[u8]| -> Option<u64> {
        rest = rest.strip_prefix(name)?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 20 {
            return None;
        }
        let n = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        rest = &rest[digits..];
        Some(n)
    };
    let ts = field(br#"{"ts":"#)?;
    let seq = field(br#","seq":"#)?;
    let stream = field(br#","stream":"#)?;
    Some(Stamp {
        stream: u32::try_from(stream).ok()?,
        seq,
        ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_200_bytes_of_json_and_parses_back() {
        let p = payload(7, 123_456, 1_764_000_000_123_456_789);
        assert_eq!(p.len(), PAYLOAD_BYTES);
        let v: serde_json::Value = serde_json::from_slice(&p).expect("json");
        assert_eq!(v["seq"], 123_456);
        assert_eq!(
            parse(&p),
            Some(Stamp {
                stream: 7,
                seq: 123_456,
                ts: 1_764_000_000_123_456_789
            })
        );
    }

    #[test]
    fn sse_event_carries_the_sequence_as_id() {
        let mut b = Vec::new();
        write_sse_event(&mut b, 1, 9, 5);
        let text = String::from_utf8(b).expect("utf8");
        assert!(text.starts_with("id: 9\ndata: {\"ts\":5,\"seq\":9,\"stream\":1,"));
        assert!(text.ends_with("\"}\n\n"));
    }

    #[test]
    fn foreign_payloads_are_rejected() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(br#"{"ts":1,"seq":x}"#), None);
        assert_eq!(parse(br#"{"seq":1,"ts":2,"stream":3}"#), None);
        assert_eq!(parse(br#"{"ts":1,"seq":2,"stream":99999999999}"#), None);
    }
}
