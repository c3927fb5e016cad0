//! Device and Asset resources (the Azure Device Registry model): YAML loading, validation, and
//! the validated domain model the rest of ingest works from.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use sse_contract::resources::RESOURCE_FILE_BYTES_DEFAULT;
use sse_contract::topics::{self, Writer};
use url::Url;

use crate::error::Error;

mod operations;
pub(crate) mod yaml;

/// The only `apiVersion` served.
pub const API_VERSION: &str = "namespaces.deviceregistry.microsoft.com/v1";

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

// ---- the YAML model (unknown fields allowed: Azure's full model has many) ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    name: Option<String>,
}

#[derive(Deserialize)]
struct DeviceDoc {
    spec: DeviceSpec,
}

#[derive(Deserialize, Default)]
struct DeviceSpec {
    #[serde(default)]
    endpoints: Endpoints,
}

#[derive(Deserialize, Default)]
struct Endpoints {
    #[serde(default)]
    inbound: BTreeMap<String, InboundEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InboundEndpoint {
    endpoint_type: String,
    address: String,
    authentication: Option<Authentication>,
    trust_settings: Option<TrustSettings>,
    additional_configuration: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Authentication {
    method: String,
    username_password_credentials: Option<UsernamePasswordCredentials>,
    x509_credentials: Option<X509Credentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct X509Credentials {
    certificate_secret_name: Option<String>,
    key_secret_name: Option<String>,
    intermediate_certificates_secret_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsernamePasswordCredentials {
    username_secret_name: String,
    password_secret_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustSettings {
    trust_list: Option<String>,
}

#[derive(Deserialize)]
struct AssetDoc {
    spec: AssetSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssetSpec {
    device_ref: DeviceRef,
    enabled: Option<bool>,
    #[serde(default)]
    default_datasets_destinations: Vec<DestinationDoc>,
    #[serde(default)]
    default_events_destinations: Vec<DestinationDoc>,
    /// Converted one by one, so that a malformed dataset fails alone.
    #[serde(default)]
    datasets: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    event_groups: Vec<EventGroupDoc>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRef {
    device_name: String,
    endpoint_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DatasetDoc {
    name: String,
    #[serde(default)]
    data_source: String,
    #[serde(default)]
    destinations: Vec<DestinationDoc>,
    type_ref: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventGroupDoc {
    name: String,
    #[serde(default)]
    data_source: String,
    #[serde(default)]
    default_destinations: Vec<DestinationDoc>,
    type_ref: Option<String>,
    /// Converted one by one, so that a malformed event fails alone.
    #[serde(default)]
    events: Vec<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventDoc {
    name: String,
    #[serde(default)]
    data_source: String,
    #[serde(default)]
    destinations: Vec<DestinationDoc>,
    type_ref: Option<String>,
}

#[derive(Deserialize)]
struct DestinationDoc {
    target: String,
    #[serde(default)]
    configuration: DestinationConfig,
}

#[derive(Deserialize, Default)]
struct DestinationConfig {
    topic: Option<String>,
    qos: Option<String>,
    retain: Option<String>,
    ttl: Option<u32>,
    key: Option<String>,
}

/// Whether an `endpointType` is the SSE connector's (any case, every alias in use).
pub fn is_sse_endpoint_type(t: &str) -> bool {
    ["microsoft.ssehttp", "microsoft.sse"].contains(&t.to_ascii_lowercase().as_str())
}

/// Checks an Asset destination topic: a valid MQTT topic name for publishing (non-empty, no
/// wildcards, no NUL, at most 65535 bytes) that the connector does not own (its status and
/// checkpoint topics, the state store's and registry's, `$`-topics: sse-contract's list),
/// because resource files are untrusted.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    use topics::Refusal;
    topics::check_destination(topic, Writer::Route).map_err(|r| match r {
        // The topic itself is no help when empty, and too long to repeat.
        Refusal::Empty | Refusal::TooLong(_) => r.to_string(),
        _ => format!("{r} (topic {topic:?})"),
    })
}

/// Which data operation a destination list belongs to (events cannot use the state store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Dataset,
    Event,
}

/// Converts the first destination of a list (Azure's rule: only one is used).
fn destination(list: &[DestinationDoc], op: Operation) -> Option<Result<Destination, String>> {
    let d = list.first()?;
    Some(convert_destination(d, op))
}

fn convert_destination(d: &DestinationDoc, op: Operation) -> Result<Destination, String> {
    let c = &d.configuration;
    match d.target.as_str() {
        "Mqtt" => {
            let topic = c.topic.clone().unwrap_or_default();
            validate_topic(&topic)?;
            let qos = match c.qos.as_deref() {
                None | Some("Qos1") => Qos::AtLeastOnce,
                Some("Qos0") => Qos::AtMostOnce,
                Some(other) => return Err(format!("unknown qos {other:?} (Qos0 or Qos1)")),
            };
            let retain = match c.retain.as_deref() {
                None | Some("Never") => false,
                Some("Keep") => true,
                Some(other) => return Err(format!("unknown retain {other:?} (Keep or Never)")),
            };
            Ok(Destination::Mqtt(MqttDestination {
                topic,
                qos,
                retain,
                ttl_seconds: c.ttl,
            }))
        }
        "BrokerStateStore" if op == Operation::Event => {
            Err("events cannot target BrokerStateStore".into())
        }
        "BrokerStateStore" => match c.key.as_deref() {
            Some(k) if !k.is_empty() => Ok(Destination::StateStore { key: k.to_string() }),
            _ => Err("BrokerStateStore destination has no key".into()),
        },
        "Storage" => Err("Storage destinations are not supported".into()),
        other => Err(format!("unknown destination target {other:?}")),
    }
}

/// A document read from a file before validation.
enum Raw {
    Device(String, DeviceDoc),
    Asset(String, AssetDoc),
}

/// Splits a YAML stream into documents at `---` lines, so a broken document does not hide the
/// documents after it. Returns each document's text and its first line number.
fn split_documents(text: &str) -> Vec<(String, usize)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let marker = line
            .strip_prefix("---")
            .filter(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if let Some(rest) = marker {
            docs.push((std::mem::take(&mut cur), start));
            start = i + 1;
            cur.push_str(rest);
            cur.push('\n');
        } else if line == "..." || line.starts_with("... ") {
            continue;
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    docs.push((cur, start));
    docs
}

/// Parses every document of one file: devices and assets go to `raws`, problems to `errors`.
fn parse_file(
    text: &str,
    file: &str,
    raws: &mut Vec<(String, Raw)>,
    errors: &mut Vec<ResourceError>,
) {
    for (doc, line) in split_documents(text) {
        let value = match yaml::parse(&doc) {
            Ok(v) => v,
            Err(e) => {
                errors.push(ResourceError {
                    resource: format!("document at line {line}"),
                    file: file.to_string(),
                    message: format!("unparsable YAML: {e}"),
                });
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        let header = match Header::deserialize(&value) {
            Ok(h) => h,
            Err(e) => {
                errors.push(ResourceError {
                    resource: format!("document at line {line}"),
                    file: file.to_string(),
                    message: format!("not a resource: {e}"),
                });
                continue;
            }
        };
        let kind = header.kind.unwrap_or_default();
        if header.api_version.as_deref() != Some(API_VERSION)
            || !matches!(kind.as_str(), "Device" | "Asset")
        {
            tracing::debug!(
                file,
                line,
                kind,
                "ignoring a document that is not a Device or Asset"
            );
            continue;
        }
        let Some(name) = header
            .metadata
            .and_then(|m| m.name)
            .filter(|n| !n.is_empty())
        else {
            errors.push(ResourceError {
                resource: format!("{kind} at line {line}"),
                file: file.to_string(),
                message: "metadata.name is missing".into(),
            });
            continue;
        };
        let parsed = if kind == "Device" {
            serde_yaml_ng::from_value(value).map(|d| Raw::Device(name.clone(), d))
        } else {
            serde_yaml_ng::from_value(value).map(|a| Raw::Asset(name.clone(), a))
        };
        match parsed {
            Ok(raw) => raws.push((file.to_string(), raw)),
            Err(e) => errors.push(ResourceError {
                resource: format!("{kind}/{name}"),
                file: file.to_string(),
                message: format!("invalid {kind}: {e}"),
            }),
        }
    }
}

fn convert_endpoint(ep: &InboundEndpoint) -> Result<Endpoint, String> {
    // Never the address itself in an error: it may hold a password or a token.
    let address = Url::parse(&ep.address).map_err(|e| format!("address is not a URL: {e}"))?;
    if !matches!(address.scheme(), "http" | "https") {
        return Err(format!(
            "address scheme {:?} is not http(s)",
            address.scheme()
        ));
    }
    let auth = match &ep.authentication {
        None => Auth::Anonymous,
        Some(a) => match a.method.as_str() {
            "Anonymous" => Auth::Anonymous,
            "UsernamePassword" => {
                let c = a
                    .username_password_credentials
                    .as_ref()
                    .ok_or("UsernamePassword authentication without usernamePasswordCredentials")?;
                Auth::UsernamePassword {
                    username: SecretRef::parse(&c.username_secret_name)?,
                    password: SecretRef::parse(&c.password_secret_name)?,
                }
            }
            "Certificate" => {
                let c = a
                    .x509_credentials
                    .as_ref()
                    .ok_or("Certificate authentication without x509Credentials")?;
                let required = |v: &Option<String>, field: &str| {
                    v.as_deref()
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            format!("Certificate authentication without x509Credentials.{field}")
                        })
                        .and_then(SecretRef::parse)
                };
                Auth::Certificate {
                    certificate: required(&c.certificate_secret_name, "certificateSecretName")?,
                    key: required(&c.key_secret_name, "keySecretName")?,
                    intermediates: c
                        .intermediate_certificates_secret_name
                        .as_deref()
                        .filter(|s| !s.is_empty())
                        .map(SecretRef::parse)
                        .transpose()?,
                }
            }
            other => return Err(format!("unsupported authentication method {other:?}")),
        },
    };
    let trust_list = ep
        .trust_settings
        .as_ref()
        .and_then(|t| t.trust_list.clone())
        .filter(|t| !t.is_empty());
    if let Some(t) = trust_list
        .as_ref()
        .filter(|t| t.contains('/') || *t == ".." || *t == ".")
    {
        return Err(format!("trust list {t:?} is not a plain name"));
    }
    crate::auth::refuse_insecure_credentials(
        &address,
        &auth,
        ep.additional_configuration.as_ref(),
    )?;
    Ok(Endpoint {
        address,
        auth,
        trust_list,
    })
}

/// Validates the devices, then the assets against them.
fn validate(raws: Vec<(String, Raw)>, mut errors: Vec<ResourceError>) -> Resources {
    let mut devices: BTreeMap<String, Device> = BTreeMap::new();
    // Endpoints that exist but cannot be served: assets on them get an error too.
    let mut broken: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut assets_raw = Vec::new();
    for (file, raw) in raws {
        match raw {
            Raw::Asset(name, doc) => assets_raw.push((file, name, doc)),
            Raw::Device(name, doc) => {
                let err = |message: String| ResourceError {
                    resource: format!("Device/{name}"),
                    file: file.clone(),
                    message,
                };
                if let Some(first) = devices.get(&name) {
                    errors.push(err(format!(
                        "duplicate Device name (first in {})",
                        first.file
                    )));
                    continue;
                }
                let mut device = Device {
                    name: name.clone(),
                    file: file.clone(),
                    endpoints: BTreeMap::new(),
                    foreign_endpoints: Vec::new(),
                    rejected_endpoints: BTreeMap::new(),
                };
                for (ep_name, ep) in &doc.spec.endpoints.inbound {
                    if !is_sse_endpoint_type(&ep.endpoint_type) {
                        device.foreign_endpoints.push(ep_name.clone());
                        continue;
                    }
                    match convert_endpoint(ep) {
                        Ok(e) => {
                            device.endpoints.insert(ep_name.clone(), e);
                        }
                        Err(m) => {
                            device.rejected_endpoints.insert(ep_name.clone(), m.clone());
                            broken.insert((name.clone(), ep_name.clone()), m);
                        }
                    }
                }
                devices.insert(name, device);
            }
        }
    }
    let mut assets: Vec<Asset> = Vec::new();
    // A set, not a scan of the assets so far: 20,000 assets made that scan take seconds.
    let mut names: HashSet<String> = HashSet::new();
    for (file, name, doc) in assets_raw {
        let spec = doc.spec;
        if spec.enabled == Some(false) {
            tracing::info!(asset = %name, file, "asset disabled; skipped");
            continue;
        }
        let mut problems = Vec::new();
        let dev = &spec.device_ref;
        if !names.insert(name.clone()) {
            problems.push("duplicate Asset name".to_string());
        }
        match devices.get(&dev.device_name) {
            None => problems.push(format!("unknown device {:?}", dev.device_name)),
            Some(d) if d.foreign_endpoints.contains(&dev.endpoint_name) => {
                tracing::debug!(asset = %name, "asset reads an endpoint of another connector; skipped");
                continue;
            }
            Some(d) if !d.endpoints.contains_key(&dev.endpoint_name) => {
                match broken.get(&(dev.device_name.clone(), dev.endpoint_name.clone())) {
                    Some(m) => problems.push(format!(
                        "endpoint {:?} of device {:?} cannot be served: {m}",
                        dev.endpoint_name, dev.device_name
                    )),
                    None => problems.push(format!(
                        "unknown endpoint {:?} of device {:?}",
                        dev.endpoint_name, dev.device_name
                    )),
                }
            }
            Some(_) => {}
        }
        // Only what concerns the asset itself rejects it; a bad dataset or event fails alone.
        if !problems.is_empty() {
            errors.extend(problems.into_iter().map(|message| ResourceError {
                resource: format!("Asset/{name}"),
                file: file.clone(),
                message,
            }));
            continue;
        }
        let (datasets, rejected_datasets) = operations::datasets(&spec);
        assets.push(Asset {
            name,
            file,
            device: dev.device_name.clone(),
            endpoint: dev.endpoint_name.clone(),
            datasets,
            rejected_datasets,
            event_groups: operations::event_groups(&spec),
        });
    }
    Resources {
        devices,
        assets,
        errors,
    }
}

/// Loads and validates resources from YAML texts, each with the file name it came from.
pub fn load_texts<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Resources {
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for (file, text) in files {
        parse_file(text, file, &mut raws, &mut errors);
    }
    validate(raws, errors)
}

/// Loads every `*.yaml` / `*.yml` file of `dir` (sorted by name, so results are stable), each
/// of at most [`RESOURCE_FILE_BYTES_DEFAULT`] bytes.
pub fn load_dir(dir: &Path) -> Result<Resources, Error> {
    load_dir_limited(dir, RESOURCE_FILE_BYTES_DEFAULT)
}

/// Reads one resource file of at most `max` bytes (never more, whatever it grows to meanwhile).
pub(crate) fn read_limited(path: &Path, max: usize) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    let cap = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() > max {
        return Err(format!(
            "the file is larger than {max} bytes (--max-resource-file-bytes): not read"
        ));
    }
    String::from_utf8(bytes).map_err(|e| format!("cannot read: not UTF-8: {e}"))
}

/// [`load_dir`] with files of more than `max_file_bytes` refused (each reported as an error).
pub fn load_dir_limited(dir: &Path, max_file_bytes: usize) -> Result<Resources, Error> {
    if !dir.is_dir() {
        return Err(Error::ResourcesDirMissing(dir.to_path_buf()));
    }
    let dir_err = |e: std::io::Error| Error::ResourcesDir {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let path = entry.map_err(dir_err)?.path();
        let yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut texts = Vec::new();
    let mut read_errors = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        match read_limited(&path, max_file_bytes) {
            Ok(t) => texts.push((file, t)),
            Err(message) => read_errors.push(ResourceError {
                resource: "file".into(),
                file,
                message,
            }),
        }
    }
    let mut res = load_texts(texts.iter().map(|(f, t)| (f.as_str(), t.as_str())));
    read_errors.append(&mut res.errors);
    res.errors = read_errors;
    Ok(res)
}

#[cfg(test)]
mod tests;
