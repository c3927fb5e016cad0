//! The broker store: each stream's record as a retained message under a topic prefix, through
//! the shared MQTT stack (`sse_runtime::mqtt`). The client announces
//! `MQTT_CONTROL_PACKET_BYTES_MAX` in CONNECT, so a larger retained message under the prefix is
//! discarded by the broker for it instead of breaking every connect, and each record is checked
//! by [`record::decode`] before it is used.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, Packet};
use rumqttc::v5::{AsyncClient, Event, EventLoop, Request};
use sse_runtime::mqtt::{ClientSettings, Handler, Supervisor, describe};
use tokio_util::sync::CancellationToken;

use super::CheckpointError;
use super::record::{self, Record, Stored};

/// How long loading the retained checkpoints may take before the attempt is given up.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected client of the broker store.
pub struct BrokerStore {
    client: AsyncClient,
    prefix: String,
    /// Records handed to the client so far, for [`RECORDS_PER_TURN`].
    handed: AtomicUsize,
}

/// Records a save hands to the client before it lets the runtime's other tasks run. A save
/// writes every changed stream's record (on a busy ingest, thousands every second); handing over
/// 64 at a time (rumqttc's request queue) held the streams' thread for about half a millisecond,
/// while a turn after every record cost an extra pass of the I/O driver per record. Sixteen
/// hold it for tens of microseconds.
pub const RECORDS_PER_TURN: usize = 16;

impl BrokerStore {
    /// Connects, reads every retained checkpoint under `prefix` (skipping the ones that fail
    /// [`record::decode`], with a warning), and keeps the client connected for saving until
    /// `token` is cancelled.
    pub async fn open(
        settings: ClientSettings,
        prefix: &str,
        token: CancellationToken,
    ) -> Result<(Self, BTreeMap<String, Stored>), CheckpointError> {
        let sentinel = format!("{prefix}/sync/{}", settings.client_id);
        let mut supervisor = Supervisor::new(settings, "the checkpoint store's broker");
        let (client, mut events) = supervisor.client(64);
        supervisor
            .settings()
            .prepare(&mut events.options)
            .await
            .map_err(CheckpointError::Mqtt)?;
        let mqtt = |e: rumqttc::v5::ClientError| CheckpointError::Mqtt(e.to_string());
        client
            .subscribe(format!("{prefix}/#"), QoS::AtLeastOnce)
            .await
            .map_err(mqtt)?;
        let load = load(&client, &mut events, &mut supervisor, &sentinel);
        let loaded = tokio::time::timeout(LOAD_TIMEOUT, load)
            .await
            .map_err(|_| {
                CheckpointError::Mqtt(format!(
                    "no answer from the broker within {}s",
                    LOAD_TIMEOUT.as_secs()
                ))
            })??;
        client
            .unsubscribe(format!("{prefix}/#"))
            .await
            .map_err(mqtt)?;
        tokio::spawn(supervisor.run(client.clone(), events, Quiet, token));
        let store = Self {
            client,
            prefix: prefix.to_string(),
            handed: AtomicUsize::new(0),
        };
        Ok((store, loaded))
    }

    /// Publishes stream `key`'s checkpoint (retained, QoS 1), with when it was last planned.
    pub async fn save(
        &self,
        key: &str,
        last_event_id: &str,
        seen: u64,
    ) -> Result<(), CheckpointError> {
        let payload = Record {
            stream: key.to_string(),
            last_event_id: last_event_id.to_string(),
            seen: Some(seen),
        }
        .encode();
        self.publish(key, payload).await
    }

    /// Removes stream `key`'s retained record (an empty retained message), for a record stored
    /// under a key that is no longer used, or one whose stream is gone for the retention.
    pub async fn clear(&self, key: &str) -> Result<(), CheckpointError> {
        self.publish(key, Vec::new()).await
    }

    /// Hands stream `key`'s retained record to the client, and every [`RECORDS_PER_TURN`]
    /// records lets the runtime's other tasks run.
    async fn publish(&self, key: &str, payload: Vec<u8>) -> Result<(), CheckpointError> {
        self.client
            .publish(
                record::topic(&self.prefix, key),
                QoS::AtLeastOnce,
                true,
                payload,
            )
            .await
            .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
        if self.handed.fetch_add(1, Ordering::Relaxed) % RECORDS_PER_TURN == RECORDS_PER_TURN - 1 {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// Reads retained records until the `sentinel` (published once the subscription is acknowledged)
/// comes back: the broker delivers a subscription's retained messages before it handles the
/// client's next packet.
async fn load(
    client: &AsyncClient,
    events: &mut EventLoop,
    supervisor: &mut Supervisor,
    sentinel: &str,
) -> Result<BTreeMap<String, Stored>, CheckpointError> {
    let mut loaded = BTreeMap::new();
    let mut subscribed = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => supervisor.connected(&ack),
            Ok(Event::Incoming(Packet::SubAck(_))) if !subscribed => {
                subscribed = true;
                client
                    .publish(sentinel, QoS::AtLeastOnce, false, Vec::new())
                    .await
                    .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic);
                if topic == sentinel {
                    return Ok(loaded);
                }
                match record::decode(&topic, &p.payload) {
                    Ok(r) => {
                        let (key, stored) = r.into_stored();
                        loaded.insert(key, stored);
                    }
                    Err(e) => tracing::warn!(
                        %topic, error = %e,
                        "checkpoint skipped; its stream starts without it"
                    ),
                }
            }
            Ok(_) => {}
            Err(e) => return Err(CheckpointError::Mqtt(describe(&e))),
        }
    }
}

/// After loading the client only publishes: nothing to do with its events, and what rumqttc
/// keeps across a reconnect (unacknowledged checkpoints) it may re-send.
struct Quiet;

impl Handler for Quiet {
    fn on_connected(&mut self, _ack: &ConnAck, _pending: &mut VecDeque<Request>) {}
    fn on_event(&mut self, _event: Event) {}
    fn on_lost(&mut self, _pending: &mut VecDeque<Request>) {}
}
