//! The YAML documents of a resource file: split at `---` so a broken one does not hide the rest,
//! parsed within a node budget, sorted into Devices and Assets by their header, and read into
//! the document model (as written: unknown fields allowed, since Azure's full model has many;
//! nothing checked yet beyond the shape).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ResourceError, yaml};

/// The only `apiVersion` served.
pub const API_VERSION: &str = "namespaces.deviceregistry.microsoft.com/v1";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Header {
    pub(super) api_version: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) metadata: Option<Metadata>,
}

#[derive(Deserialize)]
pub(super) struct Metadata {
    pub(super) name: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct DeviceDoc {
    pub(super) spec: DeviceSpec,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviceSpec {
    #[serde(default)]
    pub(super) endpoints: Endpoints,
    /// ADR's id of the device (CloudEvents `aiodeviceref`).
    pub(super) uuid: Option<String>,
    /// The device's id outside ADR (CloudEvents `source` where it differs from the uuid).
    pub(super) external_device_id: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct Endpoints {
    #[serde(default)]
    pub(super) inbound: BTreeMap<String, InboundEndpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InboundEndpoint {
    pub(super) endpoint_type: String,
    pub(super) address: String,
    pub(super) authentication: Option<Authentication>,
    pub(super) trust_settings: Option<TrustSettings>,
    pub(super) additional_configuration: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Authentication {
    pub(super) method: String,
    pub(super) username_password_credentials: Option<UsernamePasswordCredentials>,
    pub(super) x509_credentials: Option<X509Credentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct X509Credentials {
    pub(super) certificate_secret_name: Option<String>,
    pub(super) key_secret_name: Option<String>,
    pub(super) intermediate_certificates_secret_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsernamePasswordCredentials {
    pub(super) username_secret_name: String,
    pub(super) password_secret_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TrustSettings {
    pub(super) trust_list: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct AssetDoc {
    pub(super) spec: AssetSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AssetSpec {
    pub(super) device_ref: DeviceRef,
    pub(super) enabled: Option<bool>,
    #[serde(default)]
    pub(super) default_datasets_destinations: Vec<DestinationDoc>,
    #[serde(default)]
    pub(super) default_events_destinations: Vec<DestinationDoc>,
    /// Converted one by one, so that a malformed dataset fails alone.
    #[serde(default)]
    pub(super) datasets: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    pub(super) event_groups: Vec<EventGroupDoc>,
    /// ADR's id of the asset (CloudEvents `aioassetref`).
    pub(super) uuid: Option<String>,
    /// The asset's id outside ADR (CloudEvents `subject` where it differs from the uuid).
    pub(super) external_asset_id: Option<String>,
    /// ADR's JSON string of dataset defaults (this connector reads `deadLetter` there).
    pub(super) default_datasets_configuration: Option<Box<serde_yaml_ng::Value>>,
    /// ADR's JSON string of event defaults (this connector reads `deadLetter` there).
    pub(super) default_events_configuration: Option<Box<serde_yaml_ng::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeviceRef {
    pub(super) device_name: String,
    pub(super) endpoint_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DatasetDoc {
    pub(super) name: String,
    #[serde(default)]
    pub(super) data_source: String,
    #[serde(default)]
    pub(super) destinations: Vec<DestinationDoc>,
    pub(super) type_ref: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventGroupDoc {
    pub(super) name: String,
    #[serde(default)]
    pub(super) data_source: String,
    #[serde(default)]
    pub(super) default_destinations: Vec<DestinationDoc>,
    pub(super) type_ref: Option<String>,
    /// Converted one by one, so that a malformed event fails alone.
    #[serde(default)]
    pub(super) events: Vec<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventDoc {
    pub(super) name: String,
    #[serde(default)]
    pub(super) data_source: String,
    #[serde(default)]
    pub(super) destinations: Vec<DestinationDoc>,
    pub(super) type_ref: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct DestinationDoc {
    pub(super) target: String,
    #[serde(default)]
    pub(super) configuration: DestinationConfig,
}

#[derive(Deserialize, Default)]
pub(super) struct DestinationConfig {
    pub(super) topic: Option<String>,
    pub(super) qos: Option<String>,
    pub(super) retain: Option<String>,
    pub(super) ttl: Option<u32>,
    pub(super) key: Option<String>,
}

/// A document read from a file before validation.
pub(super) enum Raw {
    Device(String, DeviceDoc),
    Asset(String, AssetDoc),
}

/// Splits a YAML stream into documents at `---` lines, so a broken document does not hide the
/// documents after it. Returns each document's text and its first line number.
pub(super) fn split_documents(text: &str) -> Vec<(String, usize)> {
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

/// The documents of one file read into the model, and its problems (see [`parse_file`]).
pub(super) fn parse_one(text: &str, file: &str) -> (Vec<(String, Raw)>, Vec<ResourceError>) {
    let (mut raws, mut errors) = (Vec::new(), Vec::new());
    parse_file(text, file, &mut raws, &mut errors);
    (raws, errors)
}

/// Parses every document of one file: devices and assets go to `raws`, problems to `errors`.
pub(super) fn parse_file(
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
