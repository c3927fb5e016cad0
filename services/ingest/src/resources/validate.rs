//! Validation of the parsed documents into the domain model: devices first (each SSE endpoint
//! converted, or rejected alone with why), then assets against them. Only what concerns an asset
//! itself rejects it; a bad dataset or event is rejected alone ([`operations`]).

use std::collections::{BTreeMap, HashSet};

use sse_contract::route::{check_resource_id, check_route_text};
use sse_contract::topics::{self, Writer};
use url::Url;

use super::doc::{
    AssetDoc, AssetSpec, Authentication, DestinationDoc, DeviceDoc, InboundEndpoint, Raw,
    X509Credentials,
};
use super::{
    Asset, Auth, Destination, Device, Endpoint, MqttDestination, Qos, ResourceError, Resources,
    SecretRef,
};

mod operations;

/// Endpoints that exist but cannot be served, by (device, endpoint), with why: assets on them
/// get an error too.
type Broken = BTreeMap<(String, String), String>;

/// Whether an `endpointType` is the SSE connector's (any case, every alias in use).
pub fn is_sse_endpoint_type(t: &str) -> bool {
    ["microsoft.ssehttp", "microsoft.sse"].contains(&t.to_ascii_lowercase().as_str())
}

/// Checks an Asset destination topic: a valid MQTT topic name for publishing (non-empty, no
/// wildcards, no character brokers refuse, at most 65535 bytes) that the connector does not own (its status and
/// checkpoint topics, the state store's and registry's, `$`-topics: sse-contract's list),
/// because resource files are untrusted.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    use sse_contract::mqtt_text::Unfit;
    use topics::Refusal;
    topics::check_destination(topic, Writer::Route).map_err(|r| match r {
        // The topic itself is no help when empty, and too long to repeat.
        Refusal::Empty | Refusal::Unfit(Unfit::TooLong(_)) => r.to_string(),
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

/// An ADR destination's `qos` (absent: Qos1).
pub(super) fn qos_named(name: Option<&str>) -> Result<Qos, String> {
    match name {
        None | Some("Qos1") => Ok(Qos::AtLeastOnce),
        Some("Qos0") => Ok(Qos::AtMostOnce),
        Some(other) => Err(format!("unknown qos {other:?} (Qos0 or Qos1)")),
    }
}

/// An ADR destination's `retain` (absent: Never).
pub(super) fn retain_named(name: Option<&str>) -> Result<bool, String> {
    match name {
        None | Some("Never") => Ok(false),
        Some("Keep") => Ok(true),
        Some(other) => Err(format!("unknown retain {other:?} (Keep or Never)")),
    }
}

fn convert_destination(d: &DestinationDoc, op: Operation) -> Result<Destination, String> {
    let c = &d.configuration;
    match d.target.as_str() {
        "Mqtt" => {
            let topic = c.topic.clone().unwrap_or_default();
            validate_topic(&topic)?;
            let qos = qos_named(c.qos.as_deref())?;
            let retain = retain_named(c.retain.as_deref())?;
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

/// Converts an SSE inbound endpoint: its address, credentials and trust list.
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
        Some(a) => convert_auth(a)?,
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
    let options = super::options::parse(ep.additional_configuration.as_ref())?;
    refuse_auth_conflicts(&auth, &options)?;
    crate::auth::refuse_insecure_credentials(&address, &auth, &options)?;
    Ok(Endpoint {
        address,
        auth,
        trust_list,
        options,
    })
}

/// Refuses two sources of one `Authorization` header: ADR's UsernamePassword, the options'
/// bearer or OAuth2 token, or an `Authorization` request header.
fn refuse_auth_conflicts(
    auth: &Auth,
    options: &super::options::EndpointOptions,
) -> Result<(), String> {
    let basic = matches!(auth, Auth::UsernamePassword { .. });
    let header = options.request.has_header("authorization");
    match (basic, options.auth.is_some(), header) {
        (true, true, _) => Err("additionalConfiguration.authentication conflicts with UsernamePassword authentication: both set Authorization".to_owned()),
        (true, false, true) => Err("additionalConfiguration.headers.authorization conflicts with UsernamePassword authentication".to_owned()),
        (false, true, true) => Err("additionalConfiguration.headers.authorization conflicts with additionalConfiguration.authentication".to_owned()),
        _ => Ok(()),
    }
}

/// Converts an endpoint's `authentication`: its method and the secret references it needs.
fn convert_auth(a: &Authentication) -> Result<Auth, String> {
    match a.method.as_str() {
        "Anonymous" => Ok(Auth::Anonymous),
        "UsernamePassword" => {
            let c = a
                .username_password_credentials
                .as_ref()
                .ok_or("UsernamePassword authentication without usernamePasswordCredentials")?;
            Ok(Auth::UsernamePassword {
                username: SecretRef::parse(&c.username_secret_name)?,
                password: SecretRef::parse(&c.password_secret_name)?,
            })
        }
        "Certificate" => certificate_auth(
            a.x509_credentials
                .as_ref()
                .ok_or("Certificate authentication without x509Credentials")?,
        ),
        other => Err(format!("unsupported authentication method {other:?}")),
    }
}

/// Converts `x509Credentials`: certificate and key required, intermediates optional.
fn certificate_auth(c: &X509Credentials) -> Result<Auth, String> {
    let required = |v: &Option<String>, field: &str| {
        v.as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("Certificate authentication without x509Credentials.{field}"))
            .and_then(SecretRef::parse)
    };
    Ok(Auth::Certificate {
        certificate: required(&c.certificate_secret_name, "certificateSecretName")?,
        key: required(&c.key_secret_name, "keySecretName")?,
        intermediates: c
            .intermediate_certificates_secret_name
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(SecretRef::parse)
            .transpose()?,
    })
}

/// Validates the devices, then the assets against them.
pub(super) fn validate(raws: Vec<(String, Raw)>, mut errors: Vec<ResourceError>) -> Resources {
    let mut device_docs = Vec::new();
    let mut asset_docs = Vec::new();
    for (file, raw) in raws {
        match raw {
            Raw::Asset(name, doc) => asset_docs.push((file, name, doc)),
            Raw::Device(name, doc) => device_docs.push((file, name, doc)),
        }
    }
    let (devices, broken) = devices(device_docs, &mut errors);
    let assets = assets(asset_docs, &devices, &broken, &mut errors);
    Resources {
        devices,
        assets,
        errors,
    }
}

/// The devices by name (a repeated name is an error of the later one), and their endpoints that
/// cannot be served.
fn devices(
    docs: Vec<(String, String, DeviceDoc)>,
    errors: &mut Vec<ResourceError>,
) -> (BTreeMap<String, Device>, Broken) {
    let mut devices: BTreeMap<String, Device> = BTreeMap::new();
    let mut broken = Broken::new();
    for (file, name, doc) in docs {
        if let Some(first) = devices.get(&name) {
            errors.push(ResourceError {
                resource: format!("Device/{name}"),
                message: format!("duplicate Device name (first in {})", first.file),
                file,
            });
            continue;
        }
        let device = device(name.clone(), file, &doc, &mut broken);
        devices.insert(name, device);
    }
    (devices, broken)
}

/// One device: its SSE endpoints converted (those that cannot be served go to `broken` too),
/// the others noted as another connector's.
fn device(name: String, file: String, doc: &DeviceDoc, broken: &mut Broken) -> Device {
    let mut device = Device {
        name,
        file,
        endpoints: BTreeMap::new(),
        foreign_endpoints: Vec::new(),
        rejected_endpoints: BTreeMap::new(),
        uuid: doc.spec.uuid.clone().unwrap_or_default(),
        external_device_id: doc.spec.external_device_id.clone().unwrap_or_default(),
    };
    // Bad ids fail every SSE endpoint: the events would carry them.
    let ids = check_device_ids(doc);
    for (ep_name, ep) in &doc.spec.endpoints.inbound {
        if !is_sse_endpoint_type(&ep.endpoint_type) {
            device.foreign_endpoints.push(ep_name.clone());
            continue;
        }
        let name = check_route_text("endpoint name", ep_name, true);
        match ids.clone().and(name).and_then(|()| convert_endpoint(ep)) {
            Ok(e) => {
                device.endpoints.insert(ep_name.clone(), e);
            }
            Err(m) => {
                device.rejected_endpoints.insert(ep_name.clone(), m.clone());
                broken.insert((device.name.clone(), ep_name.clone()), m);
            }
        }
    }
    device
}

/// Checks the device's `uuid` and `externalDeviceId` (sse-contract's rule for ids).
fn check_device_ids(doc: &DeviceDoc) -> Result<(), String> {
    // Absent and null are the same: no id (ADR leaves optional fields out, a file may null them).
    let id = |v: &Option<String>| v.clone().unwrap_or_default();
    check_resource_id("uuid", &id(&doc.spec.uuid))?;
    check_resource_id("externalDeviceId", &id(&doc.spec.external_device_id))
}

/// The enabled assets that read an SSE endpoint and can be served; the problems of those that
/// cannot go to `errors`.
fn assets(
    docs: Vec<(String, String, AssetDoc)>,
    devices: &BTreeMap<String, Device>,
    broken: &Broken,
    errors: &mut Vec<ResourceError>,
) -> Vec<Asset> {
    let mut assets: Vec<Asset> = Vec::new();
    // A set, not a scan of the assets so far: 20,000 assets made that scan take seconds.
    let mut names: HashSet<String> = HashSet::new();
    for (file, name, doc) in docs {
        let spec = doc.spec;
        if spec.enabled == Some(false) {
            tracing::info!(asset = %name, file, "asset disabled; skipped");
            continue;
        }
        let duplicate = !names.insert(name.clone());
        let Some(problems) = asset_problems(&name, &spec, duplicate, devices, broken) else {
            continue;
        };
        // Only what concerns the asset itself rejects it; a bad dataset or event fails alone.
        if !problems.is_empty() {
            errors.extend(problems.into_iter().map(|message| ResourceError {
                resource: format!("Asset/{name}"),
                file: file.clone(),
                message,
            }));
            continue;
        }
        let dead_letters = match super::asset_options::parse(
            spec.default_datasets_configuration.as_deref(),
            spec.default_events_configuration.as_deref(),
        ) {
            Ok(d) => d,
            Err(message) => {
                errors.push(ResourceError {
                    resource: format!("Asset/{name}"),
                    file: file.clone(),
                    message,
                });
                continue;
            }
        };
        let (datasets, rejected_datasets) = operations::datasets(&spec);
        let mut event_groups = operations::event_groups(&spec);
        operations::distinct_subjects(&name, &datasets, &mut event_groups);
        assets.push(Asset {
            name,
            file,
            device: spec.device_ref.device_name.clone(),
            endpoint: spec.device_ref.endpoint_name.clone(),
            datasets,
            rejected_datasets,
            event_groups,
            uuid: spec.uuid.unwrap_or_default(),
            external_asset_id: spec.external_asset_id.unwrap_or_default(),
            dead_letters,
        });
    }
    assets
}

/// What rejects an asset as a whole (its name, its device or endpoint); `None` for an asset on
/// another connector's endpoint, which is not ours to serve or report.
fn asset_problems(
    name: &str,
    spec: &AssetSpec,
    duplicate: bool,
    devices: &BTreeMap<String, Device>,
    broken: &Broken,
) -> Option<Vec<String>> {
    let mut problems = Vec::new();
    let dev = &spec.device_ref;
    if duplicate {
        problems.push("duplicate Asset name".to_string());
    }
    for (field, id) in [
        ("uuid", &spec.uuid),
        ("externalAssetId", &spec.external_asset_id),
    ] {
        if let Err(m) = check_resource_id(field, id.as_deref().unwrap_or_default()) {
            problems.push(m);
        }
    }
    match devices.get(&dev.device_name) {
        None => problems.push(format!("unknown device {:?}", dev.device_name)),
        Some(d) if d.foreign_endpoints.contains(&dev.endpoint_name) => {
            tracing::debug!(asset = %name, "asset reads an endpoint of another connector; skipped");
            return None;
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
    Some(problems)
}
