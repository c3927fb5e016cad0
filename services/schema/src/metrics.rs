//! The schema service's instruments (names, units and attribute keys from
//! `sse_contract::metrics`):
//!
//! - `messaging.process.duration`: the time spent on one event (inference, registration,
//!   tagging), with the messaging conventions' attributes (`messaging.system=sse`, operation
//!   `process`) and `error.type` (the [`NoSchema`] reason) when it went on without a schema;
//! - `sse_connector.schema.versions.created`: schema versions registered;
//! - `sse_connector.schema.inference.failures`: events without a schema, by `sse.reason`
//!   (the wire's `NoSchemaReason` names: `not_json`, `too_large`, `too_deep`,
//!   `too_many_properties`, `registry_error`, `schema_frozen`).
//!
//! Every attribute set is made once, here; with no collecting meter provider
//! ([`sse_runtime::metrics::enabled`]) there are no instruments and no clock reads per event.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use sse_contract::metrics::{self as catalogue, attr};
use sse_runtime::metrics::{counter_in, histogram_in};

use crate::pipeline::NoSchema;

/// `messaging.system` of the events the schema service processes.
const SYSTEM: &str = "sse";
/// The conventions' operation name and type of the schema service's work on an event.
pub const PROCESS: &str = "process";

/// The schema service's instruments and their attribute sets, made once when it starts.
#[derive(Debug)]
pub struct Metrics {
    duration: Histogram<f64>,
    created: Counter<u64>,
    failures: Counter<u64>,
    /// The conventions' attributes of a processed event.
    ok: [KeyValue; 3],
    /// The same with `error.type`, per [`NoSchema`] (in [`NoSchema::ALL`] order).
    failed: Vec<[KeyValue; 4]>,
    /// `sse.reason`, per [`NoSchema`].
    reasons: Vec<[KeyValue; 1]>,
}

impl Metrics {
    /// The instruments of the global meter, or `None` when nothing collects metrics.
    pub fn from_global() -> Option<Arc<Self>> {
        sse_runtime::metrics::enabled().then(|| Arc::new(Self::new(&sse_runtime::metrics::meter())))
    }

    /// The instruments made by `meter`.
    pub fn new(meter: &Meter) -> Self {
        let ok = [
            KeyValue::new(attr::MESSAGING_SYSTEM, SYSTEM),
            KeyValue::new(attr::OPERATION_NAME, PROCESS),
            KeyValue::new(attr::OPERATION_TYPE, PROCESS),
        ];
        let failed = NoSchema::ALL
            .iter()
            .map(|r| {
                let [a, b, c] = ok.clone();
                [a, b, c, KeyValue::new(attr::ERROR_TYPE, r.label())]
            })
            .collect();
        let reasons = NoSchema::ALL
            .iter()
            .map(|r| [KeyValue::new(attr::REASON, r.label())])
            .collect();
        Self {
            duration: histogram_in(meter, catalogue::PROCESS_DURATION),
            created: counter_in(meter, catalogue::SCHEMA_VERSIONS_CREATED),
            failures: counter_in(meter, catalogue::SCHEMA_INFERENCE_FAILURES),
            ok,
            failed,
            reasons,
        }
    }

    /// One event processed in `elapsed`; `without` says why it went on without a schema.
    pub fn processed(&self, elapsed: Duration, without: Option<NoSchema>) {
        let attributes: &[KeyValue] = match without {
            None => &self.ok,
            Some(r) => &self.failed[r.index()],
        };
        self.duration.record(elapsed.as_secs_f64(), attributes);
    }

    /// An event whose schema could not be inferred or registered, for `reason`.
    pub fn inference_failed(&self, reason: NoSchema) {
        self.failures.add(1, &self.reasons[reason.index()]);
    }

    /// A new schema version was registered.
    pub fn version_created(&self) {
        self.created.add(1, &[]);
    }
}
