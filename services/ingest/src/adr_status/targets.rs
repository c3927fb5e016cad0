//! What the ADR status sink reports on: the allocated device endpoints and assets, and the
//! version of each definition the ADR source fetched (ADR's `config.version` and the runtime
//! health's `version`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::akri::allocations::Allocations;

/// A resource ADR keeps a status for: one inbound endpoint of a device (`updateDeviceStatus`
/// names the endpoint), or an asset with the device endpoint its commands go to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// A device's inbound endpoint.
    Device {
        /// The device.
        device: String,
        /// The endpoint.
        endpoint: String,
    },
    /// An asset of a device's inbound endpoint.
    Asset {
        /// The device.
        device: String,
        /// The endpoint.
        endpoint: String,
        /// The asset.
        asset: String,
    },
}

impl Target {
    /// The device and endpoint the topic names.
    pub fn at(&self) -> (&str, &str) {
        match self {
            Self::Device { device, endpoint }
            | Self::Asset {
                device, endpoint, ..
            } => (device, endpoint),
        }
    }
}

/// The versions of the definitions the source fetched, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    /// Devices.
    pub devices: BTreeMap<String, u64>,
    /// Assets.
    pub assets: BTreeMap<String, u64>,
}

impl Versions {
    /// The `version` of each named definition (as `load_adr` takes them) that has one.
    pub fn of(devices: &[(String, Value)], assets: &[(String, Value)]) -> Self {
        let read = |v: &[(String, Value)]| {
            (v.iter())
                .filter_map(|(n, d)| Some((n.clone(), d.get("version")?.as_u64()?)))
                .collect()
        };
        Self {
            devices: read(devices),
            assets: read(assets),
        }
    }
}

/// What the source serves now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The allocation.
    pub alloc: Allocations,
    /// The definitions' versions.
    pub versions: Versions,
}

/// The targets by resource name, so a pass finds a changed resource's targets without walking
/// the allocation.
#[derive(Debug, Default)]
pub struct Index {
    /// Device name to its allocated endpoints' targets.
    pub devices: BTreeMap<String, Vec<Target>>,
    /// Asset name to its targets (one per allocating endpoint).
    pub assets: BTreeMap<String, Vec<Target>>,
}

impl Index {
    /// Indexes `alloc`.
    pub fn of(alloc: &Allocations) -> Self {
        let mut ix = Self::default();
        for (ep, assets) in alloc {
            let (device, endpoint) = (ep.device.clone(), ep.endpoint.clone());
            ix.devices
                .entry(device.clone())
                .or_default()
                .push(Target::Device {
                    device: device.clone(),
                    endpoint: endpoint.clone(),
                });
            for a in assets {
                ix.assets.entry(a.clone()).or_default().push(Target::Asset {
                    device: device.clone(),
                    endpoint: endpoint.clone(),
                    asset: a.clone(),
                });
            }
        }
        ix
    }

    /// Whether `t` is allocated.
    pub fn contains(&self, t: &Target) -> bool {
        let of = match t {
            Target::Device { device, .. } => self.devices.get(device),
            Target::Asset { asset, .. } => self.assets.get(asset),
        };
        of.is_some_and(|v| v.contains(t))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::akri::allocations::EndpointRef;
    use serde_json::json;

    #[test]
    fn versions_and_targets_come_from_the_definitions_and_allocation() {
        let v = Versions::of(
            &[("d".into(), json!({"version": 4})), ("x".into(), json!({}))],
            &[("a".into(), json!({"version": 2}))],
        );
        assert_eq!(v.devices, BTreeMap::from([("d".into(), 4)]));
        assert_eq!(v.assets, BTreeMap::from([("a".into(), 2)]));
        let alloc = Allocations::from([(
            EndpointRef::from_file_name("d_e").unwrap(),
            ["a".to_string()].into(),
        )]);
        let ix = Index::of(&alloc);
        let asset = Target::Asset {
            device: "d".into(),
            endpoint: "e".into(),
            asset: "a".into(),
        };
        assert!(ix.contains(&asset));
        assert_eq!(asset.at(), ("d", "e"));
        assert!(!ix.contains(&Target::Device {
            device: "d".into(),
            endpoint: "f".into()
        }));
    }
}
