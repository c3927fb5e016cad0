//! Ingest's per-event span, after the OpenTelemetry messaging conventions for a receive
//! operation: named `receive <destination>`, kind Consumer, with `messaging.system=sse` (not a
//! registered value: SSE has none), `messaging.operation.name` / `.type` = `receive`, the
//! destination and the event's SSE id. The destination is the stream's `<device>/<endpoint>`:
//! what was read, with as few values as there are endpoints (an event type could be anything a
//! server sends, so it stays an attribute, `sse.event`, not part of the name).

use sse_contract::metrics::attr;

use crate::sse::SseEvent;

/// The messaging system named on ingest's spans.
pub const SYSTEM: &str = "sse";
/// The messaging operation of ingest's spans (name and type).
pub const OPERATION: &str = "receive";

/// The names of one stream's receive spans, made once per stream reader (not per event).
#[derive(Debug, Clone)]
pub struct ReceiveSpan {
    name: String,
    destination: String,
}

impl ReceiveSpan {
    /// The spans of the stream of `device`'s inbound `endpoint`.
    pub fn new(device: &str, endpoint: &str) -> Self {
        let destination = format!("{device}/{endpoint}");
        Self {
            name: format!("{OPERATION} {destination}"),
            destination,
        }
    }

    /// The span name (`receive <device>/<endpoint>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The span of one SSE event of stream `key`, routed to `routes` datasets and events (a
    /// root: ingest starts each event's trace). Made only when traces are exported.
    pub fn span(&self, key: &str, e: &SseEvent, routes: usize) -> tracing::Span {
        let span = tracing::info_span!(
            parent: None,
            "sse event",
            otel.name = %self.name,
            otel.kind = "consumer",
            { attr::MESSAGING_SYSTEM } = SYSTEM,
            { attr::OPERATION_NAME } = OPERATION,
            { attr::OPERATION_TYPE } = OPERATION,
            { attr::DESTINATION } = %self.destination,
            { attr::MESSAGE_ID } = tracing::field::Empty,
            sse.stream = %key,
            sse.event = %e.event_type,
            sse.routes = routes,
        );
        if !e.last_event_id.is_empty() {
            span.record(attr::MESSAGE_ID, e.last_event_id.as_str());
        }
        span
    }
}
