//! The Azure Device Registry shaped report built from the live status: for every device and
//! asset (of this replica, when there are several) the config error with its code and message,
//! and the runtime health (Available / Unavailable) of what it reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::SystemTime;

use serde::Serialize;

use super::live::{Inner, SchemaReference, Status, StreamState, StreamStatus};
use crate::resources::{Asset, Device, Rejected, ResourceError};

/// The error code of a resource, dataset or event that cannot be served as written.
pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";

/// Which resources a report covers, so the status reporter can rebuild only what changed, and
/// the rest a part at a time.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Include the resources that cannot be served (they change only on a reload).
    pub unserved: bool,
    /// These devices (`None`: every device); names the status does not know are left out.
    pub devices: Option<&'a [String]>,
    /// These assets (`None`: every asset).
    pub assets: Option<&'a [String]>,
}

impl Scope<'_> {
    /// Every device and asset.
    pub const ALL: Scope<'static> = Scope {
        unserved: true,
        devices: None,
        assets: None,
    };
}

impl Status {
    /// The Azure Device Registry shaped status of every device and asset.
    pub fn report(&self) -> Report {
        self.report_of(Scope::ALL)
    }

    /// The status of the devices and assets in `scope`.
    pub fn report_of(&self, scope: Scope<'_>) -> Report {
        let inner = self.lock();
        build_report(&inner, scope)
    }

    /// The names of every device and asset that can be served, as a full report covers them.
    pub fn resource_names(&self) -> (Vec<String>, Vec<String>) {
        let inner = self.lock();
        let devices = inner.resources.devices.keys().cloned().collect();
        let assets = inner.resources.assets.iter().map(|a| a.name.clone());
        (devices, assets.collect())
    }
}

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
    /// Distinct SSE event types read from the endpoint that no dataset or event routes
    /// (`IngestService/ListDiscovered` lists them); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub discovered_types: u64,
}

/// Whether a counter is zero (left out of the JSON).
fn is_zero(n: &u64) -> bool {
    *n == 0
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

/// A stream's health in ADR form: Available while connected, else why not.
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

/// The config error of `resource`: every problem found in it, joined.
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
        discovered_types: 0,
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

/// What building a report looks up, indexed once: status is built for thousands of streams.
struct Builder<'a> {
    inner: &'a Inner,
    /// When the resources were loaded, RFC 3339.
    when: String,
    /// Resource problems by resource.
    errors: HashMap<&'a str, Vec<&'a str>>,
    /// Streams by (device, endpoint).
    by_endpoint: BTreeMap<(&'a str, &'a str), Vec<&'a StreamStatus>>,
    /// The stream of each dataset / event subject.
    by_subject: HashMap<&'a str, &'a StreamStatus>,
    /// What cannot be served is read by no replica: one reports it.
    show_rejected: bool,
}

/// The report of everything `inner` holds: failed resources first, then devices and assets.
fn build_report(inner: &Inner, scope: Scope<'_>) -> Report {
    let b = Builder::new(inner, scope);
    let mut report = Report::default();
    if scope.unserved {
        b.unserved_resources(&mut report);
    }
    let devices: Vec<(&String, &Device)> = match scope.devices {
        None => inner.resources.devices.iter().collect(),
        Some(names) => (names.iter())
            .filter_map(|n| inner.resources.devices.get_key_value(n))
            .collect(),
    };
    for (name, device) in devices {
        if let Some(status) = b.device(name, device) {
            report.devices.insert(name.clone(), status);
        }
    }
    let wanted: Option<HashSet<&str>> = scope
        .assets
        .map(|names| names.iter().map(String::as_str).collect());
    let assets = (inner.resources.assets.iter())
        .filter(|a| wanted.as_ref().is_none_or(|w| w.contains(a.name.as_str())));
    for asset in assets {
        if let Some(status) = b.asset(asset) {
            report.assets.insert(asset.name.clone(), status);
        }
    }
    report
}

/// `names` as a set, for lookups while indexing.
fn names(names: Option<&[String]>) -> Option<HashSet<&str>> {
    names.map(|n| n.iter().map(String::as_str).collect())
}

impl<'a> Builder<'a> {
    /// Indexes the streams of `inner` that `scope` shows, by endpoint and by subject (a part of
    /// a pass indexes only its own resources' streams).
    fn new(inner: &'a Inner, scope: Scope<'_>) -> Self {
        let (devices, assets) = (names(scope.devices), names(scope.assets));
        let mut by_endpoint: BTreeMap<(&str, &str), Vec<&StreamStatus>> = BTreeMap::new();
        let mut by_subject: HashMap<&str, &StreamStatus> = HashMap::new();
        // In key order, as the reports have always listed them (the map is hashed).
        let mut streams: Vec<&StreamStatus> = inner.streams.values().collect();
        streams.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        for s in streams {
            if devices
                .as_ref()
                .is_none_or(|d| d.contains(s.device.as_str()))
            {
                by_endpoint
                    .entry((s.device.as_str(), s.endpoint.as_str()))
                    .or_default()
                    .push(s);
            }
            if assets
                .as_ref()
                .is_none_or(|w| s.assets.iter().any(|a| w.contains(a.as_str())))
            {
                for r in &s.routes {
                    by_subject.insert(r.as_str(), s);
                }
            }
        }
        Self {
            inner,
            when: rfc3339(inner.loaded_at.unwrap_or(SystemTime::UNIX_EPOCH)),
            errors: errors_by_resource(&inner.resources.errors),
            by_endpoint,
            by_subject,
            show_rejected: !inner.partial || inner.reports_unread,
        }
    }

    /// The config status of `resource` (`Device/<name>`, `Asset/<name>`).
    fn config(&self, resource: &str) -> ConfigStatus {
        ConfigStatus {
            last_transition_time: self.when.clone(),
            error: config_error(&self.errors, resource),
        }
    }

    /// Resources that failed validation still get a status naming the problem (from one
    /// replica).
    fn unserved_resources(&self, report: &mut Report) {
        if !self.show_rejected {
            return;
        }
        for e in &self.inner.resources.errors {
            if let Some(name) = e.resource.strip_prefix("Device/") {
                report
                    .devices
                    .entry(name.to_string())
                    .or_insert_with(|| DeviceStatus {
                        config: self.config(&e.resource),
                        endpoints: Endpoints::default(),
                    });
            } else if let Some(name) = e.resource.strip_prefix("Asset/") {
                report
                    .assets
                    .entry(name.to_string())
                    .or_insert_with(|| AssetStatus {
                        config: self.config(&e.resource),
                        datasets: Vec::new(),
                        event_groups: Vec::new(),
                    });
            }
        }
    }

    /// A device's status; `None` for one this replica does not report.
    fn device(&self, name: &str, device: &Device) -> Option<DeviceStatus> {
        let inner = self.inner;
        let endpoints = device
            .endpoints
            .keys()
            .map(|ep| (ep.clone(), self.endpoint(name, ep)))
            .filter(|(_, e)| !inner.partial || e.runtime_health.is_some())
            .chain(
                device
                    .rejected_endpoints
                    .iter()
                    .filter(|_| self.show_rejected)
                    .map(|(ep, m)| (ep.clone(), rejected_endpoint(m))),
            )
            .collect::<BTreeMap<_, _>>();
        let config = self.config(&format!("Device/{name}"));
        if inner.partial
            && endpoints.is_empty()
            && !(inner.reports_unread && config.error.is_some())
        {
            return None;
        }
        Some(DeviceStatus {
            config,
            endpoints: Endpoints { inbound: endpoints },
        })
    }

    /// The status of an endpoint that is served: the health and counters of its streams.
    fn endpoint(&self, device: &str, ep: &str) -> EndpointStatus {
        let streams = self
            .by_endpoint
            .get(&(device, ep))
            .map_or(&[][..], |v| v.as_slice());
        EndpointStatus {
            error: None,
            runtime_health: combined(streams),
            events_dropped: summed(streams, |s| &s.dropped),
            event_notices: summed(streams, |s| &s.notices),
            discovered_types: streams
                .iter()
                .map(|s| s.discovered_types)
                .max()
                .unwrap_or(0),
        }
    }

    /// An asset's status; `None` for one this replica does not report.
    fn asset(&self, asset: &Asset) -> Option<AssetStatus> {
        let inner = self.inner;
        let rejected = |r: &Rejected| self.show_rejected.then(|| rejected_status(r, &self.when));
        let datasets: Vec<OperationStatus> = asset
            .datasets
            .iter()
            .filter_map(|d| self.operation(&d.name, format!("{}/{}", asset.name, d.name)))
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
                    .filter_map(|e| {
                        self.operation(&e.name, format!("{}/{}/{}", asset.name, g.name, e.name))
                    })
                    .chain(g.rejected.iter().filter_map(rejected))
                    .collect(),
            })
            .filter(|g| !inner.partial || !g.events.is_empty())
            .collect();
        let config = self.config(&format!("Asset/{}", asset.name));
        if inner.partial
            && datasets.is_empty()
            && event_groups.is_empty()
            && !(inner.reports_unread && config.error.is_some())
        {
            return None;
        }
        Some(AssetStatus {
            config,
            datasets,
            event_groups,
        })
    }

    /// The status of a dataset or event that is served (`subject` names it); `None` when this
    /// replica does not read it.
    fn operation(&self, name: &str, subject: String) -> Option<OperationStatus> {
        let route = self.inner.routes.get(&subject);
        let stream = self.by_subject.get(subject.as_str()).copied();
        if self.inner.partial && stream.is_none() {
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
            runtime_health: stream.map_or_else(
                || RuntimeHealth {
                    status: "Unavailable".to_string(),
                    last_update_time: self.when.clone(),
                    message: "not read by this replica".to_string(),
                    reason_code: "NotAssigned".to_string(),
                },
                health_of,
            ),
        })
    }
}
