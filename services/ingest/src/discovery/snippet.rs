//! The ready Asset YAML of an endpoint's discovered types: an Asset on the endpoint with one
//! event group per stream they came from and one event per type (`dataSource` = the type), each
//! to a placeholder topic, which the resource loader accepts as it is.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::resources::API_VERSION;

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

/// The snippet's Asset, its fields in the order a person writes them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Asset<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: Metadata,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    device_ref: DeviceRef<'a>,
    event_groups: Vec<Group<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRef<'a> {
    device_name: &'a str,
    endpoint_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Group<'a> {
    name: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    data_source: &'a str,
    events: Vec<Event<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    name: String,
    data_source: &'a str,
    destinations: [Destination; 1],
}

#[derive(Serialize)]
struct Destination {
    target: &'static str,
    configuration: Topic,
}

#[derive(Serialize)]
struct Topic {
    topic: String,
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
    let event_groups = by_source
        .iter()
        .enumerate()
        .map(|(i, (source, types))| Group {
            name: if several {
                format!("discovered-{}", i + 1)
            } else {
                "discovered".into()
            },
            data_source: source,
            events: events(device, endpoint, types),
        })
        .collect();
    let asset = Asset {
        api_version: API_VERSION,
        kind: "Asset",
        metadata: Metadata {
            name: name_of(&format!("{device}-{endpoint}-discovered")),
        },
        spec: Spec {
            device_ref: DeviceRef {
                device_name: device,
                endpoint_name: endpoint,
            },
            event_groups,
        },
    };
    serde_yaml_ng::to_string(&asset).unwrap_or_default()
}

/// One event per type, named after it (made unique), to a placeholder topic.
fn events<'a>(device: &str, endpoint: &str, types: &[&'a str]) -> Vec<Event<'a>> {
    let mut used = BTreeSet::new();
    types
        .iter()
        .map(|t| {
            let base = name_of(t);
            let mut name = base.clone();
            let mut n = 1;
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{base}-{n}");
            }
            let topic = format!(
                "discovered/{}/{}/{name}",
                name_of(device),
                name_of(endpoint)
            );
            Event {
                name,
                data_source: t,
                destinations: [Destination {
                    target: "Mqtt",
                    configuration: Topic { topic },
                }],
            }
        })
        .collect()
}
