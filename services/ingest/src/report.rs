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
use crate::status::Status;

/// The pseudo stream key status reports travel under.
pub const STATUS_STREAM: &str = "sse-connector/status";
/// How often the status is checked for changes.
const CHECK_EVERY: Duration = Duration::from_secs(1);

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

/// The retained messages the status should be on the broker now, by topic.
pub fn messages(status: &Status, prefix: &str) -> BTreeMap<String, Retained> {
    let report = status.report();
    let mut out = BTreeMap::new();
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
    out
}

impl Reporter {
    /// Publishes until `token` is cancelled or the forwarder is gone.
    pub async fn run(self, token: CancellationToken) {
        let mut published: BTreeMap<String, Retained> = BTreeMap::new();
        let mut seq = 0u64;
        let mut last_full = Instant::now();
        let mut last_revision = None;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = token.cancelled() => return,
            }
            let full = last_full.elapsed() >= self.interval;
            let revision = self.status.revision();
            if !full && last_revision == Some(revision) {
                continue; // nothing the report shows changed
            }
            last_revision = Some(revision);
            if full {
                last_full = Instant::now();
            }
            let now = messages(&self.status, &self.prefix);
            let mut batch: Vec<(String, Retained)> = now
                .iter()
                .filter(|(t, r)| full || published.get(*t) != Some(*r))
                .map(|(t, r)| (t.clone(), r.clone()))
                .collect();
            // Removed resources: clear their retained status.
            batch.extend(
                published
                    .iter()
                    .filter(|(t, _)| !now.contains_key(*t))
                    .map(|(t, r)| {
                        let json = String::new();
                        (t.clone(), Retained { json, ..r.clone() })
                    }),
            );
            for (topic, r) in batch {
                seq += 1;
                let ev = status_event(topic, r, seq);
                tokio::select! {
                    r = self.out.send(ev) => if r.is_err() { return },
                    _ = token.cancelled() => return,
                }
            }
            published = now;
        }
    }
}

/// One status message as a routed event to a retained QoS 1 topic.
fn status_event(topic: String, r: Retained, seq: u64) -> RoutedEvent {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::load_texts;
    use crate::routing::plan;

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
