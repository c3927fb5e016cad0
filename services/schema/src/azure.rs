//! The Azure IoT Operations Schema Registry as a [`Registry`] backend: MQTT 5 RPC on
//! `adr/dtmi:ms:adr:SchemaRegistry;2/put` and `/get`, as the Azure IoT Operations protocol and
//! the registry's published contract (`SchemaRegistry.TM.json`) define it.
//!
//! Requests and responses are stamped and matched by the connector's one RPC invoker
//! ([`sse_runtime::mqtt::rpc`]); this module adds the registry's topics and payloads. The answer
//! is status `__stat` (`200` when absent) and a payload of either
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
//!
//! One new version is often first seen by many subjects at once (an asset of 1,000 datasets of
//! one shape): the puts of a version are coalesced into one `PUT` call, which every subject
//! waiting on it shares, success or failure ([`AzureRegistry::put`]); a subject arriving once
//! the mirror holds the version makes no call. At most [`CALLS_MAX`] calls are under way at
//! once, whatever the number of versions being registered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(test)]
use rumqttc::v5::mqttbytes::v5::Publish;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sse_contract::limits::MQTT_REGISTRY_PACKET_BYTES_MAX;
use sse_runtime::Shutdown;
use sse_runtime::mqtt::rpc::{Invoker, Response, Retry, RpcError};
use sse_runtime::mqtt::{Broker, ClientSettings};

use crate::error::Error;
use crate::registry::{FORMAT, FileRegistry, NewSchema, Registry, SchemaRecord, VersionId};

/// The registry's PUT and GET command topics: owned by the connector (sse-contract's topic
/// list), so no route or admin call publishes there or on their responses.
pub use sse_contract::topics::{
    SCHEMA_REGISTRY_GET as GET_TOPIC, SCHEMA_REGISTRY_PUT as PUT_TOPIC,
};
/// The Azure IoT Operations RPC protocol version this client speaks.
pub use sse_runtime::mqtt::rpc::PROTOCOL_VERSION;
/// `schemaType` of every schema this service registers.
pub const SCHEMA_TYPE: &str = "MessageSchema";
/// Most registry calls under way at once: a burst of new shapes waits its turn rather than
/// sending the registry one request each at the same moment.
pub const CALLS_MAX: usize = 8;

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

impl From<RpcError> for Error {
    fn from(e: RpcError) -> Self {
        match e {
            RpcError::Network(m) => Error::RegistryUnavailable(m),
            RpcError::Cancelled => Error::RegistryUnavailable("shutting down".into()),
            RpcError::Status { code, message, .. } => Error::Registry { code, message },
        }
    }
}

/// Reads a publish as a registry response (see [`read_response`]).
#[cfg(test)]
fn parse_response(p: &Publish) -> Result<SchemaResponse, RpcError> {
    read_response(Response::read(p)?)
}

/// Reads a response: an error object in the payload (whatever `__stat` says), else the status,
/// else the schema.
fn read_response(r: Response) -> Result<SchemaResponse, RpcError> {
    let status = r.status;
    if let Ok(err) = serde_json::from_slice::<ErrorResponse>(&r.payload)
        && !err.code.is_null()
    {
        let code = match &err.code {
            Value::Number(n) => n.as_u64().and_then(|c| u16::try_from(c).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .unwrap_or(if status >= 400 { status } else { 500 });
        let message = if err.message.is_empty() {
            r.status_message
        } else {
            err.message
        };
        return Err(RpcError::Status {
            code,
            message,
            application: r.application_error,
        });
    }
    if status >= 300 {
        return Err(r.into_error());
    }
    serde_json::from_slice::<SchemaResponse>(&r.payload).map_err(RpcError::unreadable)
}

/// The outcome of one `PUT` call, shared by every put of its version that waited on it.
type SharedPut = Arc<tokio::sync::OnceCell<Result<SchemaRecord, Error>>>;

/// The Azure IoT Operations Schema Registry backend, with its local subject mirror.
#[derive(Debug)]
pub struct AzureRegistry {
    rpc: Invoker,
    mirror: FileRegistry,
    retry: Retry,
    /// The calls under way (boxed: the embedded registry is the other choice of
    /// [`crate::any_registry::AnyRegistry`], and half this size).
    calls: Box<Calls>,
}

/// The registry calls under way.
#[derive(Debug)]
struct Calls {
    /// The `PUT` calls, by the version (our content name) they register.
    puts: Mutex<HashMap<VersionId, SharedPut>>,
    /// [`CALLS_MAX`] permits, one per call.
    permits: tokio::sync::Semaphore,
}

impl AzureRegistry {
    /// Connects (in the background, under `shutdown`), keeping the subject mirror in `mirror`
    /// (a [`FileRegistry::open_mirror`]).
    pub fn new(settings: &AzureSettings, mirror: FileRegistry, shutdown: &Shutdown) -> Self {
        let client_id = &settings.client.client_id;
        let responses = response_topic(
            client_id,
            &format!("{}/+", sse_contract::topics::SCHEMA_REGISTRY_PREFIX),
        );
        let rpc = Invoker::start(
            settings.client.clone(),
            "the schema registry's broker",
            settings.timeout,
            vec![responses],
            None,
            shutdown,
        );
        Self {
            rpc,
            mirror,
            retry: Retry::bounded(settings.attempts, settings.retry_initial),
            calls: Box::new(Calls {
                puts: Mutex::default(),
                permits: tokio::sync::Semaphore::new(CALLS_MAX),
            }),
        }
    }

    /// Calls `topic` with `request`, retrying network errors and 500 with backoff.
    async fn call<T: Serialize>(&self, topic: &str, request: &T) -> Result<RemoteSchema, Error> {
        // Never closed, so the permit is always had (after waiting its turn).
        let _turn = self.calls.permits.acquire().await;
        let payload = serde_json::to_vec(request)
            .map_err(|e| Error::InvalidSchema(format!("cannot encode request: {e}")))?;
        let answer = self
            .rpc
            .call(topic, &payload, &self.retry, read_response)
            .await?;
        Ok(answer.schema)
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

impl AzureRegistry {
    /// Registers `schema`'s version with one `PUT` call shared by every put of that version
    /// made while it is under way: the version as the mirror then holds it (with the subject of
    /// the put that made the call), or the call's error, for each of them.
    async fn put_shared(&self, id: &VersionId, schema: &NewSchema) -> Result<SchemaRecord, Error> {
        let shared = self.lock_puts().entry(id.clone()).or_default().clone();
        let out = shared
            .get_or_init(|| async {
                let request = PutRequest {
                    format: FORMAT.into(),
                    schema_type: SCHEMA_TYPE.into(),
                    schema_content: schema.content.clone(),
                    version: schema.version.clone(),
                };
                let remote = self.call(PUT_TOPIC, &request).await?;
                // Keep our canonical content: the registry may reformat what it stores.
                let record = self.record(remote, Some(&schema.content))?;
                // In the mirror before the call is taken out below: a put that finds no call
                // under way finds the version there.
                self.mirror.remember(record, &schema.subject).await
            })
            .await;
        {
            let mut puts = self.lock_puts();
            if puts.get(id).is_some_and(|p| Arc::ptr_eq(p, &shared)) {
                // Done: a later put finds the version in the mirror, or (after a failure)
                // calls again.
                puts.remove(id);
            }
        }
        match out {
            Ok(r) => Ok(r.clone()),
            Err(e) => Err(shared_error(e)),
        }
    }

    fn lock_puts(&self) -> std::sync::MutexGuard<'_, HashMap<VersionId, SharedPut>> {
        self.calls.puts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Each waiter's copy of a shared call's error (the errors a call and the mirror's write give).
fn shared_error(e: &Error) -> Error {
    match e {
        Error::Registry { code, message } => Error::Registry {
            code: *code,
            message: message.clone(),
        },
        Error::RegistryUnavailable(m) => Error::RegistryUnavailable(m.clone()),
        Error::InvalidSchema(m) => Error::InvalidSchema(m.clone()),
        Error::RegistryFull { max_bytes } => Error::RegistryFull {
            max_bytes: *max_bytes,
        },
        other => Error::RegistryUnavailable(other.to_string()),
    }
}

impl Registry for AzureRegistry {
    async fn put(&self, schema: NewSchema) -> Result<SchemaRecord, Error> {
        crate::registry::validate_new_version(&schema.version)?;
        // A version the mirror holds under our content name was put already: a new subject of
        // it needs no call (thousands of datasets of one shape would otherwise wait on one call
        // each, in turn).
        let known = VersionId::new(schema.name.as_str(), schema.version.as_str());
        if let Some(r) = self.mirror.add_subject_if_stored(&known, &schema.subject)? {
            return Ok(r);
        }
        let record = self.put_shared(&known, &schema).await?;
        // The subject of each put that shared the call (the caller's own is there already).
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

    async fn list_from(
        &self,
        after: Option<&VersionId>,
        take: impl FnMut(&SchemaRecord) -> bool + Send,
    ) -> Result<(), Error> {
        self.mirror.list_from(after, take).await
    }

    async fn flush(&self) {
        self.mirror.flush().await;
    }

    async fn delete(&self, name: &str, version: &str) -> Result<SchemaRecord, Error> {
        Err(Error::NotDeletable {
            name: name.to_string(),
            version: version.to_string(),
            reason: "the Azure IoT Operations schema registry has no delete call: delete it there"
                .into(),
        })
    }

    async fn current(&self, subject: &str) -> Result<Option<SchemaRecord>, Error> {
        self.mirror.current(subject).await
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

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
                Err(RpcError::Status { code: c, .. }) => assert_eq!(c, code, "{payload}"),
                other => panic!("{payload}: {other:?}"),
            }
        }
    }
}
