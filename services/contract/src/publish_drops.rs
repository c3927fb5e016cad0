//! Why the publisher drops an event (acknowledges it with an error instead of delivering it):
//! the `sse.reason` values of `sse_connector.events.dropped` recorded by `sse-publisher`,
//! defined once so the publisher, the dashboard, the alert rules and the docs agree.

/// The event cannot be published as it is: no destination, an unknown route kind or QoS.
pub const INVALID_EVENT: &str = "invalid_event";

/// The destination is not a valid MQTT topic name (empty, a wildcard, too long...).
pub const INVALID_TOPIC: &str = "invalid_topic";

/// The destination is a topic the connector owns, or the state store outside ingest's routes.
pub const NOT_ALLOWED: &str = "not_allowed";

/// The message is over the broker's (CONNACK) or the connector's maximum packet size.
pub const TOO_LARGE: &str = "too_large";

/// The broker cannot take the message otherwise: retain or QoS 1 it does not support.
pub const UNSUPPORTED: &str = "unsupported";

/// The broker refused the PUBLISH with an MQTT 5 reason code (an ACL, a quota...).
pub const BROKER_REFUSED: &str = "broker_refused";

/// The state store did not set the key after bounded attempts.
pub const STATE_STORE: &str = "state_store";

/// The event failed for good and its dead letter failed for good too (the dead-letter topic
/// refused by the broker, say): acknowledged, counted, and not tried again (no loop).
pub const DEAD_LETTER_FAILED: &str = "dead_letter_failed";

/// Every reason the publisher drops an event, for documentation and exhaustive tests.
pub const PUBLISH_DROP_REASONS: [&str; 8] = [
    INVALID_EVENT,
    INVALID_TOPIC,
    NOT_ALLOWED,
    TOO_LARGE,
    UNSUPPORTED,
    BROKER_REFUSED,
    STATE_STORE,
    DEAD_LETTER_FAILED,
];
