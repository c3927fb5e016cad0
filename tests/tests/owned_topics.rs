//! Topics the connector owns, end to end with the real binaries and Mosquitto: `PublishMessage`
//! to each owned topic is refused with `PERMISSION_DENIED` naming the rule, an event on the
//! Publish stream routed to one is acked with that refusal while the stream keeps flowing, and
//! an Asset destination on one is a config error in status while the other assets deliver. In
//! every case nothing reaches the broker on the owned topic. A status or checkpoint prefix on
//! another owned rule is a bad command line (exit 64).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use sse_contract::topics::{self, OwnedTopic};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::procs::{Service, bin_dir};
use sse_e2e::source::{Feed, Reply, block, blocks_then_hold};
use sse_e2e::stack::Stack;
use sse_e2e::{DEADLINE, eventually, grpcurl};
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;

const PUBLISH_MESSAGE: &str = "sseconnector.v1.PublisherService/PublishMessage";
/// Every payload meant for an owned topic carries this, so a forgery is told apart from the
/// broker's own messages on `$SYS` and from the connector's status reports (which name the
/// refused datasets).
const FORGED: &str = "forgery-payload";

/// The subscription that would see a forgery: every topic (`#`) and the broker's `$SYS` tree,
/// which `#` does not match.
async fn watch_everything(port: u16) -> Subscriber {
    Subscriber::connect_filters(port, &["#", "$SYS/#"])
        .await
        .unwrap()
}

/// Asserts that no message carrying [`FORGED`] reached the broker.
fn assert_nothing_forged(all: &[Received]) {
    let forged: Vec<&str> = all
        .iter()
        .filter(|m| m.text().contains(FORGED))
        .map(|m| m.topic.as_str())
        .collect();
    assert!(forged.is_empty(), "forged messages on {forged:?}");
}

fn publish_message(topic: &str, payload: &str) -> String {
    serde_json::json!({
        "topic": topic,
        "payload": payload,
        "qos": "QOS_AT_LEAST_ONCE",
        "retain": true,
    })
    .to_string()
}

async fn start_publisher(broker: &Mosquitto) -> Service {
    let args = ["--mqtt-url".to_string(), broker.url()];
    Service::start("sse-publisher", &args, &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_message_to_each_owned_topic_is_refused() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = watch_everything(broker.port).await;
    let publisher = start_publisher(&broker).await;
    let addr = publisher.addr.to_string();

    // A normal topic works, once the publisher has its broker connection.
    let before = publish_message("e2e/before", "ok");
    grpcurl::call_until_ok(
        "PublishMessage to a normal topic",
        &addr,
        &before,
        &[PUBLISH_MESSAGE],
    )
    .await
    .unwrap();

    // Each rule's example, plus other shapes of the same rules.
    let mut cases: Vec<(String, OwnedTopic)> = OwnedTopic::ALL
        .iter()
        .map(|r| (r.example().to_string(), *r))
        .collect();
    cases.extend([
        ("$share/group/e2e/x".to_string(), OwnedTopic::Broker),
        ("$SYS/e2e".to_string(), OwnedTopic::Broker),
        (topics::STATUS_PREFIX.to_string(), OwnedTopic::Status),
        (
            topics::state_store_response("sse-publisher-0"),
            OwnedTopic::StateStoreResponse,
        ),
        (
            topics::SCHEMA_REGISTRY_GET.to_string(),
            OwnedTopic::RegistryRequest,
        ),
    ]);
    for (topic, rule) in &cases {
        let r = grpcurl::call_refused(
            &addr,
            Some(&publish_message(topic, FORGED)),
            &[PUBLISH_MESSAGE],
        )
        .await
        .unwrap();
        assert_eq!(r.code, "PermissionDenied", "{topic}: {r:?}");
        assert!(r.message.contains(&rule.to_string()), "{topic}: {r:?}");
        assert!(r.message.contains(topic.as_str()), "{topic}: {r:?}");
    }
    // A wildcard is malformed rather than forbidden.
    let r = grpcurl::call_refused(
        &addr,
        Some(&publish_message("e2e/+/x", FORGED)),
        &[PUBLISH_MESSAGE],
    )
    .await
    .unwrap();
    assert_eq!(r.code, "InvalidArgument", "{r:?}");
    assert!(r.message.contains("wildcard"), "{r:?}");

    // A normal topic still works; anything published before it would have arrived before it.
    grpcurl::call(
        &addr,
        Some(&publish_message("e2e/after", "ok")),
        &[PUBLISH_MESSAGE],
    )
    .await
    .unwrap();
    let all = sub
        .wait_until("the message after the refusals", |m| {
            m.iter().any(|r| r.topic == "e2e/after")
        })
        .await
        .unwrap();
    assert!(all.iter().any(|m| m.topic == "e2e/before"));
    assert_nothing_forged(&all);
}

/// An event of `kind` for `destination`, `seq` in stream `owned-topics`.
fn event(seq: u64, kind: pb::RouteKind, destination: pb::destination::Target) -> pb::Event {
    pb::Event {
        id: format!("ev-{seq}"),
        seq,
        stream_key: "owned-topics".into(),
        data: format!(r#"{{"seq":{seq}}}"#).into(),
        route: Some(pb::Route {
            device: "dev".into(),
            endpoint: "sse-0".into(),
            asset: "a".into(),
            kind: kind as i32,
            group: "g".into(),
            destination: Some(pb::Destination {
                target: Some(destination),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mqtt(topic: &str) -> pb::destination::Target {
    pb::destination::Target::Mqtt(pb::MqttDestination {
        topic: topic.into(),
        qos: pb::Qos::AtLeastOnce as i32,
        retain: false,
        ttl_seconds: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_on_owned_topics_are_refused_and_the_stream_keeps_flowing() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = watch_everything(broker.port).await;
    let publisher = start_publisher(&broker).await;

    use pb::RouteKind::{Dataset, Event, Status};
    let store = pb::destination::Target::StateStore(pb::StateStoreDestination { key: "k".into() });
    // (event, the rule its refusal names; None: delivered)
    let cases: Vec<(pb::Event, Option<String>)> = vec![
        (event(1, Dataset, mqtt("e2e/first")), None),
        (
            event(2, Dataset, mqtt("sse-connector/status/asset/a")),
            Some(OwnedTopic::Status.to_string()),
        ),
        (
            event(3, Event, mqtt(topics::STATE_STORE_REQUEST)),
            Some(OwnedTopic::StateStoreRequest.to_string()),
        ),
        (
            event(4, Status, mqtt("sse-connector/checkpoint/0123")),
            Some(OwnedTopic::Checkpoint.to_string()),
        ),
        (
            event(5, Status, store),
            Some("only ingest's routes write to the state store".into()),
        ),
        (
            event(6, Dataset, mqtt("$SYS/e2e")),
            Some(OwnedTopic::Broker.to_string()),
        ),
        (event(7, Status, mqtt("sse-connector/status/asset/a")), None),
        (event(8, Dataset, mqtt("e2e/last")), None),
    ];
    let events: Vec<pb::Event> = cases.iter().map(|(e, _)| e.clone()).collect();

    let mut client = PublisherServiceClient::connect(publisher.url())
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::PublishRequest {
        events,
        ack_now: false,
    })
    .await
    .unwrap();
    let mut acks_stream = client
        .publish(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut acks: HashMap<u64, pb::Ack> = HashMap::new();
    while acks.len() < cases.len() {
        let resp = tokio::time::timeout(DEADLINE, acks_stream.message())
            .await
            .expect("acks in time")
            .expect("the Publish stream stays up")
            .expect("the Publish stream is not over");
        acks.extend(resp.acks.into_iter().map(|a| (a.seq, a)));
    }
    for (ev, refusal) in &cases {
        let ack = &acks[&ev.seq];
        match refusal {
            None => assert_eq!(ack.error, "", "event {}", ev.seq),
            Some(rule) => {
                assert!(ack.error.starts_with("permission denied"), "{ack:?}");
                assert!(ack.error.contains(rule.as_str()), "{ack:?}");
            }
        }
    }
    // The stream is still open: one more event goes through.
    tx.send(pb::PublishRequest {
        events: vec![event(9, Dataset, mqtt("e2e/after"))],
        ack_now: false,
    })
    .await
    .unwrap();
    let resp = tokio::time::timeout(DEADLINE, acks_stream.message())
        .await
        .expect("the ack in time")
        .unwrap()
        .unwrap();
    assert_eq!(resp.acks.len(), 1);
    assert_eq!((resp.acks[0].seq, resp.acks[0].error.as_str()), (9, ""));

    let all = sub
        .wait_until("the delivered events", |m| {
            [
                "e2e/first",
                "e2e/last",
                "e2e/after",
                "sse-connector/status/asset/a",
            ]
            .iter()
            .all(|t| m.iter().any(|r| r.topic == *t))
        })
        .await
        .unwrap();
    let on = |topic: &str| all.iter().filter(|m| m.topic == topic).count();
    assert_eq!(
        on("sse-connector/status/asset/a"),
        1,
        "only the status route's"
    );
    for topic in [
        topics::STATE_STORE_REQUEST,
        "sse-connector/checkpoint/0123",
        "$SYS/e2e",
    ] {
        assert_eq!(on(topic), 0, "{topic}");
    }
}

const API: &str = "apiVersion: namespaces.deviceregistry.microsoft.com/v1";

/// The owned topics asset `forger` tries, by dataset name (its data source is `/<name>`).
fn forged_datasets() -> Vec<(&'static str, &'static str, OwnedTopic)> {
    vec![
        (
            "status",
            "sse-connector/status/asset/clean",
            OwnedTopic::Status,
        ),
        (
            "checkpoint",
            "sse-connector/checkpoint/00ff",
            OwnedTopic::Checkpoint,
        ),
        (
            "store",
            topics::STATE_STORE_REQUEST,
            OwnedTopic::StateStoreRequest,
        ),
        ("sys", "$SYS/e2e", OwnedTopic::Broker),
        (
            "registry",
            topics::SCHEMA_REGISTRY_PUT,
            OwnedTopic::RegistryRequest,
        ),
    ]
}

fn destination(topic: &str) -> String {
    format!("[ {{ target: Mqtt, configuration: {{ topic: \"{topic}\", retain: Keep }} }} ]")
}

/// Device `dev`, asset `forger` (dataset `good` and event `ok` are fine, the forged datasets and
/// event `forged` aim at owned topics) and asset `clean`. Retained, so a forgery would stay on
/// the broker for a later subscriber to see.
fn resources(base: &str) -> String {
    let forged: String = forged_datasets()
        .iter()
        .map(|(name, topic, _)| {
            format!(
                "    - {{ name: {name}, dataSource: /{name}, destinations: {} }}\n",
                destination(topic)
            )
        })
        .collect();
    format!(
        r#"{API}
kind: Device
metadata: {{ name: dev }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{base}" }}
---
{API}
kind: Asset
metadata: {{ name: forger }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
    - {{ name: good, dataSource: /good, destinations: {good} }}
{forged}  eventGroups:
    - name: alerts
      dataSource: /alerts
      events:
        - {{ name: ok, dataSource: ok, destinations: {ok} }}
        - {{ name: forged, dataSource: forged, destinations: {forged_event} }}
---
{API}
kind: Asset
metadata: {{ name: clean }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
    - {{ name: readings, dataSource: /clean, destinations: {clean} }}
"#,
        good = destination("e2e/good"),
        ok = destination("e2e/ok"),
        forged_event = destination("sse-connector/dead-letter/forger/alerts"),
        clean = destination("e2e/clean"),
    )
}

/// The named entry of a JSON array of `{ name, ... }`.
fn named<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// Asserts `entry` has a config error naming `rule` and `topic`.
fn assert_refused(entry: &serde_json::Value, topic: &str, rule: OwnedTopic) {
    let error = &entry["error"];
    assert_eq!(error["code"], "InvalidConfiguration", "{entry}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&rule.to_string()), "{rule:?}: {message}");
    assert!(message.contains(topic), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_destination_on_an_owned_topic_is_a_config_error() {
    let feed: Feed = Arc::new(|req| {
        let path = req.path.trim_start_matches('/');
        if path == "alerts" {
            return Reply::Sse(blocks_then_hold(vec![
                block(Some("a1"), Some("ok"), r#"{"n":2}"#),
                block(
                    Some("a2"),
                    Some("forged"),
                    &format!(r#"{{"{FORGED}":"event"}}"#),
                ),
            ]));
        }
        let data = match path {
            "good" | "clean" => r#"{"n":1}"#.to_string(),
            other => format!(r#"{{"{FORGED}":"{other}"}}"#),
        };
        Reply::Sse(blocks_then_hold(vec![block(Some("1"), None, &data)]))
    });
    let (stack, e2e) = Stack::start(feed, resources).await.unwrap();
    let sub = watch_everything(stack.broker.port).await;

    // GetStatus: each forged dataset and the forged event has a config error naming the rule;
    // the asset itself, its good dataset and event, and the other asset have none.
    let addr = stack.ingest.addr.to_string();
    let status = eventually("the assets in GetStatus", || {
        let addr = addr.clone();
        async move {
            let s = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/GetStatus"])
                .await
                .ok()?;
            (s["assets"].as_array()?.len() == 2).then_some(s)
        }
    })
    .await
    .unwrap();
    let forger = named(&status["assets"], "forger");
    assert!(forger["config"]["error"].is_null(), "{}", forger["config"]);
    let datasets = &forger["datasets"];
    assert!(named(datasets, "good")["error"].is_null(), "{datasets}");
    for (name, topic, rule) in forged_datasets() {
        assert_refused(named(datasets, name), topic, rule);
    }
    let events = &named(&forger["eventGroups"], "alerts")["events"];
    assert!(named(events, "ok")["error"].is_null(), "{events}");
    assert_refused(
        named(events, "forged"),
        "sse-connector/dead-letter/forger/alerts",
        OwnedTopic::DeadLetter,
    );
    let clean = named(&status["assets"], "clean");
    assert!(clean["config"]["error"].is_null(), "{clean}");
    assert!(
        named(&clean["datasets"], "readings")["error"].is_null(),
        "{clean}"
    );

    // The valid destinations deliver; nothing reaches an owned topic (retained, so a forgery
    // published before this subscription would be delivered to it too).
    e2e.wait_until("the good dataset, the ok event and the clean asset", |m| {
        ["e2e/good", "e2e/ok", "e2e/clean"]
            .iter()
            .all(|t| m.iter().any(|r| r.topic == *t))
    })
    .await
    .unwrap();
    let all = sub
        .wait_until("the valid events, retained", |m| {
            ["e2e/good", "e2e/ok", "e2e/clean"]
                .iter()
                .all(|t| m.iter().any(|r| r.topic == *t))
        })
        .await
        .unwrap();
    assert_nothing_forged(&all);
}

#[tokio::test]
async fn a_status_or_checkpoint_prefix_on_another_owned_topic_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "--status-topic",
            topics::CHECKPOINT_PREFIX,
            OwnedTopic::Checkpoint,
        ),
        ("--status-topic", "$SYS/status", OwnedTopic::Broker),
        (
            "--checkpoint-topic",
            topics::STATUS_PREFIX,
            OwnedTopic::Status,
        ),
        (
            "--checkpoint-topic",
            topics::STATE_STORE_REQUEST,
            OwnedTopic::StateStoreRequest,
        ),
    ];
    for bin in ["sse-ingest", "sse-connector"] {
        for (flag, prefix, rule) in cases {
            let run = tokio::process::Command::new(bin_dir().join(bin))
                .args(["--listen", "127.0.0.1:0", flag, prefix])
                .arg("--resources")
                .arg(dir.path())
                .kill_on_drop(true)
                .output();
            // A binary that takes the prefix serves instead of exiting: fail, do not hang.
            let out = tokio::time::timeout(DEADLINE, run)
                .await
                .unwrap_or_else(|_| panic!("{bin} accepted {flag} {prefix}"))
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(64),
                "{bin} {flag} {prefix}: {stderr}"
            );
            assert!(stderr.contains(flag), "{bin}: {stderr}");
            assert!(stderr.contains(&rule.to_string()), "{bin}: {stderr}");
        }
    }
}
