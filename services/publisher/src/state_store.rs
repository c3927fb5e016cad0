//! The Azure IoT Operations state store request: RESP3 `SET key value` sent as an MQTT RPC
//! request with a hybrid-logical-clock `__ts` user property.
//!
//! The event is acknowledged on the request's PUBACK. Checking the store's `+OK` response on the
//! response topic comes in a later issue.

use std::time::{SystemTime, UNIX_EPOCH};

/// The state store's request topic, and the response topic a client asks it to answer on: both
/// owned by the connector (sse-contract's topic list), so no route or admin call publishes there.
pub use sse_contract::topics::{
    STATE_STORE_REQUEST as REQUEST_TOPIC, state_store_response as response_topic,
};

/// RESP3 encoding of `SET key value`.
pub fn resp_set(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 32);
    out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
    for part in [key, value] {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A hybrid logical clock: wall-clock milliseconds plus a counter that orders events within the
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
            .map(|d| d.as_millis() as u64)
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
    fn encodes_resp3_set() {
        assert_eq!(
            resp_set(b"weather-latest", b"{\"t\":1}"),
            b"*3\r\n$3\r\nSET\r\n$14\r\nweather-latest\r\n$7\r\n{\"t\":1}\r\n".to_vec()
        );
        assert_eq!(
            resp_set(b"k", b""),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
        // lengths are bytes, not characters
        assert_eq!(
            resp_set("é".as_bytes(), b"x"),
            b"*3\r\n$3\r\nSET\r\n$2\r\n\xc3\xa9\r\n$1\r\nx\r\n".to_vec()
        );
    }

    #[test]
    fn formats_ts() {
        assert_eq!(
            format_ts(1_700_000_000_123, 7, "pub-1"),
            "001700000000123:00007:pub-1"
        );
    }

    #[test]
    fn hlc_is_monotonic() {
        let mut c = Hlc::default();
        assert_eq!(c.tick(100), (100, 0));
        assert_eq!(c.tick(100), (100, 1));
        assert_eq!(c.tick(90), (100, 2));
        assert_eq!(c.tick(101), (101, 0));
        let ts = c.next_ts("me");
        let parts: Vec<&str> = ts.split(':').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].len(), 15);
        assert_eq!(parts[1].len(), 5);
        assert_eq!(parts[2], "me");
    }

    #[test]
    fn response_topic_names_client() {
        assert_eq!(
            response_topic("c1"),
            "clients/c1/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response"
        );
    }
}
