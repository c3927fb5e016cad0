//! The domain form of an event and of a single message, as the gRPC adapter hands them over.

use bytes::Bytes;

/// One SSE event on its way to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CloudEvents id, stable across redeliveries.
    pub id: String,
    /// Position in its ingest stream, echoed in the ack.
    pub seq: u64,
    /// Stream the event came from, echoed in the ack.
    pub stream_key: String,
    /// The SSE data, byte for byte.
    pub data: Bytes,
    /// SSE event type (empty means `message`).
    pub sse_event: String,
    /// SSE last event id (empty when none).
    pub sse_id: String,
    /// When ingest received the event, Unix nanoseconds.
    pub received_unix_nanos: i64,
    /// What the event belongs to and where it goes.
    pub route: Route,
    /// W3C trace context of the event's trace.
    pub traceparent: String,
    /// W3C tracestate.
    pub tracestate: String,
    /// Schema reference (empty when none).
    pub dataschema: String,
    /// The route's subject by names as ingest computed it (empty from an older sender: derived
    /// from the route by sse-contract's rule); the CloudEvents `subject` unless the route's ADR
    /// ids name the asset otherwise ([`Route::cloud_event_subject`]).
    pub subject: String,
    /// Set when the event already failed for good upstream: it goes to the route's dead-letter
    /// destination instead of its destination.
    pub dead_letter: Option<sse_contract::dead_letter::Mark>,
}

/// What an event belongs to and where it is delivered: the contract's route shape, shared with
/// ingest; the destination is `None` when the route carries none.
pub type Route = sse_contract::route::Route<Option<Destination>>;

/// Kind of data operation: the contract's, so every service names it alike. The wire's
/// unspecified kind has no value here: the gRPC edge refuses it.
pub use sse_contract::route::RouteKind;

/// Where an event goes, and its MQTT options: the contract's, shared with ingest.
pub use sse_contract::route::{Destination, MqttDestination};

/// The QoS levels the publisher uses: the contract's, shared with ingest.
pub use sse_contract::route::Qos;

/// The ADR ids the CloudEvents properties name a device and asset by: the contract's.
pub use sse_contract::route::ResourceIds;

/// The rumqttc QoS of a [`Qos`] (a function: neither type is this crate's).
pub fn mqtt_qos(q: Qos) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        Qos::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        Qos::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    }
}

/// A single message of `PublishMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SingleMessage {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Quality of service.
    pub qos: Qos,
    /// Retain flag.
    pub retain: bool,
    /// Message expiry in seconds.
    pub ttl_seconds: Option<u32>,
    /// Content type.
    pub content_type: Option<String>,
}
