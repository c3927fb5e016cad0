//! The per-stream instruments, aggregated per device (and endpoint, reason or state) at
//! collection: events received, events dropped by the reader, stream states, the longest time
//! a device's stream has been down, reconnects by reason and body bytes read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::{KeyValue, StringValue};
use sse_contract::metrics::{self as catalogue, Instrument, attr};

use super::labels::{Cache, StreamLabels};
use super::with_status;
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

/// Folds every stream of `status` into a map with `f`, under the status lock.
fn fold<K: Hash + Eq, V: Default>(
    status: &Status,
    cache: &Cache,
    mut f: impl FnMut(&StreamStatus, StreamLabels, &mut HashMap<K, V>),
) -> HashMap<K, V> {
    let mut out = HashMap::new();
    let mut pass = cache.streams();
    status.for_each_stream(|s| f(s, pass.labels(s), &mut out));
    out
}

/// An observable `u64` counter of the catalogue whose points `points` makes.
fn counter(
    meter: &Meter,
    i: Instrument,
    points: impl Fn(&dyn AsyncInstrument<u64>) + Send + Sync + 'static,
) {
    meter
        .u64_observable_counter(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(points)
        .build();
}

/// Registers the per-stream instruments.
pub(super) fn register(meter: &Meter, status: &Weak<Status>, cache: &Arc<Cache>) {
    let (st, c) = (status.clone(), cache.clone());
    counter(meter, catalogue::EVENTS_RECEIVED, move |o| {
        with_status(&st, |s| {
            let sums = fold(s, &c, |s, l, out| {
                *out.entry((l.device, l.endpoint)).or_default() += s.received;
            });
            for ((device, endpoint), n) in sums {
                o.observe(n, &[kv(attr::DEVICE, device), kv(attr::ENDPOINT, endpoint)]);
            }
        });
    });
    let (st, c) = (status.clone(), cache.clone());
    counter(meter, catalogue::EVENTS_DROPPED, move |o| {
        with_status(&st, |s| {
            observe_drops(o, s, &c);
            super::routes::observe_failed(o, s, &c);
        });
    });
    let (st, c) = (status.clone(), cache.clone());
    counter(meter, catalogue::STREAM_RECONNECTS, move |o| {
        with_status(&st, |s| {
            let sums = fold(s, &c, |s, l, out| {
                for (reason, n) in &s.reconnects {
                    *out.entry((l.device.clone(), *reason)).or_default() += n;
                }
            });
            for ((device, reason), n) in sums {
                o.observe(
                    n,
                    &[
                        kv(attr::DEVICE, device),
                        KeyValue::new(attr::REASON, reason),
                    ],
                );
            }
        });
    });
    let (st, c) = (status.clone(), cache.clone());
    counter(meter, catalogue::STREAM_RECEIVED_BYTES, move |o| {
        with_status(&st, |s| {
            let sums = fold(s, &c, |s, l, out| {
                *out.entry(l.device).or_default() += s.bytes_read.get();
            });
            for (device, n) in sums {
                o.observe(n, &[kv(attr::DEVICE, device)]);
            }
        });
    });
    register_gauges(meter, status, cache);
}

/// The stream state gauges: streams per state, and the longest time down, per device.
fn register_gauges(meter: &Meter, status: &Weak<Status>, cache: &Arc<Cache>) {
    let (st, c) = (status.clone(), cache.clone());
    let i = catalogue::STREAMS;
    meter
        .u64_observable_gauge(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| with_status(&st, |s| observe_states(o, s, &c)))
        .build();
    let (st, c) = (status.clone(), cache.clone());
    let i = catalogue::STREAM_DOWN;
    meter
        .f64_observable_gauge(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            with_status(&st, |s| {
                let now = SystemTime::now();
                let down = fold(s, &c, |s, l, out: &mut HashMap<StringValue, f64>| {
                    let d = out.entry(l.device).or_default();
                    *d = d.max(down_for(s, now));
                });
                for (device, secs) in down {
                    o.observe(secs, &[kv(attr::DEVICE, device)]);
                }
            });
        })
        .build();
}

/// Streams per device and state.
fn observe_states(o: &dyn AsyncInstrument<u64>, status: &Status, cache: &Cache) {
    let counts = fold(status, cache, |s, l, out: &mut HashMap<_, [u64; 5]>| {
        let i = STATES.iter().position(|st| *st == s.state).unwrap_or(0);
        out.entry(l.device).or_default()[i] += 1;
    });
    for (device, n) in counts {
        for (state, n) in STATES.iter().zip(n) {
            o.observe(
                n,
                &[
                    kv(attr::DEVICE, device.clone()),
                    KeyValue::new(attr::STATE, state.as_str()),
                ],
            );
        }
    }
}

/// Events the readers and the forwarder dropped, per device and reason.
fn observe_drops(o: &dyn AsyncInstrument<u64>, status: &Status, cache: &Cache) {
    let sums = fold(status, cache, |s, l, out| {
        for (reason, n) in &s.dropped {
            *out.entry((l.device.clone(), *reason)).or_default() += n;
        }
    });
    for ((device, reason), n) in sums {
        o.observe(
            n,
            &[
                kv(attr::DEVICE, device),
                KeyValue::new(attr::REASON, reason),
            ],
        );
    }
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
fn kv(key: &'static str, value: StringValue) -> KeyValue {
    KeyValue::new(key, value)
}
