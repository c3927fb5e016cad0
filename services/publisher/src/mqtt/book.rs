//! The book-keeping of the connection task: which message each rumqttc event is about, when a
//! QoS 1 publish was written (for the PUBACK timeout), and which state store requests await
//! their response (with its deadline).
//!
//! # Mapping PUBACKs to messages
//!
//! rumqttc 0.25.1 has no per-publish notification or token: `AsyncClient::publish` returns once
//! the request is queued, and the event loop assigns the packet id itself. What it does give is a
//! strict order: every `Request::Publish` it takes (from its `pending` queue first, then from the
//! request channel) yields exactly one `Outgoing::Publish(pkid)` event (or `Outgoing::AwaitAck`
//! on a packet-id collision), emitted after the packet is flushed to the socket. So this task is
//! the only writer of publish requests, and it keeps its own FIFO of messages handed to rumqttc
//! but not yet seen as `Outgoing`. Each `Outgoing::Publish(pkid)` pops that FIFO: a QoS 0
//! message is done (written), a QoS 1 message is filed under `pkid` until `Incoming::PubAck(pkid)`
//! arrives; a PUBACK with an error reason code resolves it as a permanent failure.
//!
//! # Across a reconnect
//!
//! When the connection drops, rumqttc moves unacknowledged publishes and unread requests into
//! `EventLoop::pending` and would re-send them (or drop them all if the broker lost the session).
//! This task takes that over, since only it knows which message each packet is: it clears
//! `pending` and, on the next CONNACK, re-queues every outstanding message in its original order:
//! with its old packet id and DUP when the session is present (`clean_start(false)` with a session
//! expiry), else as a new publish. So a message is resolved only by a PUBACK on the connection it
//! was (re-)sent on, or by a PUBACK the broker sent before the drop: nothing is reported delivered
//! that the broker does not have. Messages still outstanding at shutdown are dropped unresolved,
//! which the caller sees as "not acknowledged" and re-sends.
//!
//! # State store responses
//!
//! A state store request is resolved by the store's response, not by its PUBACK: the task
//! subscribes to its response topic, matches responses by correlation data, and `+OK` resolves
//! the message. `-ERR ...`, any other answer, or no answer within `--state-store-timeout` sends
//! the request again with a fresh `__ts`, up to `--state-store-attempts` times; then it resolves
//! as a permanent failure naming the store's answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, PubAck, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, Event, Incoming, Request};
use sse_contract::limits::MQTT_PACKET_BYTES_MAX;
use sse_runtime::mqtt::Handler;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::packed::PackedPairs;
use super::{Job, Stamper, describe};
use crate::config::MqttSettings;
use crate::error::Error;
use crate::event::Qos;
use crate::metrics::TopicMeter;
use crate::properties::Message;
use crate::state_store;

/// A message handed to rumqttc and not yet resolved.
#[derive(Debug)]
struct Item {
    /// The message; its user properties are in `packed` when they are not here.
    message: Message,
    /// The user properties rumqttc took (every message but a state store request, whose
    /// properties a retry changes).
    packed: Option<PackedPairs>,
    reply: Option<oneshot::Sender<Result<(), Error>>>,
    /// Packet id the broker knows it by (QoS 1, once sent).
    pkid: Option<u16>,
    /// When it was written on the current connection (QoS 1), for the PUBACK timeout.
    sent_at: Option<Instant>,
    /// State store attempts before this one.
    attempts: u32,
    /// A state store response that arrived before the request's PUBACK.
    early_response: Option<Result<(), String>>,
    /// What its PUBLISH's outcome is recorded with (`None`: metrics are off).
    meter: Option<Arc<TopicMeter>>,
}

/// A state store request the broker has (PUBACK), waiting for the store's response.
#[derive(Debug)]
struct StoreWait {
    message: Message,
    reply: oneshot::Sender<Result<(), Error>>,
    attempts: u32,
    deadline: Instant,
    meter: Option<Arc<TopicMeter>>,
}

/// The bookkeeping that maps rumqttc events to messages (see the module docs).
#[derive(Debug)]
pub(super) struct Book {
    /// Boxed: a B-tree node shifts its values on insert and remove, and an `Item` is large.
    items: BTreeMap<u64, Box<Item>>,
    next_order: u64,
    /// Messages handed to rumqttc whose `Outgoing` event has not been seen, in order.
    expect: VecDeque<u64>,
    by_pkid: foldhash::HashMap<u16, u64>,
    collided: Option<u64>,
    connected: bool,
    /// How many messages may be outstanding: `min(max_inflight, broker receive maximum)`.
    limit: usize,
    /// `--max-inflight`, the limit before the broker's CONNACK lowers it.
    max_inflight: u16,
    max_packet: Option<u32>,
    retain_available: bool,
    qos1_available: bool,
    needs_reset: bool,
    /// State store requests awaiting their response, by correlation data.
    store: HashMap<Bytes, StoreWait>,
    /// State store requests to send again, before any new message.
    retry: VecDeque<Job>,
    response_topic: String,
    /// Whether the broker confirmed the response topic subscription in the current session.
    response_subscribed: bool,
    store_timeout: Duration,
    store_attempts: u32,
    stamper: Arc<Stamper>,
}

/// Whether `m` is a state store request, resolved by the store's response, not its PUBACK.
fn is_store_request(m: &Message) -> bool {
    m.topic == state_store::REQUEST_TOPIC && m.properties.correlation_data.is_some()
}

impl Book {
    pub(super) fn new(settings: &MqttSettings, stamper: Arc<Stamper>) -> Self {
        Self {
            items: BTreeMap::new(),
            next_order: 0,
            expect: VecDeque::new(),
            by_pkid: foldhash::HashMap::default(),
            collided: None,
            connected: false,
            limit: usize::from(settings.max_inflight),
            max_inflight: settings.max_inflight,
            max_packet: None,
            retain_available: true,
            qos1_available: true,
            needs_reset: false,
            store: HashMap::new(),
            retry: VecDeque::new(),
            response_topic: state_store::response_topic(&stamper.client_id),
            response_subscribed: false,
            store_timeout: settings.store_timeout,
            store_attempts: settings.store_attempts,
            stamper,
        }
    }

    /// Nothing outstanding.
    pub(super) fn idle(&self) -> bool {
        self.items.is_empty() && self.store.is_empty() && self.retry.is_empty()
    }

    /// Whether the broker's CONNACK came and the connection has not dropped since.
    pub(super) fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether another message may be handed to rumqttc now.
    pub(super) fn has_room(&self) -> bool {
        self.items.len() < self.limit
    }

    /// Messages handed to rumqttc and not yet resolved.
    pub(super) fn in_flight(&self) -> usize {
        self.items.len()
    }

    /// Everything not yet resolved: in flight, awaiting a store response, or to be retried.
    pub(super) fn outstanding(&self) -> usize {
        self.items.len() + self.store.len() + self.retry.len()
    }

    /// A packet id collision lost a publish: only a reconnect re-sends it.
    pub(super) fn needs_reset(&self) -> bool {
        self.needs_reset
    }

    /// Hands the state store requests to send again to rumqttc, before any new message.
    pub(super) fn readmit(&mut self, client: &AsyncClient) {
        while self.connected && self.has_room() {
            let Some(job) = self.retry.pop_front() else {
                break;
            };
            self.admit(job, client);
        }
    }

    /// Hands a message to rumqttc, or resolves it at once when the broker cannot take it.
    pub(super) fn admit(&mut self, mut job: Job, client: &AsyncClient) {
        if let Err(e) = self.check(&job.message) {
            let _ = job.reply.send(Err(e));
            return;
        }
        // rumqttc gets the user properties themselves; the item keeps them packed.
        let (properties, packed) = if is_store_request(&job.message) {
            (job.message.properties.clone(), None)
        } else {
            let user = std::mem::take(&mut job.message.properties.user_properties);
            let packed = PackedPairs::of(&user);
            let mut properties = job.message.properties.clone();
            properties.user_properties = user;
            (properties, Some(packed))
        };
        let m = &job.message;
        let sent = client.try_publish_with_properties(
            m.topic.clone(),
            crate::event::mqtt_qos(m.qos),
            m.retain,
            m.payload.clone(),
            properties,
        );
        if sent.is_err() {
            // Cannot happen (the channel holds more than `limit`); the caller sees "not acked".
            tracing::error!("mqtt request channel refused a publish");
            return;
        }
        self.track(job, packed);
    }

    fn track(&mut self, job: Job, packed: Option<PackedPairs>) {
        let order = self.next_order;
        self.next_order += 1;
        self.items.insert(
            order,
            Box::new(Item {
                message: job.message,
                packed,
                reply: Some(job.reply),
                pkid: None,
                sent_at: None,
                attempts: job.attempts,
                early_response: None,
                meter: job.meter,
            }),
        );
        self.expect.push_back(order);
    }

    /// What the connected broker said it cannot take, or would close the connection on.
    fn check(&self, m: &Message) -> Result<(), Error> {
        m.check_text()?;
        if m.retain && !self.retain_available {
            return Err(Error::Unsupported(
                "the broker does not support retain".into(),
            ));
        }
        if m.qos == Qos::AtLeastOnce && !self.qos1_available {
            return Err(Error::Unsupported("the broker supports only QoS 0".into()));
        }
        // The broker's limit (CONNACK) and ours (sse-contract), whichever is lower.
        let (max, whose) = match self.max_packet {
            Some(b) if (b as usize) < MQTT_PACKET_BYTES_MAX => (b as usize, "the broker's"),
            _ => (MQTT_PACKET_BYTES_MAX, "the connector's"),
        };
        if m.packet_size_bound() > max {
            let size = m.packet_size();
            if size > max {
                return Err(Error::TooLarge(format!(
                    "{size} bytes exceed {whose} maximum packet size of {max}"
                )));
            }
        }
        Ok(())
    }

    fn finish(&mut self, order: u64, result: Result<(), Error>) {
        if let Some(reply) = self.items.remove(&order).and_then(|mut i| i.reply.take()) {
            let _ = reply.send(result);
        }
    }

    /// When the oldest QoS 1 publish still waiting for its PUBACK was written. Items are kept in
    /// the order they are written (a reconnect re-sends them in that order), so the first one
    /// written is the oldest: no scan of the whole window per event.
    pub(super) fn oldest_unacked(&self) -> Option<Instant> {
        self.items.values().find_map(|i| i.sent_at)
    }

    /// The earliest deadline of a state store response.
    pub(super) fn next_store_deadline(&self) -> Option<Instant> {
        self.store.values().map(|w| w.deadline).min()
    }

    /// Gives up waiting for the responses due by `now`.
    pub(super) fn expire_store(&mut self, now: Instant) {
        let due: Vec<Bytes> = self
            .store
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(w) = self.store.remove(&key) {
                let why = format!("no state store response within {:?}", self.store_timeout);
                self.store_result(w.message, w.reply, w.attempts, w.meter, Err(why));
            }
        }
    }

    /// Resolves a state store request with the store's answer, or queues another attempt.
    fn store_result(
        &mut self,
        mut message: Message,
        reply: oneshot::Sender<Result<(), Error>>,
        attempts: u32,
        meter: Option<Arc<TopicMeter>>,
        answer: Result<(), String>,
    ) {
        let attempts = attempts + 1;
        match answer {
            Ok(()) => {
                let _ = reply.send(Ok(()));
            }
            Err(why) if attempts >= self.store_attempts => {
                tracing::warn!(%why, attempts, "state store request failed");
                let _ = reply.send(Err(Error::StateStore(format!(
                    "{why} (after {attempts} attempts)"
                ))));
            }
            Err(why) => {
                tracing::info!(%why, attempts, "state store request failed; trying again");
                let ts = self.stamper.ts();
                for (k, v) in message.properties.user_properties.iter_mut() {
                    if k == "__ts" {
                        *v = ts.clone();
                    }
                }
                self.retry.push_back(Job {
                    message,
                    reply,
                    attempts,
                    meter,
                });
            }
        }
    }

    /// Takes a CONNACK: learns the broker's limits and returns the messages to re-send, in order.
    fn on_connack(&mut self, connack: &ConnAck, max_inflight: u16) -> Vec<Publish> {
        self.connected = true;
        let props = connack.properties.as_ref();
        let receive_max = props.and_then(|p| p.receive_max).unwrap_or(u16::MAX);
        self.limit = usize::from(max_inflight.min(receive_max).max(1));
        self.max_packet = props.and_then(|p| p.max_packet_size);
        self.retain_available = props.and_then(|p| p.retain_available) != Some(0);
        self.qos1_available = props.and_then(|p| p.max_qos) != Some(0);
        self.by_pkid.clear();
        self.expect.clear();
        self.collided = None;
        let mut replay = Vec::with_capacity(self.items.len());
        for (order, item) in self.items.iter_mut() {
            let mut p = item.message.to_publish();
            if let (Some(packed), Some(props)) = (&item.packed, p.properties.as_mut()) {
                props.user_properties = packed.unpack();
            }
            match item.pkid {
                Some(pkid) if connack.session_present => {
                    p.pkid = pkid;
                    p.dup = true;
                }
                _ => item.pkid = None,
            }
            replay.push(p);
            self.expect.push_back(*order);
        }
        replay
    }

    /// The connection dropped: what was handed to rumqttc is re-sent after the next CONNACK.
    fn on_disconnect(&mut self) {
        self.connected = false;
        self.expect.clear();
        self.collided = None;
        self.needs_reset = false;
        for item in self.items.values_mut() {
            item.sent_at = None;
        }
    }

    /// Takes an event of the event loop.
    fn on_event(&mut self, ev: &Event) {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) if self.connected => self.on_sent(*pkid),
            Event::Outgoing(Outgoing::AwaitAck(pkid)) if self.connected => {
                if let Some(order) = self.expect.pop_front() {
                    if let Some(item) = self.items.get_mut(&order) {
                        item.pkid = Some(*pkid);
                    }
                    if self.collided.replace(order).is_some() {
                        // rumqttc keeps one colliding publish; the previous one is gone.
                        self.needs_reset = true;
                    }
                }
            }
            // A PUBACK counts even when read just before the connection dropped.
            Event::Incoming(Incoming::PubAck(ack)) => self.on_puback(ack),
            Event::Incoming(Incoming::Publish(p)) if p.topic == self.response_topic.as_bytes() => {
                self.on_store_response(p)
            }
            Event::Incoming(Incoming::SubAck(ack)) => {
                for code in &ack.return_codes {
                    if matches!(code, SubscribeReasonCode::Success(_)) {
                        self.response_subscribed = true;
                    } else {
                        tracing::error!(
                            ?code,
                            topic = %self.response_topic,
                            "the broker refused the state store response subscription"
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn on_sent(&mut self, pkid: u16) {
        if let Some(order) = self.collided
            && pkid != 0
            && self.items.get(&order).and_then(|i| i.pkid) == Some(pkid)
        {
            self.collided = None;
            self.by_pkid.insert(pkid, order);
            if let Some(item) = self.items.get_mut(&order) {
                item.sent_at = Some(Instant::now());
            }
            return;
        }
        let Some(order) = self.expect.pop_front() else {
            tracing::warn!(pkid, "publish event without a queued message");
            return;
        };
        let qos0 = match self.items.get_mut(&order) {
            Some(item) if item.message.qos == Qos::AtMostOnce => {
                // No PUBACK: written is its outcome, and there is no round trip to time.
                if let Some(m) = &item.meter {
                    m.sent(None, None);
                }
                true
            }
            Some(item) => {
                item.pkid = Some(pkid);
                item.sent_at = Some(Instant::now());
                false
            }
            None => return,
        };
        if qos0 {
            self.finish(order, Ok(()));
        } else {
            self.by_pkid.insert(pkid, order);
        }
    }

    fn on_puback(&mut self, ack: &PubAck) {
        let Some(order) = self.by_pkid.remove(&ack.pkid) else {
            tracing::debug!(pkid = ack.pkid, "puback for no outstanding message");
            return;
        };
        let result = describe::puback(ack);
        if let Some(item) = self.items.get(&order)
            && let Some(m) = &item.meter
        {
            let refused = result.is_err().then_some(ack.reason);
            m.sent(item.sent_at.map(|t| t.elapsed()), refused);
        }
        let is_store = self
            .items
            .get(&order)
            .is_some_and(|i| is_store_request(&i.message));
        if result.is_err() || !is_store {
            self.finish(order, result);
            return;
        }
        // The broker has the request; the store's response resolves it.
        let Some(mut item) = self.items.remove(&order) else {
            return;
        };
        let Some(reply) = item.reply.take() else {
            return;
        };
        match item.early_response.take() {
            Some(answer) => {
                self.store_result(item.message, reply, item.attempts, item.meter, answer)
            }
            None => {
                let Some(key) = item.message.properties.correlation_data.clone() else {
                    return;
                };
                self.store.insert(
                    key,
                    StoreWait {
                        message: item.message,
                        reply,
                        attempts: item.attempts,
                        deadline: Instant::now() + self.store_timeout,
                        meter: item.meter,
                    },
                );
            }
        }
    }

    fn on_store_response(&mut self, p: &Publish) {
        let Some(key) = p
            .properties
            .as_ref()
            .and_then(|pr| pr.correlation_data.clone())
        else {
            tracing::info!(
                bytes = p.payload.len(),
                "ignored a message on the state store response topic: no correlation data"
            );
            return;
        };
        let answer = describe::store_answer(&p.payload);
        if let Some(w) = self.store.remove(&key) {
            self.store_result(w.message, w.reply, w.attempts, w.meter, answer);
            return;
        }
        // The response can overtake the request's PUBACK.
        let early = self
            .items
            .values_mut()
            .find(|i| i.message.properties.correlation_data.as_ref() == Some(&key));
        match early {
            Some(item) => item.early_response = Some(answer),
            None => tracing::info!(
                bytes = p.payload.len(),
                "ignored a message on the state store response topic: no request of ours awaits it"
            ),
        }
    }
}

/// The connection task's side of the shared supervisor: a CONNACK re-queues what is
/// outstanding, a dropped connection leaves nothing for rumqttc to re-send (the book does it).
impl Handler for Book {
    fn on_connected(&mut self, connack: &ConnAck, pending: &mut VecDeque<Request>) {
        let replay = self.on_connack(connack, self.max_inflight);
        if !replay.is_empty() {
            tracing::info!(resent = replay.len(), "re-sending unacknowledged messages");
        }
        pending.extend(replay.into_iter().map(Request::Publish));
        if !connack.session_present {
            self.response_subscribed = false;
        }
        if !self.response_subscribed {
            // The response topic of state store requests (a kept session keeps it).
            let filter = Filter::new(self.response_topic.clone(), QoS::AtLeastOnce);
            pending.push_front(Request::Subscribe(Subscribe::new(filter, None)));
        }
    }

    fn on_event(&mut self, event: rumqttc::v5::Event) {
        Book::on_event(self, &event);
    }

    fn on_lost(&mut self, pending: &mut VecDeque<Request>) {
        pending.clear();
        self.on_disconnect();
    }
}

#[cfg(test)]
mod tests;
