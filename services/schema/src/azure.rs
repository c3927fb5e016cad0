//! The Azure IoT Operations Schema Registry as a [`Registry`] backend: MQTT 5 RPC on
//! `adr/dtmi:ms:adr:SchemaRegistry;2/put` and `/get`, as the Azure IoT Operations protocol and
//! the registry's published contract (`SchemaRegistry.TM.json`) define it.
//!
//! Each request is a QoS 1 publish with a JSON payload, content type `application/json`, payload
//! format indicator 1, a message expiry of the call timeout, a Response Topic
//! `clients/<client id>/<request topic>` (the SDK's default), 16 random bytes of Correlation
//! Data (a GUID), and the user properties `__protVer` (`1.0`), `__srcId` (the client id) and
//! `__ts` (a hybrid logical clock). The answer arrives on the response topic with the same
//! correlation data: status `__stat` (`200` when absent) and a payload of either
//! `{schema: {name, namespace, version, hash, ...}}` or an error `{code, message, ...}`.
//!
//! Retries follow the SDK: network errors (not connected, no answer in time, connection lost)
//! and status 500 are retried with exponential backoff and jitter, up to `attempts`; any other
//! error (400, 404, ...) is final at once.
//!
//! The protocol names schemas by content and numbers versions per name; it has no notion of a
//! subject and no list call. So the subject -> version mapping, the per-subject numbering the
//! pipeline relies on, is kept here, in a local mirror ([`FileRegistry::open_mirror`]) of every
//! version this service registered: `current` and `list` answer from it, `put` goes to the
//! registry and then into the mirror, `get` tries the mirror then the registry. A replica with
//! an empty mirror restarts a subject's numbering at 1 (and re-puts: the registry deduplicates
//! by content and version), which is why the mirror lives in the durable data dir.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, SubscribeReasonCode};
use rumqttc::v5::mqttbytes::v5::{Filter, Publish, PublishProperties, Subscribe};
use rumqttc::v5::{AsyncClient, Event, Incoming, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sse_contract::clock::Hlc;
use sse_contract::limits::MQTT_REGISTRY_PACKET_BYTES_MAX;
use sse_runtime::mqtt::{Broker, ClientSettings, Handler, Supervisor};
use sse_runtime::{Backoff, Shutdown};
use tokio::sync::{oneshot, watch};

use crate::error::Error;
use crate::registry::{FORMAT, FileRegistry, NewSchema, Registry, SchemaRecord};

/// The registry's PUT and GET command topics: owned by the connector (sse-contract's topic
/// list), so no route or admin call publishes there or on their responses.
pub use sse_contract::topics::{
    SCHEMA_REGISTRY_GET as GET_TOPIC, SCHEMA_REGISTRY_PUT as PUT_TOPIC,
};
/// The Azure IoT Operations RPC protocol version this client speaks.
pub const PROTOCOL_VERSION: &str = "1.0";
/// `schemaType` of every schema this service registers.
pub const SCHEMA_TYPE: &str = "MessageSchema";

/// How to reach the registry's MQTT broker and how patient to be.
#[derive(Debug, Clone)]
pub struct AzureSettings {
    /// The broker and this client's session (see [`client_settings`]); the client id is also
    /// the `__srcId` and part of the response topic.
    pub client: ClientSettings,
    /// How long one call waits for its answer.
    pub timeout: Duration,
    /// Attempts per call, counting the first.
    pub attempts: u32,
    /// Delay before the first retry (then doubling, with jitter).
    pub retry_initial: Duration,
}

/// The registry client's connection settings: clean start, and incoming packets up to
/// `MQTT_REGISTRY_PACKET_BYTES_MAX` (an answer carries a schema), announced to the broker.
pub fn client_settings(broker: Broker, client_id: String) -> ClientSettings {
    ClientSettings::new(broker, client_id, MQTT_REGISTRY_PACKET_BYTES_MAX)
}

/// The response topic of `request_topic` for `client_id` (the SDK's default pattern).
pub use sse_contract::topics::rpc_response as response_topic;

/// The PUT request payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutRequest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`SCHEMA_TYPE`].
    pub schema_type: String,
    /// The schema document, as text.
    pub schema_content: String,
    /// The version to register.
    pub version: String,
}

/// The GET request payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetRequest {
    /// Schema name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// The `schema` object of a PUT or GET response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RemoteSchema {
    /// Name the registry gave the schema.
    pub name: String,
    /// Registry namespace.
    pub namespace: String,
    /// Schema format.
    pub format: String,
    /// Schema type.
    pub schema_type: String,
    /// Version.
    pub version: String,
    /// The schema document, as text.
    pub schema_content: String,
    /// Hash of the content.
    pub hash: String,
}

/// A PUT or GET response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaResponse {
    /// The schema.
    pub schema: RemoteSchema,
}

/// An error response of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// 400, 404, 500 (a number, or a string holding one).
    pub code: Value,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
}

/// How one call attempt ended, before the retry decision.
#[derive(Debug)]
enum CallError {
    /// Not connected, no answer in time, or the connection dropped: retried.
    Network(String),
    /// The registry answered with an error status: retried when 500.
    Service { code: u16, message: String },
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Network(m) => Error::RegistryUnavailable(m),
            CallError::Service { code, message } => Error::Registry { code, message },
        }
    }
}

/// Reads a response: `__stat` (absent means 200) and the payload.
fn parse_response(p: &Publish) -> Result<SchemaResponse, CallError> {
    let props = p.properties.as_ref();
    let user = |k: &str| {
        props.and_then(|pp| {
            pp.user_properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        })
    };
    let status: u16 = match user("__stat") {
        None => 200,
        Some(s) => s.trim().parse().map_err(|_| CallError::Service {
            code: 500,
            message: format!("unreadable status {s:?}"),
        })?,
    };
    let status_message = user("__stMsg").unwrap_or_default().to_string();
    if let Ok(err) = serde_json::from_slice::<ErrorResponse>(&p.payload)
        && !err.code.is_null()
    {
        let code = match &err.code {
            Value::Number(n) => n.as_u64().and_then(|c| u16::try_from(c).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .unwrap_or(if status >= 400 { status } else { 500 });
        let message = if err.message.is_empty() {
            status_message
        } else {
            err.message
        };
        return Err(CallError::Service { code, message });
    }
    if status >= 300 {
        return Err(CallError::Service {
            code: status,
            message: status_message,
        });
    }
    serde_json::from_slice::<SchemaResponse>(&p.payload).map_err(|e| CallError::Service {
        code: 500,
        message: format!("unreadable response: {e}"),
    })
}

type Pending = Arc<Mutex<HashMap<Bytes, oneshot::Sender<Publish>>>>;

/// The MQTT RPC client: one supervised connection task, calls matched by correlation data.
#[derive(Debug, Clone)]
struct Rpc {
    client: AsyncClient,
    pending: Pending,
    ready: watch::Receiver<bool>,
    client_id: String,
    timeout: Duration,
    hlc: Arc<Mutex<Hlc>>,
}

impl Rpc {
    fn start(settings: &AzureSettings, shutdown: &Shutdown) -> Self {
        let client_id = settings.client.client_id.clone();
        let supervisor = Supervisor::new(settings.client.clone(), "the schema registry's broker");
        let (client, eventloop) = supervisor.client(64);
        let pending: Pending = Arc::default();
        let (ready_tx, ready) = watch::channel(false);
        let responses = Responses {
            filter: response_topic(
                &client_id,
                &format!("{}/+", sse_contract::topics::SCHEMA_REGISTRY_PREFIX),
            ),
            pending: pending.clone(),
            ready: ready_tx,
        };
        shutdown.tracker.spawn(supervisor.run(
            client.clone(),
            eventloop,
            responses,
            shutdown.token.clone(),
        ));
        Self {
            client,
            pending,
            ready,
            client_id,
            timeout: settings.timeout,
            hlc: Arc::default(),
        }
    }

    /// `__ts`: sse-contract's hybrid logical clock, never going backwards.
    fn timestamp(&self) -> String {
        let mut h = self.hlc.lock().unwrap_or_else(|p| p.into_inner());
        h.next_ts(&self.client_id)
    }

    /// One request/response exchange on `topic`.
    async fn invoke(&self, topic: &str, payload: Vec<u8>) -> Result<SchemaResponse, CallError> {
        let mut ready = self.ready.clone();
        if tokio::time::timeout(self.timeout, ready.wait_for(|r| *r))
            .await
            .map_or(true, |r| r.is_err())
        {
            return Err(CallError::Network(
                "not connected to the registry's mqtt broker".into(),
            ));
        }
        let correlation = Bytes::from(rand::rng().random::<[u8; 16]>().to_vec());
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(correlation.clone(), tx);
        let props = PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(self.timeout.as_secs().max(1) as u32),
            response_topic: Some(response_topic(&self.client_id, topic)),
            correlation_data: Some(correlation.clone()),
            user_properties: vec![
                ("__protVer".into(), PROTOCOL_VERSION.into()),
                ("__srcId".into(), self.client_id.clone()),
                ("__ts".into(), self.timestamp()),
            ],
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let sent = self
            .client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await;
        let result = match sent {
            Err(e) => Err(CallError::Network(format!("cannot send the request: {e}"))),
            Ok(()) => match tokio::time::timeout(self.timeout, rx).await {
                Ok(Ok(p)) => parse_response(&p),
                Ok(Err(_)) => Err(CallError::Network(
                    "connection to the registry's broker lost".into(),
                )),
                Err(_) => Err(CallError::Network(format!(
                    "no answer from the registry within {:?}",
                    self.timeout
                ))),
            },
        };
        self.lock_pending().remove(&correlation);
        result
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, oneshot::Sender<Publish>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The connection's side of the calls: subscribes to the response topics at each connect and
/// hands each response to the call waiting for its correlation data.
struct Responses {
    filter: String,
    pending: Pending,
    ready: watch::Sender<bool>,
}

impl Handler for Responses {
    fn on_connected(&mut self, _ack: &ConnAck, pending: &mut VecDeque<Request>) {
        pending.push_front(Request::Subscribe(Subscribe::new(
            Filter::new(self.filter.clone(), QoS::AtLeastOnce),
            None,
        )));
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::SubAck(ack)) => {
                let ok = ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                if ok {
                    let _ = self.ready.send(true);
                } else {
                    tracing::error!(topic = %self.filter, codes = ?ack.return_codes, "the broker refused the registry response subscription");
                }
            }
            Event::Incoming(Incoming::Publish(p)) => {
                let correlation = p
                    .properties
                    .as_ref()
                    .and_then(|pp| pp.correlation_data.clone());
                let waiter = correlation.and_then(|c| {
                    self.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&c)
                });
                match waiter {
                    Some(tx) => {
                        let _ = tx.send(p);
                    }
                    None => tracing::debug!(
                        "registry response for no pending call (late or foreign); dropped"
                    ),
                }
            }
            _ => {}
        }
    }

    fn on_lost(&mut self, pending: &mut VecDeque<Request>) {
        let _ = self.ready.send(false);
        // Calls in flight fail now (their callers retry), and nothing is replayed later.
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        pending.clear();
    }
}

/// The Azure IoT Operations Schema Registry backend, with its local subject mirror.
#[derive(Debug)]
pub struct AzureRegistry {
    rpc: Rpc,
    mirror: FileRegistry,
    attempts: u32,
    retry_initial: Duration,
}

impl AzureRegistry {
    /// Connects (in the background, under `shutdown`), keeping the subject mirror in `mirror`
    /// (a [`FileRegistry::open_mirror`]).
    pub fn new(settings: &AzureSettings, mirror: FileRegistry, shutdown: &Shutdown) -> Self {
        Self {
            rpc: Rpc::start(settings, shutdown),
            mirror,
            attempts: settings.attempts.max(1),
            retry_initial: settings.retry_initial,
        }
    }

    /// Calls `topic` with `request`, retrying network errors and 500 with backoff.
    async fn call<T: Serialize>(&self, topic: &str, request: &T) -> Result<RemoteSchema, Error> {
        let payload = serde_json::to_vec(request)
            .map_err(|e| Error::InvalidSchema(format!("cannot encode request: {e}")))?;
        let mut backoff = Backoff::new(self.retry_initial, Duration::from_secs(30));
        let mut attempt = 1;
        loop {
            match self.rpc.invoke(topic, payload.clone()).await {
                Ok(r) => return Ok(r.schema),
                Err(e) => {
                    let retry = match &e {
                        CallError::Network(_) => true,
                        CallError::Service { code, .. } => *code == 500,
                    };
                    if !retry || attempt >= self.attempts {
                        return Err(e.into());
                    }
                    let delay = backoff.next_delay();
                    tracing::debug!(topic, attempt, error = ?e, ?delay, "schema registry call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn record(&self, remote: RemoteSchema, content: Option<&str>) -> Result<SchemaRecord, Error> {
        if remote.name.is_empty() || remote.version.is_empty() {
            return Err(Error::Registry {
                code: 500,
                message: "response without a schema name or version".into(),
            });
        }
        Ok(SchemaRecord {
            name: remote.name,
            version: remote.version,
            namespace: remote.namespace,
            format: if remote.format.is_empty() {
                FORMAT.to_string()
            } else {
                remote.format
            },
            content: match content {
                Some(c) => c.to_string(),
                None => remote.schema_content,
            },
            subject: String::new(),
            subjects: Vec::new(),
        })
    }
}

impl Registry for AzureRegistry {
    async fn put(&self, schema: NewSchema) -> Result<SchemaRecord, Error> {
        crate::registry::validate_version(&schema.version)?;
        let request = PutRequest {
            format: FORMAT.into(),
            schema_type: SCHEMA_TYPE.into(),
            schema_content: schema.content.clone(),
            version: schema.version.clone(),
        };
        let remote = self.call(PUT_TOPIC, &request).await?;
        // Keep our canonical content: the registry may reformat what it stores.
        let record = self.record(remote, Some(&schema.content))?;
        self.mirror.remember(record, &schema.subject).await
    }

    async fn get(&self, name: &str, version: Option<&str>) -> Result<SchemaRecord, Error> {
        match self.mirror.get(name, version).await {
            Ok(r) => return Ok(r),
            Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let request = GetRequest {
            name: name.to_string(),
            version: version.unwrap_or("1").to_string(),
        };
        let remote = self.call(GET_TOPIC, &request).await.map_err(|e| match e {
            Error::Registry { code: 404, .. } => {
                Error::NotFound(format!("{name}:{}", request.version))
            }
            other => other,
        })?;
        self.record(remote, None)
    }

    async fn list(&self) -> Result<Vec<SchemaRecord>, Error> {
        self.mirror.list().await
    }

    async fn current(&self, subject: &str) -> Result<Option<SchemaRecord>, Error> {
        self.mirror.current(subject).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: Option<&str>, payload: &str) -> Publish {
        let mut p = Publish::new("t", QoS::AtLeastOnce, payload.as_bytes().to_vec(), None);
        p.properties = Some(PublishProperties {
            user_properties: status
                .map(|s| vec![("__stat".to_string(), s.to_string())])
                .unwrap_or_default(),
            ..Default::default()
        });
        p
    }

    #[test]
    fn request_payloads_use_the_contract_names() {
        let put = PutRequest {
            format: FORMAT.into(),
            schema_type: SCHEMA_TYPE.into(),
            schema_content: "{}".into(),
            version: "2".into(),
        };
        assert_eq!(
            serde_json::to_value(&put).unwrap(),
            serde_json::json!({"format": "JsonSchema/draft-07", "schemaType": "MessageSchema", "schemaContent": "{}", "version": "2"})
        );
        assert_eq!(
            response_topic("me", PUT_TOPIC),
            "clients/me/adr/dtmi:ms:adr:SchemaRegistry;2/put"
        );
    }

    #[test]
    fn responses_and_errors() {
        let ok = r#"{"schema":{"name":"N","namespace":"ns","version":"1","hash":"h","extra":1}}"#;
        for status in [None, Some("200")] {
            let r = parse_response(&response(status, ok)).unwrap();
            assert_eq!(
                (r.schema.name.as_str(), r.schema.version.as_str()),
                ("N", "1")
            );
        }
        for (status, payload, code) in [
            (Some("400"), r#"{"code":400,"message":"bad content"}"#, 400),
            (None, r#"{"code":"500","message":"try later"}"#, 500),
            (Some("404"), "", 404),
            (
                Some("500"),
                r#"{"code":500,"message":"x","target":"Version"}"#,
                500,
            ),
            (Some("nope"), ok, 500),
            (None, "not json", 500),
        ] {
            match parse_response(&response(status, payload)) {
                Err(CallError::Service { code: c, .. }) => assert_eq!(c, code, "{payload}"),
                other => panic!("{payload}: {other:?}"),
            }
        }
    }
}
