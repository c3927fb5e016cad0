//! One stream's checkpoint as stored: `{"stream": <key>, "lastEventId": <id>, "seen": <unix
//! seconds>}`, on the broker as a retained message on `<prefix>/<first 16 bytes of SHA-256(key),
//! hex>`. `seen` (when the stream was last known planned: see [`super::retention`]) is absent
//! from records of older versions, which still load, and older versions ignore it.
//!
//! Anyone who can publish there (a broker client, an SSE `id:` that grew a record) can put
//! anything there, so [`decode`] is pure and total: a record that is too large, malformed, or
//! stored under the topic of another stream is an error its caller skips with a warning. The
//! stream then starts without it: duplicates at worst, never a stalled start.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sse_contract::limits::CHECKPOINT_RECORD_BYTES_MAX;

/// One saved checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The stream key.
    pub stream: String,
    /// The last event ID up to which every routed event was acknowledged.
    pub last_event_id: String,
    /// When the stream was last known planned (unix seconds), so a record of a removed stream
    /// is dropped a retention after its removal even across restarts; `None` in records of
    /// older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<u64>,
}

/// A record as loaded, under its stream key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The last event ID.
    pub last_event_id: String,
    /// When its stream was last known planned (unix seconds), if the record says.
    pub seen: Option<u64>,
}

impl Record {
    /// The record as loaded, without its key.
    pub fn into_stored(self) -> (String, Stored) {
        let stored = Stored {
            last_event_id: self.last_event_id,
            seen: self.seen,
        };
        (self.stream, stored)
    }
}

/// Why a stored record is skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Larger than `CHECKPOINT_RECORD_BYTES_MAX`.
    #[error("checkpoint record of {0} bytes exceeds the limit of {CHECKPOINT_RECORD_BYTES_MAX}")]
    TooLarge(usize),
    /// Not the JSON of a record.
    #[error("malformed checkpoint record: {0}")]
    Malformed(String),
    /// Stored under a topic that is not its stream's.
    #[error("checkpoint record on a topic that is not its stream's")]
    WrongTopic,
}

impl Record {
    /// The record's JSON.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of two strings and a number always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Checks the size of a record read from a file (the file holds many).
    pub fn check_size(&self) -> Result<(), RecordError> {
        let size = self.stream.len() + self.last_event_id.len();
        if size > CHECKPOINT_RECORD_BYTES_MAX {
            return Err(RecordError::TooLarge(size));
        }
        Ok(())
    }
}

/// The last topic level of stream `key`'s checkpoint: keys hold `/`, `+`, `#` and more, so the
/// topic names a hash of the key.
pub fn topic_level(key: &str) -> String {
    // Computed for every record of every save: one string, not one per byte.
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// The retained topic of stream `key`'s checkpoint under `prefix`.
pub fn topic(prefix: &str, key: &str) -> String {
    format!("{prefix}/{}", topic_level(key))
}

/// Reads the retained message `payload` of `topic`: the record, when it is small enough, well
/// formed and stored under its own stream's topic.
pub fn decode(topic: &str, payload: &[u8]) -> Result<Record, RecordError> {
    if payload.len() > CHECKPOINT_RECORD_BYTES_MAX {
        return Err(RecordError::TooLarge(payload.len()));
    }
    let record: Record =
        serde_json::from_slice(payload).map_err(|e| RecordError::Malformed(e.to_string()))?;
    let level = topic.rsplit('/').next().unwrap_or_default();
    if level != topic_level(&record.stream) {
        return Err(RecordError::WrongTopic);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(stream: &str, id: &str) -> Record {
        Record {
            stream: stream.into(),
            last_event_id: id.into(),
            seen: Some(1_700_000_000),
        }
    }

    #[test]
    fn a_record_round_trips_on_its_own_topic() {
        let r = record("dev/sse-0 http://h/x", "41");
        let t = topic("sse-connector/checkpoint", &r.stream);
        assert_eq!(decode(&t, &r.encode()), Ok(r));
    }

    #[test]
    fn a_record_of_an_older_version_has_no_time_and_an_old_reader_ignores_it() {
        let t = topic("p", "a");
        let old = decode(&t, br#"{"stream":"a","lastEventId":"5"}"#).unwrap();
        assert_eq!(old.seen, None);
        assert!(!String::from_utf8(old.encode()).unwrap().contains("seen"));
        // What an older version decoded: the two strings, other fields ignored.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Old {
            last_event_id: String,
        }
        let new = record("a", "6").encode();
        assert_eq!(
            serde_json::from_slice::<Old>(&new).unwrap().last_event_id,
            "6"
        );
    }

    #[test]
    fn large_malformed_and_misplaced_records_are_refused() {
        let r = record("a", "1");
        let other = topic("p", "b");
        assert_eq!(decode(&other, &r.encode()), Err(RecordError::WrongTopic));
        let t = topic("p", "a");
        assert!(matches!(
            decode(&t, b"{oops"),
            Err(RecordError::Malformed(_))
        ));
        assert!(matches!(decode(&t, b""), Err(RecordError::Malformed(_))));
        let big = record("a", &"9".repeat(CHECKPOINT_RECORD_BYTES_MAX));
        assert_eq!(
            decode(&t, &big.encode()),
            Err(RecordError::TooLarge(big.encode().len()))
        );
        assert!(big.check_size().is_err());
        assert!(r.check_size().is_ok());
    }
}
