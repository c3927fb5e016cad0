//! The per-dataset / per-event instruments, aggregated per device, asset and route at
//! collection, in one walk of the status shared by all of them: events forwarded,
//! acknowledged, and those whose delivery failed for good (a drop with reason
//! [`DELIVERY_FAILED`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::{KeyValue, StringValue};
use sse_contract::metrics::{self as catalogue, Instrument, attr};

use super::labels::Cache;
use super::shared::Shared;
use crate::status::Status;

/// The `sse.reason` of events the publisher could not deliver (a permanent failure in their
/// acknowledgement: the broker refused them, or they expired).
pub const DELIVERY_FAILED: &str = "delivery_failed";

/// Device, asset and route values.
type Key = (StringValue, StringValue, StringValue);

/// Forwarded, acknowledged and failed events per (device, asset, route).
type RouteSums = HashMap<Key, [u64; 3]>;

/// Which of [`RouteSums`]' counts.
const FORWARDED: usize = 0;
const ACKNOWLEDGED: usize = 1;
const FAILED: usize = 2;

/// The shared walk of the datasets and events.
#[derive(Debug)]
pub(super) struct Source {
    status: Weak<Status>,
    cache: Arc<Cache>,
    sums: Shared<RouteSums>,
}

impl Source {
    /// The walk of `status`'s datasets and events, labelled with `cache`.
    pub fn new(status: &Weak<Status>, cache: &Arc<Cache>) -> Self {
        Self {
            status: status.clone(),
            cache: cache.clone(),
            sums: Shared::default(),
        }
    }

    /// The sums for instrument `who` (index of the count it reports), if ingest still runs.
    fn sums(&self, who: usize) -> Option<Arc<RouteSums>> {
        let status = self.status.upgrade()?;
        Some(self.sums.get(who as u32, || sums(&status, &self.cache)))
    }

    /// Events whose delivery failed for good: drops with reason [`DELIVERY_FAILED`].
    pub fn observe_failed(&self, o: &dyn AsyncInstrument<u64>) {
        let Some(sums) = self.sums(FAILED) else {
            return;
        };
        for (k, n) in sums.iter() {
            let [d, a, r] = attributes(k);
            o.observe(
                n[FAILED],
                &[d, a, r, KeyValue::new(attr::REASON, DELIVERY_FAILED)],
            );
        }
    }
}

/// Walks every dataset and event of `status` (under its lock) fed by a counted event.
fn sums(status: &Status, cache: &Cache) -> RouteSums {
    let mut out = RouteSums::new();
    let mut pass = cache.routes();
    status.for_each_route(|subject, r| {
        if r.device.is_empty() {
            return; // no event of it counted yet (only a schema or error known)
        }
        let l = pass.labels(subject, &r.device);
        let n = out.entry((l.device, l.asset, l.route)).or_default();
        n[FORWARDED] += r.forwarded;
        n[ACKNOWLEDGED] += r.acknowledged;
        n[FAILED] += r.failed;
    });
    out
}

/// The attributes of one (device, asset, route).
fn attributes((device, asset, route): &Key) -> [KeyValue; 3] {
    [
        KeyValue::new(attr::DEVICE, device.clone()),
        KeyValue::new(attr::ASSET, asset.clone()),
        KeyValue::new(attr::ROUTE, route.clone()),
    ]
}

/// An observable counter of count `which` per dataset / event.
fn counter(meter: &Meter, i: Instrument, source: &Arc<Source>, which: usize) {
    let source = source.clone();
    meter
        .u64_observable_counter(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            if let Some(sums) = source.sums(which) {
                for (k, n) in sums.iter() {
                    o.observe(n[which], &attributes(k));
                }
            }
        })
        .build();
}

/// Registers the per-dataset / per-event counters (the failed deliveries are observed with the
/// other drops, [`Source::observe_failed`]).
pub(super) fn register(meter: &Meter, source: &Arc<Source>) {
    counter(meter, catalogue::EVENTS_FORWARDED, source, FORWARDED);
    counter(meter, catalogue::EVENTS_ACKNOWLEDGED, source, ACKNOWLEDGED);
}
