//! An MQTT 5 subscriber (rumqttc) that records every message with its properties.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties, RetainForwardRule};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use sse_contract::limits::MQTT_PACKET_BYTES_MAX;
use tokio::task::JoinHandle;

/// Runs `eventloop` in a task that hands every incoming publish to `on_publish` (an error is
/// printed under `name` and retried after 100 ms: rumqttc reconnects), subscribes to `filters`
/// and returns the task once the broker acknowledged the subscription (within 20 s).
pub async fn subscribe_and_drive(
    name: &str,
    client: &AsyncClient,
    mut eventloop: EventLoop,
    filters: Vec<Filter>,
    mut on_publish: impl FnMut(Publish) + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    let (subacked_tx, subacked_rx) = tokio::sync::oneshot::channel();
    let who = name.to_owned();
    let task = tokio::spawn(async move {
        let mut subacked = Some(subacked_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subacked.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => on_publish(p),
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{who}: {e}; reconnecting");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    client.subscribe_many(filters).await?;
    match tokio::time::timeout(Duration::from_secs(20), subacked_rx).await {
        Ok(Ok(())) => Ok(task),
        _ => {
            task.abort();
            anyhow::bail!("no SUBACK for {name}")
        }
    }
}

/// The value of user property `name` in `props` (the first, when repeated).
pub fn user_property<'a>(props: &'a PublishProperties, name: &str) -> Option<&'a str> {
    props
        .user_properties
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One message as the subscriber received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic name.
    pub topic: String,
    /// Payload bytes.
    pub payload: Bytes,
    /// QoS of the delivery (0 or 1).
    pub qos: u8,
    /// Retain flag (the subscription keeps it as published).
    pub retain: bool,
    /// MQTT 5 properties.
    pub props: PublishProperties,
}

impl Received {
    /// The value of user property `name` (the first, when repeated).
    pub fn user(&self, name: &str) -> Option<&str> {
        user_property(&self.props, name)
    }

    /// The payload as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// A connected subscriber; its event loop runs until dropped.
pub struct Subscriber {
    /// Every message received, in order.
    pub messages: Arc<Mutex<Vec<Received>>>,
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Subscriber {
    /// Connects to the broker on `port` and subscribes to `filter` at QoS 1, keeping the retain
    /// flag as published; returns once the broker acknowledged the subscription.
    pub async fn connect(port: u16, filter: &str) -> anyhow::Result<Self> {
        Self::connect_filters(port, &[filter]).await
    }

    /// Like [`Subscriber::connect`], with a persistent session (clean start false, one hour of
    /// session expiry) under `client_id`: across a broker restart (with persistence) or a
    /// reconnect, the broker keeps the subscription and queues what arrives meanwhile.
    pub async fn connect_persistent(
        port: u16,
        filter: &str,
        client_id: &str,
    ) -> anyhow::Result<Self> {
        let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(5))
            .set_clean_start(false)
            .set_session_expiry_interval(Some(3600));
        Self::connect_with(opts, filter).await
    }

    /// Connects with `opts` and subscribes to `filter` at QoS 1 (retain as published); the
    /// event loop reconnects on its own after an error.
    pub async fn connect_with(opts: MqttOptions, filter: &str) -> anyhow::Result<Self> {
        Self::connect_with_filters(opts, &[filter]).await
    }

    /// Like [`Subscriber::connect`], with several filters in one subscription (e.g. `#` and a
    /// `$`-topic filter, which `#` does not match).
    pub async fn connect_filters(port: u16, filters: &[&str]) -> anyhow::Result<Self> {
        let id = format!(
            "test-sub-{}",
            std::process::id() as u64 * 1000 + rand_u16() as u64
        );
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        // Takes every message the connector may publish (rumqttc's default is 10 KiB).
        opts.set_max_packet_size(u32::try_from(MQTT_PACKET_BYTES_MAX).ok());
        Self::connect_with_filters(opts, filters).await
    }

    /// Connects with `opts` and subscribes to every filter of `filters` at QoS 1 (retain as
    /// published); the event loop reconnects on its own after an error.
    pub async fn connect_with_filters(opts: MqttOptions, filters: &[&str]) -> anyhow::Result<Self> {
        let (client, eventloop) = AsyncClient::new(opts, 1000);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let msgs = messages.clone();
        let filters = filters
            .iter()
            .map(|filter| {
                let mut f = Filter::new(*filter, QoS::AtLeastOnce);
                f.preserve_retain = true;
                f.retain_forward_rule = RetainForwardRule::OnEverySubscribe;
                f
            })
            .collect();
        let task = subscribe_and_drive("test subscriber", &client, eventloop, filters, move |p| {
            let r = Received {
                topic: String::from_utf8_lossy(&p.topic).into_owned(),
                payload: p.payload.clone(),
                qos: match p.qos {
                    QoS::AtMostOnce => 0,
                    QoS::AtLeastOnce => 1,
                    QoS::ExactlyOnce => 2,
                },
                retain: p.retain,
                props: p.properties.clone().unwrap_or_default(),
            };
            if let Ok(mut m) = msgs.lock() {
                m.push(r);
            }
        })
        .await?;
        Ok(Self {
            messages,
            client,
            task,
        })
    }

    /// A copy of the messages so far.
    pub fn all(&self) -> Vec<Received> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Waits until `pred` holds for the messages received so far.
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> anyhow::Result<Vec<Received>> {
        crate::eventually(what, || {
            let all = self.all();
            let ok = pred(&all);
            async move { if ok { Some(all) } else { None } }
        })
        .await
    }

    /// The client, for publishing from a test.
    pub fn client(&self) -> &AsyncClient {
        &self.client
    }
}

fn rand_u16() -> u16 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() % 65_000) as u16
}

/// The state store's request topic (Azure IoT Operations, state store protocol v1).
pub const STATE_STORE_TOPIC: &str =
    "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke";

/// What [`StateStoreMock`] answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreReply {
    /// Apply the command and answer as the store does (`+OK` for a SET).
    Apply,
    /// Answer `-<text>` (e.g. `ERR the quota has been exceeded`) without applying.
    Error(String),
    /// Say nothing (a store that is away).
    Silent,
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct StoreRequest {
    /// The RESP3 command parts (`SET`, key, value...).
    pub command: Vec<Bytes>,
    /// The `__ts` user property, when present.
    pub ts: Option<String>,
    /// Correlation data.
    pub correlation: Option<Bytes>,
    /// Response topic.
    pub response_topic: Option<String>,
}

/// Chooses the reply to a request.
pub type StorePolicy = std::sync::Arc<dyn Fn(&StoreRequest) -> StoreReply + Send + Sync>;

/// A mock of the Azure IoT Operations broker state store, which exists only inside Azure IoT
/// Operations' MQTT broker. It follows the published protocol ("State store protocol" of the
/// Azure IoT Operations documentation; the SDK's `state_store/resp3.rs`): requests are MQTT 5
/// QoS 1 publishes on `statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke`
/// carrying a RESP3 array of bulk strings (`*3 $3 SET $<n> key $<n> value`), a Response Topic,
/// Correlation Data, and the `__ts` hybrid logical clock user property
/// (`<ms, 15 digits>:<counter, 5 digits>:<node id>`). The answer goes to the response topic
/// with the same correlation data: `+OK` for a SET, `$<n> value` / `$-1` for a GET,
/// `:<count>` for a DEL, `-ERR missing timestamp` when `__ts` is absent or malformed, `-ERR
/// syntax error` for anything else; a SET answer carries the new version in `__ts`. It runs
/// against a real Mosquitto, with a policy deciding per request whether to apply, fail or stay
/// silent.
pub struct StateStoreMock {
    /// The keys and values set so far.
    pub store: Arc<Mutex<std::collections::HashMap<Bytes, Bytes>>>,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<StoreRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StateStoreMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StateStoreMock {
    /// Connects to the broker on `port`, subscribes to the request topic, and answers by `policy`.
    pub async fn start(port: u16, policy: StorePolicy) -> anyhow::Result<Self> {
        let id = format!("statestore-mock-{}", rand_u16());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, eventloop) = AsyncClient::new(opts, 1000);
        let store = Arc::new(Mutex::new(std::collections::HashMap::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (st, reqs, answer) = (store.clone(), requests.clone(), client.clone());
        let filters = vec![Filter::new(STATE_STORE_TOPIC, QoS::AtLeastOnce)];
        let task = subscribe_and_drive(
            "the state store mock",
            &client,
            eventloop,
            filters,
            move |p| {
                let props = p.properties.clone().unwrap_or_default();
                let req = StoreRequest {
                    command: resp3_array(&p.payload).unwrap_or_default(),
                    ts: props
                        .user_properties
                        .iter()
                        .find(|(k, _)| k == "__ts")
                        .map(|(_, v)| v.clone()),
                    correlation: props.correlation_data.clone(),
                    response_topic: props.response_topic.clone(),
                };
                if let Ok(mut r) = reqs.lock() {
                    r.push(req.clone());
                }
                let Some(topic) = req.response_topic.clone() else {
                    return; // no response topic: nowhere to answer
                };
                let (payload, version) = match policy(&req) {
                    StoreReply::Silent => return,
                    StoreReply::Error(text) => (format!("-{text}\r\n").into_bytes(), None),
                    StoreReply::Apply => apply(&req, &st),
                };
                let mut user_properties = Vec::new();
                if let Some(v) = version {
                    user_properties.push(("__ts".to_string(), v));
                }
                let rp = PublishProperties {
                    correlation_data: req.correlation.clone(),
                    user_properties,
                    ..Default::default()
                };
                let c = answer.clone();
                tokio::spawn(async move {
                    let _ = c
                        .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, rp)
                        .await;
                });
            },
        )
        .await?;
        Ok(Self {
            store,
            requests,
            task,
        })
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.store
            .lock()
            .ok()
            .and_then(|s| s.get(key.as_bytes()).cloned())
    }

    /// A copy of the requests so far.
    pub fn seen(&self) -> Vec<StoreRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Whether `ts` is a hybrid logical clock value `<15 digits>:<5 digits>:<node id>`.
pub fn valid_hlc(ts: &str) -> bool {
    let mut parts = ts.splitn(3, ':');
    let (Some(ms), Some(counter), Some(node)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    ms.len() == 15
        && ms.bytes().all(|b| b.is_ascii_digit())
        && counter.len() == 5
        && counter.bytes().all(|b| b.is_ascii_digit())
        && !node.is_empty()
}

/// Applies a request to `store`: the RESP3 answer and, for a SET, the new version.
fn apply(
    req: &StoreRequest,
    store: &Mutex<std::collections::HashMap<Bytes, Bytes>>,
) -> (Vec<u8>, Option<String>) {
    let Ok(mut s) = store.lock() else {
        return (b"-ERR internal\r\n".to_vec(), None);
    };
    let verb = req.command.first().map(|v| v.as_ref());
    let needs_ts = matches!(verb, Some(b"SET") | Some(b"DEL") | Some(b"VDEL"));
    if needs_ts && !req.ts.as_deref().is_some_and(valid_hlc) {
        return (b"-ERR missing timestamp\r\n".to_vec(), None);
    }
    match (verb, req.command.len()) {
        (Some(b"SET"), n) if n >= 3 => {
            s.insert(req.command[1].clone(), req.command[2].clone());
            (b"+OK\r\n".to_vec(), req.ts.clone())
        }
        (Some(b"GET"), 2) => match s.get(&req.command[1]) {
            Some(v) => {
                let mut out = format!("${}\r\n", v.len()).into_bytes();
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
                (out, None)
            }
            None => (b"$-1\r\n".to_vec(), None),
        },
        (Some(b"DEL"), 2) => {
            let n = u8::from(s.remove(&req.command[1]).is_some());
            (format!(":{n}\r\n").into_bytes(), None)
        }
        _ => (b"-ERR syntax error\r\n".to_vec(), None),
    }
}

/// Parses a RESP3 array of bulk strings: `*<n>\r\n` then `$<len>\r\n<bytes>\r\n` n times.
pub fn resp3_array(buf: &[u8]) -> Option<Vec<Bytes>> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let rest = buf.get(at..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        Some((&rest[..end], at + end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut parts = Vec::with_capacity(n.min(16));
    for _ in 0..n {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        let data = buf.get(next..next.checked_add(len)?)?;
        if buf.get(next + len..next + len + 2)? != b"\r\n" {
            return None;
        }
        parts.push(Bytes::copy_from_slice(data));
        at = next + len + 2;
    }
    (at == buf.len()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resp3_set() {
        let parts = resp3_array(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nx\r\n").unwrap();
        assert_eq!(
            parts,
            vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v\r\nx")]
        );
        assert!(resp3_array(b"*2\r\n$3\r\nSET\r\n").is_none());
        assert!(resp3_array(b"+OK\r\n").is_none());
    }

    #[test]
    fn checks_hlc() {
        assert!(valid_hlc("001700000000123:00007:pub-1"));
        assert!(!valid_hlc("1700000000123:7:pub-1"));
        assert!(!valid_hlc(""));
    }
}
