//! Dead letters: an event that fails permanently goes to its route's dead-letter destination,
//! with user properties saying why, where it was going and which event it was. The reasons and
//! property names are defined once, so the publisher, the docs and every subscriber agree.

use std::fmt;

use crate::topics;

/// User property naming why the event is a dead letter (a [`Reason`] name).
pub const PROP_REASON: &str = "deadletterreason";
/// User property with the detail of the reason (the broker's reason code, the state store's
/// answer, the schema stage's refusal); never a payload or a credential.
pub const PROP_DETAIL: &str = "deadletterdetail";
/// User property naming the event's original destination: its topic, or `statestore:<key>`.
pub const PROP_DESTINATION: &str = "deadletterdestination";
/// User property with the event's CloudEvents `id` (also in `id` when its CloudEvents
/// properties are kept: this one is there for every dead letter).
pub const PROP_ID: &str = "deadletterid";
/// User property set to `true` when the payload is only the first [`HEAD_BYTES`] of the event.
pub const PROP_TRUNCATED: &str = "deadlettertruncated";
/// User property with the event's original data size in bytes (set for a truncated payload: the
/// size seen when the limit was passed, so at least the limit plus one).
pub const PROP_ORIGINAL_BYTES: &str = "deadletteroriginalbytes";

/// Bytes of an oversized event's data kept as the dead letter's payload: enough to recognise
/// the event, small enough that no broker or decoder limit is near.
pub const HEAD_BYTES: usize = 1024;

/// Why an event went to the dead-letter destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The broker refused the PUBLISH with an MQTT 5 reason code of 0x80 or more (an ACL, an
    /// invalid topic, a quota).
    BrokerRefused,
    /// The state store answered the SET with an error after the last attempt.
    StateStore,
    /// The event's data was over `--max-event-bytes`: the dead letter carries its first
    /// [`HEAD_BYTES`], marked truncated.
    TooLarge,
    /// The schema stage could not accept the payload (not JSON, too deep, too many
    /// properties, over its size limit).
    SchemaRejected,
}

impl Reason {
    /// Every reason, for documentation and exhaustive tests.
    pub const ALL: [Reason; 4] = [
        Reason::BrokerRefused,
        Reason::StateStore,
        Reason::TooLarge,
        Reason::SchemaRejected,
    ];

    /// The value of [`PROP_REASON`].
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BrokerRefused => "broker_refused",
            Reason::StateStore => "state_store",
            Reason::TooLarge => "too_large",
            Reason::SchemaRejected => "schema_rejected",
        }
    }

    /// The reason named by `s` ([`Reason::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The wire number (`sseconnector.v1.DeadLetterReason`).
    pub fn to_wire(self) -> i32 {
        match self {
            Reason::BrokerRefused => 1,
            Reason::StateStore => 2,
            Reason::TooLarge => 3,
            Reason::SchemaRejected => 4,
        }
    }

    /// The reason of a wire number; `None` for unspecified (0) or a number this version does
    /// not know.
    pub fn from_wire(n: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.to_wire() == n)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event that already failed for good upstream (ingest's size limit, the schema stage) and
/// goes straight to its route's dead-letter destination: the `Event.dead_letter` of the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// Why it failed.
    pub reason: Reason,
    /// The detail of the reason, for people; never payload bytes.
    pub detail: String,
    /// `Some(size)` when the data is only its first [`HEAD_BYTES`]: the size before.
    pub truncated_from: Option<u64>,
}

/// Why a dead-letter topic is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not a topic name to publish to.
    #[error("{0}")]
    Invalid(topics::Refusal),
    /// Outside the connector's dead-letter namespace.
    #[error(
        "a dead-letter topic must be under {prefix}/ (owned by the connector, so no route or PublishMessage can forge a dead letter)",
        prefix = topics::DEAD_LETTER_PREFIX
    )]
    OutsidePrefix,
}

/// Checks a dead-letter topic: a valid topic name under [`topics::DEAD_LETTER_PREFIX`] (and not
/// the prefix itself). That namespace is owned: only the publisher's dead letters write there,
/// so a subscriber can trust that a message there is one.
pub fn check_topic(topic: &str) -> Result<(), TopicError> {
    topics::check_name(topic).map_err(TopicError::Invalid)?;
    let under = topic
        .strip_prefix(topics::DEAD_LETTER_PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| !rest.is_empty());
    if under {
        Ok(())
    } else {
        Err(TopicError::OutsidePrefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_by_name_and_wire() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
            assert_eq!(Reason::from_wire(r.to_wire()), Some(r));
        }
        assert_eq!(Reason::from_wire(0), None);
        assert_eq!(Reason::from_wire(99), None);
        assert_eq!(Reason::parse("nope"), None);
    }

    #[test]
    fn dead_letter_topics_live_under_the_owned_prefix() {
        assert!(check_topic("sse-connector/dead-letter/plant").is_ok());
        assert!(check_topic("sse-connector/dead-letter/a/b").is_ok());
        for bad in [
            "plant/dead",
            "sse-connector/dead-letter",
            "sse-connector/dead-letter/",
            "sse-connector/dead-letterx/a",
            "sse-connector/status/a",
        ] {
            assert_eq!(check_topic(bad), Err(TopicError::OutsidePrefix), "{bad}");
        }
        assert!(matches!(
            check_topic("sse-connector/dead-letter/#"),
            Err(TopicError::Invalid(_))
        ));
    }
}
