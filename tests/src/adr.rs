//! An in-test Azure Device Registry (ADR) base service, which exists only inside Azure IoT
//! Operations. It follows the service's Thing Model exactly (`dtmi:com:microsoft:akri:
//! AdrBaseService;1`, DTDL MQTT extension v3, JSON; the Azure IoT Operations RPC protocol 1.0):
//!
//! - It subscribes at QoS 1 to `akri/connector/resources/+/+/+/<command>` for `getDevice`,
//!   `getAsset`, `updateDeviceStatus`, `updateAssetStatus`,
//!   `setNotificationPreferenceForDeviceUpdates` and `setNotificationPreferenceForAssetUpdates`
//!   (`.../{connectorClientId}/{deviceName}/{inboundEndpointName}/{commandName}`).
//! - A request without a Response Topic is dropped (nowhere to answer). One without 16 bytes of
//!   Correlation Data, without a Message Expiry, or without `__ts`/`__srcId` is answered `__stat`
//!   400; content type other than `application/json` or a payload format indicator other than 1
//!   is 415; a `__protVer` that is not 1.x is 505 with `__supProtMajVer` `1`; a payload that is
//!   not the command's request (a non-empty one for `getDevice`) is 400 with `__stMsg` naming
//!   the problem.
//! - Requests are read as the DTDL wraps them (`{"assetName": s}`,
//!   `{"deviceStatusUpdate": DeviceStatus}`, `{"assetStatusUpdate": {"assetName", "assetStatus"}}`,
//!   `{"notificationPreferenceRequest": "On"|"Off" | {"assetName", "notificationPreference"}}`)
//!   and answered from an in-memory table with `__stat` 200 and `{"device": ...}`,
//!   `{"asset": ...}`, `{"updatedDeviceStatus": ...}`, `{"updatedAssetStatus": ...}` or
//!   `{"responsePayload": s}`; `getDevice` answers the device with only the inbound endpoint
//!   named in its topic (the DTDL: "the device with the inbound endpoint named in the topic"),
//!   so a device with two allocated endpoints takes two calls; an unknown device or asset is
//!   `__stat` 200 with
//!   `{"<command>Error": {"code": "BadRequest", "message", "timestamp"}}` (the Result pattern).
//! - Answers go to the Response Topic at QoS 1 with the request's Correlation Data, content type
//!   `application/json`, format indicator 1 and the user properties `__stat`, `__protVer`,
//!   `__srcId`, `__ts` (and `__stMsg`, `__apErr` on errors).
//! - Update notifications are telemetry on
//!   `akri/connector/resources/telemetry/{connectorClientId}/{device}/{endpoint}/{name}`: QoS 1,
//!   16 bytes of Correlation Data, no Response Topic, `application/json`, format indicator 1,
//!   expiry 10 s, `__ts`, `__protVer`, `__srcId`, payload `{"<name>": {...}}`.
//!
//! - Runtime health telemetry from the connector (`deviceEndpointRuntimeHealthEvent`,
//!   `datasetRuntimeHealthEvent`, `eventRuntimeHealthEvent`) is received as the service receives
//!   it, on `akri/connector/resources/telemetry/+/+/+/<name>` at QoS 1, and recorded with its
//!   properties; [`AdrTelemetry::problem`] names what in it breaks the telemetry rules (QoS 1,
//!   16 bytes of Correlation Data, no Response Topic, `application/json`, format indicator 1, a
//!   message expiry, `__ts` as a hybrid logical clock, `__protVer` 1.x, `__srcId`).
//!
//! A test can make it answer the next requests with a status instead (e.g. 500), and reads every
//! request it received, every status update it stored and every health telemetry it received.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, MqttOptions};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::mqtt::subscribe_and_drive;

/// The service's MQTT client id (`__srcId` of its answers).
pub const SERVICE_ID: &str = "adr-service-mock";
/// The commands it serves.
pub const COMMANDS: [&str; 6] = [
    "getDevice",
    "getAsset",
    "updateDeviceStatus",
    "updateAssetStatus",
    "setNotificationPreferenceForDeviceUpdates",
    "setNotificationPreferenceForAssetUpdates",
];
/// The runtime health telemetry it receives from connectors.
pub const HEALTH_TELEMETRY: [&str; 3] = [
    "deviceEndpointRuntimeHealthEvent",
    "datasetRuntimeHealthEvent",
    "eventRuntimeHealthEvent",
];
/// The timestamp of its errors (a fixed, valid RFC 3339 `dateTime`).
pub const ERROR_TIMESTAMP: &str = "2026-01-01T00:00:00Z";

/// One request the service received.
#[derive(Debug, Clone)]
pub struct AdrRequest {
    /// The topic's `{connectorClientId}`.
    pub connector: String,
    /// The topic's `{deviceName}`.
    pub device: String,
    /// The topic's `{inboundEndpointName}`.
    pub endpoint: String,
    /// The topic's `{commandName}`.
    pub command: String,
    /// The request's properties.
    pub props: PublishProperties,
    /// The raw payload.
    pub payload: Bytes,
}

impl AdrRequest {
    /// The value of user property `k`.
    pub fn user(&self, k: &str) -> Option<&str> {
        crate::mqtt::user_property(&self.props, k)
    }

    /// The payload as JSON (`Null` when empty or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

/// One telemetry message the service received from a connector.
#[derive(Debug, Clone)]
pub struct AdrTelemetry {
    /// The topic's `{connectorClientId}`.
    pub connector: String,
    /// The topic's `{deviceName}`.
    pub device: String,
    /// The topic's `{inboundEndpointName}`.
    pub endpoint: String,
    /// The topic's `{telemetryName}`.
    pub name: String,
    /// The QoS it arrived with (the service subscribes at 1).
    pub qos: u8,
    /// Its properties.
    pub props: PublishProperties,
    /// The raw payload.
    pub payload: Bytes,
}

impl AdrTelemetry {
    /// The payload's object under its telemetry name (`Null` when absent or not JSON).
    pub fn body(&self) -> Value {
        let v: Value = serde_json::from_slice(&self.payload).unwrap_or(Value::Null);
        v.get(&self.name).cloned().unwrap_or(Value::Null)
    }

    /// What breaks the protocol's telemetry rules, `None` when nothing does.
    pub fn problem(&self) -> Option<String> {
        let p = &self.props;
        let user = |k: &str| crate::mqtt::user_property(p, k);
        let problem = if self.qos != 1 {
            "telemetry must be QoS 1"
        } else if p.correlation_data.as_ref().map(Bytes::len) != Some(16) {
            "correlation data must be 16 bytes"
        } else if p.response_topic.is_some() {
            "telemetry has no response topic"
        } else if p.content_type.as_deref() != Some("application/json")
            || p.payload_format_indicator != Some(1)
        {
            "content type must be application/json, format 1"
        } else if p.message_expiry_interval.is_none() {
            "a message expiry is required"
        } else if user("__ts").is_none_or(|ts| !crate::mqtt::valid_hlc(ts)) {
            "__ts is missing or not a hybrid logical clock"
        } else if !user("__protVer").is_some_and(|v| v.starts_with("1.")) {
            "__protVer must be 1.x"
        } else if user("__srcId").is_none_or(str::is_empty) {
            "__srcId is required"
        } else if self.body().is_null() {
            "the payload is not {\"<telemetryName>\": {...}}"
        } else {
            return None;
        };
        Some(problem.to_string())
    }
}

/// The service's tables; tests fill and read them.
#[derive(Debug, Default)]
pub struct AdrTables {
    /// Device definitions by (device, endpoint).
    pub devices: HashMap<(String, String), Value>,
    /// Asset definitions by (device, endpoint, asset).
    pub assets: HashMap<(String, String, String), Value>,
    /// Device status as last updated, by (device, endpoint).
    pub device_status: HashMap<(String, String), Value>,
    /// Asset status as last updated, by (device, endpoint, asset).
    pub asset_status: HashMap<(String, String, String), Value>,
    /// Every request, in order.
    pub requests: Vec<AdrRequest>,
    /// Statuses to answer the next requests with instead of serving them.
    pub fail_next: Vec<u16>,
    /// Every health telemetry received, in order.
    pub health: Vec<AdrTelemetry>,
    /// Statuses to answer the next requests of one command with, by command.
    pub fail_next_of: HashMap<String, Vec<u16>>,
}

/// The in-test ADR service (see the module doc).
pub struct AdrService {
    /// The tables.
    pub tables: Arc<Mutex<AdrTables>>,
    client: AsyncClient,
    task: JoinHandle<()>,
}

impl Drop for AdrService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The tables, even after a panic elsewhere held the lock (a test then fails on its own).
fn lock(tables: &Mutex<AdrTables>) -> MutexGuard<'_, AdrTables> {
    tables.lock().unwrap_or_else(|p| p.into_inner())
}

/// A reply: status, status message and payload.
type Reply = (u16, String, Value);

fn protocol_error(status: u16, message: &str) -> Reply {
    (status, message.to_string(), Value::Null)
}

fn service_error(command: &str, message: String) -> Reply {
    let err = json!({"code": "BadRequest", "message": message, "timestamp": ERROR_TIMESTAMP});
    (
        200,
        String::new(),
        json!({ format!("{command}Error"): err }),
    )
}

/// A fresh 16-byte id (correlation data of telemetry) and HLC stamps.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn stamp() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 100_000;
    format!("{:015}:{n:05}:{SERVICE_ID}", now_ms())
}

fn fresh_id() -> Bytes {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&now_ms().to_be_bytes());
    b[8..].copy_from_slice(&n.to_be_bytes());
    Bytes::copy_from_slice(&b)
}

impl AdrService {
    /// Connects to the broker on `port`, subscribes to every command topic and serves them.
    pub async fn start(port: u16) -> anyhow::Result<Self> {
        let mut o = MqttOptions::new(SERVICE_ID, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(Some(4 * 1024 * 1024));
        let (client, eventloop) = AsyncClient::new(o, 100);
        let tables = Arc::new(Mutex::new(AdrTables::default()));
        let (st, answers) = (tables.clone(), client.clone());
        let filters = COMMANDS
            .iter()
            .map(|c| {
                Filter::new(
                    format!("akri/connector/resources/+/+/+/{c}"),
                    QoS::AtLeastOnce,
                )
            })
            .chain(HEALTH_TELEMETRY.iter().map(|t| {
                Filter::new(
                    format!("akri/connector/resources/telemetry/+/+/+/{t}"),
                    QoS::AtLeastOnce,
                )
            }))
            .collect();
        let task = subscribe_and_drive("the ADR service", &client, eventloop, filters, move |p| {
            if p.topic.starts_with(b"akri/connector/resources/telemetry/") {
                Self::on_telemetry(&st, p);
            } else {
                Self::on_request(&st, &answers, p);
            }
        })
        .await?;
        Ok(Self {
            tables,
            client,
            task,
        })
    }

    fn on_request(tables: &Mutex<AdrTables>, client: &AsyncClient, p: Publish) {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let levels: Vec<&str> = topic.split('/').collect();
        let [_, _, _, connector, device, endpoint, command] = levels[..] else {
            return;
        };
        let props = p.properties.clone().unwrap_or_default();
        let req = AdrRequest {
            connector: connector.into(),
            device: device.into(),
            endpoint: endpoint.into(),
            command: command.into(),
            props: props.clone(),
            payload: p.payload.clone(),
        };
        let Some(response_topic) = props.response_topic.clone() else {
            lock(tables).requests.push(req);
            return; // nowhere to answer: the protocol drops it
        };
        let reply = {
            let mut t = lock(tables);
            t.requests.push(req.clone());
            check_headers(&req).unwrap_or_else(|| {
                let of = t
                    .fail_next_of
                    .get_mut(&req.command)
                    .filter(|c| !c.is_empty());
                if let Some(codes) = of {
                    let code = codes.remove(0);
                    protocol_error(code, "injected failure")
                } else if t.fail_next.is_empty() {
                    serve(&mut t, &req)
                } else {
                    let code = t.fail_next.remove(0);
                    protocol_error(code, "injected failure")
                }
            })
        };
        let (payload, answer) = response(&reply, props.correlation_data.clone());
        let client = client.clone();
        tokio::spawn(async move {
            let _ = client
                .publish_with_properties(response_topic, QoS::AtLeastOnce, false, payload, answer)
                .await;
        });
    }

    fn on_telemetry(tables: &Mutex<AdrTables>, p: Publish) {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let levels: Vec<&str> = topic.split('/').collect();
        let [_, _, _, _, connector, device, endpoint, name] = levels[..] else {
            return;
        };
        let t = AdrTelemetry {
            connector: connector.into(),
            device: device.into(),
            endpoint: endpoint.into(),
            name: name.into(),
            qos: match p.qos {
                QoS::AtMostOnce => 0,
                QoS::AtLeastOnce => 1,
                QoS::ExactlyOnce => 2,
            },
            props: p.properties.clone().unwrap_or_default(),
            payload: p.payload.clone(),
        };
        lock(tables).health.push(t);
    }

    /// Stores `device` (a Device JSON object) under `name` and `endpoint`.
    pub fn put_device(&self, name: &str, endpoint: &str, device: Value) {
        let key = (name.to_string(), endpoint.to_string());
        lock(&self.tables).devices.insert(key, device);
    }

    /// Stores `device` under `name` and each of its inbound endpoints (`getDevice` on each
    /// answers it with that endpoint only).
    pub fn put_device_endpoints(&self, name: &str, device: Value) {
        let endpoints = device["endpoints"]["inbound"]
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default();
        for e in endpoints {
            self.put_device(name, &e, device.clone());
        }
    }

    /// The requests so far of `command`.
    pub fn requests_of(&self, command: &str) -> Vec<AdrRequest> {
        let t = lock(&self.tables);
        t.requests
            .iter()
            .filter(|r| r.command == command)
            .cloned()
            .collect()
    }

    /// Stores `asset` (an Asset JSON object) as `name` on its `deviceRef`'s device and endpoint.
    pub fn put_asset(&self, name: &str, asset: Value) {
        let d = asset["deviceRef"]["deviceName"]
            .as_str()
            .unwrap_or_default();
        let e = asset["deviceRef"]["endpointName"]
            .as_str()
            .unwrap_or_default();
        let key = (d.to_string(), e.to_string(), name.to_string());
        lock(&self.tables).assets.insert(key, asset);
    }

    /// Answers the next requests with these statuses (`__apErr` true for 500) instead.
    pub fn fail_next(&self, codes: &[u16]) {
        lock(&self.tables).fail_next = codes.to_vec();
    }

    /// Answers the next requests of `command` with these statuses instead.
    pub fn fail_next_of(&self, command: &str, codes: &[u16]) {
        let mut t = lock(&self.tables);
        t.fail_next_of.insert(command.to_string(), codes.to_vec());
    }

    /// A copy of the requests so far.
    pub fn requests(&self) -> Vec<AdrRequest> {
        lock(&self.tables).requests.clone()
    }

    /// The stored status of `asset` on `device`'s `endpoint`.
    pub fn asset_status(&self, device: &str, endpoint: &str, asset: &str) -> Option<Value> {
        let key = (device.to_string(), endpoint.to_string(), asset.to_string());
        lock(&self.tables).asset_status.get(&key).cloned()
    }

    /// The stored status of `device` (as `updateDeviceStatus` on its `endpoint` left it).
    pub fn device_status(&self, device: &str, endpoint: &str) -> Option<Value> {
        let key = (device.to_string(), endpoint.to_string());
        lock(&self.tables).device_status.get(&key).cloned()
    }

    /// A copy of the health telemetry received so far.
    pub fn health(&self) -> Vec<AdrTelemetry> {
        lock(&self.tables).health.clone()
    }

    /// The `updateAssetStatus` requests for `asset` so far.
    pub fn asset_status_updates(&self, asset: &str) -> usize {
        let t = lock(&self.tables);
        (t.requests.iter())
            .filter(|r| r.command == "updateAssetStatus")
            .filter(|r| r.json()["assetStatusUpdate"]["assetName"] == asset)
            .count()
    }

    /// Publishes an `assetUpdateEvent` for `connector` about `asset` (its `deviceRef` names the
    /// topic's device and endpoint), as the service does when an asset changes.
    pub async fn notify_asset(
        &self,
        connector: &str,
        name: &str,
        asset: Value,
    ) -> anyhow::Result<()> {
        let d = asset["deviceRef"]["deviceName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let e = asset["deviceRef"]["endpointName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let payload = json!({"assetUpdateEvent": {"assetName": name, "asset": asset}});
        self.telemetry(connector, &d, &e, "assetUpdateEvent", payload)
            .await
    }

    /// Publishes telemetry `name` with `payload` to `connector` for `device`'s `endpoint`.
    pub async fn telemetry(
        &self,
        connector: &str,
        device: &str,
        endpoint: &str,
        name: &str,
        payload: Value,
    ) -> anyhow::Result<()> {
        let topic =
            format!("akri/connector/resources/telemetry/{connector}/{device}/{endpoint}/{name}");
        let props = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(10),
            correlation_data: Some(fresh_id()),
            content_type: Some("application/json".into()),
            user_properties: vec![
                ("__ts".into(), stamp()),
                ("__protVer".into(), "1.0".into()),
                ("__srcId".into(), SERVICE_ID.into()),
            ],
            ..Default::default()
        };
        let body = serde_json::to_vec(&payload)?;
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, body, props)
            .await?;
        Ok(())
    }
}

/// The protocol's header checks, in the executor's order; None when the request is well-formed.
fn check_headers(req: &AdrRequest) -> Option<Reply> {
    let p = &req.props;
    if p.correlation_data.as_ref().map(Bytes::len) != Some(16) {
        return Some(protocol_error(
            400,
            "Correlation data bytes do not conform to a GUID.",
        ));
    }
    if !req.user("__protVer").is_some_and(|v| v.starts_with("1.")) {
        return Some(protocol_error(505, "unsupported protocol version"));
    }
    if p.message_expiry_interval.is_none() {
        return Some(protocol_error(400, "message expiry interval is required"));
    }
    if req
        .user("__ts")
        .is_none_or(|ts| !crate::mqtt::valid_hlc(ts))
    {
        return Some(protocol_error(
            400,
            "__ts is missing or not a hybrid logical clock",
        ));
    }
    if req.user("__srcId").is_none_or(str::is_empty) {
        return Some(protocol_error(400, "__srcId is required"));
    }
    if p.content_type.as_deref() != Some("application/json")
        || p.payload_format_indicator != Some(1)
    {
        return Some(protocol_error(
            415,
            "content type must be application/json, format 1",
        ));
    }
    None
}

/// Serves one well-formed request from the tables.
fn serve(t: &mut AdrTables, req: &AdrRequest) -> Reply {
    let dev = (req.device.clone(), req.endpoint.clone());
    let body = req.json();
    let text = |v: &Value| v.as_str().map(str::to_string);
    let asset_key = |name: String| (req.device.clone(), req.endpoint.clone(), name);
    match req.command.as_str() {
        "getDevice" if req.payload.is_empty() => match t.devices.get(&dev) {
            Some(d) => (
                200,
                String::new(),
                json!({"device": only_endpoint(d, &dev.1)}),
            ),
            None => service_error("getDevice", format!("device {}/{} not found", dev.0, dev.1)),
        },
        "getAsset" => match text(&body["assetName"]) {
            None => protocol_error(400, "getAsset needs {\"assetName\": string}"),
            Some(name) => match t.assets.get(&asset_key(name.clone())) {
                Some(a) => (200, String::new(), json!({"asset": a})),
                None => service_error("getAsset", format!("asset {name} not found")),
            },
        },
        "updateDeviceStatus" if body["deviceStatusUpdate"].is_object() => {
            let status = body["deviceStatusUpdate"].clone();
            t.device_status.insert(dev, status.clone());
            (200, String::new(), json!({"updatedDeviceStatus": status}))
        }
        "updateAssetStatus" => {
            let update = &body["assetStatusUpdate"];
            let (Some(name), true) = (
                text(&update["assetName"]),
                update["assetStatus"].is_object(),
            ) else {
                return protocol_error(400, "updateAssetStatus needs assetName and assetStatus");
            };
            if !t.assets.contains_key(&asset_key(name.clone())) {
                return service_error("updateAssetStatus", format!("asset {name} not found"));
            }
            let status = update["assetStatus"].clone();
            t.asset_status.insert(asset_key(name), status.clone());
            (200, String::new(), json!({"updatedAssetStatus": status}))
        }
        "setNotificationPreferenceForDeviceUpdates"
            if matches!(
                body["notificationPreferenceRequest"].as_str(),
                Some("On" | "Off")
            ) =>
        {
            (200, String::new(), json!({"responsePayload": "Accepted"}))
        }
        "setNotificationPreferenceForAssetUpdates"
            if matches!(
                body["notificationPreferenceRequest"]["notificationPreference"].as_str(),
                Some("On" | "Off")
            ) && body["notificationPreferenceRequest"]["assetName"].is_string() =>
        {
            (200, String::new(), json!({"responsePayload": "Accepted"}))
        }
        other => protocol_error(400, &format!("malformed {other} request payload")),
    }
}

/// `device` with only its inbound endpoint `endpoint`, as `getDevice` answers it.
fn only_endpoint(device: &Value, endpoint: &str) -> Value {
    let mut d = device.clone();
    if let Some(inbound) = d["endpoints"]["inbound"].as_object_mut() {
        inbound.retain(|name, _| name == endpoint);
    }
    d
}

/// The payload and properties of the answer to `reply`.
fn response(reply: &Reply, correlation: Option<Bytes>) -> (Vec<u8>, PublishProperties) {
    let (status, message, body) = reply;
    let mut user = vec![
        ("__stat".to_string(), status.to_string()),
        ("__protVer".to_string(), "1.0".to_string()),
        ("__srcId".to_string(), SERVICE_ID.to_string()),
        ("__ts".to_string(), stamp()),
    ];
    if !message.is_empty() {
        user.push(("__stMsg".to_string(), message.clone()));
    }
    if *status == 500 {
        user.push(("__apErr".to_string(), "true".to_string()));
    }
    if *status == 505 {
        user.push(("__supProtMajVer".to_string(), "1".to_string()));
    }
    let payload = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(body).unwrap_or_default()
    };
    let props = PublishProperties {
        correlation_data: correlation,
        content_type: Some("application/json".into()),
        payload_format_indicator: Some(1),
        user_properties: user,
        ..Default::default()
    };
    (payload, props)
}
