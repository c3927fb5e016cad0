//! The broker connection: one supervised task owns the rumqttc v5 `EventLoop`, reconnects with
//! backoff, publishes the messages handed to it and resolves each one once the broker has it.
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
//! The task polls the event loop without ever cancelling a poll that may be writing: new messages
//! go through rumqttc's request channel, which wakes the running `poll` future, so nothing is
//! half-written and dropped. It admits a new message only while connected and while fewer than
//! `min(--max-inflight, broker receive maximum)` messages are outstanding; with the broker's
//! in-order PUBACKs (MQTT 5 section 4.6) packet ids then never collide, and a collision that
//! would lose a message forces a reconnect (re-send) instead.
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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{ConnAck, PubAck, PubAckReason, Publish};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Request};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use sse_runtime::{Backoff, Shutdown};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::MqttSettings;
use crate::error::Error;
use crate::event::Qos;
use crate::properties::Message;

/// How long shutdown waits for outstanding messages to be acknowledged.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Session expiry asked of the broker, so unacknowledged QoS 1 publishes survive a reconnect.
const SESSION_EXPIRY_SECS: u32 = 300;

/// Resolves once the broker has the message (`Ok`), refused it for good (`Err`), or, when the
/// sender is dropped, never: the message was not delivered and may be re-sent.
pub type Delivery = oneshot::Receiver<Result<(), Error>>;

/// A message handed to the connection task.
#[derive(Debug)]
struct Job {
    message: Message,
    reply: oneshot::Sender<Result<(), Error>>,
}

/// Handle to the broker connection: queue messages, watch the connection state.
#[derive(Clone, Debug)]
pub struct Mqtt {
    jobs: mpsc::Sender<Job>,
    connected: watch::Receiver<bool>,
    client_id: Arc<str>,
}

/// A reserved place in the connection's bounded queue.
#[derive(Debug)]
pub struct Slot<'a>(mpsc::Permit<'a, Job>);

impl Slot<'_> {
    /// Queues `message`; the returned [`Delivery`] resolves when the broker has it.
    pub fn send(self, message: Message) -> Delivery {
        let (reply, rx) = oneshot::channel();
        self.0.send(Job { message, reply });
        rx
    }
}

impl Mqtt {
    /// Starts the connection task under `shutdown` (it keeps retrying until connected).
    pub fn start(settings: MqttSettings, shutdown: &Shutdown) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel(usize::from(settings.max_inflight));
        let (connected_tx, connected_rx) = watch::channel(false);
        let client_id: Arc<str> = settings.client_id.clone().into();
        let token = shutdown.token.clone();
        shutdown
            .tracker
            .spawn(connection(settings, jobs_rx, connected_tx, token));
        Self {
            jobs: jobs_tx,
            connected: connected_rx,
            client_id,
        }
    }

    /// Waits for room in the queue (backpressure while the broker is away). Cancel-safe.
    pub async fn reserve(&self) -> Result<Slot<'_>, Error> {
        self.jobs
            .reserve()
            .await
            .map(Slot)
            .map_err(|_| Error::ShuttingDown)
    }

    /// The MQTT client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Follows the connection state: true from CONNACK until the connection drops.
    pub fn connection(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// Waits until connected, at most `timeout`; false when not connected in time.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.clone();
        matches!(
            tokio::time::timeout(timeout, rx.wait_for(|c| *c)).await,
            Ok(Ok(_))
        )
    }
}

/// rumqttc options for `settings` (credentials are set before each connect).
fn options(settings: &MqttSettings) -> MqttOptions {
    let mut o = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
    o.set_keep_alive(settings.keep_alive)
        .set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
        .set_outgoing_inflight_upper_limit(settings.max_inflight)
        .set_connection_timeout(10);
    if let Some(tls) = &settings.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.clone(),
        )));
    }
    o
}

/// Reads the credentials, the password file afresh each time. Errors never hold the password.
async fn credentials(settings: &MqttSettings) -> Result<Option<(String, String)>, String> {
    let user = settings.username.clone();
    match &settings.password_file {
        None => Ok(user.map(|u| (u, String::new()))),
        Some(path) => {
            let pw = tokio::fs::read_to_string(path).await.map_err(|e| {
                format!("cannot read password file {}: {}", path.display(), e.kind())
            })?;
            let pw = pw.trim_end_matches(['\r', '\n']).to_string();
            Ok(Some((user.unwrap_or_default(), pw)))
        }
    }
}

enum Outcome {
    Polled(Box<Result<Event, ConnectionError>>),
    Deadline,
}

/// The connection task: poll, admit, reconnect, drain.
async fn connection(
    settings: MqttSettings,
    mut jobs: mpsc::Receiver<Job>,
    connected_tx: watch::Sender<bool>,
    token: CancellationToken,
) {
    let (client, mut eventloop) =
        AsyncClient::new(options(&settings), usize::from(settings.max_inflight) + 1);
    let mut book = Book::new(settings.max_inflight);
    let mut backoff = Backoff::standard();
    let mut delay: Option<Duration> = None;
    let mut draining: Option<Instant> = None;
    let mut disconnect_sent = false;
    loop {
        if let Some(d) = delay.take() {
            if draining.is_some() {
                break; // the broker is away while stopping: nothing more can be acknowledged
            }
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = token.cancelled() => break,
            }
        }
        if !book.connected {
            match credentials(&settings).await {
                Ok(Some((u, p))) => {
                    eventloop.options.set_credentials(u, p);
                }
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(%reason, "mqtt credentials unavailable; retrying");
                    delay = Some(backoff.next_delay());
                    continue;
                }
            }
        }
        let outcome = {
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                let deadline =
                    draining.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                tokio::select! {
                    biased;
                    ev = &mut poll => break Outcome::Polled(Box::new(ev)),
                    _ = token.cancelled(), if draining.is_none() => {
                        draining = Some(Instant::now() + DRAIN_TIMEOUT);
                        jobs.close();
                        if book.items.is_empty() && book.connected && !disconnect_sent {
                            disconnect_sent = client.try_disconnect().is_ok();
                        }
                        if !book.connected {
                            break Outcome::Deadline;
                        }
                    }
                    _ = tokio::time::sleep_until(deadline), if draining.is_some() => break Outcome::Deadline,
                    job = jobs.recv(), if book.connected && draining.is_none() && book.items.len() < book.limit => {
                        match job {
                            Some(job) => book.admit(job, &client),
                            None => draining = Some(Instant::now() + DRAIN_TIMEOUT),
                        }
                    }
                }
            }
        };
        let polled = match outcome {
            Outcome::Deadline => break,
            Outcome::Polled(ev) => *ev,
        };
        match polled {
            Ok(Event::Incoming(Incoming::ConnAck(connack))) => {
                backoff.connected();
                let replay = book.on_connack(&connack, settings.max_inflight);
                tracing::info!(
                    session_present = connack.session_present,
                    resent = replay.len(),
                    "connected to the mqtt broker"
                );
                eventloop
                    .pending
                    .extend(replay.into_iter().map(Request::Publish));
                let _ = connected_tx.send(true);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if disconnect_sent => break,
            Ok(ev) => {
                book.on_event(&ev);
                if book.needs_reset {
                    tracing::error!(
                        "mqtt packet id collision lost a publish; reconnecting to re-send"
                    );
                    eventloop.clean();
                    lost(&mut book, &mut eventloop, &connected_tx);
                }
            }
            Err(e) => {
                if disconnect_sent {
                    break;
                }
                if book.connected {
                    tracing::warn!(error = %e, "mqtt connection lost; reconnecting");
                } else {
                    tracing::warn!(error = %e, "mqtt connect failed; retrying");
                }
                lost(&mut book, &mut eventloop, &connected_tx);
                delay = Some(backoff.next_delay());
            }
        }
        if draining.is_some() && book.items.is_empty() && book.connected && !disconnect_sent {
            disconnect_sent = client.try_disconnect().is_ok();
        }
    }
    let _ = connected_tx.send(false);
    if !book.items.is_empty() {
        tracing::warn!(
            unacknowledged = book.items.len(),
            "stopping with messages the broker has not acknowledged; upstream re-sends them"
        );
    }
}

/// After a dropped connection: nothing rumqttc queued is re-sent by it; the book re-queues.
fn lost(book: &mut Book, eventloop: &mut EventLoop, connected_tx: &watch::Sender<bool>) {
    eventloop.pending.clear();
    eventloop.state.collision = None;
    book.on_disconnect();
    let _ = connected_tx.send(false);
}

/// A message handed to rumqttc and not yet resolved.
#[derive(Debug)]
struct Item {
    message: Message,
    reply: Option<oneshot::Sender<Result<(), Error>>>,
    /// Packet id the broker knows it by (QoS 1, once sent).
    pkid: Option<u16>,
}

/// The bookkeeping that maps rumqttc events to messages (see the module docs).
#[derive(Debug)]
struct Book {
    items: BTreeMap<u64, Item>,
    next_order: u64,
    /// Messages handed to rumqttc whose `Outgoing` event has not been seen, in order.
    expect: VecDeque<u64>,
    by_pkid: HashMap<u16, u64>,
    collided: Option<u64>,
    connected: bool,
    limit: usize,
    max_packet: Option<u32>,
    retain_available: bool,
    qos1_available: bool,
    needs_reset: bool,
}

impl Book {
    fn new(max_inflight: u16) -> Self {
        Self {
            items: BTreeMap::new(),
            next_order: 0,
            expect: VecDeque::new(),
            by_pkid: HashMap::new(),
            collided: None,
            connected: false,
            limit: usize::from(max_inflight),
            max_packet: None,
            retain_available: true,
            qos1_available: true,
            needs_reset: false,
        }
    }

    /// Hands a message to rumqttc, or resolves it at once when the broker cannot take it.
    fn admit(&mut self, job: Job, client: &AsyncClient) {
        if let Err(e) = self.check(&job.message) {
            let _ = job.reply.send(Err(e));
            return;
        }
        let m = &job.message;
        let sent = client.try_publish_with_properties(
            m.topic.clone(),
            m.qos.into(),
            m.retain,
            m.payload.clone(),
            m.properties.clone(),
        );
        if sent.is_err() {
            // Cannot happen (the channel holds more than `limit`); the caller sees "not acked".
            tracing::error!("mqtt request channel refused a publish");
            return;
        }
        self.track(job);
    }

    fn track(&mut self, job: Job) {
        let order = self.next_order;
        self.next_order += 1;
        self.items.insert(
            order,
            Item {
                message: job.message,
                reply: Some(job.reply),
                pkid: None,
            },
        );
        self.expect.push_back(order);
    }

    /// What the connected broker said it cannot take.
    fn check(&self, m: &Message) -> Result<(), Error> {
        if m.retain && !self.retain_available {
            return Err(Error::Unsupported(
                "the broker does not support retain".into(),
            ));
        }
        if m.qos == Qos::AtLeastOnce && !self.qos1_available {
            return Err(Error::Unsupported("the broker supports only QoS 0".into()));
        }
        if let Some(max) = self.max_packet {
            let size = m.to_publish().size();
            if size > max as usize {
                return Err(Error::Unsupported(format!(
                    "{size} bytes exceed the broker's maximum packet size of {max}"
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
            return;
        }
        let Some(order) = self.expect.pop_front() else {
            tracing::warn!(pkid, "publish event without a queued message");
            return;
        };
        let qos0 = match self.items.get_mut(&order) {
            Some(item) if item.message.qos == Qos::AtMostOnce => true,
            Some(item) => {
                item.pkid = Some(pkid);
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
        let result = match ack.reason {
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
            reason => {
                let detail = ack
                    .properties
                    .as_ref()
                    .and_then(|p| p.reason_string.as_deref())
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default();
                Err(Error::Rejected(format!("{reason:?}{detail}")))
            }
        };
        self.finish(order, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rumqttc::v5::mqttbytes::v5::{ConnAckProperties, ConnectReturnCode, PublishProperties};

    fn message(qos: Qos) -> Message {
        Message {
            topic: "t".into(),
            qos,
            retain: false,
            payload: Bytes::from_static(b"x"),
            properties: PublishProperties::default(),
        }
    }

    fn job(book: &mut Book, qos: Qos) -> Delivery {
        let (reply, rx) = oneshot::channel();
        book.track(Job {
            message: message(qos),
            reply,
        });
        rx
    }

    fn connack(session_present: bool) -> ConnAck {
        ConnAck {
            session_present,
            code: ConnectReturnCode::Success,
            properties: None,
        }
    }

    fn puback(pkid: u16, reason: PubAckReason) -> Event {
        let mut a = PubAck::new(pkid, None);
        a.reason = reason;
        Event::Incoming(Incoming::PubAck(a))
    }

    fn sent(pkid: u16) -> Event {
        Event::Outgoing(Outgoing::Publish(pkid))
    }

    fn connected() -> Book {
        let mut b = Book::new(10);
        assert!(b.on_connack(&connack(false), 10).is_empty());
        b
    }

    #[test]
    fn qos1_resolves_on_its_own_puback() {
        let mut b = connected();
        let mut d1 = job(&mut b, Qos::AtLeastOnce);
        let mut d2 = job(&mut b, Qos::AtLeastOnce);
        b.on_event(&sent(1));
        b.on_event(&sent(2));
        assert!(d1.try_recv().is_err());
        b.on_event(&puback(2, PubAckReason::Success));
        assert_eq!(d2.try_recv().unwrap(), Ok(()));
        assert!(d1.try_recv().is_err());
        b.on_event(&puback(1, PubAckReason::NoMatchingSubscribers));
        assert_eq!(d1.try_recv().unwrap(), Ok(()));
        assert!(b.items.is_empty());
    }

    #[test]
    fn qos0_resolves_when_written() {
        let mut b = connected();
        let mut d = job(&mut b, Qos::AtMostOnce);
        b.on_event(&sent(0));
        assert_eq!(d.try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn rejected_puback_is_a_permanent_error() {
        let mut b = connected();
        let mut d = job(&mut b, Qos::AtLeastOnce);
        b.on_event(&sent(3));
        b.on_event(&puback(3, PubAckReason::NotAuthorized));
        let e = d.try_recv().unwrap().unwrap_err();
        assert!(e.is_permanent());
        assert!(e.to_string().contains("NotAuthorized"), "{e}");
    }

    #[test]
    fn reconnect_with_session_resends_with_same_pkid_in_order() {
        let mut b = connected();
        let mut d1 = job(&mut b, Qos::AtLeastOnce);
        let mut d2 = job(&mut b, Qos::AtLeastOnce);
        let mut d3 = job(&mut b, Qos::AtLeastOnce);
        b.on_event(&sent(1));
        b.on_event(&sent(2));
        // d3 still in rumqttc's channel when the connection drops
        b.on_disconnect();
        // a stale Outgoing event before CONNACK is ignored, a stale PUBACK counts
        b.on_event(&sent(3));
        b.on_event(&puback(1, PubAckReason::Success));
        assert_eq!(d1.try_recv().unwrap(), Ok(()));
        let replay = b.on_connack(&connack(true), 10);
        assert_eq!(replay.len(), 2);
        assert_eq!((replay[0].pkid, replay[0].dup), (2, true));
        assert_eq!((replay[1].pkid, replay[1].dup), (0, false));
        b.on_event(&sent(2));
        b.on_event(&sent(3));
        assert!(d2.try_recv().is_err());
        b.on_event(&puback(2, PubAckReason::Success));
        b.on_event(&puback(3, PubAckReason::Success));
        assert_eq!(d2.try_recv().unwrap(), Ok(()));
        assert_eq!(d3.try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn reconnect_without_session_resends_as_new() {
        let mut b = connected();
        let mut d = job(&mut b, Qos::AtLeastOnce);
        b.on_event(&sent(1));
        b.on_disconnect();
        let replay = b.on_connack(&connack(false), 10);
        assert_eq!(replay[0].pkid, 0);
        // an old PUBACK for pkid 1 after the new CONNACK does not resolve it
        b.on_event(&puback(1, PubAckReason::Success));
        assert!(d.try_recv().is_err());
        b.on_event(&sent(4));
        b.on_event(&puback(4, PubAckReason::Success));
        assert_eq!(d.try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn collision_resolves_after_the_colliding_ack() {
        let mut b = connected();
        let mut d1 = job(&mut b, Qos::AtLeastOnce);
        let mut d2 = job(&mut b, Qos::AtLeastOnce);
        b.on_event(&sent(1));
        b.on_event(&Event::Outgoing(Outgoing::AwaitAck(1)));
        b.on_event(&puback(1, PubAckReason::Success));
        b.on_event(&sent(1));
        assert_eq!(d1.try_recv().unwrap(), Ok(()));
        b.on_event(&puback(1, PubAckReason::Success));
        assert_eq!(d2.try_recv().unwrap(), Ok(()));
        assert!(!b.needs_reset);
    }

    #[test]
    fn connack_limits() {
        let mut b = Book::new(100);
        let ack = ConnAck {
            session_present: false,
            code: ConnectReturnCode::Success,
            properties: Some(ConnAckProperties {
                receive_max: Some(5),
                max_packet_size: Some(20),
                retain_available: Some(0),
                session_expiry_interval: None,
                max_qos: None,
                assigned_client_identifier: None,
                topic_alias_max: None,
                reason_string: None,
                user_properties: Vec::new(),
                wildcard_subscription_available: None,
                subscription_identifiers_available: None,
                shared_subscription_available: None,
                server_keep_alive: None,
                response_information: None,
                server_reference: None,
                authentication_method: None,
                authentication_data: None,
            }),
        };
        b.on_connack(&ack, 100);
        assert_eq!(b.limit, 5);
        let mut m = message(Qos::AtLeastOnce);
        m.retain = true;
        assert!(matches!(b.check(&m), Err(Error::Unsupported(_))));
        let mut m = message(Qos::AtLeastOnce);
        m.payload = Bytes::from(vec![0u8; 100]);
        assert!(matches!(b.check(&m), Err(Error::Unsupported(_))));
        assert!(b.check(&message(Qos::AtLeastOnce)).is_ok());
    }
}
