//! The ready Asset YAML of an endpoint's discovered types: an Asset on the endpoint with one
//! event group per stream they came from and one event per type (`dataSource` = the type), each
//! to a placeholder topic, which the resource loader accepts as it is.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// The resource API version of the snippet, the one the loader reads.
const API_VERSION: &str = "namespaces.deviceregistry.microsoft.com/v1";
/// Longest generated name (a Kubernetes name label).
const NAME_MAX: usize = 63;

/// One discovered type as the snippet needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnippetType<'a> {
    /// The SSE `event:` type.
    pub sse_type: &'a str,
    /// The data source of the stream it came on, relative to the endpoint address.
    pub stream_source: &'a str,
}

/// `s` as a resource name: lower-case letters, digits and `-`, at most 63 characters, never
/// empty (a type like `a.b/c` becomes `a-b-c`).
pub fn name_of(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= NAME_MAX {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() { "event".into() } else { out }
}

/// The Asset YAML routing every type of `types` read on `device`'s `endpoint`.
pub fn asset_yaml(device: &str, endpoint: &str, types: &[SnippetType<'_>]) -> String {
    let mut by_source: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in types {
        by_source
            .entry(t.stream_source)
            .or_default()
            .push(t.sse_type);
    }
    let several = by_source.len() > 1;
    let groups: Vec<Value> = by_source
        .iter()
        .enumerate()
        .map(|(i, (source, types))| {
            let name = if several {
                format!("discovered-{}", i + 1)
            } else {
                "discovered".into()
            };
            group(device, endpoint, &name, source, types)
        })
        .collect();
    let asset = json!({
        "apiVersion": API_VERSION,
        "kind": "Asset",
        "metadata": { "name": name_of(&format!("{device}-{endpoint}-discovered")) },
        "spec": {
            "deviceRef": { "deviceName": device, "endpointName": endpoint },
            "eventGroups": groups,
        },
    });
    serde_yaml_ng::to_string(&asset).unwrap_or_default()
}

/// One event group of the snippet: an event per type, named after it (made unique).
fn group(device: &str, endpoint: &str, name: &str, source: &str, types: &[&str]) -> Value {
    let mut used = BTreeSet::new();
    let events: Vec<Value> = types
        .iter()
        .map(|t| {
            let base = name_of(t);
            let mut event = base.clone();
            let mut n = 1;
            while !used.insert(event.clone()) {
                n += 1;
                event = format!("{base}-{n}");
            }
            let topic = format!(
                "discovered/{}/{}/{event}",
                name_of(device),
                name_of(endpoint)
            );
            json!({
                "name": event,
                "dataSource": t,
                "destinations": [ { "target": "Mqtt", "configuration": { "topic": topic } } ],
            })
        })
        .collect();
    let mut g = json!({ "name": name, "events": events });
    if !source.is_empty()
        && let Value::Object(m) = &mut g
    {
        m.insert("dataSource".into(), Value::String(source.to_string()));
    }
    g
}
