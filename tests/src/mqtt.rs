//! An MQTT 5 subscriber (rumqttc) that records every message with its properties.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, PublishProperties, RetainForwardRule};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

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
        self.props
            .user_properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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
        let id = format!(
            "test-sub-{}",
            std::process::id() as u64 * 1000 + rand_u16() as u64
        );
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 1000);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (subacked_tx, subacked_rx) = tokio::sync::oneshot::channel();
        let msgs = messages.clone();
        let task = tokio::spawn(async move {
            let mut subacked = Some(subacked_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subacked.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
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
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let mut f = Filter::new(filter, QoS::AtLeastOnce);
        f.preserve_retain = true;
        f.retain_forward_rule = RetainForwardRule::OnEverySubscribe;
        client.subscribe_many(vec![f]).await?;
        tokio::time::timeout(Duration::from_secs(20), subacked_rx)
            .await
            .context("no SUBACK from the broker")??;
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
