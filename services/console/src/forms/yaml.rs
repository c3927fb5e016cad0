//! Resource documents as JSON values: parsed from the YAML ingest returns, edited in place (so
//! what a form does not show is kept), written back as YAML the way `ssectl` writes them.

use serde_json::{Map, Value};

/// The API version of ADR's namespaced resources, which the connector reads.
pub const API_VERSION: &str = "namespaces.deviceregistry.microsoft.com/v1";

/// `text` as a value; anything unreadable as an empty map (the form then starts afresh).
pub fn parse(text: &str) -> Value {
    serde_yaml_ng::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// `doc` as YAML text.
pub fn render(doc: &Value) -> String {
    // A JSON value always serializes; an empty document would be refused by ingest anyway.
    serde_yaml_ng::to_string(doc).unwrap_or_default()
}

/// The map at `key` of `v`, created (replacing anything that is not a map) when needed.
pub fn object<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    // Indexing a map by a missing key inserts null; null is then made a map.
    let slot = &mut v[key];
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot
}

/// The string at `path` (keys) of `v`; empty when absent.
pub fn text(v: &Value, path: &[&str]) -> String {
    let mut at = v;
    for k in path {
        match at.get(k) {
            Some(next) => at = next,
            None => return String::new(),
        }
    }
    match at {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// Sets the resource header: apiVersion, kind and metadata.name.
pub fn header(doc: &mut Value, kind: &str, name: &str) {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    doc["apiVersion"] = Value::String(API_VERSION.to_owned());
    doc["kind"] = Value::String(kind.to_owned());
    object(doc, "metadata")["name"] = Value::String(name.to_owned());
}
