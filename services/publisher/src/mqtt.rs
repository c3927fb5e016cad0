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

//!
//! # Authentication and TLS, read at every connect
//!
//! Before each connect the password file, the service account token file (`K8S-SAT`: the
//! token is the CONNECT's authentication data, MQTT 5 enhanced authentication as Azure IoT
//! Operations' broker expects it) and the TLS files are read afresh, so rotated secrets take
//! effect on the next connection. A connect that fails is logged with a reason naming the
//! problem (refused credentials, an untrusted broker certificate, a rejected client
//! certificate), never the secret, and health stays NOT_SERVING.
//!
//! # Lost PUBACKs
//!
//! A QoS 1 publish that has waited `--puback-timeout` for its PUBACK recycles the connection:
//! the socket is dropped and everything outstanding is re-sent after the next CONNACK.
//!
//! # State store responses
//!
//! A state store request is resolved by the store's response, not by its PUBACK: the task
//! subscribes to its response topic, matches responses by correlation data, and `+OK` resolves
//! the message. `-ERR ...`, any other answer, or no answer within `--state-store-timeout` sends
//! the request again with a fresh `__ts`, up to `--state-store-attempts` times; then it resolves
//! as a permanent failure naming the store's answer.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, Filter, PubAck, PubAckReason, Publish, Subscribe, SubscribeReasonCode,
};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, Request};
use sse_contract::limits::MQTT_PACKET_BYTES_MAX;
use sse_runtime::Shutdown;
use sse_runtime::mqtt::Supervisor;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::MqttSettings;
use crate::error::Error;
use crate::event::Qos;
use crate::properties::{Message, StoreStamp};
use crate::state_store::{self, Hlc};

/// How long shutdown waits for outstanding messages to be acknowledged.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves once the broker has the message (`Ok`), refused it for good (`Err`), or, when the
/// sender is dropped, never: the message was not delivered and may be re-sent.
pub type Delivery = oneshot::Receiver<Result<(), Error>>;

/// A message handed to the connection task.
#[derive(Debug)]
struct Job {
    message: Message,
    reply: oneshot::Sender<Result<(), Error>>,
    /// State store attempts already made (0 for a new message).
    attempts: u32,
}

/// Stamps state store requests: the client id and a hybrid logical clock shared by every
/// request of this process, so `__ts` never goes backwards, also for re-sent requests.
#[derive(Debug)]
struct Stamper {
    client_id: Arc<str>,
    hlc: Mutex<Hlc>,
}

impl Stamper {
    fn ts(&self) -> String {
        match self.hlc.lock() {
            Ok(mut h) => h.next_ts(&self.client_id),
            Err(poisoned) => poisoned.into_inner().next_ts(&self.client_id),
        }
    }
}

/// Handle to the broker connection: queue messages, watch the connection state.
#[derive(Clone, Debug)]
pub struct Mqtt {
    jobs: mpsc::Sender<Job>,
    connected: watch::Receiver<bool>,
    stamper: Arc<Stamper>,
}

/// A reserved place in the connection's bounded queue.
#[derive(Debug)]
pub struct Slot<'a>(mpsc::Permit<'a, Job>);

impl Slot<'_> {
    /// Queues `message`; the returned [`Delivery`] resolves when the broker has it.
    pub fn send(self, message: Message) -> Delivery {
        let (reply, rx) = oneshot::channel();
        self.0.send(Job {
            message,
            reply,
            attempts: 0,
        });
        rx
    }
}

impl Mqtt {
    /// Starts the connection task under `shutdown` (it keeps retrying until connected).
    pub fn start(settings: MqttSettings, shutdown: &Shutdown) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel(usize::from(settings.max_inflight));
        let (connected_tx, connected_rx) = watch::channel(false);
        let stamper = Arc::new(Stamper {
            client_id: settings.client.client_id.clone().into(),
            hlc: Mutex::new(Hlc::default()),
        });
        let token = shutdown.token.clone();
        shutdown.tracker.spawn(connection(
            settings,
            jobs_rx,
            connected_tx,
            token,
            stamper.clone(),
        ));
        Self {
            jobs: jobs_tx,
            connected: connected_rx,
            stamper,
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
        &self.stamper.client_id
    }

    /// What a state store request needs: client id, a fresh `__ts`, random correlation data.
    pub fn stamp(&self) -> StoreStamp {
        let correlation: [u8; 16] = rand::rng().random();
        StoreStamp {
            client_id: self.client_id().to_string(),
            ts: self.stamper.ts(),
            correlation: Bytes::copy_from_slice(&correlation),
        }
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

enum Outcome {
    Polled(Box<Result<Event, ConnectionError>>),
    Deadline,
    PubackTimeout,
}

/// The connection task: poll, admit, reconnect, drain.
async fn connection(
    settings: MqttSettings,
    mut jobs: mpsc::Receiver<Job>,
    connected_tx: watch::Sender<bool>,
    token: CancellationToken,
    stamper: Arc<Stamper>,
) {
    let mut supervisor = Supervisor::new(settings.client.clone(), "the mqtt broker");
    let (client, mut eventloop) = supervisor.client(usize::from(settings.max_inflight) + 1);
    let mut book = Book::new(&settings, stamper);
    let mut delay: Option<Duration> = None;
    let mut draining: Option<Instant> = None;
    let mut disconnect_sent = false;
    // Made once, not at every turn of the loop below (which turns about twice per event): the
    // stop signal and one timer for whichever deadline is next (drain, PUBACK, state store).
    let stopped = token.clone().cancelled_owned();
    tokio::pin!(stopped);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
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
        if !book.connected
            && let Err(d) = supervisor.prepare(&mut eventloop).await
        {
            delay = Some(d);
            continue;
        }
        let outcome = {
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                while book.connected && book.items.len() < book.limit {
                    let Some(job) = book.retry.pop_front() else {
                        break;
                    };
                    book.admit(job, &client);
                }
                let puback_deadline = book
                    .oldest_unacked()
                    .map(|t| t + settings.puback_timeout)
                    .filter(|_| book.connected);
                let store_deadline = book.next_store_deadline();
                let next = [draining, puback_deadline, store_deadline]
                    .into_iter()
                    .flatten()
                    .min();
                if let Some(at) = next
                    && at != timer.deadline()
                {
                    timer.as_mut().reset(at);
                }
                tokio::select! {
                    biased;
                    ev = &mut poll => break Outcome::Polled(Box::new(ev)),
                    _ = &mut stopped, if draining.is_none() => {
                        draining = Some(Instant::now() + DRAIN_TIMEOUT);
                        jobs.close();
                        if book.idle() && book.connected && !disconnect_sent {
                            disconnect_sent = client.try_disconnect().is_ok();
                        }
                        if !book.connected {
                            break Outcome::Deadline;
                        }
                    }
                    // Every deadline due when it fires is dealt with below, so the next turn
                    // sets it to a later one (or leaves it alone when there is none).
                    _ = &mut timer, if next.is_some() => {
                        let now = Instant::now();
                        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
                        if due(draining) {
                            break Outcome::Deadline;
                        }
                        if due(puback_deadline) {
                            break Outcome::PubackTimeout;
                        }
                        if due(store_deadline) {
                            book.expire_store(now);
                        }
                    }
                    job = jobs.recv(), if book.connected && draining.is_none() && book.items.len() < book.limit => {
                        match job {
                            Some(job) => {
                                book.admit(job, &client);
                                // At full speed more are waiting: take them in this turn.
                                while book.items.len() < book.limit {
                                    let Ok(job) = jobs.try_recv() else { break };
                                    book.admit(job, &client);
                                }
                            }
                            None => draining = Some(Instant::now() + DRAIN_TIMEOUT),
                        }
                    }
                }
            }
        };
        let polled = match outcome {
            Outcome::Deadline => break,
            Outcome::PubackTimeout => {
                tracing::warn!(
                    timeout = ?settings.puback_timeout,
                    outstanding = book.items.len(),
                    "no PUBACK in time; recycling the mqtt connection to re-send"
                );
                eventloop.clean();
                lost(&mut book, &mut eventloop, &connected_tx);
                delay = Some(supervisor.recycled());
                continue;
            }
            Outcome::Polled(ev) => *ev,
        };
        match polled {
            Ok(Event::Incoming(Incoming::ConnAck(connack))) => {
                supervisor.connected(&connack);
                let replay = book.on_connack(&connack, settings.max_inflight);
                if !replay.is_empty() {
                    tracing::info!(resent = replay.len(), "re-sending unacknowledged messages");
                }
                eventloop
                    .pending
                    .extend(replay.into_iter().map(Request::Publish));
                if !connack.session_present {
                    book.response_subscribed = false;
                }
                if !book.response_subscribed {
                    // The response topic of state store requests (a kept session keeps it).
                    let filter = Filter::new(book.response_topic.clone(), QoS::AtLeastOnce);
                    eventloop
                        .pending
                        .push_front(Request::Subscribe(Subscribe::new(filter, None)));
                }
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
                delay = Some(supervisor.lost(&e));
                lost(&mut book, &mut eventloop, &connected_tx);
            }
        }
        if draining.is_some() && book.idle() && book.connected && !disconnect_sent {
            disconnect_sent = client.try_disconnect().is_ok();
        }
    }
    let _ = connected_tx.send(false);
    if !book.idle() {
        tracing::warn!(
            unacknowledged = book.items.len() + book.store.len() + book.retry.len(),
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
    /// When it was written on the current connection (QoS 1), for the PUBACK timeout.
    sent_at: Option<Instant>,
    /// State store attempts before this one.
    attempts: u32,
    /// A state store response that arrived before the request's PUBACK.
    early_response: Option<Result<(), String>>,
}

/// A state store request the broker has (PUBACK), waiting for the store's response.
#[derive(Debug)]
struct StoreWait {
    message: Message,
    reply: oneshot::Sender<Result<(), Error>>,
    attempts: u32,
    deadline: Instant,
}

/// The bookkeeping that maps rumqttc events to messages (see the module docs).
#[derive(Debug)]
struct Book {
    /// Boxed: a B-tree node shifts its values on insert and remove, and an `Item` is large.
    items: BTreeMap<u64, Box<Item>>,
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

/// The state store's answer: `+OK` is success, anything else is the text to report.
fn store_answer(payload: &[u8]) -> Result<(), String> {
    if payload.starts_with(b"+OK") {
        return Ok(());
    }
    let text = String::from_utf8_lossy(payload);
    let text = text.trim_end_matches(['\r', '\n']);
    let text: String = text.chars().take(200).collect();
    match text.strip_prefix('-') {
        Some(err) => Err(format!("state store answered {err:?}")),
        None => Err(format!("unexpected state store answer {text:?}")),
    }
}

fn is_store_request(m: &Message) -> bool {
    m.topic == state_store::REQUEST_TOPIC && m.properties.correlation_data.is_some()
}

impl Book {
    fn new(settings: &MqttSettings, stamper: Arc<Stamper>) -> Self {
        Self {
            items: BTreeMap::new(),
            next_order: 0,
            expect: VecDeque::new(),
            by_pkid: HashMap::new(),
            collided: None,
            connected: false,
            limit: usize::from(settings.max_inflight),
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
    fn idle(&self) -> bool {
        self.items.is_empty() && self.store.is_empty() && self.retry.is_empty()
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
            crate::event::mqtt_qos(m.qos),
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
            Box::new(Item {
                message: job.message,
                reply: Some(job.reply),
                pkid: None,
                sent_at: None,
                attempts: job.attempts,
                early_response: None,
            }),
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
        // The broker's limit (CONNACK) and ours (sse-contract), whichever is lower.
        let (max, whose) = match self.max_packet {
            Some(b) if (b as usize) < MQTT_PACKET_BYTES_MAX => (b as usize, "the broker's"),
            _ => (MQTT_PACKET_BYTES_MAX, "the connector's"),
        };
        if m.packet_size_bound() > max {
            let size = m.packet_size();
            if size > max {
                return Err(Error::Unsupported(format!(
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
    fn oldest_unacked(&self) -> Option<Instant> {
        self.items.values().find_map(|i| i.sent_at)
    }

    /// The earliest deadline of a state store response.
    fn next_store_deadline(&self) -> Option<Instant> {
        self.store.values().map(|w| w.deadline).min()
    }

    /// Gives up waiting for the responses due by `now`.
    fn expire_store(&mut self, now: Instant) {
        let due: Vec<Bytes> = self
            .store
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            if let Some(w) = self.store.remove(&key) {
                let why = format!("no state store response within {:?}", self.store_timeout);
                self.store_result(w.message, w.reply, w.attempts, Err(why));
            }
        }
    }

    /// Resolves a state store request with the store's answer, or queues another attempt.
    fn store_result(
        &mut self,
        mut message: Message,
        reply: oneshot::Sender<Result<(), Error>>,
        attempts: u32,
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
            Some(item) if item.message.qos == Qos::AtMostOnce => true,
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
            Some(answer) => self.store_result(item.message, reply, item.attempts, answer),
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
        let answer = store_answer(&p.payload);
        if let Some(w) = self.store.remove(&key) {
            self.store_result(w.message, w.reply, w.attempts, answer);
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

#[cfg(test)]
mod tests;
