//! The label values of each stream and each dataset / event, capped once (`capped` takes a
//! process-wide lock) and kept while the stream or route exists, so a collection over 10,000
//! streams looks values up instead of re-capping and copying names.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use opentelemetry::StringValue;
use sse_contract::metrics::OTHER;
use sse_runtime::metrics::capped;

use crate::status::StreamStatus;

/// Which capped label a device name is (`sse.label` of the fold counter).
const DEVICE: &str = "device";
/// Which capped label an asset name is.
const ASSET: &str = "asset";

/// The labels of one stream.
#[derive(Debug, Clone)]
pub(super) struct StreamLabels {
    /// `sse.device` (capped).
    pub device: StringValue,
    /// `sse.endpoint`.
    pub endpoint: StringValue,
}

/// The labels of one dataset or event.
#[derive(Debug, Clone)]
pub(super) struct RouteLabels {
    /// `sse.device` (capped).
    pub device: StringValue,
    /// `sse.asset` (capped).
    pub asset: StringValue,
    /// `sse.route`: the dataset, or `<event group>/<event>` (`other` with its asset).
    pub route: StringValue,
}

/// Entries kept while seen: each pass marks what it sees and drops the rest.
#[derive(Debug)]
struct Kept<V> {
    entries: HashMap<String, (V, u64)>,
    pass: u64,
}

impl<V> Default for Kept<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            pass: 0,
        }
    }
}

impl<V: Clone> Kept<V> {
    /// The value of `key` (made by `make` the first time), marked as seen by this pass.
    fn get(&mut self, key: &str, make: impl FnOnce() -> V) -> V {
        let pass = self.pass;
        if let Some((v, seen)) = self.entries.get_mut(key) {
            *seen = pass;
            return v.clone(); // a few reference counts
        }
        let v = make();
        self.entries.insert(key.to_string(), (v.clone(), pass));
        v
    }

    /// Ends a pass: forgets what it did not see.
    fn end_pass(&mut self) {
        let pass = self.pass;
        self.entries.retain(|_, (_, seen)| *seen == pass);
        self.pass += 1;
    }
}

/// The label values of every stream and route seen by the last collection.
#[derive(Debug, Default)]
pub(super) struct Cache {
    streams: Mutex<Kept<StreamLabels>>,
    routes: Mutex<Kept<RouteLabels>>,
}

/// One pass over the streams: label lookups, then forgetting the streams it did not see.
pub(super) struct StreamPass<'a>(MutexGuard<'a, Kept<StreamLabels>>);

impl StreamPass<'_> {
    /// The labels of stream `s`.
    pub fn labels(&mut self, s: &StreamStatus) -> StreamLabels {
        self.0.get(&s.key, || StreamLabels {
            device: capped(DEVICE, &s.device),
            endpoint: StringValue::from(s.endpoint.clone()),
        })
    }
}

impl Drop for StreamPass<'_> {
    fn drop(&mut self) {
        self.0.end_pass();
    }
}

/// One pass over the datasets and events.
pub(super) struct RoutePass<'a>(MutexGuard<'a, Kept<RouteLabels>>);

impl RoutePass<'_> {
    /// The labels of the dataset / event `subject` (`<asset>/<dataset>` or
    /// `<asset>/<group>/<event>`) fed by `device`.
    pub fn labels(&mut self, subject: &str, device: &str) -> RouteLabels {
        self.0.get(subject, || {
            let (asset, route) = subject.split_once('/').unwrap_or((subject, ""));
            let asset = capped(ASSET, asset);
            let route = if asset.as_str() == OTHER {
                StringValue::from(OTHER)
            } else {
                StringValue::from(sse_runtime::metrics::label_value(route).into_owned())
            };
            RouteLabels {
                device: capped(DEVICE, device),
                asset,
                route,
            }
        })
    }
}

impl Drop for RoutePass<'_> {
    fn drop(&mut self) {
        self.0.end_pass();
    }
}

impl Cache {
    /// Starts a pass over the streams.
    pub fn streams(&self) -> StreamPass<'_> {
        StreamPass(self.streams.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts a pass over the datasets and events.
    pub fn routes(&self) -> RoutePass<'_> {
        RoutePass(self.routes.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
