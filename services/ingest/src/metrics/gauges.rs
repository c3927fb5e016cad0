//! The gauges read from ingest's limits and stores: events and bytes in flight against their
//! limits, and the checkpoint age.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use opentelemetry::metrics::Meter;
use sse_contract::metrics::{self as catalogue, Instrument};

use super::Sources;

/// An observable `u64` gauge of the catalogue reading `value`.
fn gauge(meter: &Meter, i: Instrument, value: impl Fn() -> u64 + Send + Sync + 'static) {
    meter
        .u64_observable_gauge(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| o.observe(value(), &[]))
        .build();
}

/// Registers the in-flight and checkpoint gauges.
pub(super) fn register(meter: &Meter, sources: &Sources) {
    let inflight = Arc::downgrade(&sources.forward.inflight);
    gauge(meter, catalogue::INFLIGHT_EVENTS, move || {
        inflight
            .upgrade()
            .map_or(0, |n| n.load(Ordering::Relaxed) as u64)
    });
    let limit = sources.max_in_flight;
    gauge(meter, catalogue::INFLIGHT_EVENTS_LIMIT, move || limit);
    let budget = sources.budget.clone();
    gauge(meter, catalogue::INFLIGHT_SIZE, move || {
        budget.held() as u64
    });
    let limit = sources.budget.max() as u64;
    gauge(meter, catalogue::INFLIGHT_SIZE_LIMIT, move || limit);
    let checkpoints = Arc::downgrade(&sources.checkpoints);
    let i = catalogue::CHECKPOINT_AGE;
    meter
        .f64_observable_gauge(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            if let Some(c) = checkpoints.upgrade() {
                o.observe(c.age().as_secs_f64(), &[]);
            }
        })
        .build();
}
