//! An in-test Azure IoT Operations Schema Registry on a real Mosquitto: the responder the
//! schema service's Azure backend and the ADR-mode end-to-end tests register schemas with.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, PublishProperties};
use rumqttc::v5::{AsyncClient, MqttOptions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sse_contract::topics::{SCHEMA_REGISTRY_GET as GET_TOPIC, SCHEMA_REGISTRY_PUT as PUT_TOPIC};
use tokio::task::JoinHandle;

use crate::mqtt::subscribe_and_drive;

/// The namespace the registry's test host answers with.
pub const NAMESPACE: &str = "DefaultSRNamespace";

/// One request the responder received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request topic.
    pub topic: String,
    /// Its MQTT 5 properties.
    pub props: PublishProperties,
    /// Its JSON payload (`null` when not JSON).
    pub payload: Value,
}

impl Seen {
    /// The user property `k` of the request.
    pub fn user(&self, k: &str) -> Option<&str> {
        self.props
            .user_properties
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// What the responder holds and saw.
#[derive(Default)]
struct State {
    /// (name, version) -> the stored schema object.
    store: HashMap<(String, String), Value>,
    /// Status codes to answer the next requests with instead of serving them.
    fail_next: Vec<u16>,
    seen: Vec<Seen>,
}

/// A mock of the Azure IoT Operations Schema Registry, an Azure-only service, following its
/// published protocol (`SchemaRegistry.TM.json` and the Azure IoT Operations RPC protocol):
/// requests on `adr/dtmi:ms:adr:SchemaRegistry;2/{put,get}` through the shared subscription
/// group `schema-registry-edge`; each needs a Response Topic, 16 bytes of Correlation Data and a
/// `__protVer` 1.x, else it is answered `__stat` 400. PUT takes `{format, schemaType,
/// schemaContent, version}`, names the schema as the registry's test host does (uppercase hex
/// SHA-256 of the UTF-8 `schemaContent`, namespace `DefaultSRNamespace`), stores it by name and
/// version (an identical put is idempotent) and answers `{schema: {name, namespace, format,
/// schemaType, version, schemaContent, hash, ...}}`; GET takes `{name, version}`. Errors answer
/// `__stat` 400/404/500 with `{code, message, target?}`. Answers go to the Response Topic with
/// the request's Correlation Data, QoS 1, content type `application/json`.
pub struct Responder {
    state: Arc<Mutex<State>>,
    /// `true` while PUT answers are held back ([`Responder::hold_puts`]).
    puts_held: Arc<tokio::sync::watch::Sender<bool>>,
    task: JoinHandle<()>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn error(code: u16, message: &str, target: Option<&str>) -> (u16, Value) {
    let mut v = json!({"code": code, "message": message});
    if let Some(t) = target {
        v["target"] = json!(t);
    }
    (code, v)
}

impl Responder {
    /// Starts answering on the broker at `port` of 127.0.0.1.
    pub async fn start(port: u16) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let mut o = MqttOptions::new("schema-registry-mock", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, eventloop) = AsyncClient::new(o, 100);
        let st = state.clone();
        let puts_held = Arc::new(tokio::sync::watch::Sender::new(false));
        let held = puts_held.clone();
        let answers = client.clone();
        let filters = ["put", "get"]
            .map(|c| {
                Filter::new(
                    format!("$share/schema-registry-edge/adr/dtmi:ms:adr:SchemaRegistry;2/{c}"),
                    QoS::AtLeastOnce,
                )
            })
            .to_vec();
        let task = subscribe_and_drive(
            "the registry responder",
            &client,
            eventloop,
            filters,
            move |p| {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let props = p.properties.clone().unwrap_or_default();
                let Some(response_topic) = props.response_topic.clone() else {
                    return; // nowhere to answer: the protocol drops it
                };
                let (status, body) = Self::handle(&st, &topic, &props, &p.payload);
                let mut user = vec![
                    ("__stat".to_string(), status.to_string()),
                    ("__protVer".to_string(), "1.0".to_string()),
                ];
                if status >= 400 {
                    user.push((
                        "__stMsg".to_string(),
                        body["message"].as_str().unwrap_or_default().to_string(),
                    ));
                }
                let answer = PublishProperties {
                    correlation_data: props.correlation_data.clone(),
                    content_type: Some("application/json".into()),
                    payload_format_indicator: Some(1),
                    user_properties: user,
                    ..Default::default()
                };
                let client = answers.clone();
                // A held PUT is answered once released: a registry slow to answer.
                let mut open = (topic == PUT_TOPIC).then(|| held.subscribe());
                tokio::spawn(async move {
                    if let Some(open) = open.as_mut() {
                        let _ = open.wait_for(|held| !held).await;
                    }
                    let _ = client
                        .publish_with_properties(
                            response_topic,
                            QoS::AtLeastOnce,
                            false,
                            serde_json::to_vec(&body).unwrap(),
                            answer,
                        )
                        .await;
                });
            },
        )
        .await
        .expect("the responder subscribes");
        Self {
            state,
            puts_held,
            task,
        }
    }

    fn handle(
        state: &Mutex<State>,
        topic: &str,
        props: &PublishProperties,
        payload: &Bytes,
    ) -> (u16, Value) {
        let mut st = state.lock().unwrap();
        let body: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        st.seen.push(Seen {
            topic: topic.to_string(),
            props: props.clone(),
            payload: body.clone(),
        });
        if props.correlation_data.as_ref().map(Bytes::len) != Some(16) {
            return error(
                400,
                "Correlation data bytes do not conform to a GUID.",
                None,
            );
        }
        let version = props
            .user_properties
            .iter()
            .find(|(k, _)| k == "__protVer")
            .map(|(_, v)| v.clone());
        if !version.is_some_and(|v| v.starts_with("1.")) {
            return error(505, "unsupported protocol version", None);
        }
        if !st.fail_next.is_empty() {
            let code = st.fail_next.remove(0);
            return error(code, "injected failure", None);
        }
        let text = |k: &str| body[k].as_str().map(str::to_string);
        if topic == PUT_TOPIC {
            let (Some(format), Some(schema_type), Some(content), Some(version)) = (
                text("format"),
                text("schemaType"),
                text("schemaContent"),
                text("version"),
            ) else {
                return error(
                    400,
                    "format, schemaType, schemaContent and version are required",
                    None,
                );
            };
            if format != "JsonSchema/draft-07" && format != "Delta/1.0" {
                return error(400, "unsupported format", Some("Format"));
            }
            if schema_type != "MessageSchema" {
                return error(400, "unsupported schemaType", Some("SchemaType"));
            }
            if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
                return error(400, "version must be digits", Some("Version"));
            }
            if serde_json::from_str::<Value>(&content).is_err() {
                return error(
                    400,
                    "schemaContent is not valid JSON",
                    Some("SchemaContent"),
                );
            }
            let name: String = Sha256::digest(content.as_bytes())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            let schema = st
                .store
                .entry((name.clone(), version.clone()))
                .or_insert_with(|| {
                    json!({
                        "name": name, "namespace": NAMESPACE, "format": format,
                        "schemaType": schema_type, "version": version,
                        "schemaContent": content, "hash": name, "tags": {}
                    })
                })
                .clone();
            (200, json!({ "schema": schema }))
        } else if topic == GET_TOPIC {
            let (Some(name), Some(version)) = (text("name"), text("version")) else {
                return error(400, "name and version are required", None);
            };
            match st.store.get(&(name, version)) {
                Some(s) => (200, json!({ "schema": s })),
                None => error(404, "schema not found", None),
            }
        } else {
            error(404, "unknown command", None)
        }
    }

    /// A copy of the requests so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Holds the answers of PUT requests from now on (they are still received, served and
    /// counted in [`Responder::seen`]) until `false` releases them: a registry slow to answer,
    /// without a timer.
    pub fn hold_puts(&self, held: bool) {
        self.puts_held.send_replace(held);
    }

    /// How many PUT requests were received so far.
    pub fn puts(&self) -> usize {
        let st = self.state.lock().unwrap();
        st.seen.iter().filter(|s| s.topic == PUT_TOPIC).count()
    }

    /// Answers the next requests with these statuses instead of serving them.
    pub fn fail_next(&self, codes: &[u16]) {
        self.state.lock().unwrap().fail_next = codes.to_vec();
    }
}
