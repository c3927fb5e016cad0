//! What the broker's and the state store's answers mean for a message, in words for its error
//! and the log: a PUBACK reason code with the broker's reason string, a state store response.

use rumqttc::v5::mqttbytes::v5::{PubAck, PubAckReason};

use crate::error::Error;

/// Longest part of a state store answer quoted in an error (the store's text is not ours).
const STORE_ANSWER_CHARS_MAX: usize = 200;

/// A PUBACK's verdict: success (also when nobody subscribes), else a permanent rejection naming
/// the reason code and the broker's reason string.
pub(super) fn puback(ack: &PubAck) -> Result<(), Error> {
    match ack.reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
        reason => {
            let detail = ack
                .properties
                .as_ref()
                .and_then(|p| p.reason_string.as_deref())
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            Err(Error::Rejected {
                code: crate::metrics::error_type(reason),
                detail: format!("{reason:?}{detail}"),
            })
        }
    }
}

/// The state store's answer: `+OK` is success, anything else is the text to report.
pub(super) fn store_answer(payload: &[u8]) -> Result<(), String> {
    if payload.starts_with(b"+OK") {
        return Ok(());
    }
    let text = String::from_utf8_lossy(payload);
    let text = text.trim_end_matches(['\r', '\n']);
    let text: String = text.chars().take(STORE_ANSWER_CHARS_MAX).collect();
    match text.strip_prefix('-') {
        Some(err) => Err(format!("state store answered {err:?}")),
        None => Err(format!("unexpected state store answer {text:?}")),
    }
}
