//! #19 point 3: a checkpoint can never keep ingest from starting. Retained messages that anyone
//! who can publish on the broker may leave under the checkpoint prefix (one over rumqttc's default
//! 10 KiB, one over the control packet limit, a malformed one, and a valid record stored under a
//! topic that is not its stream's) are skipped: the restarted ingest serves, the stream whose
//! record was misplaced starts without it, and the other stream resumes from its checkpoint.
//! Both as `sse-ingest` with `--checkpoint-store mqtt://...` and as `sse-connector` with its
//! default store (the publisher's broker).

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::numbered::{NumberedSource, Numbering, number_of};
use sse_e2e::procs::Service;
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_proto::v1 as pb;
use sse_proto::v1::ingest_service_client::IngestServiceClient;

const PREFIX: &str = "sse-connector/checkpoint";

fn count(msgs: &[Received], topic: &str) -> usize {
    msgs.iter()
        .filter(|m| m.topic == topic && number_of(&m.payload).is_some())
        .count()
}

/// The checkpoint records on the broker with the given last event ID: (topic, stream key).
async fn records(port: u16, last_event_id: &str, n: usize) -> Vec<(String, String)> {
    let sub = Subscriber::connect(port, &format!("{PREFIX}/#"))
        .await
        .unwrap();
    let decode = |m: &Received| -> Option<(String, String)> {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).ok()?;
        (v["lastEventId"] == last_event_id).then(|| {
            (
                m.topic.clone(),
                v["stream"].as_str().unwrap_or_default().to_string(),
            )
        })
    };
    let all = sub
        .wait_until(&format!("{n} checkpoints at {last_event_id}"), |m| {
            m.iter().filter_map(decode).count() >= n
        })
        .await
        .unwrap();
    all.iter().filter_map(decode).collect()
}

/// Publishes retained `(topic, payload)` messages and returns once the broker applied them: a
/// marker published after them (QoS 1, in order on one connection) has come back.
async fn plant(port: u16, messages: Vec<(String, Vec<u8>)>) {
    let sub = Subscriber::connect(port, "e2e-marker/#").await.unwrap();
    for (topic, payload) in messages {
        sub.client()
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .unwrap();
    }
    sub.client()
        .publish("e2e-marker/planted", QoS::AtLeastOnce, false, "done")
        .await
        .unwrap();
    sub.wait_until("the planted messages", |m| !m.is_empty())
        .await
        .unwrap();
}

/// Where ingest runs: its own process beside schema and the publisher, or inside
/// `sse-connector` (whose default store is the broker).
#[derive(Clone, Copy, Debug)]
enum Form {
    ThreeProcesses,
    Connector,
}

/// Starts the services for `form`, checkpoints on the broker flushed every 100 ms: returns the
/// process that holds ingest (its `--listen` is ingest's) and the others to keep running.
async fn start(form: Form, broker: &Mosquitto, dir: &std::path::Path) -> (Service, Vec<Service>) {
    let s = |x: &str| x.to_string();
    let resources = dir.join("resources").display().to_string();
    let schemas = dir.join("schemas").display().to_string();
    let common = [
        s("--checkpoint-interval"),
        s("100ms"),
        s("--status-topic"),
        String::new(),
    ];
    match form {
        Form::ThreeProcesses => {
            let mut ingest = vec![s("--checkpoint-store"), broker.url()];
            ingest.extend(common);
            let p = Pipeline::start(PipelineArgs {
                mqtt_url: broker.url(),
                data_dir: schemas,
                resources,
                publisher: vec![],
                ingest,
                env: None,
            })
            .await
            .unwrap();
            (p.ingest, vec![p.publisher, p.schema])
        }
        Form::Connector => {
            let mut args = vec![
                s("--schema-listen"),
                s("127.0.0.1:0"),
                s("--publisher-listen"),
                s("127.0.0.1:0"),
                s("--mqtt-url"),
                broker.url(),
                s("--resources"),
                resources,
                s("--data-dir"),
                schemas,
            ];
            args.extend(common);
            let c = Service::start("sse-connector", &args, &[]).await.unwrap();
            (c, vec![])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_retained_checkpoints_never_keep_ingest_from_starting() {
    hostile_retained_checkpoints(Form::ThreeProcesses).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_retained_checkpoints_never_keep_the_connector_from_starting() {
    hostile_retained_checkpoints(Form::Connector).await;
}

async fn hostile_retained_checkpoints(form: Form) {
    let total = 40;
    let broker = Mosquitto::start().await.unwrap();
    let source = NumberedSource::start(Numbering {
        total,
        interval: Duration::from_millis(2),
        drop_every: None,
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = sse_e2e::numbered::resources_with(
        &source.base_url(),
        &[("a", "/a", "e2e/a"), ("b", "/b", "e2e/b")],
    );
    std::fs::write(res.join("numbers.yaml"), yaml).unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let (mut ingest, _others) = start(form, &broker, dir.path()).await;
    let n = total as usize;
    sub.wait_until("every event of both streams", |m| {
        count(m, "e2e/a") >= n && count(m, "e2e/b") >= n
    })
    .await
    .unwrap();
    let saved = records(broker.port, &total.to_string(), 2).await;
    let (b_topic, b_stream) = saved
        .iter()
        .find(|(_, k)| k.contains("/b"))
        .unwrap()
        .clone();
    ingest.kill().await.unwrap();

    // Stream b's record moves to a topic that is not its own; three more are planted.
    let record = |stream: &str, id: &str| {
        serde_json::json!({ "stream": stream, "lastEventId": id })
            .to_string()
            .into_bytes()
    };
    let limit = sse_contract::limits::MQTT_CONTROL_PACKET_BYTES_MAX;
    plant(
        broker.port,
        vec![
            (b_topic, Vec::new()),
            (
                format!("{PREFIX}/{}", "0".repeat(32)),
                record(&b_stream, "40"),
            ),
            (format!("{PREFIX}/malformed"), b"{oops".to_vec()),
            (
                format!("{PREFIX}/big"),
                record(&b_stream, &"9".repeat(20 * 1024)),
            ),
            (
                format!("{PREFIX}/huge"),
                record(&b_stream, &"9".repeat(limit)),
            ),
        ],
    )
    .await;
    let requests_before = source.source.seen().len();
    ingest.restart().await.unwrap();

    // It serves, and both streams are read again: a from its checkpoint, b from the start.
    let url = ingest.url();
    let listed = sse_e2e::eventually("ingest to list both streams", || {
        let url = url.clone();
        // Each try is bounded: a listener that never serves accepts TCP but never answers.
        let list = async move {
            let mut client = IngestServiceClient::connect(url).await.ok()?;
            let streams = client
                .list_streams(pb::ListStreamsRequest::default())
                .await
                .ok()?
                .into_inner()
                .streams;
            (streams.len() == 2).then_some(streams)
        };
        async move {
            tokio::time::timeout(Duration::from_secs(5), list)
                .await
                .ok()?
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ingest.log_text()));
    assert_eq!(listed.len(), 2);
    sub.wait_until("stream b read again from the start", |m| {
        count(m, "e2e/b") >= 2 * n
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ingest.log_text()));
    let seen = source.source.seen();
    let after: Vec<_> = seen[requests_before..].iter().collect();
    let resumed = |path: &str| {
        after
            .iter()
            .find(|r| r.path.starts_with(path))
            .map(|r| r.header("last-event-id").map(str::to_string))
    };
    assert_eq!(resumed("/a"), Some(Some(total.to_string())), "{after:?}");
    assert_eq!(resumed("/b"), Some(None), "{after:?}");
    let logs = ingest.log_text();
    assert!(logs.contains("not its stream's"), "{logs}");
    assert!(logs.contains("malformed checkpoint record"), "{logs}");
    assert!(logs.contains("exceeds the limit"), "{logs}");
}

/// The retained topic of a stream key's record, as ingest computes it (first 16 bytes of the
/// SHA-256 of the key, hex).
fn topic_of(key: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    let level: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}/{level}")
}

/// #19 point 6: a record an older version stored under the raw URL (with the credentials of
/// the device address in it) is resumed from, moved to today's key, and its retained message
/// is cleared, so the secret does not stay on the broker after an upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_record_with_a_secret_moves_to_todays_key_and_leaves_the_broker() {
    let total = 20;
    let broker = Mosquitto::start().await.unwrap();
    let source = NumberedSource::start(Numbering {
        total,
        interval: Duration::from_millis(2),
        drop_every: None,
    })
    .await
    .unwrap();
    let base = source.base_url();
    let with_secret = base.replacen("http://", "http://user:s3cret-pw@", 1);
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = sse_e2e::numbered::resources_with(&with_secret, &[("a", "/a", "e2e/a")]);
    std::fs::write(res.join("numbers.yaml"), yaml).unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let (mut ingest, _others) = start(Form::ThreeProcesses, &broker, dir.path()).await;
    sub.wait_until("every event", |m| count(m, "e2e/a") >= total as usize)
        .await
        .unwrap();
    let saved = records(broker.port, &total.to_string(), 1).await;
    let (topic, key) = saved[0].clone();
    assert!(
        !key.contains("s3cret-pw"),
        "today's key holds no secret: {key}"
    );
    ingest.kill().await.unwrap();

    // What an older version stored: the same stream under its raw URL, on that key's topic.
    let legacy = key.replacen("http://", "http://user:s3cret-pw@", 1);
    assert_ne!(legacy, key);
    let record = serde_json::json!({ "stream": legacy, "lastEventId": "7" }).to_string();
    plant(
        broker.port,
        vec![
            (topic, Vec::new()),
            (topic_of(&legacy), record.into_bytes()),
        ],
    )
    .await;
    let requests_before = source.source.seen().len();
    ingest.restart().await.unwrap();

    sub.wait_until("the events after the legacy checkpoint again", |m| {
        count(m, "e2e/a") >= total as usize + (total as usize - 7)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", ingest.log_text()));
    let seen = source.source.seen();
    let resumed = seen[requests_before..]
        .iter()
        .find(|r| r.path.starts_with("/a"))
        .and_then(|r| r.header("last-event-id").map(str::to_string));
    assert_eq!(
        resumed.as_deref(),
        Some("7"),
        "resumed from the legacy record"
    );
    // The broker ends with today's record and nothing that holds the secret.
    let retained = Subscriber::connect(broker.port, &format!("{PREFIX}/#"))
        .await
        .unwrap();
    let all = retained
        .wait_until("today's record, and the legacy one gone", |m| {
            let has_secret = m.iter().any(|r| r.text().contains("s3cret-pw"));
            let has_today = m.iter().any(|r| r.text().contains(&key));
            has_today && !has_secret
        })
        .await;
    assert!(
        all.is_ok(),
        "{:?}",
        retained
            .all()
            .iter()
            .map(|r| (r.topic.clone(), r.text()))
            .collect::<Vec<_>>()
    );
}

/// Device churn used to leave one retained record per renamed or deleted stream on the broker
/// for ever. A record whose stream is in no plan is cleared (an empty retained message) once
/// gone for `CHECKPOINT_RETENTION`, counted from the time the record carries; a younger one
/// stays. (The environment, not the flag: a build without it still starts, and fails here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_records_of_streams_gone_for_the_retention_are_cleared() {
    let broker = Mosquitto::start().await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let record = |key: &str, seen: u64| {
        serde_json::json!({ "stream": key, "lastEventId": "1", "seen": seen })
            .to_string()
            .into_bytes()
    };
    let (old, young) = ("gone-2h/sse-0|http://h/x", "gone-10m/sse-0|http://h/x");
    plant(
        broker.port,
        vec![
            (topic_of(old), record(old, now - 7200)),
            (topic_of(young), record(young, now - 600)),
        ],
    )
    .await;
    let watch = Subscriber::connect(broker.port, &format!("{PREFIX}/#"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--schema",
        "http://127.0.0.1:9",
        "--resources",
        &dir.path().display().to_string(),
        "--checkpoint-store",
        &broker.url(),
        "--checkpoint-interval",
        "100ms",
        "--status-topic",
        "",
    ]
    .map(String::from);
    let env = [("CHECKPOINT_RETENTION".to_string(), "1h".to_string())];
    let ingest = Service::start("sse-ingest", &args, &env).await.unwrap();
    let cleared =
        |m: &[Received], topic: &str| m.iter().any(|r| r.topic == topic && r.payload.is_empty());
    watch
        .wait_until("the old record cleared", |m| cleared(m, &topic_of(old)))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", ingest.log_text()));
    assert!(!cleared(&watch.all(), &topic_of(young)));
    // A new subscriber finds the young record only: everything retained comes before a marker
    // published after the subscription.
    let fresh = Subscriber::connect_filters(broker.port, &[&format!("{PREFIX}/#"), "e2e-marker/#"])
        .await
        .unwrap();
    fresh
        .client()
        .publish("e2e-marker/x", QoS::AtLeastOnce, false, "done")
        .await
        .unwrap();
    let got = fresh
        .wait_until("the marker", |m| {
            m.iter().any(|r| r.topic == "e2e-marker/x")
        })
        .await
        .unwrap();
    let retained: Vec<String> = got
        .iter()
        .filter(|r| r.retain && r.topic.starts_with(PREFIX))
        .map(|r| r.text())
        .collect();
    assert_eq!(retained.len(), 1, "{retained:?}");
    assert!(retained[0].contains(young), "{retained:?}");
}
