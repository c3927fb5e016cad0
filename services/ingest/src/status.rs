//! What ingest is doing, kept current by the readers and the forwarder: per-stream counters and
//! state, per-route (dataset / event) schema reference and delivery error, the resources that
//! cannot be served, and from all of it the Azure Device Registry shaped status of every device
//! and asset (config error with code and message, runtime health Available / Unavailable).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;
use sse_proto::v1 as pb;

use crate::resources::{Rejected, ResourceError, Resources};

/// The error code of a resource, dataset or event that cannot be served as written.
pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";
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
    /// The server told us to stop (204, wrong content type): no reconnection until the resource
    /// changes.
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
    /// SSE events dropped, by reason (`sse_contract::drops`).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Parts of SSE events ignored without dropping the event (an over-long `id:`), by reason.
    pub notices: BTreeMap<&'static str, u64>,
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
            dropped: BTreeMap::new(),
            notices: BTreeMap::new(),
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
    /// The schema its latest message follows.
    pub schema: Option<SchemaReference>,
    /// The last delivery or schema problem, empty when none.
    pub last_error: String,
    /// Code of `last_error` (`DeliveryFailed`, `NoSchema`).
    pub error_code: &'static str,
}

/// Writes the dataset / event subject of a route into `out`; false for a status report's
/// route, which has none.
fn subject_of(route: &Route, out: &mut String) -> bool {
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

#[derive(Debug, Default)]
struct Inner {
    streams: BTreeMap<String, StreamStatus>,
    routes: BTreeMap<String, RouteStatus>,
    /// The subject of the ack being applied: a buffer kept, since `format!` once per ack was
    /// about 3 % of ingest's CPU at full speed.
    subject: String,
    /// Every problem of the resources (`ListStreams`); the status report shows each on the
    /// resource, endpoint, dataset or event it concerns.
    resource_errors: Vec<ResourceError>,
    resources: Resources,
    loaded_at: Option<SystemTime>,
    /// One of several replicas: report only what this one reads.
    partial: bool,
    /// Of several replicas, the one reporting resources no replica reads (config errors).
    reports_unread: bool,
}

/// Shared status of every stream, updated by the readers and the forwarder.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<Inner>,
    /// Bumped by every change the report can show (not by counters), so the status reporter
    /// builds reports only when something changed: with 10,000 streams, building one every
    /// second was half of an idle ingest's CPU.
    revision: AtomicU64,
}

/// What of a stream's status its report shows (no allocation while there is no error): drops
/// and notices are rare, so their totals count as a change of the report.
fn reported(s: &StreamStatus) -> (StreamState, SystemTime, String, u64) {
    let counted = s.dropped.values().chain(s.notices.values()).sum();
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

    /// Changes so far to what the report shows; equal revisions give equal reports (unless
    /// time-based parts moved, which the periodic full report covers).
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.revision.fetch_add(1, Ordering::AcqRel);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
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
        let mut inner = self.lock();
        let mut changes = Changes::default();
        let mut next = BTreeMap::new();
        for p in plans {
            let s = match inner.streams.remove(&p.key) {
                Some(mut s) => {
                    s.routes = p.subjects();
                    s
                }
                None => {
                    changes.added.push(p.key.clone());
                    StreamStatus::from_plan(p)
                }
            };
            next.insert(p.key.clone(), s);
        }
        changes.removed = inner.streams.keys().cloned().collect();
        inner.streams = next;
        inner.routes.retain(|k, _| subjects.contains(k));
        inner.resource_errors = errors;
        let old = std::mem::replace(&mut inner.resources, resources);
        inner.loaded_at = Some(SystemTime::now());
        drop(inner);
        drop(old); // freed outside the lock too
        self.changed();
        changes
    }

    /// Makes this the status of one replica of several: reports cover only the datasets, events
    /// and endpoints it reads, and resources no replica reads (those with a config error) only
    /// when `reports_unread`.
    pub fn set_partial(&self, reports_unread: bool) {
        let mut inner = self.lock();
        inner.partial = true;
        inner.reports_unread = reports_unread;
        self.changed();
    }

    /// Applies `f` to the status of stream `key` (unknown keys are ignored).
    pub fn update(&self, key: &str, f: impl FnOnce(&mut StreamStatus)) {
        let mut inner = self.lock();
        let Some(s) = inner.streams.get_mut(key) else {
            return;
        };
        let before = reported(s);
        f(s);
        if reported(s) != before {
            self.changed();
        }
    }

    /// Applies `f` to the status of the dataset / event `subject`.
    pub fn update_route(&self, subject: &str, f: impl FnOnce(&mut RouteStatus)) {
        f(self.lock().routes.entry(subject.to_string()).or_default());
        self.changed();
    }

    /// Applies one acknowledgement of an event on `route`: stream counters, and the dataset's /
    /// event's schema reference or the reason it has none, or its delivery failure.
    pub fn apply_ack(&self, route: &Route, ack: &pb::Ack) {
        if self.apply_ack_locked(route, ack) {
            self.changed();
        }
    }

    /// [`Status::apply_ack`]; whether the report changed.
    fn apply_ack_locked(&self, route: &Route, ack: &pb::Ack) -> bool {
        let mut guard = self.lock();
        let inner = &mut *guard;
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
        let r = match inner.routes.get_mut(inner.subject.as_str()) {
            Some(r) => r,
            None => inner.routes.entry(inner.subject.clone()).or_default(),
        };
        if !ack.error.is_empty() {
            r.last_error = format!("delivery failed: {}", ack.error);
            r.error_code = "DeliveryFailed";
            return true;
        }
        let mut changed = false;
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
            // A delivered event with a schema clears an earlier problem.
            None => {
                changed |= !r.last_error.is_empty() || !r.error_code.is_empty();
                r.last_error.clear();
                r.error_code = "";
            }
        }
        changed
    }

    /// One stream's status.
    pub fn get(&self, key: &str) -> Option<StreamStatus> {
        self.lock().streams.get(key).cloned()
    }

    /// Every stream, sorted by key.
    pub fn streams(&self) -> Vec<StreamStatus> {
        self.lock().streams.values().cloned().collect()
    }

    /// Resources, endpoints, datasets and events that cannot be served.
    pub fn resource_errors(&self) -> Vec<ResourceError> {
        self.lock().resource_errors.clone()
    }

    /// The Azure Device Registry shaped status of every device and asset.
    pub fn report(&self) -> Report {
        let inner = self.lock();
        build_report(&inner)
    }
}

// ---- the Azure Device Registry status shape ----

/// An error in ADR status: a code and a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusError {
    /// Machine-readable code.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// ADR `status.config`: whether the resource as written can be served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// When the resources were (re)loaded, RFC 3339.
    pub last_transition_time: String,
    /// Why the resource cannot be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
}

/// ADR runtime health (ADR 0028): Available or Unavailable with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeHealth {
    /// `Available` or `Unavailable`.
    pub status: String,
    /// When the health last changed, RFC 3339.
    pub last_update_time: String,
    /// Why, for Unavailable.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The reader state (`Connected`, `Connecting`, `Disconnected`, `Stopped`, `Idle`).
    pub reason_code: String,
}

impl RuntimeHealth {
    /// Whether the status is Available.
    pub fn available(&self) -> bool {
        self.status == "Available"
    }
}

/// ADR status of one inbound endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// Configuration error of the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
    /// Health of the streams read from the endpoint (absent when none is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_health: Option<RuntimeHealth>,
    /// SSE events of the endpoint's streams dropped, by reason (absent when none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub events_dropped: BTreeMap<String, u64>,
    /// Parts of events ignored without dropping them (an over-long `id:`), by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub event_notices: BTreeMap<String, u64>,
}

/// ADR `status.endpoints`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// Inbound endpoints by name.
    pub inbound: BTreeMap<String, EndpointStatus>,
}

/// ADR status of a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// Whether the device resource can be served.
    pub config: ConfigStatus,
    /// Per-endpoint status.
    pub endpoints: Endpoints,
}

/// ADR status of a dataset or an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// Dataset or event name.
    pub name: String,
    /// Last delivery or schema problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<StatusError>,
    /// The schema its messages follow, once registered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_schema_reference: Option<SchemaReference>,
    /// Health of the stream it is read from.
    pub runtime_health: RuntimeHealth,
}

/// ADR status of an event group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventGroupStatus {
    /// Group name.
    pub name: String,
    /// Its events.
    pub events: Vec<OperationStatus>,
}

/// ADR status of an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetStatus {
    /// Whether the asset resource can be served.
    pub config: ConfigStatus,
    /// Its datasets.
    pub datasets: Vec<OperationStatus>,
    /// Its event groups.
    pub event_groups: Vec<EventGroupStatus>,
}

/// Every device's and asset's status, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Devices by name.
    pub devices: BTreeMap<String, DeviceStatus>,
    /// Assets by name.
    pub assets: BTreeMap<String, AssetStatus>,
}

/// RFC 3339 (UTC, seconds) of a time.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn health_of(s: &StreamStatus) -> RuntimeHealth {
    let available = s.state == StreamState::Connected;
    RuntimeHealth {
        status: if available {
            "Available"
        } else {
            "Unavailable"
        }
        .to_string(),
        last_update_time: rfc3339(s.since),
        message: if available {
            String::new()
        } else if s.last_error.is_empty() {
            format!("stream {}", s.state.as_str().to_lowercase())
        } else {
            s.last_error.clone()
        },
        reason_code: s.state.as_str().to_string(),
    }
}

/// The worst health of several streams (Available only when all are).
fn combined(streams: &[&StreamStatus]) -> Option<RuntimeHealth> {
    let first = streams.first()?;
    Some(
        streams
            .iter()
            .find(|s| s.state != StreamState::Connected)
            .map_or_else(|| health_of(first), |s| health_of(s)),
    )
}

/// Per-reason counters of several streams, added up.
fn summed(
    streams: &[&StreamStatus],
    counters: impl Fn(&StreamStatus) -> &BTreeMap<&'static str, u64>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in streams {
        for (reason, n) in counters(s) {
            *out.entry((*reason).to_string()).or_default() += n;
        }
    }
    out
}

/// The messages of the resource errors by resource: looked up once per device and asset, so
/// an index rather than a scan (thousands of errors by thousands of resources took seconds).
fn errors_by_resource(errors: &[ResourceError]) -> HashMap<&str, Vec<&str>> {
    let mut by: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in errors {
        by.entry(e.resource.as_str())
            .or_default()
            .push(e.message.as_str());
    }
    by
}

fn config_error(errors: &HashMap<&str, Vec<&str>>, resource: &str) -> Option<StatusError> {
    errors.get(resource).map(|msgs| StatusError {
        code: INVALID_CONFIGURATION.to_string(),
        message: msgs.join("; "),
    })
}

/// The status of an endpoint that cannot be served: its configuration error (not read).
fn rejected_endpoint(message: &str) -> EndpointStatus {
    EndpointStatus {
        error: Some(StatusError {
            code: INVALID_CONFIGURATION.to_string(),
            message: message.to_string(),
        }),
        runtime_health: None,
        events_dropped: BTreeMap::new(),
        event_notices: BTreeMap::new(),
    }
}

/// The status of a dataset or event that cannot be served: its configuration error, and
/// unavailable since it is not read.
fn rejected_status(r: &Rejected, when: &str) -> OperationStatus {
    OperationStatus {
        name: r.name.clone(),
        error: Some(StatusError {
            code: INVALID_CONFIGURATION.to_string(),
            message: r.message.clone(),
        }),
        message_schema_reference: None,
        runtime_health: RuntimeHealth {
            status: "Unavailable".to_string(),
            last_update_time: when.to_string(),
            message: "not read: its configuration is invalid".to_string(),
            reason_code: INVALID_CONFIGURATION.to_string(),
        },
    }
}

fn build_report(inner: &Inner) -> Report {
    let when = rfc3339(inner.loaded_at.unwrap_or(SystemTime::UNIX_EPOCH));
    let errors = errors_by_resource(&inner.resources.errors);
    let config = |resource: &str| ConfigStatus {
        last_transition_time: when.clone(),
        error: config_error(&errors, resource),
    };
    let mut report = Report::default();
    // Indexes first: status is built for thousands of streams.
    let mut by_endpoint: BTreeMap<(&str, &str), Vec<&StreamStatus>> = BTreeMap::new();
    let mut by_subject: std::collections::HashMap<&str, &StreamStatus> =
        std::collections::HashMap::new();
    for s in inner.streams.values() {
        by_endpoint
            .entry((s.device.as_str(), s.endpoint.as_str()))
            .or_default()
            .push(s);
        for r in &s.routes {
            by_subject.insert(r.as_str(), s);
        }
    }
    // Resources that failed validation still get a status naming the problem (from one replica).
    for e in inner
        .resources
        .errors
        .iter()
        .filter(|_| !inner.partial || inner.reports_unread)
    {
        if let Some(name) = e.resource.strip_prefix("Device/") {
            report
                .devices
                .entry(name.to_string())
                .or_insert_with(|| DeviceStatus {
                    config: config(&e.resource),
                    endpoints: Endpoints::default(),
                });
        } else if let Some(name) = e.resource.strip_prefix("Asset/") {
            report
                .assets
                .entry(name.to_string())
                .or_insert_with(|| AssetStatus {
                    config: config(&e.resource),
                    datasets: Vec::new(),
                    event_groups: Vec::new(),
                });
        }
    }
    // What cannot be served is read by no replica: one reports it.
    let show_rejected = !inner.partial || inner.reports_unread;
    for (name, device) in &inner.resources.devices {
        let endpoints = device
            .endpoints
            .keys()
            .map(|ep| {
                let streams = by_endpoint
                    .get(&(name.as_str(), ep.as_str()))
                    .map_or(&[][..], |v| v.as_slice());
                (
                    ep.clone(),
                    EndpointStatus {
                        error: None,
                        runtime_health: combined(streams),
                        events_dropped: summed(streams, |s| &s.dropped),
                        event_notices: summed(streams, |s| &s.notices),
                    },
                )
            })
            .filter(|(_, e)| !inner.partial || e.runtime_health.is_some())
            .chain(
                device
                    .rejected_endpoints
                    .iter()
                    .filter(|_| show_rejected)
                    .map(|(ep, m)| (ep.clone(), rejected_endpoint(m))),
            )
            .collect::<BTreeMap<_, _>>();
        let config = config(&format!("Device/{name}"));
        if inner.partial
            && endpoints.is_empty()
            && !(inner.reports_unread && config.error.is_some())
        {
            continue;
        }
        report.devices.insert(
            name.clone(),
            DeviceStatus {
                config,
                endpoints: Endpoints { inbound: endpoints },
            },
        );
    }
    for asset in &inner.resources.assets {
        let op = |name: &str, subject: String| {
            let route = inner.routes.get(&subject);
            if inner.partial && !by_subject.contains_key(subject.as_str()) {
                return None;
            }
            Some(OperationStatus {
                name: name.to_string(),
                error: route
                    .filter(|r| !r.last_error.is_empty())
                    .map(|r| StatusError {
                        code: r.error_code.to_string(),
                        message: r.last_error.clone(),
                    }),
                message_schema_reference: route.and_then(|r| r.schema.clone()),
                runtime_health: by_subject.get(subject.as_str()).copied().map_or_else(
                    || RuntimeHealth {
                        status: "Unavailable".to_string(),
                        last_update_time: when.clone(),
                        message: "not read by this replica".to_string(),
                        reason_code: "NotAssigned".to_string(),
                    },
                    health_of,
                ),
            })
        };
        let rejected = |r: &Rejected| show_rejected.then(|| rejected_status(r, &when));
        let datasets: Vec<OperationStatus> = asset
            .datasets
            .iter()
            .filter_map(|d| op(&d.name, format!("{}/{}", asset.name, d.name)))
            .chain(asset.rejected_datasets.iter().filter_map(rejected))
            .collect();
        let event_groups: Vec<EventGroupStatus> = asset
            .event_groups
            .iter()
            .map(|g| EventGroupStatus {
                name: g.name.clone(),
                events: g
                    .events
                    .iter()
                    .filter_map(|e| op(&e.name, format!("{}/{}/{}", asset.name, g.name, e.name)))
                    .chain(g.rejected.iter().filter_map(rejected))
                    .collect(),
            })
            .filter(|g| !inner.partial || !g.events.is_empty())
            .collect();
        let config = config(&format!("Asset/{}", asset.name));
        if inner.partial
            && datasets.is_empty()
            && event_groups.is_empty()
            && !(inner.reports_unread && config.error.is_some())
        {
            continue;
        }
        report.assets.insert(
            asset.name.clone(),
            AssetStatus {
                config,
                datasets,
                event_groups,
            },
        );
    }
    report
}

#[cfg(test)]
mod tests;
