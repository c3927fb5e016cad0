//! The ADR definitions the resource source holds between rounds (issue #26), so that a change
//! re-reads only what changed: an allocation change fetches the newly allocated endpoints and
//! assets and drops the removed ones, and an update notification replaces the definition it
//! carries without any call.
//!
//! ADR's `getDevice` returns a device with the inbound endpoint named in its topic only, so a
//! device with several allocated endpoints is held once per endpoint and merged into one
//! definition when the resources are built.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::adr::{Asset, Device, Notification};
use crate::adr_status::Versions;
use crate::akri::allocations::{Allocations, EndpointRef};
use crate::resources::{AdrResource, ResourceError, Resources, adr_source_name, load_adr};

/// An allocated asset: the endpoint it is allocated on and its name.
pub type AssetRef = (EndpointRef, String);

/// What a fetch gave: the definition, or why ADR could not give it (kept as the resource's
/// error, and fetched again on the next round).
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched<T> {
    /// The definition.
    Got(T),
    /// Why there is none.
    Failed(String),
}

/// What the next round must fetch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Endpoints whose device to get.
    pub endpoints: Vec<EndpointRef>,
    /// Assets to get.
    pub assets: Vec<AssetRef>,
}

/// The definitions held: one device definition per allocated endpoint, one per asset.
#[derive(Debug, Default)]
pub struct AdrCache {
    devices: BTreeMap<EndpointRef, Fetched<Device>>,
    assets: BTreeMap<AssetRef, Fetched<Asset>>,
}

impl AdrCache {
    /// Drops what `alloc` no longer allocates and returns what it allocates that is not held
    /// (or failed last time).
    pub fn wanted(&mut self, alloc: &Allocations) -> Wanted {
        self.devices.retain(|at, _| alloc.contains_key(at));
        self.assets
            .retain(|(at, name), _| alloc.get(at).is_some_and(|names| names.contains(name)));
        let mut wanted = Wanted::default();
        for (at, names) in alloc {
            if !held(self.devices.get(at)) {
                wanted.endpoints.push(at.clone());
            }
            for name in names {
                let key = (at.clone(), name.clone());
                if !held(self.assets.get(&key)) {
                    wanted.assets.push(key);
                }
            }
        }
        wanted
    }

    /// Holds what getDevice gave for `at`.
    pub fn put_device(&mut self, at: EndpointRef, device: Fetched<Device>) {
        self.devices.insert(at, device);
    }

    /// Holds what getAsset gave for `at`.
    pub fn put_asset(&mut self, at: AssetRef, asset: Fetched<Asset>) {
        self.assets.insert(at, asset);
    }

    /// Forgets every definition, so the next round fetches them all again.
    pub fn clear(&mut self) {
        self.devices.clear();
        self.assets.clear();
    }

    /// Replaces the definition a notification carries; ignored (false) when it is not held
    /// (not allocated) or older than the one held.
    pub fn update(&mut self, n: Notification) -> bool {
        match n {
            Notification::Device {
                device_name,
                endpoint_name,
                device,
            } => {
                let at = EndpointRef {
                    device: device_name,
                    endpoint: endpoint_name,
                };
                replace(self.devices.get_mut(&at), *device, |d| d.version)
            }
            Notification::Asset {
                device_name,
                endpoint_name,
                asset_name,
                asset,
            } => {
                let at = EndpointRef {
                    device: device_name,
                    endpoint: endpoint_name,
                };
                let held = self.assets.get_mut(&(at, asset_name));
                replace(held, *asset, |a| a.version)
            }
        }
    }

    /// The held definitions validated as one set of resources: each device's endpoints merged
    /// into one definition, and what ADR could not give as resource errors; with the
    /// definitions' versions, which status to ADR reports against.
    pub fn resources(&self) -> (Resources, Versions) {
        let mut errors = Vec::new();
        let mut by_device: BTreeMap<&str, Vec<(&str, &Device)>> = BTreeMap::new();
        for (at, fetched) in &self.devices {
            match fetched {
                Fetched::Got(d) => by_device
                    .entry(&at.device)
                    .or_default()
                    .push((&at.endpoint, d)),
                Fetched::Failed(m) => errors.push(problem("Device", &at.device, m)),
            }
        }
        let mut devices = Vec::new();
        for (name, parts) in by_device {
            push_json(&mut devices, &mut errors, "Device", name, &merge(&parts));
        }
        let mut assets = Vec::new();
        for ((_, name), fetched) in &self.assets {
            match fetched {
                Fetched::Got(a) => push_json(&mut assets, &mut errors, "Asset", name, a),
                Fetched::Failed(m) => errors.push(problem("Asset", name, m)),
            }
        }
        let mut res = load_adr(&refs(&devices), &refs(&assets));
        res.errors.extend(errors);
        (res, Versions::of(&devices, &assets))
    }
}

/// Whether a definition is held (not absent, not failed).
fn held<T>(f: Option<&Fetched<T>>) -> bool {
    matches!(f, Some(Fetched::Got(_)))
}

/// Replaces `held` by `new` unless `held` is a definition of a higher version.
fn replace<T>(held: Option<&mut Fetched<T>>, new: T, version: impl Fn(&T) -> Option<u64>) -> bool {
    let Some(held) = held else {
        return false;
    };
    if let Fetched::Got(old) = &*held
        && version(old).unwrap_or(0) > version(&new).unwrap_or(0)
    {
        return false;
    }
    *held = Fetched::Got(new);
    true
}

/// One device from its per-endpoint definitions (`(endpoint, definition)`): the fields of the
/// highest version, and from each definition the inbound endpoint it was fetched for.
pub fn merge(parts: &[(&str, &Device)]) -> Device {
    let base = parts
        .iter()
        .rev() // on equal versions, the first endpoint's fields
        .max_by_key(|(_, d)| d.version.unwrap_or(0))
        .map(|(_, d)| (*d).clone())
        .unwrap_or_default();
    let mut merged = base;
    let endpoints = merged.endpoints.get_or_insert_with(Default::default);
    let inbound = endpoints.inbound.get_or_insert_with(Default::default);
    inbound.clear();
    for (name, d) in parts {
        let own = d
            .endpoints
            .as_ref()
            .and_then(|e| e.inbound.as_ref())
            .and_then(|i| i.get(*name));
        if let Some(e) = own {
            inbound.insert((*name).to_string(), e.clone());
        }
    }
    merged
}

/// Adds `value` as JSON to `out`, or its encoding failure to `errors`.
fn push_json<T: Serialize>(
    out: &mut Vec<(String, Value)>,
    errors: &mut Vec<ResourceError>,
    kind: &str,
    name: &str,
    value: &T,
) {
    match serde_json::to_value(value) {
        Ok(v) => out.push((name.to_string(), v)),
        Err(e) => errors.push(problem(
            kind,
            name,
            &format!("ADR's definition cannot be encoded as JSON: {e}"),
        )),
    }
}

/// Named JSON definitions as `load_adr` takes them.
fn refs(v: &[(String, Value)]) -> Vec<AdrResource<'_>> {
    v.iter()
        .map(|(name, fields)| AdrResource { name, fields })
        .collect()
}

/// The resource error of `kind` `name` that ADR could not give.
fn problem(kind: &str, name: &str, message: &str) -> ResourceError {
    ResourceError {
        resource: format!("{kind}/{name}"),
        file: adr_source_name(kind, name),
        message: message.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    fn at(d: &str, e: &str) -> EndpointRef {
        EndpointRef {
            device: d.into(),
            endpoint: e.into(),
        }
    }

    fn device(version: u64, endpoint: &str, model: &str) -> Device {
        serde_json::from_value(json!({
            "version": version, "model": model,
            "endpoints": {"inbound": {endpoint: {
                "address": format!("http://h/{endpoint}"), "endpointType": "Microsoft.SSEHttp"}}}
        }))
        .unwrap()
    }

    fn asset(version: u64, topic: &str) -> Asset {
        serde_json::from_value(json!({
            "version": version,
            "deviceRef": {"deviceName": "dev", "endpointName": "a"},
            "datasets": [{"name": "all", "dataSource": "/x",
                "destinations": [{"target": "Mqtt", "configuration": {"topic": topic}}]}]
        }))
        .unwrap()
    }

    fn alloc(entries: &[(&str, &str, &[&str])]) -> Allocations {
        entries
            .iter()
            .map(|(d, e, names)| {
                let names: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
                (at(d, e), names)
            })
            .collect()
    }

    #[test]
    fn endpoints_merge_into_one_device_with_the_fields_of_the_higher_version() {
        let (a, b) = (device(1, "a", "old"), device(2, "b", "new"));
        let merged = merge(&[("a", &a), ("b", &b)]);
        assert_eq!(merged.version, Some(2));
        assert_eq!(merged.model.as_deref(), Some("new"));
        let inbound = merged.endpoints.unwrap().inbound.unwrap();
        assert_eq!(inbound.keys().collect::<Vec<_>>(), ["a", "b"]);
        // Only the endpoint each definition was fetched for.
        let merged = merge(&[("a", &b)]);
        assert!(merged.endpoints.unwrap().inbound.unwrap().is_empty());
    }

    #[test]
    fn only_what_is_new_or_failed_is_wanted_and_removed_ones_are_dropped() {
        let mut cache = AdrCache::default();
        let first = alloc(&[("dev", "a", &["x", "y"])]);
        let wanted = cache.wanted(&first);
        assert_eq!(wanted.endpoints, [at("dev", "a")]);
        assert_eq!(wanted.assets.len(), 2);
        cache.put_device(at("dev", "a"), Fetched::Got(device(1, "a", "m")));
        cache.put_asset((at("dev", "a"), "x".into()), Fetched::Got(asset(1, "t")));
        let failed = Fetched::Failed("not found".into());
        cache.put_asset((at("dev", "a"), "y".into()), failed);
        let wanted = cache.wanted(&alloc(&[("dev", "a", &["x", "y", "z"])]));
        let names: Vec<&str> = wanted.assets.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["y", "z"], "the failed one and the new one");
        assert!(wanted.endpoints.is_empty());
        assert!(cache.wanted(&alloc(&[])).endpoints.is_empty());
        assert!(cache.resources().0.assets.is_empty(), "all dropped");
    }

    #[test]
    fn a_notification_replaces_a_held_definition_unless_older() {
        let mut cache = AdrCache::default();
        let key = (at("dev", "a"), "x".to_string());
        cache.put_device(at("dev", "a"), Fetched::Got(device(1, "a", "m")));
        cache.put_asset(key.clone(), Fetched::Got(asset(2, "t1")));
        let note = |version, name: &str, topic| Notification::Asset {
            device_name: "dev".into(),
            endpoint_name: "a".into(),
            asset_name: name.into(),
            asset: Box::new(asset(version, topic)),
        };
        assert!(!cache.update(note(3, "other", "t")), "not allocated");
        assert!(!cache.update(note(1, "x", "stale")), "older");
        assert!(cache.update(note(3, "x", "t3")));
        let (res, _) = cache.resources();
        assert!(res.problems().is_empty(), "{:?}", res.problems());
        assert_eq!(res.assets.len(), 1);
        assert_eq!(cache.assets[&key], Fetched::Got(asset(3, "t3")));
    }
}
