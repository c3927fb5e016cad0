//! The per-dataset / per-event instruments, aggregated per device, asset and route at
//! collection: events forwarded, acknowledged, and those whose delivery failed for good (a
//! drop with reason [`DELIVERY_FAILED`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::{KeyValue, StringValue};
use sse_contract::metrics::{self as catalogue, Instrument, attr};

use super::labels::Cache;
use super::with_status;
use crate::status::{RouteStatus, Status};

/// The `sse.reason` of events the publisher could not deliver (a permanent failure in their
/// acknowledgement: the broker refused them, or they expired).
pub const DELIVERY_FAILED: &str = "delivery_failed";

/// Device, asset and route values.
type Key = (StringValue, StringValue, StringValue);

/// Sums `count` of every dataset and event per (device, asset, route).
fn sums(status: &Status, cache: &Cache, count: impl Fn(&RouteStatus) -> u64) -> HashMap<Key, u64> {
    let mut out: HashMap<Key, u64> = HashMap::new();
    let mut pass = cache.routes();
    status.for_each_route(|subject, r| {
        let n = count(r);
        if n == 0 && r.device.is_empty() {
            return; // no event of it counted yet (only a schema or error known)
        }
        let l = pass.labels(subject, &r.device);
        *out.entry((l.device, l.asset, l.route)).or_default() += n;
    });
    out
}

/// The attributes of one (device, asset, route).
fn attributes((device, asset, route): Key) -> [KeyValue; 3] {
    [
        KeyValue::new(attr::DEVICE, device),
        KeyValue::new(attr::ASSET, asset),
        KeyValue::new(attr::ROUTE, route),
    ]
}

/// An observable counter of `count` per dataset / event.
fn counter(
    meter: &Meter,
    i: Instrument,
    status: &Weak<Status>,
    cache: &Arc<Cache>,
    count: fn(&RouteStatus) -> u64,
) {
    let (st, c) = (status.clone(), cache.clone());
    meter
        .u64_observable_counter(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            with_status(&st, |s| {
                for (k, n) in sums(s, &c, count) {
                    o.observe(n, &attributes(k));
                }
            });
        })
        .build();
}

/// Registers the per-dataset / per-event instruments (the failed deliveries are observed with
/// the other drops, [`observe_failed`]).
pub(super) fn register(meter: &Meter, status: &Weak<Status>, cache: &Arc<Cache>) {
    counter(meter, catalogue::EVENTS_FORWARDED, status, cache, |r| {
        r.forwarded
    });
    counter(meter, catalogue::EVENTS_ACKNOWLEDGED, status, cache, |r| {
        r.acknowledged
    });
}

/// Events whose delivery failed for good, per (device, asset, route): drops with reason
/// [`DELIVERY_FAILED`].
pub(super) fn observe_failed(o: &dyn AsyncInstrument<u64>, status: &Status, cache: &Cache) {
    for (k, n) in sums(status, cache, |r| r.failed) {
        let [d, a, r] = attributes(k);
        o.observe(n, &[d, a, r, KeyValue::new(attr::REASON, DELIVERY_FAILED)]);
    }
}
