//! Status and runtime health reported back to Azure Device Registry in ADR mode (issue #26), as
//! Microsoft's connectors report them, with the ADR client the source reads definitions with
//! (its identity is the only one ADR authorises):
//!
//! - `updateDeviceStatus` per allocated device endpoint and `updateAssetStatus` per allocated
//!   asset: the config error with the definition's version, each endpoint's, dataset's and
//!   event's error, and the schema each dataset's and event's messages follow. Sent once at
//!   start and again only when what it says changes; one update per resource in flight; a failed
//!   one (after the client's own retries) is logged and sent again on the next pass.
//! - Runtime health telemetry per device endpoint, dataset and event, deduplicated and repeated
//!   by the SDK's rules ([`crate::adr::health`]) and paused when the definition changes.
//!
//! Each pass (a second apart) rebuilds only the resources whose report changed since the last
//! ([`Consumer::Adr`]'s dirty marks), [`PART`] resources at a time with the thread given back in
//! between, as the retained status reporter does.

mod healths;
mod targets;
mod updates;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::adr::{AdrClient, HealthEvent, from_status};
use crate::report::{PART, parts};
use crate::status::{Consumer, Dirty, Report, Status};
use healths::{Healths, Part, observed};
use targets::Index;
pub use targets::{Target, Targets, Versions};
use updates::{Payload, Updates};

/// How often the status is checked for changes (as the retained status reporter does).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The sink's inputs.
#[derive(Debug)]
pub struct AdrStatus {
    /// The connector's ADR client.
    pub client: AdrClient,
    /// Ingest's status.
    pub status: Arc<Status>,
    /// Re-report period of unchanged health (`--adr-health-interval`).
    pub health_interval: Duration,
}

/// What one pass keeps between passes.
struct State {
    targets: Targets,
    index: Index,
    updates: Updates,
    healths: Healths,
    /// The next pass rebuilds every allocated resource.
    everything: bool,
}

/// The outcome of one status update.
type Sent = (Target, Payload, bool);

impl AdrStatus {
    /// Starts reporting under `token`; the source sends what it serves on the returned sender.
    pub fn start(
        self,
        tracker: &tokio_util::task::TaskTracker,
        token: CancellationToken,
    ) -> watch::Sender<Targets> {
        let (tx, rx) = watch::channel(Targets::default());
        tracker.spawn(self.run(rx, token));
        tx
    }

    async fn run(self, mut targets: watch::Receiver<Targets>, token: CancellationToken) {
        let Ok(healths) = Healths::new(self.health_interval) else {
            // The flag is checked at start (exit 64); nothing to report without it.
            return;
        };
        let mut st = State {
            targets: Targets::default(),
            index: Index::default(),
            updates: Updates::default(),
            healths,
            everything: true,
        };
        let mut sends: JoinSet<Sent> = JoinSet::new();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = targets.changed() => {
                    if r.is_err() {
                        return; // the source is gone
                    }
                    let next = targets.borrow_and_update().clone();
                    st.retarget(next);
                }
                Some(r) = sends.join_next(), if !sends.is_empty() => {
                    if let Ok((t, p, ok)) = r {
                        st.updates.done(t, &p, ok);
                    }
                    continue;
                }
                _ = token.cancelled() => return,
            }
            self.pass(&mut st).await;
            for (t, p) in st.updates.take_due() {
                sends.spawn(send(self.client.clone(), t, p));
            }
        }
    }

    /// Rebuilds what changed, sends its health, and the health due again.
    async fn pass(&self, st: &mut State) {
        let dirty = self.status.take_dirty_for(Consumer::Adr);
        let everything = std::mem::take(&mut st.everything) || dirty.all;
        let mut events = Vec::new();
        if everything || !dirty.is_empty() {
            let report = self.build(&st.index, &dirty, everything).await;
            events = st.apply(&report).await;
        }
        events.extend(st.healths.repeats(Instant::now(), SystemTime::now()));
        for (t, e) in events {
            let (device, endpoint) = t.at();
            if let Err(err) = self.client.send_health(device, endpoint, &e).await {
                // The SDK only logs these; the next change or repeat sends again.
                tracing::warn!(device, endpoint, error = %err, "cannot send ADR runtime health");
            }
        }
    }

    /// The report of the allocated resources that changed (or all of them), [`PART`] at a time
    /// with the thread given back in between.
    async fn build(&self, index: &Index, dirty: &Dirty, everything: bool) -> Report {
        let pick = |names: &std::collections::BTreeMap<String, Vec<Target>>,
                    marked: &BTreeSet<String>| {
            (names.keys())
                .filter(|n| everything || marked.contains(*n))
                .cloned()
                .collect::<Vec<_>>()
        };
        let devices = pick(&index.devices, &dirty.devices);
        let assets = pick(&index.assets, &dirty.assets);
        let mut report = Report::default();
        for scope in parts(&devices, &assets, everything) {
            let part = self.status.report_of(scope);
            // Served resources (later parts) replace the unserved part's entries.
            report.devices.extend(part.devices);
            report.assets.extend(part.assets);
            tokio::task::yield_now().await;
        }
        report
    }
}

impl State {
    /// Follows a new allocation or new definitions: forgets what is no longer allocated, pauses
    /// the health of definitions whose version changed, and rebuilds everything.
    fn retarget(&mut self, next: Targets) {
        let (old, new) = (&self.targets.versions, &next.versions);
        let moved = |was: Option<&u64>, is: Option<&u64>| was.is_some() && was != is;
        self.healths.pause(|t| match t {
            Target::Device { device, .. } => {
                moved(old.devices.get(device), new.devices.get(device))
            }
            Target::Asset { asset, .. } => moved(old.assets.get(asset), new.assets.get(asset)),
        });
        self.index = Index::of(&next.alloc);
        let index = &self.index;
        self.updates.retain(|t| index.contains(t));
        self.healths.retain(|t| index.contains(t));
        self.targets = next;
        self.everything = true;
    }

    /// Turns the report into the status each target should have and the health to send now,
    /// [`PART`] targets at a time with the thread given back in between.
    async fn apply(&mut self, report: &Report) -> Vec<(Target, HealthEvent)> {
        let targets: Vec<Target> = (report.devices.keys())
            .filter_map(|d| self.index.devices.get(d))
            .chain((report.assets.keys()).filter_map(|a| self.index.assets.get(a)))
            .flatten()
            .cloned()
            .collect();
        let mut events = Vec::new();
        for chunk in targets.chunks(PART) {
            let (now, wall) = (Instant::now(), SystemTime::now());
            for t in chunk {
                let (payload, seen) = self.wanted(t, report, wall);
                if let Some(p) = payload {
                    self.updates.want(t.clone(), p);
                }
                let sent = self.healths.observe(t, seen, now);
                events.extend(sent.into_iter().map(|e| (t.clone(), e)));
            }
            tokio::task::yield_now().await;
        }
        events
    }

    /// The status `t` should have and the health of its components, from `report`.
    fn wanted(
        &self,
        t: &Target,
        report: &Report,
        wall: SystemTime,
    ) -> (Option<Payload>, Vec<(Part, crate::adr::health::Observed)>) {
        let versions = &self.targets.versions;
        let mut seen = Vec::new();
        match t {
            Target::Device { device, endpoint } => {
                let Some(d) = report.devices.get(device) else {
                    return (None, seen);
                };
                let version = versions.devices.get(device).copied();
                let mut p = from_status::device_status(d, version);
                // The topic names the endpoint: the service merges this one entry.
                if let Some(inbound) = p.endpoints.as_mut().and_then(|e| e.inbound.as_mut()) {
                    inbound.retain(|name, _| name == endpoint);
                }
                let health = d.endpoints.inbound.get(endpoint);
                if let (Some(h), Some(v)) =
                    (health.and_then(|e| e.runtime_health.as_ref()), version)
                {
                    seen.push((Part::Endpoint, observed(h, v, wall)));
                }
                (Some(Payload::Device(p)), seen)
            }
            Target::Asset { asset, .. } => {
                let Some(a) = report.assets.get(asset) else {
                    return (None, seen);
                };
                let version = versions.assets.get(asset).copied();
                if let Some(v) = version {
                    for d in &a.datasets {
                        let part = Part::Dataset(d.name.clone());
                        seen.push((part, observed(&d.runtime_health, v, wall)));
                    }
                    for g in &a.event_groups {
                        for e in &g.events {
                            let part = Part::Event(g.name.clone(), e.name.clone());
                            seen.push((part, observed(&e.runtime_health, v, wall)));
                        }
                    }
                }
                let p = from_status::asset_status(a, version);
                (Some(Payload::Asset(p)), seen)
            }
        }
    }
}

/// Sends one status update; whether ADR took it (a failure is logged).
async fn send(client: AdrClient, t: Target, p: Payload) -> Sent {
    let (device, endpoint) = t.at();
    let r = match (&t, &p) {
        (Target::Asset { asset, .. }, Payload::Asset(s)) => client
            .update_asset_status(device, endpoint, asset, s)
            .await
            .map(drop),
        (Target::Device { .. }, Payload::Device(s)) => client
            .update_device_status(device, endpoint, s)
            .await
            .map(drop),
        _ => Ok(()), // a payload is always built for its own kind of target
    };
    if let Err(e) = &r {
        tracing::warn!(device, endpoint, error = %e, "cannot update the status in ADR; retrying on the next pass");
    }
    let ok = r.is_ok();
    (t, p, ok)
}
