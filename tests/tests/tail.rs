//! Issue #24 point 2, through the real binaries and a real Mosquitto: `PublisherService/Tail`
//! streams the messages the publisher publishes, with their CloudEvents properties, filtered by
//! device or asset, driven with grpcurl as an operator would; and a tail reader that never
//! reads is told it dropped messages while the MQTT subscriber still gets every event, and the
//! publisher's memory does not grow with what the reader misses (its RSS, measured), and the
//! publisher's `/metrics` shows the open tail and counts every message the reader lost.
//!
//! The tails are open before the events they must show: `/a` and `/b` tick for as long as the
//! test runs, and the two bursts of `/burst/1` and `/burst/2` wait for the test's signals.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::numbered::number_of;
use sse_e2e::procs::read_into;
use sse_e2e::source::{Reply, SeenRequest, SseSource, block, blocks_then_hold};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_proto::v1 as pb;
use tokio::sync::watch;

/// The events of the stalled-reader test: far more than a tail queue and the HTTP/2 buffers
/// between the publisher and a reader that never reads.
const BURST: u64 = 2000;
/// Filler in each burst event (under the tail's payload cut, so nothing is truncated): a tail
/// that held every message would hold `BURST * FILLER` bytes, 16 MB.
const FILLER: usize = 8192;

fn resources(base: &str) -> String {
    let device = |name: &str| {
        format!(
            "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: {{ name: {name} }}\nspec:\n  endpoints:\n    inbound:\n      sse-0: {{ endpointType: Microsoft.SSEHttp, address: \"{base}\" }}\n---\n"
        )
    };
    let asset = |name: &str, device: &str, path: &str, topic: &str| {
        format!(
            "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\nmetadata: {{ name: {name} }}\nspec:\n  deviceRef: {{ deviceName: {device}, endpointName: sse-0 }}\n  datasets:\n    - {{ name: {name}, dataSource: {path}, destinations: [ {{ target: Mqtt, configuration: {{ topic: {topic}, qos: Qos1 }} }} ] }}\n---\n"
        )
    };
    [
        device("dev1"),
        device("dev2"),
        asset("line", "dev1", "/a", "e2e/a"),
        asset("press", "dev2", "/b", "e2e/b"),
        asset("burst1", "dev1", "/burst/1", "e2e/burst/1"),
        asset("burst2", "dev1", "/burst/2", "e2e/burst/2"),
    ]
    .concat()
}

/// `/a` and `/b`: a numbered event every 50 ms, for as long as the test runs; `/burst/<k>`:
/// burst k, [`BURST`] events at once numbered on from the previous burst, each with [`FILLER`]
/// bytes, once `go` reaches k.
fn feed(go: watch::Receiver<u64>) -> sse_e2e::source::Feed {
    Arc::new(move |req: &SeenRequest| {
        let path = req.path.split('?').next().unwrap_or_default().to_string();
        match path.as_str() {
            "/a" | "/b" => {
                let ticks = futures::stream::unfold(1u64, |n| async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let b = block(Some(&n.to_string()), None, &format!(r#"{{"n":{n}}}"#));
                    Some((Bytes::from(b), n + 1))
                });
                Reply::Sse(Box::pin(ticks))
            }
            "/burst/1" | "/burst/2" => {
                let k: u64 = if path.ends_with('1') { 1 } else { 2 };
                let filler = "x".repeat(FILLER);
                let blocks = ((k - 1) * BURST + 1..=k * BURST)
                    .map(|n| {
                        let data = format!(r#"{{"n":{n},"filler":"{filler}"}}"#);
                        block(Some(&n.to_string()), None, &data)
                    })
                    .collect();
                let mut go = go.clone();
                let wait = futures::stream::once(async move {
                    let _ = go.wait_for(|g| *g >= k).await;
                    Bytes::from_static(b": go\n\n")
                });
                Reply::Sse(Box::pin(wait.chain(blocks_then_hold(blocks))))
            }
            _ => Reply::not_found(),
        }
    })
}

/// The distinct event numbers among `msgs`, in order.
fn distinct(msgs: &[sse_e2e::mqtt::Received]) -> Vec<u64> {
    let mut n: Vec<u64> = msgs.iter().filter_map(|m| number_of(&m.payload)).collect();
    n.sort_unstable();
    n.dedup();
    n
}

/// A grpcurl `Tail` call whose output is read as it comes.
struct GrpcurlTail {
    child: tokio::process::Child,
    out: Arc<Mutex<String>>,
}

impl GrpcurlTail {
    fn start(addr: &str, request: &str) -> Self {
        let mut child = tokio::process::Command::new("grpcurl")
            .args(["-plaintext", "-max-time", "120", "-d", request, addr])
            .arg("sseconnector.v1.PublisherService/Tail")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("grpcurl runs (install it with `just setup`)");
        let out = Arc::default();
        read_into(child.stdout.take().unwrap(), &out);
        Self { child, out }
    }

    /// The responses printed so far (grpcurl prints one JSON object per response).
    fn responses(&self) -> Vec<Value> {
        let text = self.out.lock().unwrap().clone();
        serde_json::Deserializer::from_str(&text)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .collect()
    }

    /// Waits until at least `n` messages were printed, and returns them.
    async fn messages(&self, n: usize) -> Vec<Value> {
        sse_e2e::eventually(&format!("{n} tailed messages"), || {
            let got: Vec<Value> = self
                .responses()
                .into_iter()
                .filter_map(|r| r.get("message").cloned())
                // A device's and an asset's status reports are published for them too (when
                // their status changes), so a tail by device or asset sees them between events.
                .filter(|m| {
                    !m["topic"]
                        .as_str()
                        .is_some_and(|t| t.starts_with(sse_contract::topics::STATUS_PREFIX))
                })
                .collect();
            async move { (got.len() >= n).then_some(got) }
        })
        .await
        .unwrap()
    }
}

/// The value of the user property `name` of a tailed message (grpcurl's JSON).
fn user(m: &Value, name: &str) -> Option<String> {
    m["userProperties"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["value"].as_str().map(str::to_string))
}

/// `sse_connector_tail_readers` and `sse_connector_tail_dropped_total` as the publisher's
/// admin port at `admin` serves them now (each a single series, no labels).
async fn tail_metrics(admin: SocketAddr) -> (u64, u64) {
    let reply = sse_e2e::admin::get(admin, "/metrics").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    let value = |name: &str| -> u64 {
        let line = reply
            .body
            .lines()
            .find(|l| l.split([' ', '{']).next() == Some(name))
            .unwrap_or_else(|| panic!("{name} is not exported:\n{}", reply.body));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    (
        value("sse_connector_tail_readers"),
        value("sse_connector_tail_dropped_total"),
    )
}

async fn start(dir: &std::path::Path, broker: &Mosquitto, source: &SseSource) -> Pipeline {
    let res = dir.join("resources");
    sse_e2e::write_file(&res, "r.yaml", &resources(&source.base_url()));
    // Port 0: the publisher prints the admin address it bound.
    let env = |_: &str| vec![("ADMIN_LISTEN".to_string(), "127.0.0.1:0".to_string())];
    Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.join("schemas").display().to_string(),
        resources: res.display().to_string(),
        publisher: vec![],
        ingest: vec![],
        env: Some(&env),
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_tails_the_published_messages_filtered_by_device_and_asset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_go, go) = watch::channel(0);
    let source = SseSource::start(listener, feed(go)).unwrap();
    let pipeline = start(dir.path(), &broker, &source).await;
    let addr = pipeline.publisher.addr.to_string();
    let by_asset = GrpcurlTail::start(&addr, r#"{"asset": "line"}"#);
    let by_device = GrpcurlTail::start(&addr, r#"{"device": "dev2", "maxPayloadBytes": 4}"#);
    let by_topic = GrpcurlTail::start(&addr, r#"{"topic": "e2e/+"}"#);

    let line = by_asset.messages(3).await;
    for m in &line {
        assert_eq!(m["topic"], "e2e/a", "{m}");
        assert_eq!(m["asset"], "line");
        assert_eq!(m["device"], "dev1");
        assert_eq!(m["qos"], "QOS_AT_LEAST_ONCE");
        // The CloudEvents properties, as subscribers get them.
        assert_eq!(user(m, "specversion").as_deref(), Some("1.0"), "{m}");
        assert!(user(m, "id").is_some_and(|id| !id.is_empty()), "{m}");
        assert!(user(m, "source").is_some(), "{m}");
        assert!(user(m, "type").is_some(), "{m}");
        assert_eq!(m["contentType"], "application/json");
        let payload = base64::engine::general_purpose::STANDARD
            .decode(m["payload"].as_str().unwrap())
            .unwrap();
        assert!(number_of(&payload).is_some(), "{m}");
        assert!(m.get("truncated").is_none(), "{m}");
    }
    // Another device's messages only, cut to the four bytes asked for.
    let press = by_device.messages(3).await;
    for m in &press {
        assert_eq!(m["topic"], "e2e/b", "{m}");
        assert_eq!(m["device"], "dev2");
        let payload = base64::engine::general_purpose::STANDARD
            .decode(m["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(payload, b"{\"n\"");
        assert_eq!(m["truncated"], true);
        let size: usize = m["payloadBytes"].as_str().unwrap().parse().unwrap();
        assert!(size > 4, "{m}");
    }
    // A topic filter with a wildcard takes both assets' messages.
    sse_e2e::eventually("both topics under e2e/+", || {
        let topics: Vec<Value> = by_topic
            .responses()
            .iter()
            .map(|r| r["message"]["topic"].clone())
            .collect();
        let both = topics.contains(&Value::from("e2e/a")) && topics.contains(&Value::from("e2e/b"));
        async move { both.then_some(()) }
    })
    .await
    .unwrap();
    for mut t in [by_asset, by_device, by_topic] {
        let _ = t.child.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_is_told_it_dropped_and_the_pipeline_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/burst/#")
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (go_tx, go) = watch::channel(0);
    let source = SseSource::start(listener, feed(go)).unwrap();
    let pipeline = start(dir.path(), &broker, &source).await;
    let admin = pipeline
        .publisher
        .printed_addr("sse-publisher admin listening on ")
        .await
        .unwrap();
    // Exported at 0 before any tail opens.
    assert_eq!(tail_metrics(admin).await, (0, 0));
    // A client whose HTTP/2 window is tiny: once it stops reading, the publisher's stream to
    // it stalls after a few messages.
    let channel = tonic::transport::Endpoint::from_shared(pipeline.publisher.url())
        .unwrap()
        .initial_stream_window_size(Some(1024))
        .initial_connection_window_size(Some(1024))
        .connect()
        .await
        .unwrap();
    let mut client = pb::publisher_service_client::PublisherServiceClient::new(channel);
    let request = pb::TailRequest {
        topic: "e2e/burst/#".into(),
        ..Default::default()
    };
    // The call returns once the tail is open: the bursts come after.
    let mut stalled = client.tail(request).await.unwrap().into_inner();
    // The subscriber gets every event while the tail reader reads nothing.
    let mut rss = Vec::new();
    for k in 1..=2 {
        go_tx.send(k).unwrap();
        let msgs = sub
            .wait_until(&format!("every event of burst {k}"), |m| {
                distinct(m).len() as u64 >= k * BURST
            })
            .await
            .unwrap_or_else(|e| panic!("{e}; ingest log:\n{}", pipeline.ingest.log_text()));
        assert_eq!(distinct(&msgs), (1..=k * BURST).collect::<Vec<_>>());
        rss.push(pipeline.publisher.rss_kib().unwrap());
    }
    // Memory: the first burst grows the publisher's buffers; the second, as large, must not
    // grow it by what a tail holding the burst would (the stalled tail holds a few dozen). The
    // allocator's own swing between two bursts measured -4 to +5 MB.
    let grown = rss[1].saturating_sub(rss[0]);
    eprintln!(
        "publisher RSS after burst 1: {} KiB, after burst 2: {} KiB",
        rss[0], rss[1]
    );
    let held_kib = BURST * FILLER as u64 / 1024;
    assert!(
        grown < held_kib,
        "the second burst grew the publisher by {grown} KiB; holding it would take {held_kib} KiB"
    );

    // Now it reads: what was queued, and the count of what it lost.
    let mut messages = 0u64;
    let mut dropped = 0u64;
    while messages + dropped < 2 * BURST {
        let next = tokio::time::timeout(Duration::from_secs(10), stalled.next()).await;
        let Ok(Some(Ok(item))) = next else {
            panic!("the tail ended early: {messages} messages, {dropped} dropped")
        };
        match item.item.unwrap() {
            pb::tail_response::Item::Message(m) => {
                assert!(m.topic.starts_with("e2e/burst/"), "{}", m.topic);
                messages += 1;
            }
            pb::tail_response::Item::Dropped(d) => dropped += d.count,
        }
    }
    eprintln!("the stalled reader got {messages} messages and was told of {dropped} dropped");
    assert!(dropped > 0, "{messages} messages and no drop notice");
    assert_eq!(messages + dropped, 2 * BURST);
    // The operator sees the open tail and exactly the drops its reader was told of.
    assert_eq!(tail_metrics(admin).await, (1, dropped));
    drop(stalled);
    drop(client);
    // The tail closes once the publisher sees the call go (the counter keeps its total).
    sse_e2e::eventually("the closed tail leaves tail.readers", || async move {
        (tail_metrics(admin).await == (0, dropped)).then_some(())
    })
    .await
    .unwrap();
}
