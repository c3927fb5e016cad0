//! The optional discovery topic (`--discovery-topic <root>`, off by default): each endpoint's
//! discovered types as retained JSON on `<root>/<device>/<endpoint>`, shaped after Azure Device
//! Registry's discovered-asset resource (name, device reference, event groups with their events
//! and each event's schema). It travels like the status reports (a `STATUS` route through schema
//! to the publisher), republished only when an endpoint's set of types changes, at most once per
//! [`MIN_INTERVAL`] per endpoint, and cleared when the endpoint is no longer read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::listing::{self, Listing};
use super::snippet::name_of;
use super::{Discovery, EndpointTypes};
use crate::event::RoutedEvent;
use crate::report::{Retained, status_event};

/// The pseudo stream key the discovery messages travel under (their own `seq` space).
pub const DISCOVERY_STREAM: &str = "sse-connector/discovery";
/// How often the endpoints are checked for a changed set of types.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// Shortest time between two messages of one endpoint: a server adding a type per event
/// (up to the cap) costs at most one message per endpoint per interval.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5);
/// Largest message: past it, the message leaves the schemas out (and says so).
pub const MESSAGE_BYTES_MAX: usize = 256 * 1024;

/// Publishes the discovered types of every endpoint on the discovery topic.
#[derive(Debug)]
pub struct TopicPublisher {
    /// Where the types are.
    pub discovery: Arc<Discovery>,
    /// The topic root.
    pub prefix: String,
    /// The forwarder's queue.
    pub out: mpsc::Sender<RoutedEvent>,
}

/// What was last published for one endpoint.
struct Published {
    generation: u64,
    at: Instant,
}

impl TopicPublisher {
    /// Publishes until `token` is cancelled or the forwarder is gone.
    pub async fn run(self, token: CancellationToken) {
        let mut published: BTreeMap<String, Published> = BTreeMap::new();
        let mut seq = 0u64;
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = token.cancelled() => return,
            }
            let mut batch = self.due(&mut published).await;
            for (topic, r) in batch.drain(..) {
                seq += 1;
                let mut ev = status_event(topic, r, seq);
                ev.stream_key = Arc::from(DISCOVERY_STREAM);
                tokio::select! {
                    r = self.out.send(ev) => if r.is_err() { return },
                    _ = token.cancelled() => return,
                }
            }
        }
    }

    /// The messages due now: endpoints whose types changed (and were not published within
    /// [`MIN_INTERVAL`]), and empty ones clearing endpoints no longer read.
    async fn due(&self, published: &mut BTreeMap<String, Published>) -> Vec<(String, Retained)> {
        let endpoints = self.discovery.all(None);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for ep in endpoints {
            let Some(topic) = self.topic_of(&ep) else {
                continue;
            };
            seen.push(topic.clone());
            let generation = ep.generation();
            let fresh = published
                .get(&topic)
                .is_none_or(|p| p.generation != generation && p.at.elapsed() >= MIN_INTERVAL);
            if !fresh || (generation == 0 && !published.contains_key(&topic)) {
                continue;
            }
            // Inference of new samples runs on the blocking pool, off the runtime threads.
            let listed = tokio::task::spawn_blocking(move || listing::of_endpoint(&ep))
                .await
                .ok()
                .flatten();
            let json = listed.map(|l| message(&l)).unwrap_or_default();
            let name = topic.clone();
            out.push((topic.clone(), retained(name, json)));
            let at = Instant::now();
            published.insert(topic, Published { generation, at });
        }
        let gone: Vec<String> = published
            .keys()
            .filter(|t| !seen.contains(t))
            .cloned()
            .collect();
        for topic in gone {
            published.remove(&topic);
            out.push((topic.clone(), retained(topic, String::new())));
        }
        out
    }

    /// `<root>/<device>/<endpoint>`; `None` when a name cannot be a topic level.
    fn topic_of(&self, ep: &EndpointTypes) -> Option<String> {
        let level = sse_contract::topics::is_level;
        (level(&ep.device) && level(&ep.endpoint))
            .then(|| format!("{}/{}/{}", self.prefix, ep.device, ep.endpoint))
    }
}

fn retained(name: String, json: String) -> Retained {
    Retained {
        kind: "discovery",
        name,
        json,
    }
}

/// The retained JSON of one endpoint: ADR's discovered-asset fields, with each event's schema;
/// without the schemas when it would be larger than [`MESSAGE_BYTES_MAX`].
pub fn message(l: &Listing) -> String {
    let full = shaped(l, true).to_string();
    if full.len() <= MESSAGE_BYTES_MAX {
        return full;
    }
    shaped(l, false).to_string()
}

fn shaped(l: &Listing, schemas: bool) -> Value {
    let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for t in &l.types {
        let mut event = json!({
            "name": name_of(&t.sse_type),
            "dataSource": t.sse_type,
            "sampleTruncated": t.truncated,
        });
        if schemas
            && let (Value::Object(m), Ok(s)) =
                (&mut event, serde_json::from_str::<Value>(&t.schema))
        {
            m.insert("schema".into(), s);
        }
        groups.entry(&t.stream_source).or_default().push(event);
    }
    let several = groups.len() > 1;
    let event_groups: Vec<Value> = groups
        .into_iter()
        .enumerate()
        .map(|(i, (source, events))| {
            let name = if several {
                format!("discovered-{}", i + 1)
            } else {
                "discovered".into()
            };
            json!({ "name": name, "dataSource": source, "events": events })
        })
        .collect();
    json!({
        "name": name_of(&format!("{}-{}-discovered", l.device, l.endpoint)),
        "deviceRef": { "deviceName": l.device, "endpointName": l.endpoint },
        "eventGroups": event_groups,
        "otherEvents": l.other.map_or(0, |o| o.count),
        "schemasOmitted": !schemas,
    })
}
