//! Devices and assets as the connector's resource documents (Azure Device Registry's shapes),
//! built from the command's flags and written with `PutResource`.

use serde_json::{Map, Value, json};

use crate::cli::{AssetCreate, Auth, SseEndpoint};

/// The API version of ADR's namespaced resources, which the connector reads.
const API_VERSION: &str = "namespaces.deviceregistry.microsoft.com/v1";

/// Name of the one event group `asset sse create --event` fills.
const EVENT_GROUP: &str = "events";

/// A device without endpoints.
pub fn empty_device(name: &str) -> Value {
    json!({
        "apiVersion": API_VERSION,
        "kind": "Device",
        "metadata": { "name": name },
        "spec": { "endpoints": { "inbound": {} } },
    })
}

/// `doc` (a Device) with the SSE endpoint `e` added, or replaced if one has its name.
pub fn add_endpoint(mut doc: Value, e: &SseEndpoint) -> anyhow::Result<Value> {
    let spec = object(&mut doc, "spec")?;
    let endpoints = object(spec, "endpoints")?;
    let inbound = object(endpoints, "inbound")?;
    let inbound = inbound
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("spec.endpoints.inbound is not a map"))?;
    inbound.insert(e.name.clone(), endpoint(e));
    Ok(doc)
}

/// The endpoint entry of `e`.
fn endpoint(e: &SseEndpoint) -> Value {
    let auth = match e.auth {
        Auth::Anonymous => json!({ "method": "Anonymous" }),
        Auth::UsernamePassword => json!({
            "method": "UsernamePassword",
            "usernamePasswordCredentials": {
                "usernameSecretName": e.username_secret,
                "passwordSecretName": e.password_secret,
            },
        }),
        Auth::Certificate => json!({
            "method": "Certificate",
            "x509Credentials": {
                "certificateSecretName": e.cert_secret,
                "keySecretName": e.key_secret,
            },
        }),
    };
    let mut ep = json!({
        "endpointType": "Microsoft.SSEHttp",
        "address": e.address,
        "authentication": auth,
    });
    if let Some(t) = &e.trust_list {
        ep["trustSettings"] = json!({ "trustList": t });
    }
    ep
}

/// The member `key` of `v`, created as an empty map when missing.
fn object<'a>(v: &'a mut Value, key: &str) -> anyhow::Result<&'a mut Value> {
    let map = v
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("the device is not a map at {key}"))?;
    let slot = map.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    Ok(slot)
}

/// The asset `a` describes: its events in one event group, or else one dataset on `/`.
pub fn asset(a: &AssetCreate) -> anyhow::Result<Value> {
    let dests = a.dest()?.map(|d| d.to_yaml());
    let with_dest = |mut v: Value| {
        if let Some(d) = &dests {
            v["destinations"] = d.clone();
        }
        v
    };
    let mut spec = json!({
        "deviceRef": { "deviceName": a.device, "endpointName": a.endpoint },
    });
    if a.events.is_empty() {
        spec["datasets"] = json!([with_dest(json!({ "name": a.name, "dataSource": "/" }))]);
    } else {
        let events: Vec<Value> = a
            .events
            .iter()
            .map(|(n, t)| with_dest(json!({ "name": n, "dataSource": t })))
            .collect();
        spec["eventGroups"] = json!([{ "name": EVENT_GROUP, "events": events }]);
    }
    Ok(json!({
        "apiVersion": API_VERSION,
        "kind": "Asset",
        "metadata": { "name": a.name },
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_endpoint_is_added_to_an_empty_device() {
        let e = SseEndpoint {
            device: "d".into(),
            name: "sse".into(),
            address: "http://x".into(),
            auth: Auth::UsernamePassword,
            username_secret: Some("s/u".into()),
            password_secret: Some("s/p".into()),
            cert_secret: None,
            key_secret: None,
            trust_list: None,
            write: crate::cli::Write::default(),
        };
        let d = add_endpoint(empty_device("d"), &e).unwrap();
        let ep = &d["spec"]["endpoints"]["inbound"]["sse"];
        assert_eq!(ep["address"], "http://x");
        assert_eq!(
            ep["authentication"]["usernamePasswordCredentials"]["passwordSecretName"],
            "s/p"
        );
    }
}
