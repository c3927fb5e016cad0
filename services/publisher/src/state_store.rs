//! The Azure IoT Operations state store request: RESP3 `SET key value` sent as an MQTT RPC
//! request with a hybrid-logical-clock `__ts` user property.
//!
//! The event is acknowledged on the request's PUBACK. Checking the store's `+OK` response on the
//! response topic comes in a later issue.

/// The `__ts` clock of state store requests: sse-contract's, shared with the schema registry's
/// client.
pub use sse_contract::clock::Hlc;

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
    fn response_topic_names_client() {
        assert_eq!(
            response_topic("c1"),
            "clients/c1/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response"
        );
    }
}
