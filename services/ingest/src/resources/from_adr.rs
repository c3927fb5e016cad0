//! Devices and Assets as Azure Device Registry hands them over (`getDevice`, `getAsset` and the
//! update notifications carry a resource's spec fields as JSON), turned into the documents a
//! resource file holds and validated by the same code. So an ADR resource and a file with the
//! same content become the same model, and an ADR change is applied exactly as a file change.

use serde_json::{Value, json};

use super::doc::API_VERSION;
use super::{Resources, load_texts};

/// One resource as ADR returned it: its name and its fields (the `device` or `asset` object of
/// the response).
#[derive(Debug, Clone, Copy)]
pub struct AdrResource<'a> {
    /// The resource's name in ADR.
    pub name: &'a str,
    /// Its fields, as in the response.
    pub fields: &'a Value,
}

/// Where an ADR resource's errors say it came from (`adr:device/<name>`, `adr:asset/<name>`),
/// as a file's errors name the file; `kind` is `Device` or `Asset`.
pub fn adr_source_name(kind: &str, name: &str) -> String {
    format!("adr:{}/{name}", kind.to_lowercase())
}

/// Validates `devices` and `assets` as one set of resources. Errors name each resource as
/// `adr:device/<name>` or `adr:asset/<name>` where a file's errors name the file.
pub fn load_adr(devices: &[AdrResource<'_>], assets: &[AdrResource<'_>]) -> Resources {
    let docs: Vec<(String, String)> = (devices.iter().map(|r| ("Device", r)))
        .chain(assets.iter().map(|r| ("Asset", r)))
        .map(|(kind, r)| {
            let doc = json!({
                "apiVersion": API_VERSION,
                "kind": kind,
                "metadata": { "name": r.name },
                "spec": r.fields,
            });
            // Compact JSON is YAML on one line: no `---` separator can appear in it.
            (adr_source_name(kind, r.name), doc.to_string())
        })
        .collect();
    load_texts(docs.iter().map(|(f, t)| (f.as_str(), t.as_str())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const FILE: &str = r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: press }
spec:
  uuid: "0d4a…"
  externalDeviceId: press-ext
  endpoints:
    inbound:
      sse:
        endpointType: Microsoft.SSEHttp
        address: https://press.local:8443/events
        authentication:
          method: UsernamePassword
          usernamePasswordCredentials: { usernameSecretName: creds/user, passwordSecretName: creds/pass }
        trustSettings: { trustList: plant-ca }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: line-1 }
spec:
  uuid: "9b1e…"
  externalAssetId: line-1-ext
  deviceRef: { deviceName: press, endpointName: sse }
  defaultDatasetsDestinations:
    - { target: Mqtt, configuration: { topic: plant/line-1, qos: Qos1, retain: Never, ttl: 3600 } }
  datasets:
    - { name: temperature, dataSource: /temperature, typeRef: dtmi:t;1 }
"#;

    /// The same resources as getDevice / getAsset return them (reference §3: ADR's own fields
    /// such as uuid and version beside the spec's).
    fn adr() -> (Value, Value) {
        let device = json!({
            "uuid": "0d4a…", "version": 7, "externalDeviceId": "press-ext", "enabled": true,
            "endpoints": { "inbound": { "sse": {
                "endpointType": "Microsoft.SSEHttp",
                "address": "https://press.local:8443/events",
                "authentication": { "method": "UsernamePassword", "usernamePasswordCredentials":
                    { "usernameSecretName": "creds/user", "passwordSecretName": "creds/pass" } },
                "trustSettings": { "trustList": "plant-ca" } } } }
        });
        let asset = json!({
            "uuid": "9b1e…", "version": 3, "externalAssetId": "line-1-ext",
            "deviceRef": { "deviceName": "press", "endpointName": "sse" },
            "defaultDatasetsDestinations": [ { "target": "Mqtt", "configuration":
                { "topic": "plant/line-1", "qos": "Qos1", "retain": "Never", "ttl": 3600 } } ],
            "datasets": [ { "name": "temperature", "dataSource": "/temperature", "typeRef": "dtmi:t;1" } ]
        });
        (device, asset)
    }

    #[test]
    fn an_adr_resource_becomes_the_model_its_file_would() {
        let from_file = load_texts([("r.yaml", FILE)]);
        assert!(
            from_file.problems().is_empty(),
            "{:?}",
            from_file.problems()
        );
        let (device, asset) = adr();
        let from_adr = load_adr(
            &[AdrResource {
                name: "press",
                fields: &device,
            }],
            &[AdrResource {
                name: "line-1",
                fields: &asset,
            }],
        );
        assert!(from_adr.problems().is_empty(), "{:?}", from_adr.problems());
        // Everything but where each came from.
        let sourced = |mut r: Resources| {
            assert_eq!(r.devices.len(), 1);
            assert_eq!(r.assets.len(), 1);
            r.devices.values_mut().for_each(|d| d.file.clear());
            r.assets.iter_mut().for_each(|a| a.file.clear());
            (r.devices, r.assets)
        };
        let file_source = from_adr.devices["press"].file.clone();
        assert_eq!(file_source, "adr:device/press");
        assert_eq!(sourced(from_adr), sourced(from_file));
    }

    /// `load_adr` of one device and one asset.
    fn load_one(device: &Value, asset: &Value) -> Resources {
        load_adr(
            &[AdrResource {
                name: "press",
                fields: device,
            }],
            &[AdrResource {
                name: "line-1",
                fields: asset,
            }],
        )
    }

    #[test]
    fn the_adr_ids_reach_the_model() {
        let (device, asset) = adr();
        let res = load_one(&device, &asset);
        assert!(res.problems().is_empty(), "{:?}", res.problems());
        let d = &res.devices["press"];
        assert_eq!(
            (d.uuid.as_str(), d.external_device_id.as_str()),
            ("0d4a…", "press-ext")
        );
        let a = &res.assets[0];
        assert_eq!(
            (a.uuid.as_str(), a.external_asset_id.as_str()),
            ("9b1e…", "line-1-ext")
        );
    }

    #[test]
    fn null_adr_ids_are_no_ids() {
        let (mut device, mut asset) = adr();
        device["uuid"] = Value::Null;
        device["externalDeviceId"] = Value::Null;
        asset["externalAssetId"] = Value::Null;
        let res = load_one(&device, &asset);
        assert!(res.problems().is_empty(), "{:?}", res.problems());
        let d = &res.devices["press"];
        assert_eq!((d.uuid.as_str(), d.external_device_id.as_str()), ("", ""));
        assert_eq!(res.assets[0].external_asset_id, "");
    }

    #[test]
    fn bad_adr_ids_are_refused_by_name() {
        let (mut device, mut asset) = adr();
        device["externalDeviceId"] = json!("x".repeat(300));
        asset["uuid"] = json!("9b1e\u{7}");
        let res = load_one(&device, &asset);
        let problems: Vec<String> = res.problems().iter().map(|e| e.to_string()).collect();
        assert_eq!(res.assets.len(), 0, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.starts_with("Device/press")
                && p.contains("endpoint sse: externalDeviceId is 300 bytes")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("Asset/line-1")
                    && p.contains("uuid \"9b1e\\u{7}\" holds U+0007")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_invalid_adr_resource_is_named_by_its_source() {
        let (mut device, asset) = adr();
        device["endpoints"]["inbound"]["sse"]["address"] = json!("ftp://press");
        let mut bad_asset = asset.clone();
        bad_asset["deviceRef"] = json!("press");
        let res = load_adr(
            &[AdrResource {
                name: "press",
                fields: &device,
            }],
            &[AdrResource {
                name: "line-9",
                fields: &bad_asset,
            }],
        );
        let problems: Vec<String> = res
            .problems()
            .iter()
            .map(|e| format!("{} {}: {}", e.file, e.resource, e.message))
            .collect();
        assert_eq!(
            problems,
            [
                "adr:asset/line-9 Asset/line-9: invalid Asset: invalid type: string \"press\", \
                 expected struct DeviceRef",
                "adr:device/press Device/press: endpoint sse: address scheme \"ftp\" is not http(s)",
            ]
        );
        assert!(res.assets.is_empty());
    }
}
