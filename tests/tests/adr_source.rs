//! `sse-connector` deployed by the Akri operator (ADR_RESOURCES_NAME_MOUNT_PATH and CONNECTOR_ID
//! set) takes its Devices and Assets from Azure Device Registry (the kit's in-test ADR service on
//! a real Mosquitto) for what the allocation files name: an allocated asset starts its stream, an
//! ADR asset update moves its events to the new topic without touching other streams, removing
//! the asset from the allocation closes its stream, and an asset ADR does not know is a resource
//! error while the others flow.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};
use sse_e2e::adr::AdrService;
use sse_e2e::broker::{Mosquitto, free_port};
use sse_e2e::mqtt::Subscriber;
use sse_e2e::procs::Service;
use sse_e2e::source::{Feed, Reply, SeenRequest, SseSource, demo_feed};
use sse_e2e::{eventually, grpcurl};

const CONNECTOR: &str = "sse-akri-7f9c";
const T1: &str = "e2e/adr/t1";
const T2: &str = "e2e/adr/t2";
const T3: &str = "e2e/adr/t3";
/// The allocation file of the device `dev`'s inbound endpoint `sse`.
const ALLOCATION: &str = "dev_sse";

/// Open SSE connections per request path (a connection counts until its response is dropped).
type Open = Arc<Mutex<HashMap<String, i64>>>;

/// The demo weather station (`/readings`, `/alerts`, an event every 50 ms) counting open
/// connections per path.
fn counted_feed(open: Open) -> Feed {
    let inner = demo_feed(Duration::from_millis(50));
    Arc::new(move |req: &SeenRequest| match inner(req) {
        Reply::Sse(chunks) => {
            let guard = Guard(open.clone(), req.path.clone());
            *open.lock().unwrap().entry(req.path.clone()).or_default() += 1;
            Reply::Sse(Box::pin(chunks.map(move |b| {
                let _ = &guard;
                b
            })))
        }
        other => other,
    })
}

struct Guard(Open, String);

impl Drop for Guard {
    fn drop(&mut self) {
        *self.0.lock().unwrap().entry(self.1.clone()).or_default() -= 1;
    }
}

fn device(base: &str) -> Value {
    json!({
        "enabled": true,
        "endpoints": {"inbound": {"sse": {
            "address": format!("{base}/ws"), "endpointType": "Microsoft.SSEHttp",
            "authentication": {"method": "Anonymous"}
        }}},
        "version": 1
    })
}

/// An asset of `dev`'s `sse` endpoint reading `path` into `topic`.
fn asset(path: &str, topic: &str) -> Value {
    json!({
        "deviceRef": {"deviceName": "dev", "endpointName": "sse"},
        "version": 1,
        "datasets": [{"name": "all", "dataSource": path,
            "destinations": [{"target": "Mqtt", "configuration":
                {"topic": topic, "qos": "Qos1", "retain": "Never"}}]}]
    })
}

struct Setup {
    adr: AdrService,
    source: SseSource,
    open: Open,
    sub: Subscriber,
    alloc: tempfile::TempDir,
    connector: Service,
    _data: tempfile::TempDir,
    _broker: Mosquitto,
}

impl Setup {
    /// The broker, ADR holding `dev` and the assets `boiler` (`/readings` to T1) and `alarms`
    /// (`/alerts` to T3), the source, and the connector with an empty allocation directory.
    async fn start() -> Self {
        let broker = Mosquitto::start().await.unwrap();
        let adr = AdrService::start(broker.port).await.unwrap();
        let open = Open::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = SseSource::start(listener, counted_feed(open.clone())).unwrap();
        adr.put_device("dev", "sse", device(&source.base_url()));
        adr.put_asset("boiler", asset("/readings", T1));
        adr.put_asset("alarms", asset("/alerts", T3));
        let sub = Subscriber::connect(broker.port, "e2e/adr/#").await.unwrap();
        let (alloc, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let args: Vec<String> = [
            "--schema-listen",
            &format!("127.0.0.1:{}", free_port().unwrap()),
            "--publisher-listen",
            &format!("127.0.0.1:{}", free_port().unwrap()),
            "--mqtt-url",
            &broker.url(),
            "--data-dir",
            &data.path().display().to_string(),
            "--checkpoint-store",
            "none",
            "--reload-debounce=50ms",
            // No periodic re-read: only the allocation watch and ADR's notifications act.
            "--rescan-interval=0s",
        ]
        .map(String::from)
        .to_vec();
        let env = [
            (
                "ADR_RESOURCES_NAME_MOUNT_PATH".to_string(),
                alloc.path().display().to_string(),
            ),
            ("CONNECTOR_ID".to_string(), CONNECTOR.to_string()),
        ];
        let connector = Service::start("sse-connector", &args, &env).await.unwrap();
        Self {
            adr,
            source,
            open,
            sub,
            alloc,
            connector,
            _data: data,
            _broker: broker,
        }
    }

    /// Writes the allocation file of `dev`'s `sse` endpoint with these asset names.
    fn allocate(&self, assets: &[&str]) {
        let text: String = assets.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(self.alloc.path().join(ALLOCATION), text).unwrap();
    }

    /// Open connections to `/ws/<path>`.
    fn open(&self, path: &str) -> i64 {
        let key = format!("/ws/{path}");
        self.open.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    /// Requests the source has seen for `/ws/<path>`.
    fn requests(&self, path: &str) -> usize {
        let key = format!("/ws/{path}");
        self.source.seen().iter().filter(|r| r.path == key).count()
    }

    /// Waits for `n` more messages on `topic` than `after` of them.
    async fn more_on(&self, topic: &str, after: usize, n: usize) {
        self.sub
            .wait_until(&format!("{n} more events on {topic}"), |m| {
                m.iter().filter(|r| r.topic == topic).count() >= after + n
            })
            .await
            .unwrap();
    }

    fn count(&self, topic: &str) -> usize {
        self.sub.all().iter().filter(|r| r.topic == topic).count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocated_assets_stream_follow_adr_updates_and_stop_when_unallocated() {
    let s = Setup::start().await;

    // a. The allocation file starts both assets' streams, read from ADR.
    s.allocate(&["boiler", "alarms"]);
    s.more_on(T1, 0, 3).await;
    s.more_on(T3, 0, 3).await;
    let reqs = s.adr.requests();
    for command in [
        "getDevice",
        "getAsset",
        "setNotificationPreferenceForAssetUpdates",
    ] {
        assert!(
            reqs.iter()
                .any(|r| r.command == command && r.connector == CONNECTOR),
            "{command} by {CONNECTOR}: {:?}",
            reqs.iter().map(|r| &r.command).collect::<Vec<_>>()
        );
    }
    assert_eq!(s.requests("alerts"), 1, "one connection to /alerts");

    // b. ADR moves boiler to T2 and says so: its events follow, alarms' stream is untouched.
    let moved = asset("/readings", T2);
    s.adr.put_asset("boiler", moved.clone());
    s.adr
        .notify_asset(CONNECTOR, "boiler", moved)
        .await
        .unwrap();
    s.more_on(T2, 0, 3).await;
    let t3 = s.count(T3);
    s.more_on(T3, t3, 3).await;
    assert_eq!(s.requests("alerts"), 1, "alarms' stream did not reconnect");
    assert_eq!(s.open("alerts"), 1);

    // c. Unallocating boiler closes its stream; alarms keeps flowing on its connection.
    s.allocate(&["alarms"]);
    eventually("boiler's stream closed", || {
        let closed = s.open("readings") == 0;
        async move { closed.then_some(()) }
    })
    .await
    .unwrap();
    let t3 = s.count(T3);
    s.more_on(T3, t3, 3).await;
    assert_eq!(s.requests("alerts"), 1, "alarms' stream did not reconnect");
    drop(s.connector);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_adr_does_not_know_is_a_resource_error_while_the_others_flow() {
    let s = Setup::start().await;
    s.allocate(&["alarms", "ghost"]);
    s.more_on(T3, 0, 3).await;
    let addr = s.connector.addr.to_string();
    let listed = eventually("ghost in ListStreams' resource errors", || {
        let addr = addr.clone();
        async move {
            let v = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/ListStreams"])
                .await
                .ok()?;
            v["resourceErrors"]
                .to_string()
                .contains("Asset/ghost")
                .then_some(v)
        }
    })
    .await
    .unwrap();
    let errors = listed["resourceErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{listed}");
    assert!(
        errors[0].to_string().contains("getAsset"),
        "names ADR's refusal: {listed}"
    );
}
