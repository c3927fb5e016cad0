//! The publisher's instruments (names, units and attribute keys from `sse_contract::metrics`):
//!
//! - `messaging.client.sent.messages`: one per PUBLISH once its outcome is known (its PUBACK;
//!   for QoS 0, once written), with the messaging conventions' attributes and `error.type` (the
//!   PUBACK reason code, snake case) when the broker refused it; counted in atomics per
//!   destination and reported when metrics are collected (an observable counter), so a send
//!   costs an atomic increment, not an attribute lookup;
//! - `messaging.client.operation.duration`: PUBLISH written to PUBACK read, same attributes;
//!   QoS 0 has no PUBACK and records none;
//! - `sse_connector.event.latency`: the event's arrival at ingest (`received_unix_nanos`) to its
//!   PUBACK, per device and asset; clocks of two hosts may be skewed, and a negative value
//!   (the publisher's clock behind ingest's) is recorded as 0;
//! - `sse_connector.events.dropped`: events acknowledged with an error, by `sse.reason`
//!   (`sse_contract::publish_drops`), device and asset;
//! - `sse_connector.broker.connected` (read at collection) and `sse_connector.broker.reconnects`;
//! - `sse_connector.tail.readers` and `sse_connector.tail.dropped`: the open tails and the
//!   messages their slow readers lost, both read from the [`Tail`] registry's atomics at
//!   collection, so the publish path does no metric work for them (a drop, which happens only
//!   while a tail is open, costs one more atomic increment).
//!
//! Cost: the attribute sets are made once per route (device, asset, topic) of a stream and
//! kept ([`RouteCache`]), so an event costs a comparison with the previous event's route (a
//! hash of its names when it differs), an atomic increment and two histogram records; with no
//! collecting meter provider ([`sse_runtime::metrics::enabled`]) nothing is made
//! (`cargo bench -p sse-publisher --bench metrics`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableCounter, ObservableGauge};
use opentelemetry::{KeyValue, StringValue};
use rumqttc::v5::mqttbytes::v5::PubAckReason;
use sse_contract::metrics::{self as catalogue, attr};
use sse_runtime::metrics::{capped, counter_in, histogram_in};
use tokio::sync::watch;

use crate::tail::Tail;

/// `messaging.system` of what the publisher sends.
const SYSTEM: &str = "mqtt";
/// The conventions' operation name and type of a publish (spans are `send <topic>`).
pub const SEND: &str = "send";
/// `error.type` of a PUBACK reason code this crate has no name for (the conventions' fallback).
const OTHER_ERROR: &str = "_OTHER";
/// Most routes a stream keeps attributes for: past it the cache starts over, so a caller
/// sending ever new names cannot grow it.
const ROUTES_CACHED_MAX: usize = 4096;

/// The PUBACK reason codes that refuse a message, in the order of [`SentCounts::refused`].
const REFUSALS: [PubAckReason; 7] = [
    PubAckReason::UnspecifiedError,
    PubAckReason::ImplementationSpecificError,
    PubAckReason::NotAuthorized,
    PubAckReason::TopicNameInvalid,
    PubAckReason::PacketIdentifierInUse,
    PubAckReason::QuotaExceeded,
    PubAckReason::PayloadFormatInvalid,
];

/// The sends to one destination (its capped value), counted as they resolve and reported when
/// metrics are collected.
#[derive(Debug, Default)]
struct SentCounts {
    ok: AtomicU64,
    /// Per [`REFUSALS`] code, then one for a code outside them.
    refused: [AtomicU64; REFUSALS.len() + 1],
}

/// Every destination's [`SentCounts`], by its capped value: bounded by the label cap (values
/// past it share `other`), never shrinking, so the counters never go backwards.
type SentTable = Arc<Mutex<HashMap<String, Arc<SentCounts>>>>;

/// The publisher's instruments, made once when it starts.
#[derive(Debug)]
pub struct Metrics {
    meter: Meter,
    sent: SentTable,
    /// Kept so its callback lives as long as the publisher.
    _sent_counter: ObservableCounter<u64>,
    duration: Histogram<f64>,
    latency: Histogram<f64>,
    dropped: Counter<u64>,
    reconnects: Counter<u64>,
    /// Kept so its callback lives as long as the publisher.
    connected: OnceLock<ObservableGauge<u64>>,
    /// Kept so their callbacks live as long as the publisher.
    tail: OnceLock<(ObservableGauge<u64>, ObservableCounter<u64>)>,
}

impl Metrics {
    /// The instruments of the global meter, or `None` when nothing collects metrics (so the
    /// publisher does no per-event metric work at all).
    pub fn from_global() -> Option<Arc<Self>> {
        sse_runtime::metrics::enabled().then(|| Arc::new(Self::new(&sse_runtime::metrics::meter())))
    }

    /// The instruments made by `meter`.
    pub fn new(meter: &Meter) -> Self {
        let sent = SentTable::default();
        Self {
            meter: meter.clone(),
            _sent_counter: sent_counter(meter, sent.clone()),
            sent,
            duration: histogram_in(meter, catalogue::OPERATION_DURATION),
            latency: histogram_in(meter, catalogue::EVENT_LATENCY),
            dropped: counter_in(meter, catalogue::EVENTS_DROPPED),
            reconnects: counter_in(meter, catalogue::BROKER_RECONNECTS),
            connected: OnceLock::new(),
            tail: OnceLock::new(),
        }
    }

    /// Reports the broker connection `state` as `sse_connector.broker.connected` (1 or 0),
    /// read when metrics are collected.
    pub fn follow_connection(&self, state: watch::Receiver<bool>) {
        let i = catalogue::BROKER_CONNECTED;
        let gauge = self
            .meter
            .u64_observable_gauge(i.name)
            .with_unit(i.unit)
            .with_description(i.description)
            .with_callback(move |o| o.observe(u64::from(*state.borrow()), &[]))
            .build();
        let _ = self.connected.set(gauge);
    }

    /// Reports `tail`'s open tails and dropped messages, read when metrics are collected (so
    /// both are exported at 0 before any tail opens). The first registry followed is the one
    /// reported.
    pub fn follow_tail(&self, tail: &Tail) {
        if self.tail.get().is_some() {
            return;
        }
        let (r, d) = (catalogue::TAIL_READERS, catalogue::TAIL_DROPPED);
        let readers = tail.clone();
        let gauge = self
            .meter
            .u64_observable_gauge(r.name)
            .with_unit(r.unit)
            .with_description(r.description)
            .with_callback(move |o| o.observe(readers.readers() as u64, &[]))
            .build();
        let dropped = tail.clone();
        let counter = self
            .meter
            .u64_observable_counter(d.name)
            .with_unit(d.unit)
            .with_description(d.description)
            .with_callback(move |o| o.observe(dropped.dropped_total(), &[]))
            .build();
        let _ = self.tail.set((gauge, counter));
    }

    /// The broker connection came back after it was lost.
    pub fn reconnected(&self) {
        self.reconnects.add(1, &[]);
    }

    /// What the broker connection records for messages to `topic`.
    pub fn topic(self: &Arc<Self>, topic: &str) -> Arc<TopicMeter> {
        let destination = capped("destination", topic);
        let counts = {
            let mut table = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            table
                .entry(destination.as_str().to_string())
                .or_default()
                .clone()
        };
        Arc::new(TopicMeter {
            metrics: self.clone(),
            counts,
            attributes: send_attributes(destination),
        })
    }

    /// The attributes of one route: its topic's (none without a topic: such an event is never
    /// sent), and its device and asset (capped).
    fn route(self: &Arc<Self>, key: RouteKey) -> RouteLabels {
        RouteLabels {
            metrics: self.clone(),
            topic: (!key.2.is_empty()).then(|| self.topic(&key.2)),
            device: capped("device", &key.0),
            asset: capped("asset", &key.1),
            key,
        }
    }
}

/// The conventions' attributes of a send to `destination`.
fn send_attributes(destination: StringValue) -> [KeyValue; 4] {
    [
        KeyValue::new(attr::MESSAGING_SYSTEM, SYSTEM),
        KeyValue::new(attr::OPERATION_NAME, SEND),
        KeyValue::new(attr::OPERATION_TYPE, SEND),
        KeyValue::new(attr::DESTINATION, destination),
    ]
}

/// `messaging.client.sent.messages`, reading `table` when metrics are collected: per
/// destination, the acknowledged sends and the refused ones by `error.type`.
fn sent_counter(meter: &Meter, table: SentTable) -> ObservableCounter<u64> {
    let i = catalogue::SENT_MESSAGES;
    meter
        .u64_observable_counter(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_callback(move |o| {
            let table = table.lock().unwrap_or_else(|e| e.into_inner());
            for (destination, counts) in table.iter() {
                let base = send_attributes(StringValue::from(destination.clone()));
                o.observe(counts.ok.load(Ordering::Relaxed), &base);
                let types = REFUSALS.iter().map(|r| error_type(*r));
                for (n, t) in counts.refused.iter().zip(types.chain([OTHER_ERROR])) {
                    let n = n.load(Ordering::Relaxed);
                    if n > 0 {
                        let mut a = base.to_vec();
                        a.push(KeyValue::new(attr::ERROR_TYPE, t));
                        o.observe(n, &a);
                    }
                }
            }
        })
        .build()
}

/// What the broker connection records for the messages to one topic: made once per route and
/// shared by its messages, so recording costs no attribute building.
#[derive(Debug)]
pub struct TopicMeter {
    metrics: Arc<Metrics>,
    counts: Arc<SentCounts>,
    attributes: [KeyValue; 4],
}

impl TopicMeter {
    /// One PUBLISH's outcome: `round_trip` from PUBLISH to PUBACK (none for QoS 0), and the
    /// PUBACK's refusal if it was one.
    pub fn sent(&self, round_trip: Option<Duration>, refused: Option<PubAckReason>) {
        let m = &self.metrics;
        match refused {
            None => {
                self.counts.ok.fetch_add(1, Ordering::Relaxed);
                if let Some(d) = round_trip {
                    m.duration.record(d.as_secs_f64(), &self.attributes);
                }
            }
            Some(reason) => {
                let i = REFUSALS
                    .iter()
                    .position(|r| *r == reason)
                    .unwrap_or(REFUSALS.len());
                self.counts.refused[i].fetch_add(1, Ordering::Relaxed);
                if let Some(d) = round_trip {
                    let mut attributes = self.attributes.to_vec();
                    attributes.push(KeyValue::new(attr::ERROR_TYPE, error_type(reason)));
                    m.duration.record(d.as_secs_f64(), &attributes);
                }
            }
        }
    }
}

/// `error.type` of a refusing PUBACK: its MQTT 5 reason code in snake case (a fixed set).
pub fn error_type(reason: PubAckReason) -> &'static str {
    match reason {
        PubAckReason::UnspecifiedError => "unspecified_error",
        PubAckReason::ImplementationSpecificError => "implementation_specific_error",
        PubAckReason::NotAuthorized => "not_authorized",
        PubAckReason::TopicNameInvalid => "topic_name_invalid",
        PubAckReason::PacketIdentifierInUse => "packet_identifier_in_use",
        PubAckReason::QuotaExceeded => "quota_exceeded",
        PubAckReason::PayloadFormatInvalid => "payload_format_invalid",
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => OTHER_ERROR,
    }
}

/// A route's names: device, asset, topic.
type RouteKey = (Box<str>, Box<str>, Box<str>);

/// The attributes of one route, made once and kept by the stream's [`RouteCache`].
#[derive(Debug)]
pub struct RouteLabels {
    key: RouteKey,
    metrics: Arc<Metrics>,
    /// What the broker connection records for the route's messages (none without a topic).
    pub topic: Option<Arc<TopicMeter>>,
    device: StringValue,
    asset: StringValue,
}

impl RouteLabels {
    /// `sse.device` and `sse.asset` (clones of shared strings: no allocation).
    fn resource(&self) -> [KeyValue; 2] {
        [
            KeyValue::new(attr::DEVICE, self.device.clone()),
            KeyValue::new(attr::ASSET, self.asset.clone()),
        ]
    }

    /// An event of this route the broker acknowledged: its end-to-end latency from
    /// `received_unix_nanos` (0: unknown, nothing recorded), clamped at 0 for skewed clocks.
    pub fn delivered(&self, received_unix_nanos: i64) {
        if received_unix_nanos <= 0 {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let seconds = now.saturating_sub(received_unix_nanos).max(0) as f64 / 1e9;
        self.metrics.latency.record(seconds, &self.resource());
    }

    /// An event of this route acknowledged with an error, for `reason`.
    pub fn dropped(&self, reason: &'static str) {
        let [device, asset] = self.resource();
        let reason = KeyValue::new(attr::REASON, reason);
        self.metrics.dropped.add(1, &[device, asset, reason]);
    }

    fn is(&self, device: &str, asset: &str, topic: &str) -> bool {
        (&*self.key.0, &*self.key.1, &*self.key.2) == (device, asset, topic)
    }
}

/// One stream's routes' attributes, by a hash of their names: an event finds its route's
/// without allocating or taking a lock (the label cap's lock is taken once per new route).
#[derive(Debug)]
pub struct RouteCache {
    metrics: Arc<Metrics>,
    hasher: RandomState,
    routes: HashMap<u64, Arc<RouteLabels>>,
    /// The route of the stream's previous event: most events follow one of the same route, and
    /// comparing names is cheaper than hashing them.
    last: Option<Arc<RouteLabels>>,
}

impl RouteCache {
    /// An empty cache recording with `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            hasher: RandomState::new(),
            routes: HashMap::new(),
            last: None,
        }
    }

    /// The instruments this cache records with.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The attributes of the route `device`, `asset`, `topic`.
    pub fn get(&mut self, device: &str, asset: &str, topic: &str) -> Arc<RouteLabels> {
        if let Some(r) = &self.last
            && r.is(device, asset, topic)
        {
            return r.clone();
        }
        let found = self.find(device, asset, topic);
        self.last = Some(found.clone());
        found
    }

    /// The route's attributes from the map, made and kept when new.
    fn find(&mut self, device: &str, asset: &str, topic: &str) -> Arc<RouteLabels> {
        let hash = self.hasher.hash_one((device, asset, topic));
        if let Some(r) = self.routes.get(&hash)
            && r.is(device, asset, topic)
        {
            return r.clone();
        }
        let labels = Arc::new(
            self.metrics
                .route((device.into(), asset.into(), topic.into())),
        );
        if self.routes.len() >= ROUTES_CACHED_MAX {
            self.routes.clear();
        }
        // On a (vanishingly rare) hash collision the newer route takes the slot.
        self.routes.insert(hash, labels.clone());
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_a_snake_case_error_type() {
        for r in REFUSALS {
            let t = error_type(r);
            assert!(t.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{t}");
            assert_eq!(t.replace('_', ""), format!("{r:?}").to_lowercase());
        }
    }

    #[test]
    fn a_route_is_made_once_and_found_again() {
        let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
        let metrics = Arc::new(Metrics::new(&opentelemetry::metrics::MeterProvider::meter(
            &provider, "test",
        )));
        let mut cache = RouteCache::new(metrics);
        let a = cache.get("dev", "asset", "t/1");
        let b = cache.get("dev", "asset", "t/1");
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache.get("dev", "asset", "t/2");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(
            c.topic.as_ref().unwrap().attributes[3].value.as_str(),
            "t/2"
        );
        assert!(
            cache.get("dev", "asset", "").topic.is_none(),
            "no topic, no send"
        );
    }
}
