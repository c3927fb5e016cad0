//! A device that floods cannot starve another (the brief's "a bad device can never hurt it"),
//! against the real binaries, a real Mosquitto and an SSE source over HTTP: one stream sends
//! events as fast as its socket takes them, for the whole test, while another stream's events,
//! sent one at a time, each reach the broker. In the three processes and in `sse-connector`.
//!
//! Ingest's in-flight limits are small here, so the flood holds them full all along, and the
//! publisher holds acks for an hour unless asked (`--ack-delay 1h`): whenever ingest can send
//! nothing more it must ask for the held acks (`ack_now`), or both streams stop. Before it did,
//! a window under the publisher's 512-ack batch waited out the whole ack delay at every turn
//! (with the default 200 ms and a window of 100: 500 events/s, every stream's event delayed by
//! seconds behind the flood).

#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use serde_json::Value;
use sse_e2e::broker::Mosquitto;
use sse_e2e::flood::{calm_event, feed, resources};
use sse_e2e::grpcurl;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::procs::{Service, connector_args};
use sse_e2e::source::SseSource;
use sse_e2e::stack::{Pipeline, PipelineArgs};
use tokio::sync::mpsc;

/// Events the calm stream sends, one after the other's arrival.
const CALM_EVENTS: u64 = 20;
/// Ingest's in-flight window when it is what holds the flood back (`--max-in-flight`).
const WINDOW: u64 = 100;
/// Ingest's byte budget when it is what holds the flood back (`--max-in-flight-bytes`): about
/// a hundred of the flood's events, with what ingest counts for each besides its data.
const BUDGET_BYTES: u64 = 64 * 1024;
/// The publisher holds acks this long unless asked for them.
const ACKS_HELD: [&str; 2] = ["--ack-delay", "1h"];
/// Ingest's flag that makes the window, or the byte budget, what holds the flood back.
fn limit(by_bytes: bool) -> Vec<String> {
    match by_bytes {
        false => vec!["--max-in-flight".into(), WINDOW.to_string()],
        true => vec!["--max-in-flight-bytes".into(), BUDGET_BYTES.to_string()],
    }
}

/// A counter (`eventsForwarded`, `eventsAcknowledged`) of the stream reading `path`, from
/// ingest's `ListStreams` at `ingest`.
async fn count(ingest: &str, path: &str, counter: &str) -> u64 {
    let s = grpcurl::stream_status(ingest, path).await.unwrap();
    s[counter]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Events the flood's stream has had acknowledged.
async fn flood_acknowledged(ingest: &str) -> u64 {
    count(ingest, "/flood", "eventsAcknowledged").await
}

/// Sends the calm stream's events one at a time, each once the one before reached the broker,
/// while the flood keeps ingest's in-flight window full, and checks that the flood went on
/// all along: the pipeline serves both, not one.
async fn calm_flows_through_the_flood(
    ingest: &str,
    calm: &mpsc::UnboundedSender<Bytes>,
    sub: &Subscriber,
) {
    // Many windows' worth of the flood have gone through: it is flowing, and it fills the
    // window whenever the pipeline lets it.
    flood_past(ingest, 50 * WINDOW).await;
    let flood_before = flood_acknowledged(ingest).await;
    for n in 1..=CALM_EVENTS {
        calm.send(calm_event(n)).unwrap();
        sub.wait_until(&format!("calm event {n} during the flood"), |msgs| {
            msgs.iter()
                .any(|m| serde_json::from_slice::<Value>(&m.payload).is_ok_and(|v| v["calm"] == n))
        })
        .await
        .unwrap();
    }
    let flood_during = flood_acknowledged(ingest).await - flood_before;
    assert!(
        flood_during >= WINDOW,
        "the flood stalled while the calm events went through: {flood_during} events"
    );
    let numbers: Vec<u64> = sub
        .all()
        .iter()
        .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
        .filter_map(|v| v["calm"].as_u64())
        .collect();
    assert_eq!(
        numbers,
        (1..=CALM_EVENTS).collect::<Vec<_>>(),
        "once each, in order"
    );
}

/// The three processes reading the flood and the calm stream, with these extra flags.
struct Three {
    broker: Mosquitto,
    calm: mpsc::UnboundedSender<Bytes>,
    pipeline: Pipeline,
    _source: SseSource,
    _dir: tempfile::TempDir,
}

impl Three {
    async fn start(publisher: Vec<String>, ingest: Vec<String>) -> Self {
        let broker = Mosquitto::start().await.unwrap();
        let (feed, calm) = feed();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = SseSource::start(listener, feed).unwrap();
        let dir = resources(&source.base_url()).unwrap();
        let path = |p: &str| dir.path().join(p).display().to_string();
        let pipeline = Pipeline::start(PipelineArgs {
            mqtt_url: broker.url(),
            data_dir: path("schemas"),
            resources: path("resources"),
            publisher,
            ingest,
            env: None,
        })
        .await
        .unwrap();
        Self {
            broker,
            calm,
            pipeline,
            _source: source,
            _dir: dir,
        }
    }

    /// Ingest's gRPC address.
    fn ingest(&self) -> String {
        self.pipeline.ingest.addr.to_string()
    }
}

/// Waits until the flood's stream has had more than `past` events acknowledged.
async fn flood_past(ingest: &str, past: u64) {
    sse_e2e::eventually(&format!("the flood past {past} events"), || async {
        (flood_acknowledged(ingest).await > past).then_some(())
    })
    .await
    .unwrap();
}

/// The three processes, ingest limited as [`limit`] says.
async fn three_processes(by_bytes: bool) {
    let rig = Three::start(ACKS_HELD.map(String::from).to_vec(), limit(by_bytes)).await;
    let sub = Subscriber::connect(rig.broker.port, "e2e/calm")
        .await
        .unwrap();
    calm_flows_through_the_flood(&rig.ingest(), &rig.calm, &sub).await;
}

/// `sse-connector`, limited as [`limit`] says.
async fn one_process(by_bytes: bool) {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/calm").await.unwrap();
    let (feed, calm) = feed();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed).unwrap();
    let dir = resources(&source.base_url()).unwrap();
    let mut args = connector_args(
        &broker.url(),
        &dir.path().join("resources"),
        &dir.path().join("schemas"),
    );
    args.extend(limit(by_bytes));
    args.extend(ACKS_HELD.map(String::from));
    let connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    calm_flows_through_the_flood(&connector.addr.to_string(), &calm, &sub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_keep_a_calm_stream_flowing_beside_a_flood_that_fills_the_window() {
    three_processes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_keep_a_calm_stream_flowing_beside_a_flood_that_spends_the_budget() {
    three_processes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_keeps_a_calm_stream_flowing_beside_a_flood_that_fills_the_window() {
    one_process(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_keeps_a_calm_stream_flowing_beside_a_flood_that_spends_the_budget() {
    one_process(true).await;
}

/// With the broker away nothing is acknowledged, and the flood holds all it may: its share of
/// the window (`--max-in-flight-per-stream`), not the window. The calm stream's event still goes
/// on to the schema service, and reaches the broker once it is back. (Before shares, the flood
/// took the whole window, and the calm event waited in ingest's queue behind the flood's for as
/// long as the broker was away.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_holds_only_its_share_of_the_window_while_nothing_is_acknowledged() {
    const SHARE: u64 = 50;
    let mut ingest = limit(false);
    ingest.extend(["--max-in-flight-per-stream".into(), SHARE.to_string()]);
    let mut rig = Three::start(vec![], ingest).await;
    let at = rig.ingest();
    let at = at.as_str();
    flood_past(at, 10 * WINDOW).await;
    rig.broker.kill().await;
    // Nothing is acknowledged now: the flood fills its share and stops there.
    sse_e2e::eventually("the flood to hold its whole share", || async {
        let sent = count(at, "/flood", "eventsForwarded").await;
        let acked = flood_acknowledged(at).await;
        (sent - acked == SHARE).then_some(())
    })
    .await
    .unwrap();
    rig.calm.send(calm_event(1)).unwrap();
    let calm_counts = |counter: &'static str| async move {
        (count(at, "/calm", counter).await == 1).then_some(())
    };
    sse_e2e::eventually("the calm event to be forwarded beside the flood", || {
        calm_counts("eventsForwarded")
    })
    .await
    .unwrap();
    rig.broker.restart().await.unwrap();
    sse_e2e::eventually("the calm event to be delivered", || {
        calm_counts("eventsAcknowledged")
    })
    .await
    .unwrap();
}

/// The schema service restarts while the flood holds the byte budget and the publisher holds
/// acks for an hour: the reader was already waiting when the Process stream came back, so it
/// raises no new signal, and ingest must still ask the new stream for acks (it asks whenever a
/// reader waits and it has not asked since it last sent events or a stream opened). With a
/// first version, which asked on the signal's edge, the flood stopped for the hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_goes_on_after_the_schema_service_restarts() {
    let mut rig = Three::start(ACKS_HELD.map(String::from).to_vec(), limit(true)).await;
    let at = rig.ingest();
    flood_past(&at, 10 * WINDOW).await;
    rig.pipeline.schema.kill().await.unwrap();
    rig.pipeline.schema.restart().await.unwrap();
    let after = flood_acknowledged(&at).await;
    flood_past(&at, after + 10 * WINDOW).await;
}
