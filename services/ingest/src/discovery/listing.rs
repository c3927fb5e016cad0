//! What `ListDiscovered` (and the discovery topic) show of an endpoint: its types with counts,
//! times, the inferred schema of the sample and the ready Asset YAML. Built off the readers'
//! path (on the blocking pool): the schemas still missing are inferred outside the endpoint's
//! lock, once per type, each from a sample of at most the sample limit.

use std::sync::Arc;

use serde_json::Value;
use sse_schema::infer::Shape;

use super::snippet::{self, SnippetType};
use super::{Discovery, EndpointTypes, Seen};

/// One discovered type as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedType {
    /// The SSE `event:` type.
    pub sse_type: String,
    /// Counts and times.
    pub seen: Seen,
    /// The sample's draft-07 JSON Schema as JSON text; empty when the sample is truncated or
    /// no JSON.
    pub schema: String,
    /// Whether the sample was cut at the sample limit.
    pub truncated: bool,
    /// The data source of the stream it came on, relative to the endpoint address.
    pub stream_source: String,
}

/// One endpoint's discovered types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Device name.
    pub device: String,
    /// Endpoint name.
    pub endpoint: String,
    /// Types, by name.
    pub types: Vec<ListedType>,
    /// Events of types past the cap, counted together.
    pub other: Option<Seen>,
    /// An Asset routing every listed type, for the resources.
    pub asset_yaml: String,
}

/// The draft-07 schema of `sample` as JSON text; empty when it is no JSON.
pub fn infer(sample: &[u8]) -> String {
    match serde_json::from_slice::<Value>(sample) {
        Ok(v) => Shape::of(&v).to_schema().to_string(),
        Err(_) => String::new(),
    }
}

/// The listing of every endpoint (of `device` only, when given) that discovered something.
/// Blocking: call it on the blocking pool.
pub fn list(discovery: &Discovery, device: Option<&str>) -> Vec<Listing> {
    discovery
        .all(device)
        .iter()
        .filter_map(|ep| of_endpoint(ep))
        .collect()
}

/// One endpoint's listing; `None` when it discovered nothing.
pub fn of_endpoint(ep: &EndpointTypes) -> Option<Listing> {
    infer_missing(ep);
    let t = ep.lock();
    if t.by_type.is_empty() && t.other.is_none() {
        return None;
    }
    let mut types: Vec<ListedType> = t
        .by_type
        .iter()
        .map(|(name, d)| ListedType {
            sse_type: name.to_string(),
            seen: d.seen,
            schema: d.schema.as_deref().unwrap_or_default().to_string(),
            truncated: d.truncated,
            stream_source: d.stream_source.to_string(),
        })
        .collect();
    let other = t.other;
    drop(t);
    types.sort_by(|a, b| a.sse_type.cmp(&b.sse_type));
    let snippet: Vec<SnippetType<'_>> = types
        .iter()
        .map(|t| SnippetType {
            sse_type: &t.sse_type,
            stream_source: &t.stream_source,
        })
        .collect();
    let asset_yaml = snippet::asset_yaml(&ep.device, &ep.endpoint, &snippet);
    Some(Listing {
        device: ep.device.clone(),
        endpoint: ep.endpoint.clone(),
        types,
        other,
        asset_yaml,
    })
}

/// Infers the schema of every type not inferred yet, outside the lock (a reader of the endpoint
/// is never held up by it); a truncated sample gets none.
fn infer_missing(ep: &EndpointTypes) {
    let todo: Vec<(Box<str>, Arc<[u8]>, bool)> = ep
        .lock()
        .by_type
        .iter()
        .filter(|(_, d)| d.schema.is_none())
        .map(|(n, d)| (n.clone(), d.sample.clone(), d.truncated))
        .collect();
    if todo.is_empty() {
        return;
    }
    let done: Vec<(Box<str>, Arc<str>)> = todo
        .into_iter()
        .map(|(n, sample, truncated)| {
            let schema = if truncated {
                String::new()
            } else {
                infer(&sample)
            };
            (n, Arc::from(schema))
        })
        .collect();
    let mut t = ep.lock();
    for (n, schema) in done {
        if let Some(d) = t.by_type.get_mut(&n) {
            d.schema = Some(schema);
            // Only the schema is shown: the sample's memory goes back.
            d.sample = Arc::from(&[][..]);
        }
    }
}
