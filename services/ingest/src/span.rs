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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

    use super::*;

    type Fields = Arc<Mutex<BTreeMap<String, String>>>;

    /// Keeps every field given to the span (at creation or recorded later), as text.
    struct Capture(Fields);

    struct Into<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Into<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().into(), value.into());
        }
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.insert(field.name().into(), format!("{value:?}"));
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Capture {
        fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
            attrs.record(&mut Into(&mut self.0.lock().unwrap()));
        }
        fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
            values.record(&mut Into(&mut self.0.lock().unwrap()));
        }
    }

    fn fields_of(id: &str) -> BTreeMap<String, String> {
        let fields = Fields::default();
        let subscriber = tracing_subscriber::registry().with(Capture(fields.clone()));
        let e = SseEvent {
            event_type: "reading".into(),
            data: "{}".into(),
            last_event_id: id.into(),
            truncated_from: None,
        };
        tracing::subscriber::with_default(subscriber, || {
            let _span = ReceiveSpan::new("dev", "sse-0").span("dev/sse-0|http://h/", &e, 2);
        });
        fields.lock().unwrap().clone()
    }

    #[test]
    fn the_receive_span_follows_the_messaging_conventions() {
        let f = fields_of("41");
        let want = [
            ("otel.name", "receive dev/sse-0"),
            ("otel.kind", "consumer"),
            (attr::MESSAGING_SYSTEM, "sse"),
            (attr::OPERATION_NAME, "receive"),
            (attr::OPERATION_TYPE, "receive"),
            (attr::DESTINATION, "dev/sse-0"),
            (attr::MESSAGE_ID, "41"),
            ("sse.event", "reading"),
        ];
        for (k, v) in want {
            assert_eq!(f.get(k).map(String::as_str), Some(v), "{k} in {f:?}");
        }
    }

    #[test]
    fn an_event_without_an_id_has_no_message_id() {
        let f = fields_of("");
        assert!(!f.contains_key(attr::MESSAGE_ID), "{f:?}");
        assert_eq!(
            f.get("otel.name").map(String::as_str),
            Some("receive dev/sse-0")
        );
    }
}
