//! An `sse-connector` deployed as the Akri operator deploys it (ADR_RESOURCES_NAME_MOUNT_PATH
//! and CONNECTOR_ID set), next to the kit's in-test ADR service on a real Mosquitto and an SSE
//! source counting its open connections: the setup every ADR-mode test starts from.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::adr::AdrService;
use crate::broker::Mosquitto;
use crate::mqtt::Subscriber;
use crate::procs::Service;
use crate::schema_registry::Responder;
use crate::source::{Feed, Reply, SeenRequest, SseSource, demo_feed};

/// The Akri-assigned connector id (pod name).
pub const CONNECTOR: &str = "sse-akri-7f9c";
/// The first dataset topic.
pub const T1: &str = "e2e/adr/t1";
/// Where an update moves `boiler`.
pub const T2: &str = "e2e/adr/t2";
/// `alarms`' topic.
pub const T3: &str = "e2e/adr/t3";
/// The allocation file of the device `dev`'s inbound endpoint `sse`.
pub const ALLOCATION: &str = "dev_sse";

/// Open SSE connections per request path (a connection counts until its response is dropped).
pub type Open = Arc<Mutex<HashMap<String, i64>>>;

/// The demo weather station (`/readings`, `/alerts`, an event every 50 ms) counting open
/// connections per path.
pub fn counted_feed(open: Open) -> Feed {
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

/// Counts a connection down when its response is dropped.
struct Guard(Open, String);

impl Drop for Guard {
    fn drop(&mut self) {
        *self.0.lock().unwrap().entry(self.1.clone()).or_default() -= 1;
    }
}

/// The device `dev` with one anonymous SSE endpoint `sse` at `{base}/ws`.
pub fn device(base: &str) -> Value {
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
pub fn asset(path: &str, topic: &str) -> Value {
    json!({
        "deviceRef": {"deviceName": "dev", "endpointName": "sse"},
        "version": 1,
        "datasets": [{"name": "all", "dataSource": path,
            "destinations": [{"target": "Mqtt", "configuration":
                {"topic": topic, "qos": "Qos1", "retain": "Never"}}]}]
    })
}

/// An asset of `device`'s `endpoint` reading `path` into `topic`.
pub fn asset_on(device: &str, endpoint: &str, path: &str, topic: &str) -> Value {
    let mut a = asset(path, topic);
    a["deviceRef"] = json!({"deviceName": device, "endpointName": endpoint});
    a
}

/// The running setup: the services a test drives and the connector under test.
pub struct Setup {
    /// The in-test ADR service.
    pub adr: AdrService,
    /// The SSE source the device points at.
    pub source: SseSource,
    /// Its open connections per path.
    pub open: Open,
    /// A subscriber to `e2e/adr/#`.
    pub sub: Subscriber,
    /// The allocation directory.
    pub alloc: tempfile::TempDir,
    /// The connector.
    pub connector: Service,
    _data: tempfile::TempDir,
    /// The broker.
    pub broker: Mosquitto,
    /// The in-test AIO schema registry on the broker, which the connector registers its
    /// schemas with under the Akri contract (`--registry auto`), as in an AIO instance.
    pub registry: Responder,
}

/// Starting the setup and watching what it does.
impl Setup {
    /// The broker, ADR holding `dev` and the assets `boiler` (`/readings` to T1) and `alarms`
    /// (`/alerts` to T3), the source, and the connector with an empty allocation directory.
    pub async fn start() -> Self {
        Self::start_with(&[], &[]).await
    }

    /// [`Setup::start`] with more connector arguments and environment variables.
    pub async fn start_with(extra_args: &[&str], extra_env: &[(&str, &str)]) -> Self {
        let broker = Mosquitto::start().await.unwrap();
        let adr = AdrService::start(broker.port).await.unwrap();
        let registry = Responder::start(broker.port).await;
        let open = Open::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let source = SseSource::start(listener, counted_feed(open.clone())).unwrap();
        adr.put_device("dev", "sse", device(&source.base_url()));
        adr.put_asset("boiler", asset("/readings", T1));
        adr.put_asset("alarms", asset("/alerts", T3));
        let sub = Subscriber::connect(broker.port, "e2e/adr/#").await.unwrap();
        let (alloc, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let args: Vec<String> = [
            // Port 0: bound by the process itself, so no other test can take the port between
            // a pick and the bind (a picked port was taken once, and the connector exited 64).
            "--schema-listen",
            "127.0.0.1:0",
            "--publisher-listen",
            "127.0.0.1:0",
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
        .into_iter()
        .chain(extra_args.iter().map(|a| a.to_string()))
        .collect();
        let mut env = vec![
            (
                "ADR_RESOURCES_NAME_MOUNT_PATH".to_string(),
                alloc.path().display().to_string(),
            ),
            ("CONNECTOR_ID".to_string(), CONNECTOR.to_string()),
        ];
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let connector = Service::start("sse-connector", &args, &env).await.unwrap();
        Self {
            adr,
            source,
            open,
            sub,
            alloc,
            connector,
            _data: data,
            broker,
            registry,
        }
    }

    /// Writes the allocation file of `dev`'s `sse` endpoint with these asset names.
    pub fn allocate(&self, assets: &[&str]) {
        let text: String = assets.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(self.alloc.path().join(ALLOCATION), text).unwrap();
    }

    /// Writes the allocation file `name` (`{device}_{endpoint}`) with these asset names.
    pub fn allocate_file(&self, name: &str, assets: &[&str]) {
        let text: String = assets.iter().map(|a| format!("{a}\n")).collect();
        std::fs::write(self.alloc.path().join(name), text).unwrap();
    }

    /// Removes the allocation file `name`: its endpoint is no longer allocated.
    pub fn unallocate_file(&self, name: &str) {
        std::fs::remove_file(self.alloc.path().join(name)).unwrap();
    }

    /// Open connections to `/ws/<path>`.
    pub fn open(&self, path: &str) -> i64 {
        let key = format!("/ws/{path}");
        self.open.lock().unwrap().get(&key).copied().unwrap_or(0)
    }

    /// Requests the source has seen for `/ws/<path>`.
    pub fn requests(&self, path: &str) -> usize {
        let key = format!("/ws/{path}");
        self.source.seen().iter().filter(|r| r.path == key).count()
    }

    /// ADR changes the asset `name` to `definition` and says so with an update notification.
    pub async fn update_asset(&self, name: &str, definition: Value) {
        self.adr.put_asset(name, definition.clone());
        self.adr
            .notify_asset(CONNECTOR, name, definition)
            .await
            .unwrap();
    }

    /// Waits for `n` more messages on `topic` than `after` of them.
    pub async fn more_on(&self, topic: &str, after: usize, n: usize) {
        self.sub
            .wait_until(&format!("{n} more events on {topic}"), |m| {
                m.iter().filter(|r| r.topic == topic).count() >= after + n
            })
            .await
            .unwrap();
    }

    /// Messages received on `topic` so far.
    pub fn count(&self, topic: &str) -> usize {
        self.sub.all().iter().filter(|r| r.topic == topic).count()
    }

    /// Starts the SSE source again on the port it had, with the same feed, after
    /// [`SseSource::stop`] (its port is free once its accept loop has ended).
    pub async fn restart_source(&mut self) {
        let addr = self.source.addr;
        let listener = crate::eventually("the source's port to be free again", || async move {
            tokio::net::TcpListener::bind(addr).await.ok()
        })
        .await
        .unwrap();
        self.source = SseSource::start(listener, counted_feed(self.open.clone())).unwrap();
    }
}

/// [`device`] with ADR's ids: its `uuid` and `externalDeviceId`, which the CloudEvents of its
/// events name it by.
pub fn device_with_ids(base: &str, uuid: &str, external_device_id: &str) -> Value {
    let mut d = device(base);
    d["uuid"] = json!(uuid);
    d["externalDeviceId"] = json!(external_device_id);
    d
}

/// [`asset`] with ADR's ids (`uuid`, `externalAssetId`) and a `typeRef` on its dataset `all`.
pub fn asset_with_ids(
    path: &str,
    topic: &str,
    uuid: &str,
    external_asset_id: &str,
    type_ref: &str,
) -> Value {
    let mut a = asset(path, topic);
    a["uuid"] = json!(uuid);
    a["externalAssetId"] = json!(external_asset_id);
    a["datasets"][0]["typeRef"] = json!(type_ref);
    a
}
