//! The live status, kept current by the readers and the forwarder: per-stream counters and
//! state, per-route (dataset / event) schema reference and delivery error, and the resources it
//! was reconciled with; every change the report can show (not a counter) marks the resources
//! it shows in ([`Dirty`]), so the reporter rebuilds only those: with 10,000 streams, building
//! every report each second was half of an idle ingest's CPU.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use foldhash::HashMap;
use serde::Serialize;
use sse_proto::v1 as pb;

use super::bytes::BytesRead;
use super::dirty::{Consumer, Dirty, Marks};
use crate::discovery::Discovery;
use crate::resources::{ResourceError, Resources};
use crate::routing::{Route, RouteKind, StreamPlan};

/// Where a stream's reader is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum StreamState {
    /// Not started yet.
    #[default]
    Idle,
    /// Connecting (or waiting to).
    Connecting,
    /// The response is open and being read.
    Connected,
    /// The connection ended or failed; a reconnect is scheduled.
    Disconnected,
    /// The stream's configuration cannot work (an unusable proxy, an unsupported URL scheme):
    /// no reconnection until the resource changes. A server's 204 or wrong content type is
    /// retried instead (`Disconnected`, with the long backoff).
    Stopped,
}

impl StreamState {
    /// The name used in status reason codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connecting => "Connecting",
            Self::Connected => "Connected",
            Self::Disconnected => "Disconnected",
            Self::Stopped => "Stopped",
        }
    }
}

/// State of one SSE stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStatus {
    /// Stream key.
    pub key: String,
    /// URL read, without user info and query values (they may be secrets).
    pub url: String,
    /// Device the stream belongs to.
    pub device: String,
    /// Inbound endpoint of the device.
    pub endpoint: String,
    /// Where the reader is.
    pub state: StreamState,
    /// When `state` last changed.
    pub since: SystemTime,
    /// Events dispatched by the SSE parser.
    pub received: u64,
    /// Routed events handed to the schema service.
    pub forwarded: u64,
    /// Event-group non-matches (one per group per SSE event of a type no event of it takes).
    pub unmatched: u64,
    /// Routed events acknowledged as delivered.
    pub acknowledged: u64,
    /// Routed events whose acknowledgement reported a permanent failure.
    pub failed: u64,
    /// The stream's last event ID.
    pub last_event_id: String,
    /// Last problem, empty when none.
    pub last_error: String,
    /// Connection attempts.
    pub connects: u64,
    /// Subjects fed by the stream.
    pub routes: Vec<String>,
    /// Assets fed by the stream (whose reports its state shows in).
    pub assets: Vec<String>,
    /// SSE events dropped, by reason (`sse_contract::drops`).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Parts of SSE events ignored without dropping the event (an over-long `id:`), by reason.
    pub notices: BTreeMap<&'static str, u64>,
    /// Distinct unrouted event types discovered on the stream's endpoint, as of the stream's
    /// latest new one (`ListDiscovered` lists them).
    pub discovered_types: u64,
    /// Connections that ended and are retried, by why they ended (`sse::ended`).
    pub reconnects: BTreeMap<&'static str, u64>,
    /// Body bytes read over every connection (the reader adds to it as it reads).
    pub bytes_read: BytesRead,
}

impl Default for StreamStatus {
    fn default() -> Self {
        Self {
            key: String::new(),
            url: String::new(),
            device: String::new(),
            endpoint: String::new(),
            state: StreamState::Idle,
            since: SystemTime::UNIX_EPOCH,
            received: 0,
            forwarded: 0,
            unmatched: 0,
            acknowledged: 0,
            failed: 0,
            last_event_id: String::new(),
            last_error: String::new(),
            connects: 0,
            routes: Vec::new(),
            assets: Vec::new(),
            dropped: BTreeMap::new(),
            notices: BTreeMap::new(),
            discovered_types: 0,
            reconnects: BTreeMap::new(),
            bytes_read: BytesRead::default(),
        }
    }
}

impl StreamStatus {
    /// Moves to `state` (recording when, if it changed).
    pub fn set_state(&mut self, state: StreamState) {
        if self.state != state {
            self.state = state;
            self.since = SystemTime::now();
        }
    }

    /// Counts one SSE event dropped for `reason`.
    pub fn drop_event(&mut self, reason: &'static str) {
        *self.dropped.entry(reason).or_default() += 1;
    }

    /// Counts one notice (part of an event ignored) for `reason`.
    pub fn notice(&mut self, reason: &'static str) {
        *self.notices.entry(reason).or_default() += 1;
    }

    /// Whether the HTTP response is open and being read.
    pub fn connected(&self) -> bool {
        self.state == StreamState::Connected
    }

    fn from_plan(p: &StreamPlan) -> Self {
        Self {
            key: p.key.clone(),
            url: crate::stream_key::shown_url(&p.url),
            device: p.device.clone(),
            endpoint: p.endpoint.clone(),
            routes: p.subjects(),
            assets: p.assets(),
            since: SystemTime::now(),
            ..Default::default()
        }
    }
}

/// The registered schema a dataset's or event's messages follow (ADR `messageSchemaReference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaReference {
    /// Schema name (SHA-256 of its canonical JSON).
    pub schema_name: String,
    /// Registry namespace.
    pub schema_registry_namespace: String,
    /// Schema version.
    pub schema_version: String,
}

impl SchemaReference {
    /// Parses a `dataschema` value `aio-sr://<namespace>/<name>:<version>`.
    pub fn from_dataschema(s: &str) -> Option<Self> {
        let d = sse_contract::dataschema::DataSchema::parse(s)?;
        Some(Self {
            schema_name: d.name,
            schema_registry_namespace: d.namespace,
            schema_version: d.version,
        })
    }
}

/// What is known of one dataset or event beyond its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteStatus {
    /// The device whose stream feeds it (set when its first event is counted).
    pub device: String,
    /// Its events handed to the schema service.
    pub forwarded: u64,
    /// Its events acknowledged as delivered.
    pub acknowledged: u64,
    /// Its events whose acknowledgement reported a permanent failure.
    pub failed: u64,
    /// The schema its latest message follows.
    pub schema: Option<SchemaReference>,
    /// The last delivery or schema problem, empty when none.
    pub last_error: String,
    /// Code of `last_error` (`DeliveryFailed`, `NoSchema`).
    pub error_code: &'static str,
    /// The stream and `seq` of the latest event whose ack was applied: a late ack of an
    /// earlier event of that stream is told apart from a newer one by it.
    latest: (String, u64),
}

impl RouteStatus {
    /// Notes `ack` as applied, unless it is of an earlier event of the stream whose later
    /// events' acks are already applied and carries an older schema version than they showed:
    /// then it says nothing new, and this returns true. (A lower version alone does not tell: a
    /// registry started afresh numbers from 1 again; and each version of a subject may have its
    /// own schema name.)
    fn is_late(&mut self, ack: &pb::Ack) -> bool {
        if self.latest.0 != ack.stream_key {
            self.latest.0.clear();
            self.latest.0.push_str(&ack.stream_key);
            self.latest.1 = ack.seq;
            return false;
        }
        if ack.seq >= self.latest.1 {
            self.latest.1 = ack.seq;
            return false;
        }
        matches!((&ack.schema, &self.schema), (Some(s), Some(c)) if older(&s.version, &c.schema_version))
    }

    /// Notes the device whose stream feeds it (its metrics label), once.
    fn fed_by(&mut self, device: &str) {
        if self.device.is_empty() {
            self.device.push_str(device);
        }
    }
}

/// Writes the dataset / event subject of a route into `out`; false for a status report's
/// route, which has none.
pub(super) fn subject_of(route: &Route, out: &mut String) -> bool {
    if route.kind == RouteKind::Status {
        out.clear();
        return false;
    }
    route.write_subject(out);
    true
}

/// Why an event went without a schema, in words, for status.
fn no_schema_message(reason: pb::NoSchemaReason) -> Option<&'static str> {
    use pb::NoSchemaReason as R;
    match reason {
        R::Unspecified | R::NoRoute => None,
        R::NotJson => Some("payload is not JSON: forwarded without a schema"),
        R::TooLarge => Some("payload over the schema size limit: forwarded without a schema"),
        R::TooDeep => {
            Some("payload nests deeper than the schema depth limit: forwarded without a schema")
        }
        R::TooManyProperties => {
            Some("payload has more properties than the schema limit: forwarded without a schema")
        }
        R::RegistryError => Some("schema registry unavailable: forwarded without a schema"),
        // The schema service says which cap (schema_frozen_message below).
        R::SchemaFrozen => None,
    }
}

/// Which cap of the schema service stopped the schema of a dataset or event from evolving, in
/// words, for status.
fn schema_frozen_message(reason: pb::SchemaFrozenReason) -> Option<&'static str> {
    use pb::SchemaFrozenReason as R;
    let m = match reason {
        R::Unspecified => return None,
        R::MaxSchemaProperties => {
            "schema stopped evolving: the merged schema reached the schema service's --max-schema-properties"
        }
        R::MaxVersions => {
            "schema stopped evolving: the subject reached the schema service's --max-versions"
        }
        R::MaxRegistryBytes => {
            "schema stopped evolving: the schema registry reached its --max-registry-bytes"
        }
    };
    Some(m)
}

/// Everything the status holds, behind one lock.
#[derive(Debug, Default)]
pub(super) struct Inner {
    /// Hashed, not ordered: looked up three times per event (a B-tree compared long keys that
    /// share their prefix); listings sort.
    pub(super) streams: HashMap<String, StreamStatus>,
    /// The resources whose reports changed since each consumer last took them.
    dirty: Marks,
    pub(super) routes: HashMap<String, RouteStatus>,
    /// The subject of the ack being applied: a buffer kept, since `format!` once per ack was
    /// about 3 % of ingest's CPU at full speed.
    subject: String,
    /// Every problem of the resources (`ListStreams`); the status report shows each on the
    /// resource, endpoint, dataset or event it concerns.
    resource_errors: Vec<ResourceError>,
    pub(super) resources: Resources,
    pub(super) loaded_at: Option<SystemTime>,
    /// One of several replicas: report only what this one reads.
    pub(super) partial: bool,
    /// Of several replicas, the one reporting resources no replica reads (config errors).
    pub(super) reports_unread: bool,
}

/// Shared status of every stream, updated by the readers and the forwarder.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<Inner>,
    /// The unrouted event types of every endpoint (readers record into it; reconciling drops
    /// what the new resources route).
    discovery: Arc<Discovery>,
}

/// What of a stream's status its report shows (no allocation while there is no error): drops
/// and notices are rare, so their totals count as a change of the report.
fn reported(s: &StreamStatus) -> (StreamState, SystemTime, String, u64) {
    // A newly discovered type changes the endpoint's report too.
    let counted = s.dropped.values().chain(s.notices.values()).sum::<u64>() + s.discovered_types;
    (s.state, s.since, s.last_error.clone(), counted)
}

/// Which streams a reconciliation added, changed, removed or left alone.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// New stream keys.
    pub added: Vec<String>,
    /// Stream keys no longer planned.
    pub removed: Vec<String>,
}

impl Status {
    /// Status for the planned streams (all idle) and the resources that cannot be served.
    pub fn new(plans: &[StreamPlan], resource_errors: Vec<ResourceError>) -> Self {
        let s = Self::default();
        s.reconcile(
            plans,
            &Resources {
                errors: resource_errors,
                ..Default::default()
            },
        );
        s
    }

    /// Status whose discovered types are kept in `discovery` (its limits from the flags).
    pub fn with_discovery(mut self, discovery: Arc<Discovery>) -> Self {
        self.discovery = discovery;
        self
    }

    /// The discovered event types of every endpoint.
    pub fn discovery(&self) -> &Arc<Discovery> {
        &self.discovery
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the status follow a new set of plans and resources: new streams start idle, removed
    /// ones disappear, kept ones keep their counters (their URL and routes follow the plan).
    pub fn reconcile(&self, plans: &[StreamPlan], resources: &Resources) -> Changes {
        // Copies made before taking the lock, which every reader and API call also takes.
        let subjects: std::collections::BTreeSet<String> =
            plans.iter().flat_map(|p| p.subjects()).collect();
        let (errors, resources) = (resources.problems(), resources.clone());
        // Types the new resources route are no longer discovered; each stream shows what is left.
        self.discovery.retain(plans, &resources);
        let discovered = self.discovery.counts();
        let mut inner = self.lock();
        let mut changes = Changes::default();
        let mut next = HashMap::default();
        for p in plans {
            let s = match inner.streams.remove(&p.key) {
                Some(mut s) => {
                    s.routes = p.subjects();
                    s.assets = p.assets();
                    s
                }
                None => {
                    changes.added.push(p.key.clone());
                    StreamStatus::from_plan(p)
                }
            };
            let mut s = s;
            s.discovered_types = discovered
                .get(&(p.device.clone(), p.endpoint.clone()))
                .copied()
                .unwrap_or(0);
            next.insert(p.key.clone(), s);
        }
        changes.removed = inner.streams.keys().cloned().collect();
        changes.removed.sort_unstable();
        inner.streams = next;
        inner.routes.retain(|k, _| subjects.contains(k));
        inner.resource_errors = errors;
        let old = std::mem::replace(&mut inner.resources, resources);
        inner.loaded_at = Some(SystemTime::now());
        inner.dirty.mark_all();
        drop(inner);
        drop(old); // freed outside the lock too
        changes
    }

    /// Makes this the status of one replica of several: reports cover only the datasets, events
    /// and endpoints it reads, and resources no replica reads (those with a config error) only
    /// when `reports_unread`.
    pub fn set_partial(&self, reports_unread: bool) {
        let mut inner = self.lock();
        inner.partial = true;
        inner.reports_unread = reports_unread;
        inner.dirty.mark_all();
    }

    /// Counts one SSE event of stream `key` as read (the reader's update per event): `unmatched`
    /// routed nowhere, `new_type` the endpoint's count of discovered types when this event's
    /// type is new, `last_event_id` the stream's id after it. Of these only a new type changes
    /// what is reported, so no report is compared before and after (`update` copies the last
    /// error twice to do so).
    pub fn count_received(
        &self,
        key: &str,
        unmatched: u64,
        new_type: Option<u64>,
        last_event_id: &str,
    ) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(s) = inner.streams.get_mut(key) else {
            return;
        };
        s.received += 1;
        s.unmatched += unmatched;
        s.last_event_id.clear();
        s.last_event_id.push_str(last_event_id);
        if let Some(n) = new_type.filter(|n| *n != s.discovered_types) {
            s.discovered_types = n;
            inner
                .dirty
                .mark(&s.device, s.assets.iter().map(String::as_str));
        }
    }

    /// Applies `f` to the status of stream `key` (unknown keys are ignored).
    pub fn update(&self, key: &str, f: impl FnOnce(&mut StreamStatus)) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(s) = inner.streams.get_mut(key) else {
            return;
        };
        let before = reported(s);
        f(s);
        if reported(s) != before {
            inner
                .dirty
                .mark(&s.device, s.assets.iter().map(String::as_str));
        }
    }

    /// Takes what changed since the reporter's last call: the resources whose reports to
    /// rebuild.
    pub fn take_dirty(&self) -> Dirty {
        self.take_dirty_for(Consumer::Reporter)
    }

    /// Takes what changed since `consumer`'s last call; the other consumer's marks stay.
    pub fn take_dirty_for(&self, consumer: Consumer) -> Dirty {
        self.lock().dirty.take(consumer)
    }

    /// Applies `f` to the status of the dataset / event `subject`.
    pub fn update_route(&self, subject: &str, f: impl FnOnce(&mut RouteStatus)) {
        let mut inner = self.lock();
        f(inner.routes.entry(subject.to_string()).or_default());
        inner.dirty.mark_all();
    }

    /// Applies one acknowledgement of an event on `route`: stream counters, and the dataset's /
    /// event's schema reference or the reason it has none, or its delivery failure.
    pub fn apply_ack(&self, route: &Route, ack: &pb::Ack) {
        let mut guard = self.lock();
        if Self::ack_into(&mut guard, route, ack) {
            guard.dirty.mark(&route.device, [route.asset.as_str()]);
        }
    }

    /// Applies one acknowledgement to `inner`; whether the report changed.
    fn ack_into(inner: &mut Inner, route: &Route, ack: &pb::Ack) -> bool {
        if let Some(s) = inner.streams.get_mut(&ack.stream_key) {
            if ack.error.is_empty() {
                s.acknowledged += 1;
            } else {
                s.failed += 1;
                s.last_error = format!("delivery failed: {}", ack.error);
            }
        }
        if !subject_of(route, &mut inner.subject) {
            return !ack.error.is_empty();
        }
        // One lookup for the usual case, a known route (a helper returning the entry could
        // not: the borrow checker refuses a conditionally returned borrow).
        let r = match inner.routes.get_mut(inner.subject.as_str()) {
            Some(r) => r,
            None => inner.routes.entry(inner.subject.clone()).or_default(),
        };
        r.fed_by(&route.device);
        if ack.error.is_empty() {
            r.acknowledged += 1;
        } else {
            r.failed += 1;
        }
        if !ack.error.is_empty() {
            r.last_error = format!("delivery failed: {}", ack.error);
            r.error_code = "DeliveryFailed";
            return true;
        }
        let mut changed = false;
        // Acks of one stream can arrive after later ones (a re-send, a batch held back, a
        // publisher's acks in the order the broker answered).
        if r.is_late(ack) {
            return false;
        }
        if let Some(s) = &ack.schema {
            let same = r.schema.as_ref().is_some_and(|c| {
                c.schema_name == s.name
                    && c.schema_registry_namespace == s.namespace
                    && c.schema_version == s.version
            });
            if !same {
                r.schema = Some(SchemaReference {
                    schema_name: s.name.clone(),
                    schema_registry_namespace: s.namespace.clone(),
                    schema_version: s.version.clone(),
                });
                changed = true;
            }
        }
        let problem = match schema_frozen_message(ack.schema_frozen_reason()) {
            Some(m) => Some((m, "SchemaFrozen")),
            None => no_schema_message(ack.no_schema_reason()).map(|m| (m, "NoSchema")),
        };
        match problem {
            Some((m, code)) => {
                if r.last_error != m || r.error_code != code {
                    r.last_error = m.to_string();
                    r.error_code = code;
                    changed = true;
                }
            }
            // An ack that says nothing of the schema (one the schema service could not
            // annotate, e.g. a duplicate of a re-sent event) leaves the status as it is.
            None if ack.schema.is_none() => {}
            // The subject stays frozen until a newer version shows the cap was raised.
            None if r.error_code == "SchemaFrozen" && !changed => {}
            // A delivered event with a schema clears an earlier problem.
            None => {
                changed |= !r.last_error.is_empty() || !r.error_code.is_empty();
                r.last_error.clear();
                r.error_code = "";
            }
        }
        changed
    }

    /// Counts routed events handed to the schema service: `streams` per stream key, `routes`
    /// per route, under one lock for a whole batch.
    pub fn count_forwarded<'a>(
        &self,
        streams: impl IntoIterator<Item = (&'a str, u64)>,
        routes: impl IntoIterator<Item = (&'a Route, u64)>,
    ) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (key, n) in streams {
            if let Some(s) = inner.streams.get_mut(key) {
                s.forwarded += n;
            }
        }
        for (route, n) in routes {
            if !subject_of(route, &mut inner.subject) {
                continue;
            }
            let r = match inner.routes.get_mut(inner.subject.as_str()) {
                Some(r) => r,
                None => inner.routes.entry(inner.subject.clone()).or_default(),
            };
            r.fed_by(&route.device);
            r.forwarded += n;
        }
    }

    /// The counter of body bytes the reader of stream `key` adds to (a detached one for an
    /// unknown key).
    pub fn bytes_read(&self, key: &str) -> Arc<AtomicU64> {
        self.lock()
            .streams
            .get(key)
            .map(|s| s.bytes_read.shared())
            .unwrap_or_default()
    }

    /// Calls `f` with every stream, under the lock (for the metrics: no copies).
    pub fn for_each_stream(&self, mut f: impl FnMut(&StreamStatus)) {
        self.lock().streams.values().for_each(&mut f);
    }

    /// Calls `f` with every dataset's and event's subject and status, under the lock.
    pub fn for_each_route(&self, mut f: impl FnMut(&str, &RouteStatus)) {
        for (k, r) in &self.lock().routes {
            f(k, r);
        }
    }

    /// One stream's status.
    pub fn get(&self, key: &str) -> Option<StreamStatus> {
        self.lock().streams.get(key).cloned()
    }

    /// Every stream, sorted by key.
    pub fn streams(&self) -> Vec<StreamStatus> {
        let mut all: Vec<StreamStatus> = self.lock().streams.values().cloned().collect();
        all.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// Resources, endpoints, datasets and events that cannot be served.
    pub fn resource_errors(&self) -> Vec<ResourceError> {
        self.lock().resource_errors.clone()
    }
}

/// Whether schema version `a` is older than `b` (both decimal, as registries number them).
fn older(a: &str, b: &str) -> bool {
    matches!((a.parse::<u64>(), b.parse::<u64>()), (Ok(a), Ok(b)) if a < b)
}
