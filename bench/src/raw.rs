//! The raw baseline: one rumqttc client publishing the same payloads straight to the broker at
//! QoS 1 with many messages in flight. With generator, broker and subscriber on one machine, this
//! is the ceiling any bridge can reach.

use std::time::Duration;

use anyhow::Context;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::time::Instant;

use crate::payload;

/// QoS 1 messages the raw publisher keeps in flight.
pub const IN_FLIGHT: u16 = 1000;

/// A publishing client to the broker on 127.0.0.1:`port`, id `<name>-<pid>`: QoS 1 with
/// [`IN_FLIGHT`] publishes in flight and Nagle's algorithm off. It connects when its event loop is
/// first polled. The raw contender and the skeleton's `out` publish through the same setup.
pub fn client(name: &str, port: u16) -> (AsyncClient, EventLoop) {
    let id = format!("{name}-{}", std::process::id());
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(60))
        .set_outgoing_inflight_upper_limit(IN_FLIGHT);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    opts.set_network_options(net);
    AsyncClient::new(opts, usize::from(IN_FLIGHT))
}

/// A connected raw publisher; its event loop stops when dropped.
pub struct RawPublisher {
    client: AsyncClient,
    topics: Vec<String>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawPublisher {
    /// Connects to the broker on `port`; stream `i` publishes to `<prefix>/s<i>`.
    pub async fn connect(port: u16, prefix: &str, streams: u32) -> anyhow::Result<Self> {
        let (client, mut eventloop) = client("bench-raw", port);
        let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut connected = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("bench raw publisher: {e}; reconnecting");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(20), connected_rx)
            .await
            .context("no CONNACK from the broker")??;
        Ok(Self {
            client,
            topics: (0..streams).map(|i| format!("{prefix}/s{i}")).collect(),
            task,
        })
    }

    /// Publishes events `from..=until` of every stream, interleaved, at `rate` events/s over all
    /// streams (or as fast as the client takes them), each stamped when handed to the client.
    pub async fn send(&self, from: u64, until: u64, rate: Option<f64>) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let streams = self.topics.len() as u64;
        for seq in from..=until {
            for (i, topic) in self.topics.iter().enumerate() {
                if let Some(rate) = rate {
                    let slot = (seq - from) * streams + i as u64;
                    tokio::time::sleep_until(t0 + Duration::from_secs_f64(slot as f64 / rate))
                        .await;
                }
                let body = payload::payload(i as u32, seq, payload::now_ns());
                self.client
                    .publish(topic.clone(), QoS::AtLeastOnce, false, body)
                    .await?;
            }
        }
        Ok(())
    }
}
