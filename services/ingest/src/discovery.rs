//! Discovered event types: every SSE `event:` type that arrives on a stream ingest reads but that
//! no dataset or event routes, counted per device endpoint with its first payload kept as a
//! sample, so a user can see what an endpoint sends that no asset configures yet
//! (`IngestService/ListDiscovered`, the status, the optional discovery topic).
//!
//! The reader records on its hot path: a known type costs one lock of its endpoint, one hash
//! lookup, a counter and a clock read, and no allocation. Only the first sighting of a type
//! allocates (its name and its bounded sample). Types per endpoint are capped
//! ([`MAX_TYPES_DEFAULT`], `--discovery-max-types`); past the cap they are counted together as
//! `other`, so a server sending endless types costs bounded memory. The schema of a sample is
//! inferred lazily, when asked for, off the reader's path ([`listing`]).

pub mod listing;
pub mod snippet;
pub mod topic;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use url::Url;

use crate::resources::Resources;
use crate::routing::StreamPlan;

/// Default of `--discovery-max-types`: distinct unrouted types kept per endpoint.
pub const MAX_TYPES_DEFAULT: usize = 64;
/// Largest `--discovery-max-types`: what one endpoint may ever cost is bounded whatever is set.
pub const MAX_TYPES_LIMIT: usize = 4096;
/// Default of `--discovery-sample-bytes`: bytes of the first payload of a type kept as its sample.
pub const SAMPLE_BYTES_DEFAULT: usize = 4096;
/// Largest `--discovery-sample-bytes` (inference of one sample stays cheap).
pub const SAMPLE_BYTES_LIMIT: usize = 65_536;
/// The name past-the-cap types are counted under.
pub const OTHER: &str = "other";

/// How much discovery keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Distinct types per endpoint; the rest count as [`OTHER`].
    pub max_types: usize,
    /// Bytes of a sample; a longer first payload is kept as truncated and not inferred.
    pub sample_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_types: MAX_TYPES_DEFAULT,
            sample_bytes: SAMPLE_BYTES_DEFAULT,
        }
    }
}

/// Counts and times of one type (or of [`OTHER`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Events of the type.
    pub count: u64,
    /// When the first arrived.
    pub first: SystemTime,
    /// When the latest arrived.
    pub last: SystemTime,
}

impl Seen {
    fn new(now: SystemTime) -> Self {
        Self {
            count: 1,
            first: now,
            last: now,
        }
    }

    fn bump(&mut self, now: SystemTime) {
        self.count += 1;
        self.last = now;
    }
}

/// One discovered type: its counts and its first payload.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// Counts and times.
    pub seen: Seen,
    /// The first payload, up to the sample limit, until its schema is inferred (then empty).
    pub sample: Arc<[u8]>,
    /// Whether the first payload was longer than the limit (then no schema is inferred).
    pub truncated: bool,
    /// The data source of the stream it was first seen on, relative to the endpoint's address
    /// (the event group's `dataSource` in the snippet).
    pub stream_source: Arc<str>,
    /// The inferred schema (JSON text), once asked for; `Some("")` when the sample is no JSON.
    pub schema: Option<Arc<str>>,
}

/// What one endpoint has discovered.
#[derive(Debug, Default)]
pub struct Types {
    /// Types by name.
    pub by_type: HashMap<Box<str>, Discovered>,
    /// Events of types past the cap.
    pub other: Option<Seen>,
}

/// The discovered types of one device endpoint, shared by its stream readers.
#[derive(Debug)]
pub struct EndpointTypes {
    /// Device name.
    pub device: String,
    /// Endpoint name.
    pub endpoint: String,
    limits: Limits,
    address: Mutex<Option<Url>>,
    types: Mutex<Types>,
    /// Bumped whenever the set of types changes (the discovery topic republishes then).
    generation: AtomicU64,
}

impl EndpointTypes {
    fn new(device: &str, endpoint: &str, limits: Limits) -> Self {
        Self {
            device: device.to_string(),
            endpoint: endpoint.to_string(),
            limits,
            address: Mutex::new(None),
            types: Mutex::new(Types::default()),
            generation: AtomicU64::new(0),
        }
    }

    /// The types, locked (a panic while holding it leaves plain counters: still usable).
    pub fn lock(&self) -> MutexGuard<'_, Types> {
        self.types.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one unrouted event of `event_type` read on the stream of `stream_source`; returns
    /// the endpoint's number of distinct types when a new one was recorded (the status shows
    /// it), `None` when only a counter moved.
    pub fn record(&self, event_type: &str, data: &[u8], stream_source: &Arc<str>) -> Option<u64> {
        let now = SystemTime::now();
        let mut t = self.lock();
        if let Some(d) = t.by_type.get_mut(event_type) {
            d.seen.bump(now);
            return None;
        }
        if t.by_type.len() >= self.limits.max_types {
            match &mut t.other {
                Some(o) => o.bump(now),
                None => {
                    t.other = Some(Seen::new(now));
                    self.changed();
                }
            }
            return None;
        }
        let truncated = data.len() > self.limits.sample_bytes;
        let sample = Arc::from(&data[..data.len().min(self.limits.sample_bytes)]);
        t.by_type.insert(
            event_type.into(),
            Discovered {
                seen: Seen::new(now),
                sample,
                truncated,
                stream_source: stream_source.clone(),
                schema: None,
            },
        );
        self.changed();
        Some(t.by_type.len() as u64)
    }

    /// How many times the set of types changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The data source, relative to the endpoint's address, that reads `url` (what an event
    /// group on it needs as `dataSource`); `""` when the address is unknown or `url` is it.
    pub fn source_of(&self, url: &Url) -> Arc<str> {
        let address = self.address.lock().unwrap_or_else(|e| e.into_inner());
        Arc::from(address.as_ref().map_or(String::new(), |a| relative(a, url)))
    }

    fn set_address(&self, address: &Url) {
        *self.address.lock().unwrap_or_else(|e| e.into_inner()) = Some(address.clone());
    }
}

/// The data source that [`crate::routing::join_url`] joins to `address` to make `url`.
pub fn relative(address: &Url, url: &Url) -> String {
    let base = address.path().trim_end_matches('/');
    let path = url.path().strip_prefix(base).unwrap_or(url.path());
    let mut s = if path == "/" || (path.is_empty() && url.path() == address.path()) {
        String::new()
    } else {
        path.to_string()
    };
    if url.query() != address.query()
        && let Some(q) = url.query()
    {
        if s.is_empty() {
            s.push('/');
        }
        s.push('?');
        s.push_str(q);
    }
    s
}

/// Every endpoint's discovered types.
#[derive(Debug, Default)]
pub struct Discovery {
    limits: Limits,
    endpoints: Mutex<BTreeMap<(String, String), Arc<EndpointTypes>>>,
}

impl Discovery {
    /// Discovery keeping what `limits` allows.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            endpoints: Mutex::default(),
        }
    }

    fn endpoints(&self) -> MutexGuard<'_, BTreeMap<(String, String), Arc<EndpointTypes>>> {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `device`'s `endpoint`, made on first use (a reader holds it).
    pub fn endpoint(&self, device: &str, endpoint: &str) -> Arc<EndpointTypes> {
        let mut eps = self.endpoints();
        eps.entry((device.to_string(), endpoint.to_string()))
            .or_insert_with(|| Arc::new(EndpointTypes::new(device, endpoint, self.limits)))
            .clone()
    }

    /// Every endpoint record, in device and endpoint order (optionally of one device only).
    pub fn all(&self, device: Option<&str>) -> Vec<Arc<EndpointTypes>> {
        self.endpoints()
            .values()
            .filter(|e| device.is_none_or(|d| e.device == d))
            .cloned()
            .collect()
    }

    /// Distinct types discovered per (device, endpoint).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        self.endpoints()
            .iter()
            .map(|(k, ep)| (k.clone(), ep.lock().by_type.len() as u64))
            .collect()
    }

    /// Follows new plans: forgets endpoints no plan reads and, on the others, every type no
    /// stream of theirs leaves unrouted any more (an asset now routes it); keeps each
    /// endpoint's address (from `resources`) for the snippets.
    pub fn retain(&self, plans: &[StreamPlan], resources: &Resources) {
        let addresses: BTreeMap<(String, String), Url> = plans
            .iter()
            .filter_map(|p| {
                let ep = resources
                    .devices
                    .get(&p.device)?
                    .endpoints
                    .get(&p.endpoint)?;
                Some(((p.device.clone(), p.endpoint.clone()), ep.address.clone()))
            })
            .collect();
        let mut by_endpoint: BTreeMap<(&str, &str), Vec<&StreamPlan>> = BTreeMap::new();
        for p in plans {
            by_endpoint
                .entry((p.device.as_str(), p.endpoint.as_str()))
                .or_default()
                .push(p);
        }
        let mut eps = self.endpoints();
        eps.retain(|(d, e), _| by_endpoint.contains_key(&(d.as_str(), e.as_str())));
        for ((d, e), ep) in eps.iter() {
            if let Some(a) = addresses.get(&(d.clone(), e.clone())) {
                ep.set_address(a);
            }
            let Some(plans) = by_endpoint.get(&(d.as_str(), e.as_str())) else {
                continue;
            };
            let mut t = ep.lock();
            let before = (t.by_type.len(), t.other.is_some());
            t.by_type
                .retain(|ty, _| plans.iter().any(|p| p.dispatch(ty).routes.is_empty()));
            if plans.iter().all(|p| !p.datasets.is_empty()) {
                t.other = None;
            }
            if before != (t.by_type.len(), t.other.is_some()) {
                ep.changed();
            }
        }
        // Endpoints not read before get their address when their first reader asks for it.
        for ((d, e), a) in &addresses {
            if by_endpoint.contains_key(&(d.as_str(), e.as_str())) {
                eps.entry((d.clone(), e.clone()))
                    .or_insert_with(|| Arc::new(EndpointTypes::new(d, e, self.limits)))
                    .set_address(a);
            }
        }
    }
}
