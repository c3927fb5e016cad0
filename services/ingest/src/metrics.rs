//! Every instrument `sse-ingest` records (names in `sse_contract::metrics`). Almost all are
//! observable: their callbacks read, at collection time, the counters ingest keeps anyway (the
//! [`Status`] of every stream and dataset / event, the byte budget, the forwarder's window, the
//! checkpoint store), so the per-event path pays nothing for metrics. The one synchronous
//! instrument, the re-send counter, is added to once per re-sent batch.
//!
//! Without a meter provider (no OTLP metrics endpoint, no admin port) the instruments are
//! no-ops and their callbacks never run.
//!
//! [`labels`] caches the capped label values per stream and per dataset / event; [`streams`]
//! and [`routes`] aggregate the status into data points, once per collection ([`shared`]);
//! [`gauges`] observes the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};
use sse_contract::metrics::{self as catalogue, attr};

use crate::budget::Budget;
use crate::checkpoint::Checkpoints;
use crate::status::Status;

mod gauges;
mod labels;
mod routes;
mod shared;
mod streams;

/// The `sse.link` value of ingest's gRPC link to the schema service.
pub const LINK: &str = "ingest-schema";

/// What the forwarder shares with the metrics: its window fill and the re-send counter.
#[derive(Debug, Clone)]
pub struct ForwardMeters {
    inflight: Arc<AtomicUsize>,
    resends: Counter<u64>,
    link: Arc<[KeyValue]>,
}

impl Default for ForwardMeters {
    /// Recording with the global meter (a no-op until a provider is installed).
    fn default() -> Self {
        Self::new(&sse_runtime::metrics::meter())
    }
}

impl ForwardMeters {
    /// The forwarder's meters, recording with `meter`.
    pub fn new(meter: &Meter) -> Self {
        let link = Arc::new([KeyValue::new(attr::LINK, LINK)]);
        let resends = sse_runtime::metrics::counter_in(meter, catalogue::GRPC_RESENDS);
        // At 0 under its link from the start, like every counter (see `counter_in`).
        resends.add(0, link.as_ref());
        Self {
            inflight: Arc::default(),
            resends,
            link,
        }
    }

    /// Records the events now waiting in the window for an acknowledgement.
    pub fn set_inflight(&self, events: usize) {
        self.inflight.store(events, Ordering::Relaxed);
    }

    /// Counts `events` sent to the schema service again.
    pub fn resent(&self, events: usize) {
        if events > 0 {
            self.resends.add(events as u64, &self.link);
        }
    }
}

/// What ingest's observable instruments read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Every stream's and dataset's / event's counters and state.
    pub status: Arc<Status>,
    /// The in-flight byte budget (`--max-in-flight-bytes`).
    pub budget: Budget,
    /// The forwarder's window limit (`--max-in-flight`).
    pub max_in_flight: u64,
    /// The forwarder's meters (window fill).
    pub forward: ForwardMeters,
    /// The checkpoint store (its age).
    pub checkpoints: Arc<Checkpoints>,
}

/// Registers every observable instrument of ingest with `meter`. The callbacks hold weak
/// references: once ingest is gone they observe nothing.
pub fn register(meter: &Meter, sources: &Sources) {
    let status = Arc::downgrade(&sources.status);
    let cache = Arc::new(labels::Cache::default());
    let routes = Arc::new(routes::Source::new(&status, &cache));
    routes::register(meter, &routes);
    streams::register(meter, &status, &cache, &routes);
    gauges::register(meter, sources);
}

#[cfg(test)]
pub(crate) mod tests;
