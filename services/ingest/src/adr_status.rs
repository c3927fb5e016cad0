//! Status and runtime health reported back to Azure Device Registry in ADR mode (issue #26), as
//! Microsoft's connectors report them, with the ADR client the source reads definitions with
//! (its identity is the only one ADR authorises):
//!
//! - `updateDeviceStatus` per allocated device endpoint and `updateAssetStatus` per allocated
//!   asset: the config error with the definition's version, each endpoint's, dataset's and
//!   event's error, and the schema each dataset's and event's messages follow. Sent once at
//!   start and again only when what it says changes; one update per resource in flight. One
//!   that failed as the SDK retries (after the client's own retries) is logged and sent again on
//!   the next pass; a refused one waits for a change. A resource ADR gave no definition of (no
//!   version) gets nothing.
//! - Runtime health telemetry per device endpoint, dataset and event, deduplicated and repeated
//!   by the SDK's rules ([`crate::adr::health`]) and paused when the definition changes.
//!
//! Each pass (a second apart) rebuilds only the resources whose report changed since the last
//! ([`Consumer::Adr`]'s dirty marks), [`PART`] resources at a time with the thread given back in
//! between, as the retained status reporter does.

mod healths;
mod targets;
mod updates;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::adr::{AdrClient, AdrError, HealthEvent, from_status};
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
        let mut st = State::new(healths);
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
            let report = build(&self.status, &st.index, &dirty, everything).await;
            events = st.apply(&report).await;
        }
        events.extend(st.healths.repeats(Instant::now(), SystemTime::now()));
        let total = events.len();
        for (i, (t, e)) in events.into_iter().enumerate() {
            let (device, endpoint) = t.at();
            if let Err(err) = self.client.send_health(device, endpoint, &e).await {
                // The SDK only logs these; the next change or repeat sends again. The rest of
                // the pass would wait for the same connection: dropped with this one.
                let dropped = total - i;
                tracing::warn!(device, endpoint, dropped, error = %err, "cannot send ADR runtime health");
                return;
            }
        }
    }
}

/// The report of the allocated resources that changed (or all of them), [`PART`] at a time
/// with the thread given back in between.
async fn build(status: &Status, index: &Index, dirty: &Dirty, everything: bool) -> Report {
    // Only the marked names are looked at, not the whole allocation.
    let pick = |names: &BTreeMap<String, Vec<Target>>, marked: &BTreeSet<String>| {
        if everything {
            return names.keys().cloned().collect::<Vec<_>>();
        }
        (marked.iter())
            .filter(|n| names.contains_key(*n))
            .cloned()
            .collect()
    };
    let devices = pick(&index.devices, &dirty.devices);
    let assets = pick(&index.assets, &dirty.assets);
    let mut report = Report::default();
    for scope in parts(&devices, &assets, everything) {
        let part = status.report_of(scope);
        // Served resources (later parts) replace the unserved part's entries.
        report.devices.extend(part.devices);
        report.assets.extend(part.assets);
        tokio::task::yield_now().await;
    }
    report
}

impl State {
    /// Nothing allocated yet; the first pass rebuilds everything.
    fn new(healths: Healths) -> Self {
        Self {
            targets: Targets::default(),
            index: Index::default(),
            updates: Updates::default(),
            healths,
            everything: true,
        }
    }

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

    /// The status `t` should have and the health of its components, from `report`; nothing
    /// for a resource ADR gave no definition of (no version: it does not know it).
    fn wanted(&self, t: &Target, report: &Report, wall: SystemTime) -> (Option<Payload>, Seen) {
        let versions = &self.targets.versions;
        match t {
            Target::Device { device, endpoint } => {
                let d = report.devices.get(device);
                match (d, versions.devices.get(device)) {
                    (Some(d), Some(v)) => device_wanted(d, endpoint, *v, wall),
                    _ => (None, Vec::new()),
                }
            }
            Target::Asset { asset, .. } => {
                let a = report.assets.get(asset);
                match (a, versions.assets.get(asset)) {
                    (Some(a), Some(v)) => asset_wanted(a, *v, wall),
                    _ => (None, Vec::new()),
                }
            }
        }
    }
}

/// Components' health as observed in one pass.
type Seen = Vec<(Part, crate::adr::health::Observed)>;

/// A device endpoint's status update (the topic names the endpoint: the service merges that
/// one entry) and its health, for definition `version`.
fn device_wanted(
    d: &crate::status::DeviceStatus,
    endpoint: &str,
    version: u64,
    wall: SystemTime,
) -> (Option<Payload>, Seen) {
    let mut p = from_status::device_status(d, Some(version));
    if let Some(inbound) = p.endpoints.as_mut().and_then(|e| e.inbound.as_mut()) {
        inbound.retain(|name, _| name == endpoint);
    }
    let health = d.endpoints.inbound.get(endpoint);
    let seen = (health.and_then(|e| e.runtime_health.as_ref()))
        .map(|h| (Part::Endpoint, observed(h, version, wall)))
        .into_iter()
        .collect();
    (Some(Payload::Device(p)), seen)
}

/// An asset's status update and the health of its datasets and events, for definition
/// `version`.
fn asset_wanted(
    a: &crate::status::AssetStatus,
    version: u64,
    wall: SystemTime,
) -> (Option<Payload>, Seen) {
    let mut seen = Vec::new();
    for d in &a.datasets {
        let part = Part::Dataset(d.name.clone());
        seen.push((part, observed(&d.runtime_health, version, wall)));
    }
    for g in &a.event_groups {
        for e in &g.events {
            let part = Part::Event(g.name.clone(), e.name.clone());
            seen.push((part, observed(&e.runtime_health, version, wall)));
        }
    }
    let p = from_status::asset_status(a, Some(version));
    (Some(Payload::Asset(p)), seen)
}

/// Sends one status update; whether it is settled: ADR took it, or refused it (sending it
/// again would be refused again, so only a change is sent). A call that failed as the SDK
/// retries (no answer, status 500), after the client's own retries, is sent again on the next
/// pass.
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
    let settled = match &r {
        Ok(()) => true,
        Err(e @ AdrError::Rpc { source, .. }) if source.is_retryable() => {
            tracing::warn!(device, endpoint, error = %e, "cannot update the status in ADR; trying again on the next pass");
            false
        }
        Err(e) => {
            tracing::warn!(device, endpoint, error = %e, "ADR refused the status update; sending again when it changes");
            true
        }
    };
    (t, p, settled)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::adr::health::INTERVAL_MIN;
    use crate::akri::allocations::{Allocations, EndpointRef};
    use crate::resources::load_texts;
    use crate::routing::plan;
    use crate::status::StreamState;

    /// Device `d` (endpoint `e`) and `n` assets `a<i>` of one dataset `z` each.
    fn resources(n: usize) -> String {
        let mut y = String::from(
            "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: { name: d }\n\
             spec: { endpoints: { inbound: { e: { endpointType: Microsoft.SSE, address: \"http://h/x\" } } } }\n",
        );
        for a in 0..n {
            y.push_str(&format!(
                "---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\n\
                 metadata: {{ name: a{a} }}\nspec:\n  deviceRef: {{ deviceName: d, endpointName: e }}\n  \
                 defaultDatasetsDestinations: [ {{ target: Mqtt, configuration: {{ topic: t }} }} ]\n  \
                 datasets: [ {{ name: z, dataSource: /a{a} }} ]\n"
            ));
        }
        y
    }

    /// The status of [`resources`] and the allocation of all of it, at version 1 (asset `a0`
    /// at `a0_version`, none when `None`).
    fn setup(n: usize, a0_version: Option<u64>) -> (Arc<Status>, Targets) {
        let text = resources(n);
        let r = load_texts([("r.yaml", text.as_str())]);
        let status = Arc::new(Status::default());
        status.reconcile(&plan(&r), &r);
        let names: BTreeSet<String> = (0..n).map(|a| format!("a{a}")).collect();
        let alloc = Allocations::from([(EndpointRef::from_file_name("d_e").unwrap(), names)]);
        let mut versions = Versions::default();
        versions.devices.insert("d".into(), 1);
        for a in 0..n {
            versions.assets.insert(format!("a{a}"), 1);
        }
        match a0_version {
            Some(v) => versions.assets.insert("a0".into(), v),
            None => versions.assets.remove("a0"),
        };
        (status, Targets { alloc, versions })
    }

    fn asset(name: &str) -> Target {
        Target::Asset {
            device: "d".into(),
            endpoint: "e".into(),
            asset: name.into(),
        }
    }

    #[tokio::test]
    async fn a_pass_builds_only_the_changed_resources_in_parts_giving_the_thread_back() {
        let (status, targets) = setup(3 * PART, Some(1));
        let index = Index::of(&targets.alloc);
        let (all, during) =
            crate::report::yields_during(build(&status, &index, &Dirty::default(), true)).await;
        assert!(during >= 4, "the thread was given back {during} times");
        assert_eq!(all.assets.len(), 3 * PART);
        status.take_dirty_for(Consumer::Adr);
        status.update("d/e|http://h/x/a1", |s| s.set_state(StreamState::Connected));
        let dirty = status.take_dirty_for(Consumer::Adr);
        let changed = build(&status, &index, &dirty, false).await;
        let assets: Vec<&String> = changed.assets.keys().collect();
        assert_eq!(assets, ["a1"], "only the changed asset");
        assert_eq!(changed.devices.keys().collect::<Vec<_>>(), ["d"]);
        let full = status.report();
        assert_eq!(
            changed.assets["a1"], full.assets["a1"],
            "as in a full report"
        );
    }

    #[tokio::test]
    async fn a_report_becomes_updates_and_health_of_allocated_resources_with_adrs_version() {
        let (status, targets) = setup(2, None);
        let mut st = State::new(Healths::new(INTERVAL_MIN).unwrap());
        st.retarget(targets);
        let report = build(&status, &st.index, &Dirty::default(), true).await;
        let events = st.apply(&report).await;
        let due = st.updates.take_due();
        let targets: Vec<&Target> = due.iter().map(|(t, _)| t).collect();
        let device = Target::Device {
            device: "d".into(),
            endpoint: "e".into(),
        };
        // a0 has no version: ADR gave no definition of it, so nothing is sent for it.
        assert_eq!(targets, [&device, &asset("a1")]);
        let Payload::Asset(a1) = &due[1].1 else {
            panic!("{due:?}")
        };
        assert_eq!(a1.config.as_ref().unwrap().version, Some(1));
        let [
            (d, HealthEvent::Endpoint(e)),
            (
                t,
                HealthEvent::Datasets {
                    asset: name,
                    datasets,
                },
            ),
        ] = &events[..]
        else {
            panic!("{events:?}")
        };
        assert_eq!((d, e.reason_code.as_deref()), (&device, Some("Idle")));
        assert_eq!((t, name.as_str()), (&asset("a1"), "a1"));
        assert_eq!(datasets[0].1.status, crate::adr::HealthStatus::Unavailable);
        assert_eq!(datasets[0].1.version, 1);
    }

    #[test]
    fn a_new_definition_version_pauses_its_health_and_a_deallocated_one_is_forgotten() {
        let (_, targets) = setup(1, Some(1));
        let mut st = State::new(Healths::new(INTERVAL_MIN).unwrap());
        st.retarget(targets.clone());
        let (now, wall) = (Instant::now(), SystemTime::now());
        let up = crate::status::RuntimeHealth {
            status: "Available".into(),
            last_update_time: String::new(),
            message: String::new(),
            reason_code: "Connected".into(),
        };
        let seen = || vec![(Part::Dataset("z".into()), observed(&up, 1, wall))];
        assert_eq!(st.healths.observe(&asset("a0"), seen(), now).len(), 1);
        st.retarget(targets.clone());
        assert!(
            st.healths.observe(&asset("a0"), seen(), now).is_empty(),
            "the same version: still deduplicated"
        );
        let mut v2 = targets.clone();
        v2.versions.assets.insert("a0".into(), 2);
        st.retarget(v2);
        assert_eq!(
            st.healths.observe(&asset("a0"), seen(), now).len(),
            1,
            "paused: reported afresh"
        );
        let mut gone = targets;
        gone.alloc.values_mut().for_each(BTreeSet::clear);
        st.retarget(gone);
        assert!(!st.index.contains(&asset("a0")));
        assert!(st.healths.repeats(now + 9 * INTERVAL_MIN, wall).is_empty());
    }
}
