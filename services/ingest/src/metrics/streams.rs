//! The per-stream instruments, aggregated per device (and endpoint, reason or state) at
//! collection, in one walk of the status shared by all of them: events received, events
//! dropped by the reader, stream states, the longest time a device's stream has been down,
//! reconnects by reason and body bytes read.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::{KeyValue, StringValue};
use sse_contract::metrics::{self as catalogue, Instrument, attr};

use super::labels::Cache;
use super::shared::Shared;
use crate::status::{Status, StreamState, StreamStatus};

/// Every state a stream can be in: each device reports all of them (0 included), so a state
/// left does not linger at its last count.
const STATES: [StreamState; 5] = [
    StreamState::Idle,
    StreamState::Connecting,
    StreamState::Connected,
    StreamState::Disconnected,
    StreamState::Stopped,
];

/// Everything the per-stream instruments report, from one walk of the streams.
#[derive(Debug, Default)]
pub(super) struct StreamSums {
    received: HashMap<(StringValue, StringValue), u64>,
    dropped: HashMap<(StringValue, &'static str), u64>,
    reconnects: HashMap<(StringValue, &'static str), u64>,
    bytes: HashMap<StringValue, u64>,
    states: HashMap<StringValue, [u64; 5]>,
    down: HashMap<StringValue, f64>,
}

impl StreamSums {
    /// Walks every stream of `status` (under its lock).
    fn of(status: &Status, cache: &Cache) -> Self {
        let mut out = Self::default();
        let now = SystemTime::now();
        let mut pass = cache.streams();
        status.for_each_stream(|s| {
            let l = pass.labels(s);
            let device = l.device;
            *out.received
                .entry((device.clone(), l.endpoint))
                .or_default() += s.received;
            for (reason, n) in &s.dropped {
                *out.dropped.entry((device.clone(), *reason)).or_default() += n;
            }
            for (reason, n) in &s.reconnects {
                *out.reconnects.entry((device.clone(), *reason)).or_default() += n;
            }
            *out.bytes.entry(device.clone()).or_default() += s.bytes_read.get();
            let i = STATES.iter().position(|st| *st == s.state).unwrap_or(0);
            out.states.entry(device.clone()).or_default()[i] += 1;
            let d = out.down.entry(device).or_default();
            *d = d.max(down_for(s, now));
        });
        out
    }
}

/// The shared walk, as each instrument's callback reads it.
#[derive(Debug)]
struct Source {
    status: Weak<Status>,
    cache: Arc<Cache>,
    sums: Shared<StreamSums>,
}

impl Source {
    /// The sums for instrument `who`, if ingest still runs.
    fn sums(&self, who: u32) -> Option<Arc<StreamSums>> {
        let status = self.status.upgrade()?;
        Some(self.sums.get(who, || StreamSums::of(&status, &self.cache)))
    }
}

/// An observable `u64` counter of the catalogue whose points `points` makes from the sums.
fn counter(
    meter: &Meter,
    i: Instrument,
    source: &Arc<Source>,
    who: u32,
    points: impl Fn(&dyn AsyncInstrument<u64>, &StreamSums) + Send + Sync + 'static,
) {
    let source = source.clone();
    meter
        .u64_observable_counter(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            if let Some(sums) = source.sums(who) {
                points(o, &sums);
            }
        })
        .build();
}

/// Registers the per-stream instruments (the dropped counter also reports the failed
/// deliveries of `routes`).
pub(super) fn register(
    meter: &Meter,
    status: &Weak<Status>,
    cache: &Arc<Cache>,
    routes: &Arc<super::routes::Source>,
) {
    let source = Arc::new(Source {
        status: status.clone(),
        cache: cache.clone(),
        sums: Shared::default(),
    });
    counter(meter, catalogue::EVENTS_RECEIVED, &source, 0, |o, s| {
        for ((device, endpoint), n) in &s.received {
            o.observe(
                *n,
                &[kv(attr::DEVICE, device), kv(attr::ENDPOINT, endpoint)],
            );
        }
    });
    let failed = routes.clone();
    counter(meter, catalogue::EVENTS_DROPPED, &source, 1, move |o, s| {
        for ((device, reason), n) in &s.dropped {
            o.observe(
                *n,
                &[
                    kv(attr::DEVICE, device),
                    KeyValue::new(attr::REASON, *reason),
                ],
            );
        }
        failed.observe_failed(o);
    });
    counter(meter, catalogue::STREAM_RECONNECTS, &source, 2, |o, s| {
        for ((device, reason), n) in &s.reconnects {
            o.observe(
                *n,
                &[
                    kv(attr::DEVICE, device),
                    KeyValue::new(attr::REASON, *reason),
                ],
            );
        }
    });
    counter(
        meter,
        catalogue::STREAM_RECEIVED_BYTES,
        &source,
        3,
        |o, s| {
            for (device, n) in &s.bytes {
                o.observe(*n, &[kv(attr::DEVICE, device)]);
            }
        },
    );
    register_gauges(meter, &source);
}

/// The stream state gauges: streams per state, and the longest time down, per device.
fn register_gauges(meter: &Meter, source: &Arc<Source>) {
    let src = source.clone();
    let i = catalogue::STREAMS;
    meter
        .u64_observable_gauge(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            let Some(s) = src.sums(4) else { return };
            for (device, n) in &s.states {
                for (state, n) in STATES.iter().zip(n) {
                    let state = KeyValue::new(attr::STATE, state.as_str());
                    o.observe(*n, &[kv(attr::DEVICE, device), state]);
                }
            }
        })
        .build();
    let src = source.clone();
    let i = catalogue::STREAM_DOWN;
    meter
        .f64_observable_gauge(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            let Some(s) = src.sums(5) else { return };
            for (device, secs) in &s.down {
                o.observe(*secs, &[kv(attr::DEVICE, device)]);
            }
        })
        .build();
}

/// How long stream `s` has been out of Connected at `now` (0 while connected).
fn down_for(s: &StreamStatus, now: SystemTime) -> f64 {
    if s.connected() {
        return 0.0;
    }
    now.duration_since(s.since)
        .unwrap_or_default()
        .as_secs_f64()
}

/// An attribute with a capped value.
fn kv(key: &'static str, value: &StringValue) -> KeyValue {
    KeyValue::new(key, value.clone())
}
