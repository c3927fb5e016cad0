//! Which resources' reports may have changed since each consumer of the status last looked, so
//! that it rebuilds those and not every device and asset: building all of them for 10,000
//! streams holds the ingest thread for about 15 ms (`cargo bench -p sse-ingest --bench status`).
//!
//! Two consumers read the marks (the retained status reporter and, in ADR mode, the status sent
//! to Azure Device Registry); each has its own set, so one taking its marks cannot hide a change
//! from the other.

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

/// Who takes the marks: each has its own set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumer {
    /// The retained status reports ([`crate::report::Reporter`]).
    Reporter,
    /// The status and health sent to Azure Device Registry ([`crate::adr_status`]).
    Adr,
}

/// The marks of every consumer. A set no one takes (no ADR source, or status reports off)
/// stays bounded: by the resource names, and by one flag once everything is marked.
#[derive(Debug, Default)]
pub(super) struct Marks([Dirty; 2]);

impl Marks {
    /// Marks one device and some of its assets for every consumer.
    pub(super) fn mark<'a, I>(&mut self, device: &str, assets: I)
    where
        I: IntoIterator<Item = &'a str> + Clone,
    {
        for d in &mut self.0 {
            d.mark(device, assets.clone());
        }
    }

    /// Marks every resource for every consumer.
    pub(super) fn mark_all(&mut self) {
        self.0.iter_mut().for_each(Dirty::mark_all);
    }

    /// Takes `consumer`'s marks, leaving the others'.
    pub(super) fn take(&mut self, consumer: Consumer) -> Dirty {
        let i = match consumer {
            Consumer::Reporter => 0,
            Consumer::Adr => 1,
        };
        std::mem::take(&mut self.0[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_consumer_takes_its_own_marks() {
        let mut m = Marks::default();
        m.mark("d", ["a"]);
        let reporter = m.take(Consumer::Reporter);
        assert!(reporter.devices.contains("d") && reporter.assets.contains("a"));
        assert!(m.take(Consumer::Reporter).is_empty(), "taken");
        m.mark("e", []);
        // The ADR consumer still sees the first change, and the second.
        let adr = m.take(Consumer::Adr);
        assert_eq!(adr.devices, BTreeSet::from(["d".into(), "e".into()]));
        assert_eq!(adr.assets, BTreeSet::from(["a".into()]));
        assert!(m.take(Consumer::Adr).is_empty());
        let reporter = m.take(Consumer::Reporter);
        assert_eq!(reporter.devices, BTreeSet::from(["e".into()]));
        m.mark_all();
        assert!(m.take(Consumer::Adr).all);
        assert!(m.take(Consumer::Reporter).all);
    }
}
