//! Hostile sizes end to end (issue #19, points 1 and 2), against the real binaries, a real
//! Mosquitto and an SSE source over HTTP:
//! - an event between the publisher's old 4 MiB decode limit and ingest's old 16 MiB limit is
//!   dropped at ingest, counted (`events_dropped{event_too_large}`) and named, and both its
//!   stream and another keep flowing; an event of exactly the largest `--max-event-bytes` goes
//!   all the way to the broker; in the three processes and in `sse-connector`;
//! - `--max-event-bytes` over the contract's limit is refused with exit 64, naming the flag;
//! - over-long `id:` values are ignored (the event keeps the previous id) and counted, over-long
//!   `event:` values drop their event and are counted, and ingest's memory stays flat however
//!   long the ids a source sends.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use sse_contract::drops;
use sse_contract::limits::{EVENT_BYTES_MAX, EVENT_ID_BYTES_MAX, EVENT_TYPE_BYTES_MAX};
use sse_e2e::broker::Mosquitto;
use sse_e2e::grpcurl;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::numbered::numbers_on;
use sse_e2e::procs::{Service, bin_dir, connector_args};
use sse_e2e::resources::{asset, device};
use sse_e2e::source::{Feed, Reply, SeenRequest, SseSource, block, blocks_then_hold, by_path};
use sse_e2e::stack::{Pipeline, PipelineArgs};

const MIB: usize = 1024 * 1024;
const STATUS_TOPIC: &str = "sse-connector/status/device/dev";

/// The JSON event `{"n":n,"pad":"x…"}`, padded to exactly `len` bytes (at least its unpadded
/// size).
fn event_of(n: u64, len: usize) -> String {
    let head = format!(r#"{{"n":{n},"pad":""#);
    let pad = len.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

fn small(n: u64) -> String {
    event_of(n, 0)
}

/// `/big`: a small event, one over the limit (5 MiB: over the publisher's old 4 MiB decode
/// limit, under ingest's old 16 MiB), one of exactly the limit, a small one. `/small`: three
/// small events.
fn sizes_feed() -> Feed {
    by_path(|path| match path {
        "/big" => Some(vec![
            block(Some("1"), None, &small(1)),
            block(Some("2"), None, &event_of(2, EVENT_BYTES_MAX + MIB)),
            block(Some("3"), None, &event_of(3, EVENT_BYTES_MAX)),
            block(Some("4"), None, &small(4)),
        ]),
        "/small" => Some(
            (1..=3)
                .map(|n| block(Some(&n.to_string()), None, &small(n)))
                .collect(),
        ),
        _ => None,
    })
}

/// Resources for [`sizes_feed`] at `base`, in a fresh directory's `resources/`.
fn sizes_dir(base: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = device(base)
        + &asset(
            "sizes",
            &[("big", "/big", "e2e/big"), ("small", "/small", "e2e/small")],
        );
    std::fs::write(res.join("sizes.yaml"), yaml).unwrap();
    dir
}

/// The ListStreams entry of the stream whose URL ends with `path`.
async fn stream_status(ingest: &str, path: &str) -> Value {
    grpcurl::stream_status(ingest, path).await.unwrap()
}

/// What both forms must show once the sizes feed ran: the broker got every event within the
/// limit of both streams, in order, and not the one over it; ingest counted and named the drop
/// in ListStreams, GetStatus and the retained status JSON.
async fn sizes_hold(ingest: &str, sub: &Subscriber, status: &Subscriber) {
    let msgs = sub
        .wait_until("the events after the dropped one, on both streams", |m| {
            numbers_on(m, "e2e/big").contains(&4) && numbers_on(m, "e2e/small").contains(&3)
        })
        .await
        .unwrap();
    assert_eq!(
        numbers_on(&msgs, "e2e/big"),
        [1, 3, 4],
        "the 5 MiB event is dropped"
    );
    assert_eq!(numbers_on(&msgs, "e2e/small"), [1, 2, 3]);
    let max = msgs
        .iter()
        .find(|m| m.topic == "e2e/big" && m.user("sseid") == Some("3"))
        .unwrap();
    assert_eq!(
        max.payload.len(),
        EVENT_BYTES_MAX,
        "the largest event arrives whole"
    );

    let big = stream_status(ingest, "/big").await;
    assert_eq!(big["eventsDropped"][drops::EVENT_TOO_LARGE], "1", "{big}");
    let error = big["lastError"].as_str().unwrap_or_default();
    assert!(error.contains(drops::EVENT_TOO_LARGE), "{big}");
    assert!(error.contains(&EVENT_BYTES_MAX.to_string()), "{big}");
    let other = stream_status(ingest, "/small").await;
    assert!(other.get("eventsDropped").is_none(), "{other}");

    let s = grpcurl::call_json(ingest, None, &["sseconnector.v1.IngestService/GetStatus"])
        .await
        .unwrap();
    let endpoint = &s["devices"][0]["inboundEndpoints"][0];
    assert_eq!(
        endpoint["eventsDropped"][drops::EVENT_TOO_LARGE],
        "1",
        "{s}"
    );

    let retained = status
        .wait_until("the device status counting the drop", |m| {
            m.iter()
                .any(|r| r.topic == STATUS_TOPIC && dropped_in_json(&r.payload))
        })
        .await
        .unwrap();
    assert!(
        retained
            .iter()
            .any(|r| r.retain && dropped_in_json(&r.payload))
    );
}

/// Whether a retained device status JSON counts one `event_too_large` drop on `sse-0`.
fn dropped_in_json(payload: &[u8]) -> bool {
    serde_json::from_slice::<Value>(payload).is_ok_and(|v| {
        v["endpoints"]["inbound"]["sse-0"]["eventsDropped"][drops::EVENT_TOO_LARGE] == 1
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_drop_an_event_over_the_limit_and_deliver_one_at_it() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let status = Subscriber::connect(broker.port, STATUS_TOPIC)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, sizes_feed()).unwrap();
    let dir = sizes_dir(&source.base_url());
    let path = |p: &str| dir.path().join(p).display().to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: path("schemas"),
        resources: path("resources"),
        publisher: vec![],
        ingest: vec!["--max-event-bytes".into(), EVENT_BYTES_MAX.to_string()],
        env: None,
    })
    .await
    .unwrap();
    sizes_hold(&pipeline.ingest.addr.to_string(), &sub, &status).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_drops_an_event_over_the_limit_and_delivers_one_at_it() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let status = Subscriber::connect(broker.port, STATUS_TOPIC)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, sizes_feed()).unwrap();
    let dir = sizes_dir(&source.base_url());
    let mut args = connector_args(
        &broker.url(),
        &dir.path().join("resources"),
        &dir.path().join("schemas"),
    );
    args.extend(["--max-event-bytes".into(), EVENT_BYTES_MAX.to_string()]);
    let connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    sizes_hold(&connector.addr.to_string(), &sub, &status).await;
}

#[tokio::test]
async fn max_event_bytes_over_the_contract_limit_exits_64_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let over = (EVENT_BYTES_MAX + 1).to_string();
    for bin in ["sse-ingest", "sse-connector"] {
        let run = tokio::process::Command::new(bin_dir().join(bin))
            .args(["--listen", "127.0.0.1:0", "--max-event-bytes", &over])
            .arg("--resources")
            .arg(dir.path())
            .kill_on_drop(true)
            .output();
        // A binary that takes the flag serves instead of exiting: fail, do not hang.
        let out = tokio::time::timeout(sse_e2e::DEADLINE, run)
            .await
            .unwrap_or_else(|_| panic!("{bin} accepted --max-event-bytes {over}"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{bin}: {stderr}");
        assert!(stderr.contains("--max-event-bytes"), "{bin}: {stderr}");
        assert!(
            stderr.contains(&EVENT_BYTES_MAX.to_string()),
            "{bin}: {stderr}"
        );
    }
}

/// Events with an over-long id, after the first.
const LONG_IDS: u64 = 300;
/// Size of each over-long id: 0.2 MiB, as in the issue.
const LONG_ID_BYTES: usize = 200 * 1024;
/// Events with an over-long type.
const LONG_TYPES: u64 = 5;

/// `/ids`: event 1 with id "1"; once `gate` opens, [`LONG_IDS`] events with 0.2 MiB ids,
/// [`LONG_TYPES`] events with over-long types, and a last event with id "2".
fn ids_feed(gate: tokio::sync::watch::Receiver<bool>) -> Feed {
    Arc::new(move |req: &SeenRequest| {
        if req.path != "/ids" {
            return Reply::not_found();
        }
        let long_id = "i".repeat(LONG_ID_BYTES);
        let long_type = "t".repeat(EVENT_TYPE_BYTES_MAX + 1);
        let mut rest: Vec<String> = (2..LONG_IDS + 2)
            .map(|n| block(Some(&long_id), None, &small(n)))
            .collect();
        let after = LONG_IDS + 2;
        rest.extend((after..after + LONG_TYPES).map(|n| block(None, Some(&long_type), &small(n))));
        let last = after + LONG_TYPES;
        rest.push(block(Some("2"), None, &small(last)));
        let mut gate = gate.clone();
        let later = futures::stream::once(async move {
            let _ = gate.wait_for(|open| *open).await;
            blocks_then_hold(rest)
        })
        .flatten();
        let first = futures::stream::once(async { Bytes::from(block(Some("1"), None, &small(1))) });
        Reply::Sse(Box::pin(first.chain(later)))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ids_are_ignored_long_types_dropped_and_ingest_memory_stays_flat() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let (open, gate) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, ids_feed(gate)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = device(&source.base_url()) + &asset("ids", &[("all", "/ids", "e2e/ids")]);
    std::fs::write(res.join("ids.yaml"), yaml).unwrap();
    let pipeline = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();
    sub.wait_until("the first event", |m| numbers_on(m, "e2e/ids") == [1])
        .await
        .unwrap();
    let before = pipeline.ingest.rss_kib().unwrap();

    open.send_replace(true);
    let last = LONG_IDS + 2 + LONG_TYPES;
    let msgs = sub
        .wait_until("the last event", |m| {
            numbers_on(m, "e2e/ids").contains(&last)
        })
        .await;
    let after = pipeline.ingest.rss_kib().unwrap();
    let sent_kib = LONG_IDS as usize * LONG_ID_BYTES / 1024;
    let grown = after.saturating_sub(before) as usize;
    eprintln!("ingest RSS {before} KiB -> {after} KiB (+{grown} KiB) for {sent_kib} KiB of ids");
    let msgs = msgs.unwrap();

    let delivered = numbers_on(&msgs, "e2e/ids");
    let want: Vec<u64> = (1..LONG_IDS + 2).chain([last]).collect();
    assert_eq!(delivered, want, "long ids delivered, long types dropped");
    let sse_ids: BTreeSet<Option<&str>> = msgs.iter().map(|m| m.user("sseid")).collect();
    assert_eq!(
        sse_ids,
        BTreeSet::from([Some("1"), Some("2")]),
        "an ignored id leaves the previous one"
    );
    let ingest = pipeline.ingest.addr.to_string();
    let s = stream_status(&ingest, "/ids").await;
    assert_eq!(
        s["eventNotices"][drops::ID_TOO_LONG],
        LONG_IDS.to_string(),
        "{s}"
    );
    assert_eq!(
        s["eventsDropped"][drops::EVENT_TYPE_TOO_LONG],
        LONG_TYPES.to_string(),
        "{s}"
    );
    assert_eq!(s["lastEventId"], "2", "{s}");

    // Not a timing: ingest's resident memory may not grow by more than a fraction of the ids
    // it was sent (60 MiB here; before the limits, 0.1-0.2 MiB ids grew it by hundreds of MiB).
    assert!(
        grown < sent_kib / 4,
        "ingest grew by {grown} KiB for {sent_kib} KiB of ids (limit {EVENT_ID_BYTES_MAX} bytes)"
    );
}
