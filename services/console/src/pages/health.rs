//! Health of devices and assets as the lists show it, merged over every ingest replica's
//! `GetStatus` (each reports the streams it reads), and whether resources are writable.

use std::collections::BTreeMap;

use sse_proto::v1::{AssetStatus, DeviceStatus, GetStatusRequest, RuntimeHealth, StatusError};

use crate::server::AppState;

/// What every replica said, merged by name.
#[derive(Debug, Default)]
pub struct Overview {
    /// Each device's statuses, one per replica that knows it.
    pub devices: BTreeMap<String, Vec<DeviceStatus>>,
    /// Each asset's statuses, one per replica that knows it.
    pub assets: BTreeMap<String, Vec<AssetStatus>>,
    /// Why resources are not writable (from any replica); `None`: writable.
    pub read_only: Option<String>,
    /// Replicas that did not answer.
    pub problems: Vec<String>,
}

impl Overview {
    /// Asks every ingest replica.
    pub async fn fetch(st: &AppState) -> Self {
        let mut out = Self::default();
        let ingests = st.backend.ingests();
        if ingests.is_empty() {
            out.problems
                .push("no ingest address is known yet".to_owned());
        }
        for (addr, mut c) in ingests {
            match c.get_status(GetStatusRequest {}).await {
                Ok(r) => {
                    let r = r.into_inner();
                    for d in r.devices {
                        out.devices.entry(d.name.clone()).or_default().push(d);
                    }
                    for a in r.assets {
                        out.assets.entry(a.name.clone()).or_default().push(a);
                    }
                    if !r.resources_read_only_reason.is_empty() && out.read_only.is_none() {
                        out.read_only = Some(r.resources_read_only_reason);
                    }
                }
                Err(e) => {
                    st.backend.ingest.refresh();
                    out.problems.push(format!("{addr}: {}", e.message()));
                }
            }
        }
        out
    }
}

/// `Available`, or `Unavailable: <reason>`: a configuration error first, then any replica's
/// Unavailable health, then Available if one reads it.
fn verdict<'a>(
    errors: impl Iterator<Item = &'a StatusError>,
    healths: impl Iterator<Item = &'a RuntimeHealth>,
    unread: &str,
) -> String {
    if let Some(e) = errors.into_iter().next() {
        return format!("Unavailable: {}", e.message);
    }
    let healths: Vec<&RuntimeHealth> = healths.collect();
    if let Some(h) = healths.iter().find(|h| h.status != "Available") {
        let why = if h.message.is_empty() {
            &h.reason_code
        } else {
            &h.message
        };
        return format!("Unavailable: {why}");
    }
    if healths.is_empty() {
        return format!("Unavailable: {unread}");
    }
    "Available".to_owned()
}

/// A device's health over its replicas.
pub fn device(statuses: &[DeviceStatus]) -> String {
    let config = statuses
        .iter()
        .filter_map(|d| d.config.as_ref()?.error.as_ref());
    let endpoints = statuses.iter().flat_map(|d| &d.inbound_endpoints);
    let errors = config.chain(endpoints.clone().filter_map(|e| e.error.as_ref()));
    let healths = endpoints.filter_map(|e| e.runtime_health.as_ref());
    verdict(errors, healths, "no asset reads its endpoints yet")
}

/// An asset's health over its replicas.
pub fn asset(statuses: &[AssetStatus]) -> String {
    let config = statuses
        .iter()
        .filter_map(|a| a.config.as_ref()?.error.as_ref());
    let ops = statuses.iter().flat_map(|a| {
        a.datasets
            .iter()
            .chain(a.event_groups.iter().flat_map(|g| &g.events))
    });
    let healths: Vec<&RuntimeHealth> = ops.filter_map(|o| o.runtime_health.as_ref()).collect();
    verdict(config, healths.into_iter(), "its stream is not read yet")
}

/// The endpoint names of every device, by device.
pub fn endpoints(o: &Overview) -> BTreeMap<String, Vec<String>> {
    o.devices
        .iter()
        .map(|(name, s)| {
            let mut eps: Vec<String> = s
                .iter()
                .flat_map(|d| d.inbound_endpoints.iter().map(|e| e.name.clone()))
                .collect();
            eps.sort();
            eps.dedup();
            (name.clone(), eps)
        })
        .collect()
}
