//! Publishes the Azure Device Registry shaped status of every device and asset as retained JSON
//! on `<prefix>/device/<name>` and `<prefix>/asset/<name>`, through the same pipeline as the
//! events (so it reaches whatever broker the publisher serves): within a second of a change,
//! again every interval, and an empty retained message clears the status of a removed resource.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::event::{RoutedEvent, unix_nanos_now};
use crate::resources::{Destination, MqttDestination, Qos};
use crate::routing::{Route, RouteKind};
use crate::status::{Dirty, Report, Scope, Status};

/// The pseudo stream key status reports travel under.
pub const STATUS_STREAM: &str = "sse-connector/status";
/// How often the status is checked for changes.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Resources built per part of a pass, with the ingest thread given back between parts.
pub(crate) const PART: usize = 64;

/// The status reporter.
#[derive(Debug)]
pub struct Reporter {
    /// Where status comes from.
    pub status: Arc<Status>,
    /// Topic prefix.
    pub prefix: String,
    /// Re-publish period of unchanged status.
    pub interval: Duration,
    /// The forwarder's queue.
    pub out: mpsc::Sender<RoutedEvent>,
}

/// One retained status message: what it describes and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained {
    /// `device` or `asset`.
    pub kind: &'static str,
    /// Resource name.
    pub name: String,
    /// ADR shaped status; empty clears the retained message.
    pub json: String,
}

/// The retained messages the status should be on the broker now, by topic (built at once).
pub fn messages(status: &Status, prefix: &str) -> BTreeMap<String, Retained> {
    let mut out = BTreeMap::new();
    put_report(&status.report(), prefix, &mut out);
    out
}

/// Adds the retained messages of `report` to `out`, by topic.
fn put_report(report: &Report, prefix: &str, out: &mut BTreeMap<String, Retained>) {
    let mut put = |kind: &'static str, name: &str, json: Result<String, serde_json::Error>| {
        // A name with MQTT wildcards or separators cannot be a topic level.
        if !sse_contract::topics::is_level(name) {
            return;
        }
        if let Ok(json) = json {
            let name = name.to_string();
            out.insert(
                format!("{prefix}/{kind}/{name}"),
                Retained { kind, name, json },
            );
        }
    };
    for (name, d) in &report.devices {
        put("device", name, serde_json::to_string(d));
    }
    for (name, a) in &report.assets {
        put("asset", name, serde_json::to_string(a));
    }
}

/// The scopes of one pass, [`PART`] resources each: everything (with the resources that
/// cannot be served), or only what changed.
pub(crate) fn parts<'a>(
    devices: &'a [String],
    assets: &'a [String],
    everything: bool,
) -> Vec<Scope<'a>> {
    let none: &[String] = &[];
    let mut scopes = Vec::new();
    if everything {
        scopes.push(Scope {
            unserved: true,
            devices: Some(none),
            assets: Some(none),
        });
    }
    scopes.extend(devices.chunks(PART).map(|c| Scope {
        unserved: false,
        devices: Some(c),
        assets: Some(none),
    }));
    scopes.extend(assets.chunks(PART).map(|c| Scope {
        unserved: false,
        devices: Some(none),
        assets: Some(c),
    }));
    scopes
}

impl Reporter {
    /// Publishes until `token` is cancelled or the forwarder is gone.
    pub async fn run(self, token: CancellationToken) {
        let mut published: BTreeMap<String, Retained> = BTreeMap::new();
        let mut seq = 0u64;
        let mut last_full: Option<Instant> = None;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = token.cancelled() => return,
            }
            let full = last_full.is_none_or(|t| t.elapsed() >= self.interval);
            let dirty = self.status.take_dirty();
            if !full && dirty.is_empty() {
                continue; // nothing the report shows changed
            }
            if full {
                last_full = Some(Instant::now());
            }
            let everything = full || dirty.all;
            let now = self.build(&dirty, everything).await;
            let mut batch: Vec<(String, Retained)> = now
                .iter()
                .filter(|(t, r)| full || published.get(*t) != Some(*r))
                .map(|(t, r)| (t.clone(), r.clone()))
                .collect();
            if everything {
                // Removed resources: clear their retained status.
                let gone = published.iter().filter(|(t, _)| !now.contains_key(*t));
                batch.extend(gone.map(|(t, r)| {
                    let json = String::new();
                    (t.clone(), Retained { json, ..r.clone() })
                }));
                published = now;
            } else {
                published.extend(now);
            }
            for (topic, r) in batch {
                seq += 1;
                let ev = status_event(topic, r, seq);
                tokio::select! {
                    r = self.out.send(ev) => if r.is_err() { return },
                    _ = token.cancelled() => return,
                }
            }
        }
    }

    /// The retained messages of everything, or of the `dirty` resources, built [`PART`]
    /// resources at a time with the thread given back in between: a pass over 10,000 streams
    /// built at once held it for about 19 ms.
    async fn build(&self, dirty: &Dirty, everything: bool) -> BTreeMap<String, Retained> {
        let (devices, assets) = if everything {
            self.status.resource_names()
        } else {
            let devices = dirty.devices.iter().cloned().collect();
            (devices, dirty.assets.iter().cloned().collect())
        };
        let mut out = BTreeMap::new();
        for scope in parts(&devices, &assets, everything) {
            put_report(&self.status.report_of(scope), &self.prefix, &mut out);
            tokio::task::yield_now().await;
        }
        out
    }
}

/// One status message as a routed event to a retained QoS 1 topic (the discovery topic's
/// messages travel the same way, under their own stream key).
pub(crate) fn status_event(topic: String, r: Retained, seq: u64) -> RoutedEvent {
    let received_unix_nanos = unix_nanos_now();
    RoutedEvent {
        id: format!("status-{received_unix_nanos}-{seq}"),
        seq,
        stream_key: Arc::from(STATUS_STREAM),
        data: r.json.into(),
        sse_event: String::new(),
        sse_id: String::new(),
        received_unix_nanos,
        route: Arc::new(Route {
            device: String::new(),
            endpoint: String::new(),
            asset: r.name,
            kind: RouteKind::Status,
            group: r.kind.to_string(),
            event: String::new(),
            data_source: String::new(),
            type_ref: String::new(),
            ids: Default::default(),
            dead_letter: None,
            destination: Destination::Mqtt(MqttDestination {
                topic,
                qos: Qos::AtLeastOnce,
                retain: true,
                ttl_seconds: None,
            }),
        }),
        traceparent: String::new(),
        tracestate: String::new(),
        held: crate::budget::Held::none(),
        dead_letter: None,
    }
}

/// How often `work` gives the thread back: another task of the same one-thread runtime counts
/// its polls while `work` runs (shared by the tests of the passes that must yield).
#[cfg(test)]
pub(crate) async fn yields_during<T>(work: impl std::future::Future<Output = T>) -> (T, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let other = tokio::spawn(async move {
        loop {
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::task::yield_now().await;
        }
    });
    tokio::task::yield_now().await;
    let before = polls.load(Ordering::Relaxed);
    let out = work.await;
    let during = polls.load(Ordering::Relaxed) - before;
    other.abort();
    (out, during)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::load_texts;
    use crate::routing::plan;

    /// One device and `assets` assets of one dataset, plus one asset that cannot be served.
    fn many(assets: usize) -> String {
        let mut y = String::from(
            "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: { name: d }\n\
             spec: { endpoints: { inbound: { e: { endpointType: Microsoft.SSE, address: \"http://h/x\" } } } }\n\
             ---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\nmetadata: { name: broken }\n\
             spec: { deviceRef: { deviceName: nowhere, endpointName: e } }\n",
        );
        for a in 0..assets {
            y.push_str(&format!(
                "---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\n\
                 metadata: {{ name: a{a} }}\nspec:\n  deviceRef: {{ deviceName: d, endpointName: e }}\n  \
                 defaultDatasetsDestinations: [ {{ target: Mqtt, configuration: {{ topic: t }} }} ]\n  \
                 datasets: [ {{ name: z, dataSource: /a{a} }} ]\n"
            ));
        }
        y
    }

    fn reporter(status: Arc<Status>) -> Reporter {
        Reporter {
            status,
            prefix: "p".into(),
            interval: Duration::from_secs(3600),
            out: mpsc::channel(1).0,
        }
    }

    #[tokio::test]
    async fn a_pass_is_built_in_parts_giving_the_thread_back_and_equals_the_whole() {
        let text = many(3 * PART);
        let r = load_texts([("r.yaml", text.as_str())]);
        let status = Arc::new(Status::default());
        status.reconcile(&plan(&r), &r);
        let (built, during) =
            yields_during(reporter(status.clone()).build(&Dirty::default(), true)).await;
        // The unserved part, one device part and three asset parts: four gaps at least.
        assert!(during >= 4, "the thread was given back {during} times");
        assert_eq!(built, messages(&status, "p"), "the parts make the whole");
        assert!(built.contains_key("p/asset/broken"));
        assert_eq!(built.len(), 3 * PART + 2);
    }

    #[tokio::test]
    async fn a_change_rebuilds_only_its_resources() {
        let text = many(3);
        let r = load_texts([("r.yaml", text.as_str())]);
        let status = Arc::new(Status::default());
        status.reconcile(&plan(&r), &r);
        status.take_dirty();
        let key = status.streams()[1].key.clone();
        status.update(&key, |s| s.set_state(crate::status::StreamState::Connected));
        let dirty = status.take_dirty();
        let built = reporter(status.clone()).build(&dirty, false).await;
        let topics: Vec<&str> = built.keys().map(String::as_str).collect();
        assert_eq!(topics, ["p/asset/a1", "p/device/d"]);
        assert_eq!(built["p/asset/a1"], messages(&status, "p")["p/asset/a1"]);
    }

    #[tokio::test]
    async fn publishes_each_resource_retained_then_only_changes() {
        let r = load_texts([(
            "r.yaml",
            r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: d }
spec: { endpoints: { inbound: { e: { endpointType: Microsoft.SSE, address: "http://h/x" } } } }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a }
spec:
  deviceRef: { deviceName: d, endpointName: e }
  defaultDatasetsDestinations: [ { target: Mqtt, configuration: { topic: t } } ]
  datasets: [ { name: z, dataSource: /z } ]
"#,
        )]);
        let status = Arc::new(Status::default());
        status.reconcile(&plan(&r), &r);
        let (tx, mut rx) = mpsc::channel(16);
        let token = CancellationToken::new();
        let task = tokio::spawn(
            Reporter {
                status: status.clone(),
                prefix: "p".into(),
                interval: Duration::from_secs(3600),
                out: tx,
            }
            .run(token.clone()),
        );
        let mut first = [rx.recv().await.unwrap(), rx.recv().await.unwrap()];
        first.sort_by_key(|e| e.route.subject());
        let Destination::Mqtt(MqttDestination { topic, retain, .. }) = &first[0].route.destination
        else {
            panic!("mqtt destination expected");
        };
        assert_eq!(topic, "p/asset/a");
        assert!(retain);
        assert_eq!(first[0].route.kind, RouteKind::Status);
        let json: serde_json::Value = serde_json::from_slice(&first[0].data).unwrap();
        assert_eq!(json["datasets"][0]["name"], "z");
        assert_eq!(
            json["datasets"][0]["runtimeHealth"]["status"],
            "Unavailable"
        );
        // A change is published; the unchanged device is not.
        status.update("d/e|http://h/x/z", |s| {
            s.set_state(crate::status::StreamState::Connected);
        });
        let next = rx.recv().await.unwrap();
        let Destination::Mqtt(MqttDestination { topic, .. }) = &next.route.destination else {
            panic!("mqtt destination expected");
        };
        // Either the asset or the device (whose endpoint health also changed).
        assert!(topic == "p/asset/a" || topic == "p/device/d", "{topic}");
        let json: serde_json::Value = serde_json::from_slice(&next.data).unwrap();
        assert!(json.to_string().contains("Available"));
        // The resources are removed: both retained messages are cleared.
        status.reconcile(&[], &Default::default());
        let mut cleared = 0;
        while cleared < 2 {
            let e = rx.recv().await.unwrap();
            if e.data.is_empty() {
                cleared += 1;
            }
        }
        token.cancel();
        task.await.unwrap();
    }
}
