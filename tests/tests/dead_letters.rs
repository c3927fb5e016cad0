//! #23 point 8, through the real binaries and a real Mosquitto whose `acl_file` refuses some
//! topics: events that fail for good land on their route's dead-letter topic with the reason,
//! the original destination and the CloudEvents id in user properties, and the other events
//! keep flowing.
//!
//! - `/denied`: its topic is refused by the ACL (PUBACK 0x87): dead-lettered (`broker_refused`)
//!   to the device's dead-letter topic.
//! - `/big`: one event over `--max-event-bytes` among small ones: dead-lettered truncated to its
//!   first 1 KiB and marked (`too_large`); the small ones are delivered.
//! - `/text`: a payload the schema stage cannot accept (not JSON): dead-lettered
//!   (`schema_rejected`).
//! - `/lost`: refused too, and so is its asset's own dead-letter topic: the events are counted
//!   and acknowledged (the stream's checkpoint moves on), never looped.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_contract::dead_letter::{self as dl, HEAD_BYTES};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::numbered::{number_of, numbers_on};
use sse_e2e::source::{SseSource, block, by_path};
use sse_e2e::stack::{Pipeline, PipelineArgs};

/// Ingest's `--max-event-bytes` here: the big event goes over it.
const MAX_EVENT: usize = 2048;
/// The device's dead-letter topic, and the asset `lost`'s own (which the ACL refuses).
const DEVICE_DL: &str = "sse-connector/dead-letter/dev";
const REFUSED_DL: &str = "sse-connector/dead-letter/refused";

fn data(n: u64) -> String {
    format!(r#"{{"n":{n}}}"#)
}

/// The big event's data: recognisable bytes, far over the limit.
fn big() -> String {
    let filler: String = (0..3 * MAX_EVENT)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    format!(r#"{{"n":3,"filler":"{filler}"}}"#)
}

fn blocks(path: &str) -> Option<Vec<String>> {
    let numbered = |ns: std::ops::RangeInclusive<u64>| {
        ns.map(|n| block(Some(&n.to_string()), None, &data(n)))
            .collect::<Vec<_>>()
    };
    Some(match path {
        "/ok" | "/denied" | "/lost" => numbered(1..=3),
        "/big" => {
            let mut b = numbered(1..=2);
            b.push(block(Some("3"), Some("reading"), &big()));
            b.extend(numbered(4..=5));
            b
        }
        "/text" => vec![block(Some("1"), None, "plain text, not JSON")],
        _ => return None,
    })
}

fn resources(base: &str) -> String {
    let dataset = |name: &str, topic: &str| {
        format!(
            "    - {{ name: {name}, dataSource: /{name}, destinations: [ {{ target: Mqtt, configuration: {{ topic: {topic}, qos: Qos1 }} }} ] }}\n"
        )
    };
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: "{base}"
        additionalConfiguration: '{{"deadLetter": {{"topic": "{DEVICE_DL}"}}}}'
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: line }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  datasets:
{ok}{denied}{big}{text}---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: lost }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  defaultDatasetsConfiguration: '{{"deadLetter": {{"topic": "{REFUSED_DL}"}}}}'
  datasets:
{lost}"#,
        ok = dataset("ok", "e2e/ok"),
        denied = dataset("denied", "e2e/denied"),
        big = dataset("big", "e2e/big"),
        text = dataset("text", "e2e/text"),
        lost = dataset("lost", "e2e/denied"),
    )
}

/// The dead letters on `topic` whose original destination was `destination`.
fn dead_letters<'a>(msgs: &'a [Received], topic: &str, destination: &str) -> Vec<&'a Received> {
    msgs.iter()
        .filter(|m| m.topic == topic && m.user(dl::PROP_DESTINATION) == Some(destination))
        .collect()
}

/// Whether a checkpoint record on the broker says the stream of `path` is at `last_event_id`.
fn checkpointed(msgs: &[Received], path: &str, last_event_id: &str) -> bool {
    msgs.iter()
        .filter(|m| m.topic.starts_with("sse-connector/checkpoint/"))
        .filter_map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
        .any(|v| {
            v["stream"].as_str().is_some_and(|s| s.ends_with(path))
                && v["lastEventId"] == last_event_id
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_that_fail_for_good_land_on_their_dead_letter_topic() {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        format!("topic readwrite #\ntopic deny e2e/denied\ntopic deny {REFUSED_DL}\n"),
    )
    .unwrap();
    let broker = Mosquitto::start_with(&[&format!("acl_file {}", acl.display())])
        .await
        .unwrap();
    let sub = Subscriber::connect_filters(
        broker.port,
        &[
            "e2e/#",
            "sse-connector/dead-letter/#",
            "sse-connector/checkpoint/#",
        ],
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, by_path(blocks)).unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::write(res.join("resources.yaml"), resources(&source.base_url())).unwrap();
    let s = |x: &str| x.to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.path().join("schemas").display().to_string(),
        resources: res.display().to_string(),
        publisher: vec![],
        ingest: vec![
            s("--max-event-bytes"),
            MAX_EVENT.to_string(),
            s("--checkpoint-store"),
            broker.url(),
            s("--checkpoint-interval"),
            s("100ms"),
        ],
        env: None,
    })
    .await
    .unwrap();

    let msgs = sub
        .wait_until("the events and dead letters", |m| {
            numbers_on(m, "e2e/ok").len() >= 3
                && numbers_on(m, "e2e/big").len() >= 4
                && dead_letters(m, DEVICE_DL, "e2e/denied").len() >= 3
                && !dead_letters(m, DEVICE_DL, "e2e/big").is_empty()
                && !dead_letters(m, DEVICE_DL, "e2e/text").is_empty()
        })
        .await
        .unwrap_or_else(|e| panic!("{e}; publisher log:\n{}", pipeline.publisher.log_text()));

    // The other events keep flowing, also those after the big one on its stream.
    assert_eq!(numbers_on(&msgs, "e2e/ok"), [1, 2, 3]);
    assert_eq!(numbers_on(&msgs, "e2e/big"), [1, 2, 4, 5]);
    assert!(numbers_on(&msgs, "e2e/text").is_empty());

    // Refused by the broker's ACL: the payload and CloudEvents properties kept, and why.
    let denied = dead_letters(&msgs, DEVICE_DL, "e2e/denied");
    let mut got: Vec<u64> = denied
        .iter()
        .filter_map(|m| number_of(&m.payload))
        .collect();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, [1, 2, 3]);
    for m in &denied {
        assert_eq!(m.user(dl::PROP_REASON), Some("broker_refused"), "{m:?}");
        assert!(
            m.user(dl::PROP_DETAIL).unwrap().contains("not_authorized")
                || m.user(dl::PROP_DETAIL).unwrap().contains("NotAuthorized"),
            "{m:?}"
        );
        assert!(!m.user("id").unwrap().is_empty());
        assert_eq!(m.user(dl::PROP_ID), m.user("id"));
        assert_eq!(m.user("specversion"), Some("1.0"));
        assert_eq!(m.user(dl::PROP_TRUNCATED), None);
    }

    // Over the size limit: its first bytes, marked truncated, with its type and id.
    let big_dl = dead_letters(&msgs, DEVICE_DL, "e2e/big");
    let m = big_dl[0];
    assert_eq!(m.payload.len(), HEAD_BYTES);
    assert_eq!(&m.payload[..], &big().as_bytes()[..HEAD_BYTES]);
    assert_eq!(m.user(dl::PROP_REASON), Some("too_large"));
    assert_eq!(m.user(dl::PROP_TRUNCATED), Some("true"));
    let original: usize = m.user(dl::PROP_ORIGINAL_BYTES).unwrap().parse().unwrap();
    assert!(original > MAX_EVENT, "{original}");
    assert_eq!(m.user("sseevent"), Some("reading"));
    assert_eq!(m.user("sseid"), Some("3"));
    assert_eq!(m.user(dl::PROP_ID), m.user("id"));

    // Not JSON: refused by the schema stage.
    let text = dead_letters(&msgs, DEVICE_DL, "e2e/text");
    assert_eq!(text[0].text(), "plain text, not JSON");
    assert_eq!(text[0].user(dl::PROP_REASON), Some("schema_rejected"));

    // The asset `lost`'s own dead-letter topic is refused too: counted, acknowledged (the
    // checkpoint of its stream reaches the last event), not tried again.
    sub.wait_until("the checkpoint of /lost at its last event", |m| {
        checkpointed(m, "/lost", "3")
    })
    .await
    .unwrap();
    // The publisher's log is read from its stderr as it comes: waited for, not assumed.
    sse_e2e::eventually("three refused dead letters in the publisher's log", || {
        let log = pipeline.publisher.log_text();
        let n = log
            .matches("dead letter not published; event acknowledged")
            .count();
        async move { (n >= 3).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", pipeline.publisher.log_text()));
    // Nothing of `lost` went to the device's dead-letter topic: the asset's own wins.
    let all = sub.all();
    assert!(
        all.iter()
            .filter(|m| m.topic == DEVICE_DL)
            .all(|m| m.user("subject").is_none_or(|s| !s.starts_with("lost/"))),
    );
}
