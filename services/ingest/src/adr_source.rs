//! The ADR resource source (issue #26): the Devices and Assets the Akri operator allocated this
//! connector, read from Azure Device Registry and applied exactly as a file reload is
//! ([`reload::prepare`], [`reload::apply`]). It holds what it read ([`AdrCache`]): an allocation
//! change reads only the newly allocated endpoints and assets (and turns notifications off for
//! the removed ones), an update notification replaces the definition it carries without a call,
//! and the periodic rescan (`--rescan-interval`) reads everything again.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt as _, stream};
use sse_runtime::Shutdown;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::adr::{AdrClient, AdrError, Asset, Device, Notification, NotificationPreference};
use crate::adr_cache::{AdrCache, AssetRef, Fetched};
use crate::adr_status::{AdrStatus, Targets};
use crate::akri::allocations::{self, Allocations, Bounds, EndpointRef};
use crate::config::Settings;
use crate::error::Error;
use crate::reload;
use crate::resources::Resources;
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

/// What a notification preference is set for: a device endpoint, or an asset on it.
type SubscriptionKey = (String, String, Option<String>);

/// The notification preferences this connector turned on.
type Subscribed = BTreeSet<SubscriptionKey>;

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
        let rescan = self.settings.flags.rescan_interval;
        let calls = usize::try_from(self.settings.flags.adr_concurrency)
            .unwrap_or(1)
            .max(1);
        let watching = watch::WatchSettings {
            debounce: self.settings.flags.reload_debounce,
            // The periodic re-read is the source's own (below): it also re-fetches.
            rescan: Duration::ZERO,
        };
        let dir = self.source.contract.resources_dir.clone();
        // The operator writes the files at the top level (or swaps `..data`): not recursive.
        let mut watch = watch::DirWatch::flat(&dir, watching);
        let mut current = Arc::new(Resources::default());
        let mut subscribed = Subscribed::new();
        let mut cache = AdrCache::default();
        loop {
            let at = dir.clone();
            let Ok(alloc) = tokio::task::spawn_blocking(move || read_allocations(&at)).await else {
                return; // the runtime is shutting down
            };
            subscribe(&client, &alloc, &mut subscribed, calls).await;
            if fetch(&client, &alloc, &mut cache, &token, calls)
                .await
                .is_none()
            {
                return; // shut down
            }
            let (res, versions) = cache.resources();
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
                n = notes.recv() => n.map(|n| note(&mut cache, n)),
                () = every(rescan) => {
                    cache.clear();
                    Some(())
                }
            };
            if next.is_none() || token.is_cancelled() {
                return;
            }
            // One round covers every update queued meanwhile.
            while let Ok(n) = notes.try_recv() {
                note(&mut cache, n);
            }
        }
    }
}

/// Default of `--adr-concurrency`: most ADR calls of one round in flight at once (ADR is one
/// service, shared with every connector of the instance).
pub const ADR_CONCURRENCY_DEFAULT: u64 = 8;

/// Waits `period` (forever when zero): the periodic full re-read, which also catches up with
/// any notification that was dropped or missed while disconnected.
async fn every(period: Duration) {
    if period.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(period).await;
}

/// Applies an update notification to the held definitions, without any call.
fn note(cache: &mut AdrCache, n: Notification) {
    log_update(&n);
    if !cache.update(n) {
        tracing::debug!("ADR update of a definition not held (not allocated, or older) ignored");
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

/// Turns update notifications on for each allocated device endpoint and asset not yet on, and
/// off for each one no longer allocated (forgotten, so a re-allocation turns it on again), as
/// the SDK does when it observes and unobserves; `calls` at once. A failure to turn one on is
/// logged and tried again on the next round.
async fn subscribe(client: &AdrClient, alloc: &Allocations, done: &mut Subscribed, calls: usize) {
    let wanted: Subscribed = alloc
        .iter()
        .flat_map(|(ep, assets)| {
            let key = |a: Option<&String>| (ep.device.clone(), ep.endpoint.clone(), a.cloned());
            std::iter::once(key(None)).chain(assets.iter().map(move |a| key(Some(a))))
        })
        .collect();
    let off: Vec<_> = done.difference(&wanted).cloned().collect();
    let on: Vec<_> = wanted.difference(done).cloned().collect();
    let changes = off
        .into_iter()
        .map(|k| (k, NotificationPreference::Off))
        .chain(on.into_iter().map(|k| (k, NotificationPreference::On)));
    let results: Vec<_> = stream::iter(changes)
        .map(|(key, pref)| set_preference(client.clone(), key, pref))
        .buffer_unordered(calls)
        .collect()
        .await;
    for (key, pref, r) in results {
        if let Err(err) = &r {
            tracing::warn!(error = %err, preference = ?pref, "cannot set an ADR notification preference");
        }
        match pref {
            NotificationPreference::Off => {
                done.remove(&key);
            }
            NotificationPreference::On if r.is_ok() => {
                done.insert(key);
            }
            NotificationPreference::On => {}
        }
    }
}

/// Sets the notification preference of `key` (its device endpoint, or its asset).
async fn set_preference(
    client: AdrClient,
    key: SubscriptionKey,
    pref: NotificationPreference,
) -> (
    SubscriptionKey,
    NotificationPreference,
    Result<String, AdrError>,
) {
    let (d, e) = (key.0.as_str(), key.1.as_str());
    let r = match &key.2 {
        None => client.set_device_notifications(d, e, pref).await,
        Some(a) => client.set_asset_notifications(d, e, a, pref).await,
    };
    (key, pref, r)
}

/// One definition to read from ADR.
enum Job {
    /// The device of an allocated endpoint.
    Device(EndpointRef),
    /// An allocated asset.
    Asset(AssetRef),
}

/// Reads one definition (retried until shutdown).
async fn get(client: AdrClient, job: Job) -> Got {
    match job {
        Job::Device(at) => {
            let r = client.get_device(&at.device, &at.endpoint).await;
            Got::Device(at, Box::new(fetched(r)))
        }
        Job::Asset(at) => {
            let r = client.get_asset(&at.0.device, &at.0.endpoint, &at.1).await;
            Got::Asset(at, Box::new(fetched(r)))
        }
    }
}

/// One definition read from ADR (boxed: definitions are large).
enum Got {
    /// What getDevice gave for an endpoint.
    Device(EndpointRef, Box<Fetched<Device>>),
    /// What getAsset gave.
    Asset(AssetRef, Box<Fetched<Asset>>),
}

/// Drops from `cache` what `alloc` no longer allocates and reads from ADR what it allocates
/// and `cache` does not hold (`calls` at once); what ADR says does not exist is held as the
/// resource's error. `None` once shut down.
async fn fetch(
    client: &AdrClient,
    alloc: &Allocations,
    cache: &mut AdrCache,
    token: &CancellationToken,
    calls: usize,
) -> Option<()> {
    let wanted = cache.wanted(alloc);
    let jobs = (wanted.endpoints.into_iter().map(Job::Device))
        .chain(wanted.assets.into_iter().map(Job::Asset));
    // Each read owns a client handle: the futures then borrow nothing.
    let got: Vec<Got> = stream::iter(jobs)
        .map(|job| get(client.clone(), job))
        .buffer_unordered(calls)
        .collect()
        .await;
    // The reads retry until shutdown: a failure then is not ADR's answer.
    if token.is_cancelled() {
        return None;
    }
    for g in got {
        match g {
            Got::Device(at, d) => cache.put_device(at, *d),
            Got::Asset(at, a) => cache.put_asset(at, *a),
        }
    }
    Some(())
}

/// A read's result as the cache holds it.
fn fetched<T>(r: Result<T, AdrError>) -> Fetched<T> {
    match r {
        Ok(v) => Fetched::Got(v),
        Err(e) => Fetched::Failed(e.to_string()),
    }
}
