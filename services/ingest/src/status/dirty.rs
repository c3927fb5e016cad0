//! Which resources' reports may have changed since the status reporter last looked, so that it
//! rebuilds those and not every device and asset: building all of them for 10,000 streams holds
//! the ingest thread for about 15 ms (`cargo bench -p sse-ingest --bench status`).

use std::collections::BTreeSet;

/// Resources whose report may have changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Every resource: the resources were reloaded or the replica's share changed.
    pub all: bool,
    /// Devices, by name.
    pub devices: BTreeSet<String>,
    /// Assets, by name.
    pub assets: BTreeSet<String>,
}

impl Dirty {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.all && self.devices.is_empty() && self.assets.is_empty()
    }

    /// Marks one device and some of its assets (those a stream or route feeds).
    pub(super) fn mark<'a>(&mut self, device: &str, assets: impl IntoIterator<Item = &'a str>) {
        if self.all {
            return;
        }
        // Status reports travel on a route with no device or asset.
        if !device.is_empty() && !self.devices.contains(device) {
            self.devices.insert(device.to_string());
        }
        for a in assets {
            if !a.is_empty() && !self.assets.contains(a) {
                self.assets.insert(a.to_string());
            }
        }
    }

    /// Marks every resource.
    pub(super) fn mark_all(&mut self) {
        *self = Self {
            all: true,
            ..Self::default()
        };
    }
}
