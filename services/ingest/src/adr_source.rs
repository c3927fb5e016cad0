//! The ADR resource source (issue #26): the Devices and Assets the Akri operator allocated this
//! connector, read from Azure Device Registry and applied exactly as a file reload is
//! ([`reload::prepare`], [`reload::apply`]). It re-reads them whenever the allocation directory
//! changes or ADR notifies a device or asset update.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use sse_runtime::Shutdown;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::adr::{AdrClient, AdrError, Notification, NotificationPreference};
use crate::adr_status::{AdrStatus, Targets, Versions};
use crate::akri::allocations::{self, Allocations, Bounds};
use crate::config::Settings;
use crate::error::Error;
use crate::reload;
use crate::resources::{AdrResource, ResourceError, Resources, adr_source_name, load_adr};
use crate::secret_access::AccessFile;
use crate::source::AdrSource;
use crate::status::Status;
use crate::supervisor::Supervisor;
use crate::watch;

/// Everything the source needs while it runs.
pub struct Follower {
    /// The ingest settings (planning, debounce).
    pub settings: Settings,
    /// The source's configuration.
    pub source: AdrSource,
    /// The running streams.
    pub streams: Supervisor,
    /// Status of devices, assets and streams.
    pub status: Arc<Status>,
    /// The secret allow-list.
    pub access: Arc<AccessFile>,
}

/// A notification preference this connector turned on: an endpoint's device, or an asset.
type Subscribed = BTreeSet<(String, String, Option<String>)>;

impl Follower {
    /// Connects the ADR client (under `shutdown`) and serves the allocated resources until
    /// `shutdown` is cancelled.
    pub fn start(self, shutdown: &Shutdown) -> Result<(), Error> {
        let (client, notes) = AdrClient::start(&self.source.client, shutdown)
            .map_err(|e| Error::Config(format!("the ADR client: {e}")))?;
        let token = shutdown.token.clone();
        let reported = self.status_sink(&client, shutdown);
        shutdown
            .tracker
            .spawn(self.run(client, notes, token, reported));
        Ok(())
    }

    /// Starts reporting status and health to ADR with the same client (ADR authorises only the
    /// connector's identity); what the source serves goes to it after each apply.
    fn status_sink(
        &self,
        client: &AdrClient,
        shutdown: &Shutdown,
    ) -> tokio::sync::watch::Sender<Targets> {
        let sink = AdrStatus {
            client: client.clone(),
            status: self.status.clone(),
            health_interval: self.source.health_interval,
        };
        sink.start(&shutdown.tracker, shutdown.token.clone())
    }

    async fn run(
        mut self,
        client: AdrClient,
        mut notes: mpsc::Receiver<Notification>,
        token: CancellationToken,
        reported: tokio::sync::watch::Sender<Targets>,
    ) {
        let watching = watch::WatchSettings {
            debounce: self.settings.flags.reload_debounce,
            rescan: self.settings.flags.rescan_interval,
        };
        let dir = self.source.contract.resources_dir.clone();
        // The operator writes the files at the top level (or swaps `..data`): not recursive.
        let mut watch = watch::DirWatch::flat(&dir, watching);
        let mut current = Arc::new(Resources::default());
        let mut subscribed = Subscribed::new();
        loop {
            let at = dir.clone();
            let Ok(alloc) = tokio::task::spawn_blocking(move || read_allocations(&at)).await else {
                return; // the runtime is shutting down
            };
            subscribe(&client, &alloc, &mut subscribed).await;
            let Some((res, versions)) = fetch(&client, &alloc, &token).await else {
                return; // shut down
            };
            let loaded = reload::prepare(
                &self.settings,
                &self.status,
                &self.access,
                Some(current.clone()),
                res,
            );
            let loaded = tokio::select! {
                r = loaded => r,
                _ = token.cancelled() => return,
            };
            reload::apply(&mut self.streams, loaded, &mut current).await;
            reported.send_replace(Targets { alloc, versions });
            let next = tokio::select! {
                r = watch.next(&token) => r,
                n = notes.recv() => n.map(|n| log_update(&n)),
            };
            if next.is_none() || token.is_cancelled() {
                return;
            }
            // One re-read covers every update queued meanwhile.
            while let Ok(n) = notes.try_recv() {
                log_update(&n);
            }
        }
    }
}

/// Logs which definition ADR says changed (names only: definitions name secrets).
fn log_update(n: &Notification) {
    match n {
        Notification::Device {
            device_name,
            endpoint_name,
            ..
        } => tracing::info!(device = %device_name, endpoint = %endpoint_name, "ADR device updated"),
        Notification::Asset {
            device_name,
            asset_name,
            ..
        } => tracing::info!(device = %device_name, asset = %asset_name, "ADR asset updated"),
    }
}

/// The allocations; an unreadable directory allocates nothing (logged), a bad entry is skipped.
fn read_allocations(dir: &std::path::Path) -> Allocations {
    match allocations::read(dir, Bounds::default()) {
        Ok(read) => {
            for e in &read.skipped {
                tracing::warn!(error = %e, "allocation entry skipped");
            }
            read.allocations
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the allocation directory");
            Allocations::new()
        }
    }
}

/// Turns update notifications on for each allocated device endpoint and asset not yet on; a
/// failure is logged and tried again on the next round.
async fn subscribe(client: &AdrClient, alloc: &Allocations, done: &mut Subscribed) {
    for (ep, assets) in alloc {
        let (d, e) = (ep.device.as_str(), ep.endpoint.as_str());
        let keys = std::iter::once(None).chain(assets.iter().map(Some));
        for asset in keys {
            let key = (d.to_string(), e.to_string(), asset.cloned());
            if done.contains(&key) {
                continue;
            }
            let on = NotificationPreference::On;
            let r = match asset {
                None => client.set_device_notifications(d, e, on).await,
                Some(a) => client.set_asset_notifications(d, e, a, on).await,
            };
            match r {
                Ok(_) => {
                    done.insert(key);
                }
                Err(err) => tracing::warn!(error = %err, "cannot turn ADR notifications on"),
            }
        }
    }
}

/// Reads every allocated device and asset from ADR and validates them as one set of resources;
/// what ADR says does not exist becomes a resource error; with the definitions' versions for
/// status. `None` once shut down.
async fn fetch(
    client: &AdrClient,
    alloc: &Allocations,
    token: &CancellationToken,
) -> Option<(Resources, Versions)> {
    let mut devices: Vec<(String, Value)> = Vec::new();
    let mut assets: Vec<(String, Value)> = Vec::new();
    let mut errors = Vec::new();
    for (ep, names) in alloc {
        let (d, e) = (ep.device.as_str(), ep.endpoint.as_str());
        if !devices.iter().any(|(n, _)| n == d) {
            match client.get_device(d, e).await.map(serde_json::to_value) {
                Ok(Ok(v)) => devices.push((d.to_string(), v)),
                other => errors.push(problem("Device", d, other.err(), token)?),
            }
        }
        for a in names {
            match client.get_asset(d, e, a).await.map(serde_json::to_value) {
                Ok(Ok(v)) => assets.push((a.clone(), v)),
                other => errors.push(problem("Asset", a, other.err(), token)?),
            }
        }
    }
    let mut res = load_adr(&refs(&devices), &refs(&assets));
    res.errors.extend(errors);
    Some((res, Versions::of(&devices, &assets)))
}

/// Named JSON definitions as `load_adr` takes them.
fn refs(v: &[(String, Value)]) -> Vec<AdrResource<'_>> {
    v.iter()
        .map(|(name, fields)| AdrResource { name, fields })
        .collect()
}

/// The resource error of `kind` `name` that ADR could not give; `None` when shut down (the
/// reads retry until then, so any other failure is the end).
fn problem(
    kind: &str,
    name: &str,
    err: Option<AdrError>,
    token: &CancellationToken,
) -> Option<ResourceError> {
    if token.is_cancelled() {
        return None;
    }
    let message = match err {
        Some(e) => e.to_string(),
        None => "ADR's definition cannot be encoded as JSON".to_string(),
    };
    Some(ResourceError {
        resource: format!("{kind}/{name}"),
        file: adr_source_name(kind, name),
        message,
    })
}
