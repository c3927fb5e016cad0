//! The validated domain model of Device and Asset resources that the rest of ingest works from
//! (routing, status, authentication), and the problems of those that cannot be served.

use std::collections::BTreeMap;
use std::fmt;

use url::Url;

/// A resource that cannot be served, with the reason: reported in status, logged once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceError {
    /// `Device/<name>` or `Asset/<name>` (or `document <n>` when the name is unknown).
    pub resource: String,
    /// The file it was read from.
    pub file: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.resource, self.file, self.message)
    }
}

/// A reference to a secret file: `<secret>/<key>` under the secrets directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// The secret (a directory).
    pub secret: String,
    /// The key (a file in it).
    pub key: String,
}

impl SecretRef {
    /// Parses `<secret>/<key>`; both parts non-empty, plain names (no `..`, no further `/`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let plain = |p: &str| !p.is_empty() && p != "." && p != ".." && !p.contains('\\');
        match s.split_once('/') {
            Some((secret, key)) if plain(secret) && plain(key) && !key.contains('/') => Ok(Self {
                secret: secret.to_string(),
                key: key.to_string(),
            }),
            _ => Err(format!(
                "secret reference {s:?} is not of the form <secret>/<key>"
            )),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.secret, self.key)
    }
}

/// How ingest authenticates to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    Anonymous,
    /// HTTP Basic from two secret files, read at each connect.
    UsernamePassword {
        /// The user name secret.
        username: SecretRef,
        /// The password secret.
        password: SecretRef,
    },
    /// An x509 client certificate (mutual TLS) from PEM secret files, read at each connect.
    Certificate {
        /// The client certificate (its chain may follow it in the same file).
        certificate: SecretRef,
        /// The certificate's private key: PKCS#8, PKCS#1 or SEC1.
        key: SecretRef,
        /// Intermediate CA certificates sent after the client certificate.
        intermediates: Option<SecretRef>,
    },
}

/// One SSE inbound endpoint of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The base URL.
    pub address: Url,
    /// Credentials.
    pub auth: Auth,
    /// Name of the trust list (a directory under the trust dir) of extra CAs.
    pub trust_list: Option<String>,
    /// The options of its `additionalConfiguration` (headers, proxy, bearer or OAuth2, ...).
    pub options: super::options::EndpointOptions,
}

/// A device and its SSE endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Resource name.
    pub name: String,
    /// File it was read from.
    pub file: String,
    /// SSE endpoints by name (endpoints of other types are left out).
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Endpoints of other connectors' types (an asset on one is not ours).
    pub foreign_endpoints: Vec<String>,
    /// SSE endpoints that cannot be served, with why: reported on the endpoint
    /// (`status.endpoints.inbound.<name>.error`), not on the device, and the assets reading
    /// them fail.
    pub rejected_endpoints: BTreeMap<String, String>,
    /// ADR's `uuid` of the device (empty when none).
    pub uuid: String,
    /// The device's `externalDeviceId` (empty when none).
    pub external_device_id: String,
}

/// MQTT quality of service of a destination: the contract's, shared with the publisher.
pub use sse_contract::route::Qos;

/// Where a routed event is delivered: the contract's, shared with the publisher.
pub use sse_contract::route::{Destination, MqttDestination};

/// A dataset: every event of a path on the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Dataset name.
    pub name: String,
    /// Path on the endpoint.
    pub data_source: String,
    /// Optional type reference.
    pub type_ref: String,
    /// Resolved destination (own, else the asset's default).
    pub destination: Destination,
}

/// One event of an event group: SSE events of one type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetEvent {
    /// Event name.
    pub name: String,
    /// The SSE event type to match.
    pub data_source: String,
    /// Optional type reference (the event's, else the group's).
    pub type_ref: String,
    /// Resolved destination (own, else the group's default, else the asset's default).
    pub destination: Destination,
}

/// An event group: one path on the endpoint, events matched by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGroup {
    /// Group name.
    pub name: String,
    /// Path on the endpoint (usually "").
    pub data_source: String,
    /// Its events.
    pub events: Vec<AssetEvent>,
    /// Its events that cannot be served (reported on the event; the others run).
    pub rejected: Vec<Rejected>,
}

/// A dataset or event that cannot be served, with why: Azure reports such an error on the data
/// operation (`status.datasets[].error`, `status.eventGroups[].events[].error`) and runs the
/// rest of its asset, and so does ingest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rejected {
    /// The dataset's or event's name (`datasets[<i>]` / `events[<i>]` when it has none).
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// A validated asset, ready to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Resource name.
    pub name: String,
    /// File it was read from.
    pub file: String,
    /// Device it reads from.
    pub device: String,
    /// Endpoint of the device.
    pub endpoint: String,
    /// Datasets.
    pub datasets: Vec<Dataset>,
    /// Datasets that cannot be served (reported on the dataset; the others run).
    pub rejected_datasets: Vec<Rejected>,
    /// Event groups.
    pub event_groups: Vec<EventGroup>,
    /// ADR's `uuid` of the asset (empty when none).
    pub uuid: String,
    /// The asset's `externalAssetId` (empty when none).
    pub external_asset_id: String,
    /// Its own dead-letter destinations (`deadLetter` of its default configurations); routing
    /// falls back to the device's.
    pub dead_letters: super::asset_options::AssetDeadLetters,
}

/// Everything loaded from the resources directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Valid devices by name.
    pub devices: BTreeMap<String, Device>,
    /// Valid, enabled assets that read an SSE endpoint.
    pub assets: Vec<Asset>,
    /// Resources that cannot be served.
    pub errors: Vec<ResourceError>,
}

impl Resources {
    /// Every problem, in one list (logs, `ListStreams`): the resources that cannot be served,
    /// then the endpoints, datasets and events that cannot, each under its resource.
    pub fn problems(&self) -> Vec<ResourceError> {
        let mut all = self.errors.clone();
        for d in self.devices.values() {
            all.extend(d.rejected_endpoints.iter().map(|(ep, m)| ResourceError {
                resource: format!("Device/{}", d.name),
                file: d.file.clone(),
                message: format!("endpoint {ep}: {m}"),
            }));
        }
        for a in &self.assets {
            let asset = |what: String, r: &Rejected| ResourceError {
                resource: format!("Asset/{}", a.name),
                file: a.file.clone(),
                message: format!("{what} {:?}: {}", r.name, r.message),
            };
            all.extend(
                a.rejected_datasets
                    .iter()
                    .map(|r| asset("dataset".into(), r)),
            );
            for g in &a.event_groups {
                let what = format!("event group {:?} event", g.name);
                all.extend(g.rejected.iter().map(|r| asset(what.clone(), r)));
            }
        }
        all
    }
}
