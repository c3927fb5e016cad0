//! The metric catalogue: every instrument the services export, its name, unit, kind and
//! description, and the attribute keys they carry, defined once so the services, the Grafana
//! dashboard, the alert rules, the docs and the tests that check them cannot drift apart.
//!
//! Where an OpenTelemetry messaging semantic convention exists the instrument follows it exactly
//! (`messaging.*`); everything else lives under [`PREFIX`]. Prometheus names follow the
//! OpenTelemetry-to-Prometheus rules: dots become `_`, the unit is appended (`s` -> `_seconds`,
//! `By` -> `_bytes`, `{...}` annotations are dropped) and counters end in `_total`.
//!
//! Cardinality is bounded: no attribute carries a per-event value or an id. Device, asset,
//! route and destination values are capped per process (`--metrics-label-values`); past the cap
//! they fold into [`OTHER`] and [`LABELS_FOLDED`] counts the folds.

/// The prefix of every connector-specific instrument.
pub const PREFIX: &str = "sse_connector";

/// The instrumentation scope every service's meter uses, so the same instrument made by two
/// services of one process is one instrument.
pub const SCOPE: &str = "sse-connector";

/// What kind of instrument an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic counter (Prometheus `_total`).
    Counter,
    /// A value read when collected (an observable gauge).
    Gauge,
    /// A histogram of durations, in seconds.
    Histogram,
}

/// One instrument of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instrument {
    /// OpenTelemetry name.
    pub name: &'static str,
    /// UCUM unit (`s`, `By`, `{event}`).
    pub unit: &'static str,
    /// Kind of instrument.
    pub kind: Kind,
    /// One line for `# HELP` and the docs.
    pub description: &'static str,
    /// The name Prometheus shows it under.
    pub prometheus: &'static str,
}

macro_rules! instrument {
    ($id:ident, $name:literal, $unit:literal, $kind:ident, $prom:literal, $desc:literal) => {
        #[doc = $desc]
        pub const $id: Instrument = Instrument {
            name: $name,
            unit: $unit,
            kind: Kind::$kind,
            description: $desc,
            prometheus: $prom,
        };
    };
}

// OpenTelemetry messaging semantic conventions.
instrument!(
    SENT_MESSAGES,
    "messaging.client.sent.messages",
    "{message}",
    Counter,
    "messaging_client_sent_messages_total",
    "Messages the publisher sent to the MQTT broker (error.type set when the broker refused one)."
);
instrument!(
    OPERATION_DURATION,
    "messaging.client.operation.duration",
    "s",
    Histogram,
    "messaging_client_operation_duration_seconds",
    "Time from an MQTT PUBLISH to its PUBACK."
);
instrument!(
    PROCESS_DURATION,
    "messaging.process.duration",
    "s",
    Histogram,
    "messaging_process_duration_seconds",
    "Time the schema service spent on one event (inference, registration, routing)."
);

// Connector-specific.
instrument!(
    EVENTS_RECEIVED,
    "sse_connector.events.received",
    "{event}",
    Counter,
    "sse_connector_events_received_total",
    "SSE events dispatched by a stream's parser."
);
instrument!(
    EVENTS_FORWARDED,
    "sse_connector.events.forwarded",
    "{event}",
    Counter,
    "sse_connector_events_forwarded_total",
    "Routed events ingest handed to the schema service."
);
instrument!(
    EVENTS_ACKNOWLEDGED,
    "sse_connector.events.acknowledged",
    "{event}",
    Counter,
    "sse_connector_events_acknowledged_total",
    "Routed events acknowledged as delivered to the broker."
);
instrument!(
    EVENTS_DROPPED,
    "sse_connector.events.dropped",
    "{event}",
    Counter,
    "sse_connector_events_dropped_total",
    "Events dropped, by reason (sse.reason)."
);
instrument!(
    STREAMS,
    "sse_connector.streams",
    "{stream}",
    Gauge,
    "sse_connector_streams",
    "SSE streams by state (sse.state)."
);
instrument!(
    STREAM_DOWN,
    "sse_connector.stream.down.duration",
    "s",
    Gauge,
    "sse_connector_stream_down_duration_seconds",
    "Longest time one of a device's streams has been out of Connected (0 when all are up)."
);
instrument!(
    STREAM_RECONNECTS,
    "sse_connector.stream.reconnects",
    "{reconnect}",
    Counter,
    "sse_connector_stream_reconnects_total",
    "Stream reconnections, by the reason the previous connection ended (sse.reason)."
);
instrument!(
    STREAM_RECEIVED_BYTES,
    "sse_connector.stream.received",
    "By",
    Counter,
    "sse_connector_stream_received_bytes_total",
    "Bytes of SSE stream bodies read (after decoding)."
);
instrument!(
    INFLIGHT_EVENTS,
    "sse_connector.inflight.events",
    "{event}",
    Gauge,
    "sse_connector_inflight_events",
    "Events read but not yet acknowledged."
);
instrument!(
    INFLIGHT_EVENTS_LIMIT,
    "sse_connector.inflight.events.limit",
    "{event}",
    Gauge,
    "sse_connector_inflight_events_limit",
    "The in-flight event limit reading pauses at."
);
instrument!(
    INFLIGHT_SIZE,
    "sse_connector.inflight.size",
    "By",
    Gauge,
    "sse_connector_inflight_size_bytes",
    "Bytes of events read but not yet acknowledged."
);
instrument!(
    INFLIGHT_SIZE_LIMIT,
    "sse_connector.inflight.size.limit",
    "By",
    Gauge,
    "sse_connector_inflight_size_limit_bytes",
    "The in-flight byte limit reading pauses at."
);
instrument!(
    EVENT_LATENCY,
    "sse_connector.event.latency",
    "s",
    Histogram,
    "sse_connector_event_latency_seconds",
    "Time from an SSE event's arrival at ingest to the broker's PUBACK (clocks of two hosts may be skewed)."
);
instrument!(
    SCHEMA_VERSIONS_CREATED,
    "sse_connector.schema.versions.created",
    "{version}",
    Counter,
    "sse_connector_schema_versions_created_total",
    "Schema versions registered."
);
instrument!(
    SCHEMA_INFERENCE_FAILURES,
    "sse_connector.schema.inference.failures",
    "{event}",
    Counter,
    "sse_connector_schema_inference_failures_total",
    "Events whose schema could not be inferred or registered, by reason (sse.reason)."
);
instrument!(
    CHECKPOINT_AGE,
    "sse_connector.checkpoint.age",
    "s",
    Gauge,
    "sse_connector_checkpoint_age_seconds",
    "Time since the last-event-ID checkpoint was last written while it had changes to write (0 when up to date)."
);
instrument!(
    GRPC_RESENDS,
    "sse_connector.grpc.resends",
    "{event}",
    Counter,
    "sse_connector_grpc_resends_total",
    "Events sent again on a gRPC stream after it was re-established (sse.link)."
);
instrument!(
    BROKER_CONNECTED,
    "sse_connector.broker.connected",
    "1",
    Gauge,
    "sse_connector_broker_connected_ratio",
    "1 while the publisher's MQTT connection is up, else 0."
);
instrument!(
    BROKER_RECONNECTS,
    "sse_connector.broker.reconnects",
    "{reconnect}",
    Counter,
    "sse_connector_broker_reconnects_total",
    "MQTT reconnections of the publisher."
);
instrument!(
    TAIL_READERS,
    "sse_connector.tail.readers",
    "{tail}",
    Gauge,
    "sse_connector_tail_readers",
    "Tails (PublisherService/Tail, the console's live views) open on a publisher now."
);
instrument!(
    TAIL_DROPPED,
    "sse_connector.tail.dropped",
    "{message}",
    Counter,
    "sse_connector_tail_dropped_total",
    "Messages a tail reader lost because its queue (--tail-queue) was full; the broker still got them."
);
instrument!(
    LABELS_FOLDED,
    "sse_connector.labels.folded",
    "{value}",
    Counter,
    "sse_connector_labels_folded_total",
    "Label values folded into `other` because the cap was reached (sse.label names which)."
);

/// Every instrument, for the docs and the tests that check dashboards and scrapes.
pub const ALL: [Instrument; 25] = [
    SENT_MESSAGES,
    OPERATION_DURATION,
    PROCESS_DURATION,
    EVENTS_RECEIVED,
    EVENTS_FORWARDED,
    EVENTS_ACKNOWLEDGED,
    EVENTS_DROPPED,
    STREAMS,
    STREAM_DOWN,
    STREAM_RECONNECTS,
    STREAM_RECEIVED_BYTES,
    INFLIGHT_EVENTS,
    INFLIGHT_EVENTS_LIMIT,
    INFLIGHT_SIZE,
    INFLIGHT_SIZE_LIMIT,
    EVENT_LATENCY,
    SCHEMA_VERSIONS_CREATED,
    SCHEMA_INFERENCE_FAILURES,
    CHECKPOINT_AGE,
    GRPC_RESENDS,
    BROKER_CONNECTED,
    BROKER_RECONNECTS,
    TAIL_READERS,
    TAIL_DROPPED,
    LABELS_FOLDED,
];

/// Attribute keys.
pub mod attr {
    /// Semantic convention: the messaging system (`mqtt` for the broker, `sse` for streams).
    pub const MESSAGING_SYSTEM: &str = "messaging.system";
    /// Semantic convention: the MQTT topic (capped like a device name).
    pub const DESTINATION: &str = "messaging.destination.name";
    /// Semantic convention: the system-specific operation name (`send`, `receive`, `process`).
    pub const OPERATION_NAME: &str = "messaging.operation.name";
    /// Semantic convention: the operation type (`send`, `receive`, `process`).
    pub const OPERATION_TYPE: &str = "messaging.operation.type";
    /// Semantic convention: the class of error, only on failures.
    pub const ERROR_TYPE: &str = "error.type";
    /// Semantic convention, on spans only (it is per event): the message's id (the SSE event's
    /// last event ID at ingest, the CloudEvents id at the publisher).
    pub const MESSAGE_ID: &str = "messaging.message.id";
    /// The Device resource (capped).
    pub const DEVICE: &str = "sse.device";
    /// The device's inbound endpoint.
    pub const ENDPOINT: &str = "sse.endpoint";
    /// The Asset resource (capped).
    pub const ASSET: &str = "sse.asset";
    /// The dataset or event name within the asset (folds with its asset).
    pub const ROUTE: &str = "sse.route";
    /// Why (a drop, a reconnect, an inference failure).
    pub const REASON: &str = "sse.reason";
    /// A stream's state (`Idle`, `Connecting`, `Connected`, `Disconnected`, `Stopped`).
    pub const STATE: &str = "sse.state";
    /// Which gRPC link (`ingest-schema`, `schema-publisher`).
    pub const LINK: &str = "sse.link";
    /// Which label was folded (`device`, `asset`, `destination`).
    pub const LABEL: &str = "sse.label";
}

/// The value a capped label folds into.
pub const OTHER: &str = "other";

/// Longest label value recorded, in bytes: a longer one (a 64 KiB topic, a long dataset name)
/// is cut to this and ends with `…`, so one value cannot swell every series and scrape.
pub const LABEL_VALUE_BYTES_MAX: usize = 256;

/// Default of `--metrics-label-values`: distinct values kept per capped label and process.
pub const LABEL_VALUES_DEFAULT: usize = 200;

/// Histogram bucket boundaries (seconds) for broker round trips and end-to-end latency: the
/// semantic conventions' advice, with finer steps below 5 ms where this connector lives.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<_> = ALL.iter().map(|i| i.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for i in ALL {
            assert!(
                i.name.starts_with("messaging.") || i.name.starts_with("sse_connector."),
                "{}",
                i.name
            );
        }
    }

    #[test]
    fn prometheus_names_follow_the_conversion_rules() {
        for i in ALL {
            let mut want = i.name.replace('.', "_");
            match i.unit {
                "s" => want.push_str("_seconds"),
                "By" => want.push_str("_bytes"),
                "1" => want.push_str("_ratio"),
                _ => {}
            }
            if i.kind == Kind::Counter {
                want.push_str("_total");
            }
            assert_eq!(i.prometheus, want, "{}", i.name);
        }
    }
}
