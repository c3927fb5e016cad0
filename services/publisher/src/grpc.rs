//! The gRPC edge: `PublisherService` converts proto messages to domain types, publishes through
//! [`Mqtt`], and turns deliveries into acks (or statuses).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use sse_contract::dead_letter::{Mark, Reason};
use sse_contract::metrics::attr;
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_server::PublisherService;
use sse_runtime::Shutdown;
use sse_runtime::telemetry::{self, EventTrace};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::dead_letter;
use crate::error::Error;
use crate::event::{
    Destination, Event, MqttDestination, Qos, ResourceIds, Route, RouteKind, SingleMessage,
};
use crate::metrics::{Metrics, RouteCache, RouteLabels, SEND};
use crate::mqtt::{Delivery, Mqtt, Slot};
use crate::properties::{self, StoreStamp};
use crate::tail::{Filter, Tail, TailLimits, TailStream, Tapped};

/// How long `PublishMessage` waits for a broker connection and then for the broker's ack.
pub const UNARY_WAIT: Duration = Duration::from_secs(5);
/// Most acknowledgement batches buffered towards a slow caller.
const RESPONSE_BUFFER: usize = 16;
/// Acks sent at once without waiting for the ack delay.
const ACK_BATCH: usize = 512;

/// `sseconnector.v1.PublisherService` on top of the broker connection.
#[derive(Clone)]
pub struct PublisherGrpc {
    mqtt: Mqtt,
    shutdown: Shutdown,
    ack_delay: Duration,
    metrics: Option<Arc<Metrics>>,
    tail: Tail,
}

impl PublisherGrpc {
    /// A service publishing through `mqtt`; stream handlers stop on `shutdown`. Acks are held up
    /// to `ack_delay` (or [`ACK_BATCH`] of them) to go together: at a steady trickle of events
    /// this spares the callers a wake-up per event (see docs/performance.md). Deliveries and
    /// drops are recorded with `metrics` when they are on. `Tail` enforces `tail_limits`; its open
    /// tails and drops are reported with `metrics` too.
    pub fn new(
        mqtt: Mqtt,
        shutdown: Shutdown,
        ack_delay: Duration,
        metrics: Option<Arc<Metrics>>,
        tail_limits: TailLimits,
    ) -> Self {
        let tail = Tail::new(tail_limits);
        if let Some(m) = &metrics {
            m.follow_tail(&tail);
        }
        Self {
            mqtt,
            shutdown,
            ack_delay,
            metrics,
            tail,
        }
    }

    fn stamp(&self) -> StoreStamp {
        self.mqtt.stamp()
    }
}

/// An event's acknowledgement, or None when it was not delivered (the caller must re-send).
type Pending = Pin<Box<dyn Future<Output = Option<pb::Ack>> + Send>>;

fn ack(ev: &Event, error: Option<&Error>) -> pb::Ack {
    pb::Ack {
        stream_key: ev.stream_key.clone(),
        seq: ev.seq,
        error: error.map(ToString::to_string).unwrap_or_default(),
        ..Default::default()
    }
}

#[tonic::async_trait]
impl PublisherService for PublisherGrpc {
    type PublishStream = ReceiverStream<Result<pb::PublishResponse, Status>>;
    type TailStream = TailStream;

    async fn publish(
        &self,
        request: Request<Streaming<pb::PublishRequest>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        Ok(Response::new(self.start(request.into_inner())))
    }

    async fn publish_message(
        &self,
        request: Request<pb::PublishMessageRequest>,
    ) -> Result<Response<pb::PublishMessageResponse>, Status> {
        let single = single_from_proto(request.into_inner())?;
        let message = properties::single_message(&single)?;
        if !self.mqtt.wait_connected(UNARY_WAIT).await {
            return Err(Error::Unavailable.into());
        }
        let slot = tokio::time::timeout(UNARY_WAIT, self.mqtt.reserve())
            .await
            .map_err(|_| Error::Unavailable)??;
        let meter = self.metrics.as_ref().map(|m| m.topic(&single.topic));
        let tapped = self.tail.tap("", "", &message);
        let delivery = slot.send(message, meter);
        match tokio::time::timeout(UNARY_WAIT, delivery).await {
            Ok(Ok(Ok(()))) => {
                if let Some(t) = tapped {
                    t.deliver();
                }
                // An admin write, logged as resource and schema writes are; never the payload.
                let topic = sse_runtime::echo::quoted(&single.topic);
                tracing::info!(%topic, bytes = single.payload.len(), "message published");
                Ok(Response::new(pb::PublishMessageResponse {}))
            }
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(_)) | Err(_) => Err(Error::Unavailable.into()),
        }
    }

    async fn tail(
        &self,
        request: Request<pb::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let req = request.into_inner();
        let filter = Filter::from_request(&req)?;
        let max_payload = usize::try_from(req.max_payload_bytes).unwrap_or(usize::MAX);
        let stream = self
            .tail
            .open(filter, max_payload, self.shutdown.token.clone())?;
        Ok(Response::new(stream))
    }
}

impl PublisherGrpc {
    /// Starts one `Publish` stream (from the gRPC route, or called in-process by the schema
    /// service of `sse-connector`); returns the stream of acks.
    pub fn start<S>(&self, inbound: S) -> ReceiverStream<Result<pb::PublishResponse, Status>>
    where
        S: Stream<Item = Result<pb::PublishRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        let this = self.clone();
        self.shutdown
            .tracker
            .spawn(async move { this.handle_stream(inbound, tx).await });
        ReceiverStream::new(rx)
    }

    /// One `Publish` stream: publish events in order, send acks back as they come.
    async fn handle_stream<S>(
        self,
        mut inbound: S,
        tx: mpsc::Sender<Result<pb::PublishResponse, Status>>,
    ) where
        S: Stream<Item = Result<pb::PublishRequest, Status>> + Send + Unpin + 'static,
    {
        let token = self.shutdown.token.clone();
        let mut backlog: VecDeque<Event> = VecDeque::new();
        let mut waiting: FuturesUnordered<Pending> = FuturesUnordered::new();
        let mut reading = true;
        // This stream's routes' metric attributes, made once per route (none: metrics off).
        let mut routes = self.metrics.clone().map(RouteCache::new);
        // Acks not sent yet, and when they go at the latest.
        let mut acks: Vec<pb::Ack> = Vec::new();
        // Set by a request with `ack_now` (the caller can send nothing more until acks come
        // back), until the next request with events: see `hurry`.
        let mut asked = false;
        let flush = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(flush);
        // Made once: a new `cancelled()` at every turn registered and removed a waiter (two
        // locks) for every event.
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        loop {
            if !reading && backlog.is_empty() && waiting.is_empty() {
                // Nothing more can come: the held acks go now.
                let _ = send_acks(&tx, &mut acks).await;
                return;
            }
            tokio::select! {
                biased;
                () = &mut cancelled, if reading => {
                    // Stop accepting; what is queued at the broker still gets its acks.
                    reading = false;
                    backlog.clear();
                }
                _ = &mut flush, if !acks.is_empty() => {
                    if send_acks(&tx, &mut acks).await.is_err() {
                        return;
                    }
                }
                Some(first) = waiting.next() => {
                    let hurry = hurry(asked, &acks, &waiting, &backlog);
                    if self.take_acks(first, &mut waiting, &mut acks, hurry, &tx, flush.as_mut()).await.is_err() {
                        return;
                    }
                }
                slot = self.mqtt.reserve(), if !backlog.is_empty() => {
                    let Ok(slot) = slot else {
                        let _ = tx.send(Err(Error::ShuttingDown.into())).await;
                        return;
                    };
                    let Some(ev) = backlog.pop_front() else { continue };
                    self.publish_one(slot, ev, &mut waiting, routes.as_mut());
                    self.publish_ready(&mut backlog, &mut waiting, routes.as_mut());
                }
                msg = inbound.next(), if reading && backlog.is_empty() => {
                    reading = self.take_request(msg, &mut backlog, &mut waiting, routes.as_mut(), &mut asked);
                    if hurry(asked, &acks, &waiting, &backlog) && send_acks(&tx, &mut acks).await.is_err() {
                        return;
                    }
                }
                else => return,
            }
        }
    }
}

impl PublisherGrpc {
    /// Takes the delivered acks (`first` and any others ready): sends them at once when a batch
    /// is full, there is no ack delay, the caller is waiting for them (`hurry`) or an event was
    /// not delivered, else holds them until `flush`. Err: the stream is over (the caller is
    /// gone, or it was told to re-send).
    async fn take_acks(
        &self,
        first: Option<pb::Ack>,
        waiting: &mut FuturesUnordered<Pending>,
        acks: &mut Vec<pb::Ack>,
        hurry: bool,
        tx: &mpsc::Sender<Result<pb::PublishResponse, Status>>,
        flush: Pin<&mut tokio::time::Sleep>,
    ) -> Result<(), ()> {
        let was_empty = acks.is_empty();
        let mut undelivered = false;
        let mut take = |a: Option<pb::Ack>| match a {
            Some(a) => acks.push(a),
            None => undelivered = true,
        };
        take(first);
        while let Some(Some(a)) = waiting.next().now_or_never() {
            take(a);
        }
        if undelivered || hurry || acks.len() >= ACK_BATCH || self.ack_delay.is_zero() {
            send_acks(tx, acks).await?; // Err: the caller is gone
        } else if was_empty && !acks.is_empty() {
            flush.reset(tokio::time::Instant::now() + self.ack_delay);
        }
        if undelivered {
            let _ = tx
                .send(Err(Status::unavailable(
                    "publisher stopped before the broker acknowledged some events; re-send them",
                )))
                .await;
            return Err(());
        }
        Ok(())
    }

    /// Takes one request of the stream: its events join `backlog` (an unconvertible one gets
    /// its error ack at once) and what the broker connection takes now goes now; `asked`
    /// follows its `ack_now` (set by it, cleared by events without it). Returns whether to keep
    /// reading.
    fn take_request(
        &self,
        msg: Option<Result<pb::PublishRequest, Status>>,
        backlog: &mut VecDeque<Event>,
        waiting: &mut FuturesUnordered<Pending>,
        mut routes: Option<&mut RouteCache>,
        asked: &mut bool,
    ) -> bool {
        let req = match msg {
            Some(Ok(req)) => req,
            None => return false,
            Some(Err(status)) => {
                tracing::debug!(%status, "publish stream ended by the caller");
                return false;
            }
        };
        if req.ack_now || !req.events.is_empty() {
            *asked = req.ack_now;
        }
        for ev in req.events {
            match event_from_proto(ev) {
                Ok(ev) => backlog.push_back(ev),
                Err(failed) => {
                    let u = *failed;
                    if let (Some(routes), Some(reason)) = (routes.as_mut(), u.error.drop_reason()) {
                        routes.get(&u.device, &u.asset, "").dropped(reason);
                    }
                    u.warn();
                    let ack = u.ack;
                    waiting.push(Box::pin(async move { Some(ack) }));
                }
            }
        }
        // Whatever the broker connection takes now goes now, not one event per turn of the
        // stream's loop.
        self.publish_ready(backlog, waiting, routes);
        true
    }

    /// Publishes events from the front of `backlog` while the broker connection has room now.
    fn publish_ready(
        &self,
        backlog: &mut VecDeque<Event>,
        waiting: &mut FuturesUnordered<Pending>,
        mut routes: Option<&mut RouteCache>,
    ) {
        while !backlog.is_empty() {
            let Some(Ok(slot)) = self.mqtt.reserve().now_or_never() else {
                return;
            };
            if let Some(ev) = backlog.pop_front() {
                self.publish_one(slot, ev, waiting, routes.as_deref_mut());
            }
        }
    }

    /// Hands `ev` to the broker connection in `slot`; its ack (or None: re-send) joins `waiting`.
    /// Its route's metric attributes come from `routes` (made there once per route).
    fn publish_one(
        &self,
        slot: Slot<'_>,
        ev: Event,
        waiting: &mut FuturesUnordered<Pending>,
        routes: Option<&mut RouteCache>,
    ) {
        let topic = properties::destination_topic(&ev).unwrap_or_default();
        let labels = routes.map(|r| r.get(&ev.route.device, &ev.route.asset, topic));
        let trace = EventTrace::start(|| send_span(&ev, topic), &ev.traceparent, &ev.tracestate);
        let message = match &ev.dead_letter {
            // Failed upstream: straight to the dead-letter topic.
            Some(mark) => dead_letter::message(&ev, mark, &trace.traceparent),
            None => properties::event_message(&ev, &trace.traceparent, || self.stamp()),
        };
        match message {
            Ok(message) => {
                // Nothing is taken or cloned for the tails unless one is open.
                let tapped = self.tail.tap(&ev.route.device, &ev.route.asset, &message);
                let tail = self.tail.active().then(|| self.tail.clone());
                let delivery = slot.send(message, labels.as_ref().and_then(|l| l.topic.clone()));
                let span = trace.span.clone();
                let mqtt = self.mqtt.clone();
                let taps = Taps { tapped, tail };
                waiting.push(Box::pin(
                    outcome(ev, delivery, labels, trace, mqtt, taps).instrument(span),
                ));
            }
            Err(e) => {
                let a = ack(&ev, Some(&e));
                let span = trace.span.clone();
                span.in_scope(|| not_published(&ev, &e, labels.as_deref(), &trace));
                waiting.push(Box::pin(async move { Some(a) }));
            }
        }
    }
}

/// The publish span of `ev` to `topic`, as the messaging conventions name a send: made only
/// when traces are exported.
fn send_span(ev: &Event, topic: &str) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "send",
        otel.name = %format_args!("{SEND} {topic}"),
        otel.kind = "producer",
        { attr::MESSAGING_SYSTEM } = "mqtt",
        { attr::OPERATION_NAME } = SEND,
        { attr::OPERATION_TYPE } = SEND,
        { attr::DESTINATION } = %topic,
        { attr::MESSAGE_ID } = %ev.id,
        { attr::ERROR_TYPE } = tracing::field::Empty,
    )
}

/// What the tails get of one event: its message once delivered (when a tail wanted it), and
/// the registry for a dead letter it may turn into (when a tail was open).
struct Taps {
    tapped: Option<Tapped>,
    tail: Option<Tail>,
}

/// The ack of `ev` once `delivery` resolves (None: not delivered, the caller re-sends), with
/// its latency or drop recorded under `labels`. An event that fails for good on a route with a
/// dead-letter destination is acknowledged only once its dead letter is (through `mqtt`).
async fn outcome(
    ev: Event,
    delivery: Delivery,
    labels: Option<Arc<RouteLabels>>,
    trace: EventTrace,
    mqtt: Mqtt,
    taps: Taps,
) -> Option<pb::Ack> {
    match delivery.await {
        Ok(Ok(())) => {
            if let Some(l) = &labels {
                l.delivered(ev.received_unix_nanos);
            }
            if let Some(t) = taps.tapped {
                t.deliver();
            }
            Some(ack(&ev, None))
        }
        Ok(Err(e)) if e.is_permanent() && ev.dead_letter.is_some() => {
            // The dead letter itself failed: counted and acknowledged, never dead-lettered again.
            dead_letter_failed(&ev, &e, labels.as_deref(), &trace);
            Some(ack(&ev, Some(&e)))
        }
        Ok(Err(e)) if e.is_permanent() => {
            not_published(&ev, &e, labels.as_deref(), &trace);
            match (dead_letter::reason_of(&e), &ev.route.dead_letter) {
                (Some(reason), Some(_)) => {
                    let tail = taps.tail.as_ref();
                    redirect(ev, e, reason, labels.as_deref(), &trace, mqtt, tail).await
                }
                _ => Some(ack(&ev, Some(&e))),
            }
        }
        Ok(Err(_)) | Err(_) => None,
    }
}

/// Sends `ev`, which failed for good with `e`, to its route's dead-letter topic and waits for
/// the broker: acknowledged (with an error naming both) once the dead letter is delivered or
/// failed for good; None (re-sent whole) when the dead letter was not delivered. The dead
/// letter is tailed like any message when `tail` has a tail open.
async fn redirect(
    ev: Event,
    e: Error,
    reason: Reason,
    labels: Option<&RouteLabels>,
    trace: &EventTrace,
    mqtt: Mqtt,
    tail: Option<&Tail>,
) -> Option<pb::Ack> {
    let mark = Mark {
        reason,
        detail: e.to_string(),
        truncated_from: None,
    };
    let mut tapped = None;
    let sent = match dead_letter::message(&ev, &mark, &trace.traceparent) {
        Ok(message) => match mqtt.reserve().await {
            Ok(slot) => {
                tapped = tail.and_then(|t| t.tap(&ev.route.device, &ev.route.asset, &message));
                slot.send(message, None).await
            }
            Err(_) => return None,
        },
        Err(failed) => Ok(Err(failed)),
    };
    if let (Ok(Ok(())), Some(t)) = (&sent, tapped) {
        t.deliver();
    }
    let topic = ev
        .route
        .dead_letter
        .as_ref()
        .map_or("", |d| d.topic.as_str());
    match sent {
        Ok(Ok(())) => {
            let e = Error::DeadLettered {
                topic: topic.to_string(),
                cause: e.to_string(),
            };
            Some(ack(&ev, Some(&e)))
        }
        Ok(Err(failed)) if failed.is_permanent() => {
            dead_letter_failed(&ev, &failed, labels, trace);
            Some(ack(&ev, Some(&e)))
        }
        Ok(Err(_)) | Err(_) => None,
    }
}

/// A dead letter of `ev` failed for good with `e`: counted under `dead_letter_failed` and
/// warned about (the topic and reason, never the payload).
fn dead_letter_failed(ev: &Event, e: &Error, labels: Option<&RouteLabels>, trace: &EventTrace) {
    if let Some(l) = labels {
        l.dropped(sse_contract::publish_drops::DEAD_LETTER_FAILED);
    }
    trace.span.record(attr::ERROR_TYPE, e.error_type());
    let topic = ev
        .route
        .dead_letter
        .as_ref()
        .map_or("", |d| d.topic.as_str());
    let _cx = telemetry::event_context(&trace.traceparent, &trace.tracestate);
    tracing::warn!(topic, reason = %e, id = %ev.id, "dead letter not published; event acknowledged");
}

/// `ev` will not be published, for `e`: counts the drop, marks the span and warns, the log
/// record carrying the event's trace context. The warning names the topic and the reason
/// (never a payload or credential).
fn not_published(ev: &Event, e: &Error, labels: Option<&RouteLabels>, trace: &EventTrace) {
    if let (Some(l), Some(reason)) = (labels, e.drop_reason()) {
        l.dropped(reason);
    }
    trace.span.record(attr::ERROR_TYPE, e.error_type());
    let topic = properties::destination_topic(ev).unwrap_or_default();
    let _cx = telemetry::event_context(&trace.traceparent, &trace.tracestate);
    tracing::warn!(topic, reason = %e, id = %ev.id, "event not published");
}

/// Whether held acks go now: the caller asked for them (`ack_now`: it can send nothing more
/// until they come) and this stream holds too few events for [`ACK_BATCH`] acks to gather. With
/// more, a full batch is on its way, and sending smaller ones sooner would only cost the callers
/// more wake-ups (at full speed with the default window, 2 % of throughput).
fn hurry(
    asked: bool,
    acks: &[pb::Ack],
    waiting: &FuturesUnordered<Pending>,
    backlog: &VecDeque<Event>,
) -> bool {
    asked && acks.len() + waiting.len() + backlog.len() < ACK_BATCH
}

/// Sends the held acks, if any; an error when the caller is gone.
async fn send_acks(
    tx: &mpsc::Sender<Result<pb::PublishResponse, Status>>,
    acks: &mut Vec<pb::Ack>,
) -> Result<(), ()> {
    if acks.is_empty() {
        return Ok(());
    }
    let acks = std::mem::take(acks);
    tx.send(Ok(pb::PublishResponse { acks }))
        .await
        .map_err(|_| ())
}

/// An event that cannot be converted: its error ack, what its drop is counted under, and its
/// trace context for the warning.
#[derive(Debug)]
struct Unpublishable {
    ack: pb::Ack,
    error: Error,
    device: String,
    asset: String,
    id: String,
    traceparent: String,
    tracestate: String,
}

impl Unpublishable {
    /// Warns in the event's trace context, naming the reason (never its payload).
    fn warn(&self) {
        let _cx = telemetry::event_context(&self.traceparent, &self.tracestate);
        tracing::warn!(reason = %self.error, id = %self.id, "event not published");
    }
}

/// Converts a proto event; on failure, the error ack to send.
fn event_from_proto(mut ev: pb::Event) -> Result<Event, Box<Unpublishable>> {
    // Taken, not cloned: a route is a dozen strings, and this runs for every event.
    let mut route = ev.route.take().unwrap_or_default();
    let fail = |ev: &pb::Event, route: &pb::Route, e: Error| {
        Box::new(Unpublishable {
            ack: pb::Ack {
                stream_key: ev.stream_key.clone(),
                seq: ev.seq,
                error: e.to_string(),
                ..Default::default()
            },
            error: e,
            device: route.device.clone(),
            asset: route.asset.clone(),
            id: ev.id.clone(),
            traceparent: ev.traceparent.clone(),
            tracestate: ev.tracestate.clone(),
        })
    };
    // The contract refuses an unspecified or unknown kind: the error ack names it.
    let kind = RouteKind::from_wire(route.kind)
        .map_err(|e| fail(&ev, &route, Error::Invalid(e.to_string())))?;
    let destination = match route.destination.take().and_then(|d| d.target) {
        None => None,
        Some(pb::destination::Target::Mqtt(m)) => Some(Destination::Mqtt(
            mqtt_from_proto(m).map_err(|e| fail(&ev, &route, e))?,
        )),
        Some(pb::destination::Target::StateStore(s)) => {
            Some(Destination::StateStore { key: s.key })
        }
    };
    let dead_letter = route
        .dead_letter
        .take()
        .map(mqtt_from_proto)
        .transpose()
        .map_err(|e| fail(&ev, &route, e))?;
    let mark = ev
        .dead_letter
        .as_ref()
        .map(mark_from_proto)
        .transpose()
        .map_err(|e| fail(&ev, &route, e))?;
    Ok(Event {
        id: ev.id,
        seq: ev.seq,
        stream_key: ev.stream_key,
        data: ev.data,
        sse_event: ev.sse_event,
        sse_id: ev.sse_id,
        received_unix_nanos: ev.received_unix_nanos,
        route: Route {
            device: route.device,
            endpoint: route.endpoint,
            asset: route.asset,
            kind,
            group: route.group,
            event: route.event,
            data_source: route.data_source,
            type_ref: route.type_ref,
            destination,
            ids: ResourceIds {
                device_uuid: route.device_uuid,
                external_device_id: route.external_device_id,
                asset_uuid: route.asset_uuid,
                external_asset_id: route.external_asset_id,
            },
            dead_letter,
        },
        traceparent: ev.traceparent,
        tracestate: ev.tracestate,
        dataschema: ev.dataschema,
        subject: ev.subject,
        dead_letter: mark,
    })
}

/// An MQTT destination of the wire.
fn mqtt_from_proto(m: pb::MqttDestination) -> Result<MqttDestination, Error> {
    Ok(MqttDestination {
        qos: qos_from_proto(m.qos)?,
        topic: m.topic,
        retain: m.retain,
        ttl_seconds: m.ttl_seconds,
    })
}

/// A dead-letter mark of the wire: an unspecified or unknown reason is refused.
fn mark_from_proto(d: &pb::DeadLetter) -> Result<Mark, Error> {
    let reason = Reason::from_wire(d.reason)
        .ok_or_else(|| Error::Invalid(format!("unknown dead-letter reason {}", d.reason)))?;
    Ok(Mark {
        reason,
        detail: d.detail.clone(),
        truncated_from: d.truncated.then_some(d.original_bytes),
    })
}

/// The contract's wire rule: QOS_UNSPECIFIED means QoS 1, an unknown number is refused.
fn qos_from_proto(q: i32) -> Result<Qos, Error> {
    Qos::from_wire(q).map_err(|e| Error::Invalid(e.to_string()))
}

fn single_from_proto(r: pb::PublishMessageRequest) -> Result<SingleMessage, Error> {
    Ok(SingleMessage {
        qos: qos_from_proto(r.qos)?,
        topic: r.topic,
        payload: Bytes::from(r.payload),
        retain: r.retain,
        ttl_seconds: (r.ttl_seconds > 0).then_some(r.ttl_seconds),
        content_type: (!r.content_type.is_empty()).then_some(r.content_type),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_mapping() {
        assert_eq!(qos_from_proto(0).unwrap(), Qos::AtLeastOnce);
        assert_eq!(qos_from_proto(1).unwrap(), Qos::AtMostOnce);
        assert_eq!(qos_from_proto(2).unwrap(), Qos::AtLeastOnce);
        assert!(qos_from_proto(9).is_err());
    }

    #[test]
    fn converts_events() {
        let ev = pb::Event {
            id: "i".into(),
            seq: 3,
            stream_key: "k".into(),
            data: Bytes::from_static(b"{}"),
            route: Some(pb::Route {
                kind: pb::RouteKind::Dataset as i32,
                destination: Some(pb::Destination {
                    target: Some(pb::destination::Target::Mqtt(pb::MqttDestination {
                        topic: "t".into(),
                        qos: 0,
                        retain: true,
                        ttl_seconds: Some(9),
                    })),
                }),
                device_uuid: "du".into(),
                external_device_id: "dx".into(),
                asset_uuid: "au".into(),
                external_asset_id: "ax".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = event_from_proto(ev).unwrap();
        assert_eq!(d.route.kind, RouteKind::Dataset);
        assert_eq!(
            d.route.ids,
            ResourceIds {
                device_uuid: "du".into(),
                external_device_id: "dx".into(),
                asset_uuid: "au".into(),
                external_asset_id: "ax".into(),
            }
        );
        assert_eq!(
            d.route.destination,
            Some(Destination::Mqtt(MqttDestination {
                topic: "t".into(),
                qos: Qos::AtLeastOnce,
                retain: true,
                ttl_seconds: Some(9)
            }))
        );
        let bad = pb::Event {
            seq: 4,
            stream_key: "k".into(),
            route: Some(pb::Route {
                kind: 77,
                ..Default::default()
            }),
            ..Default::default()
        };
        let a = event_from_proto(bad).unwrap_err().ack;
        assert_eq!((a.seq, a.stream_key.as_str()), (4, "k"));
        assert!(!a.error.is_empty());
    }

    #[test]
    fn converts_single_messages() {
        let m = single_from_proto(pb::PublishMessageRequest {
            topic: "t".into(),
            payload: "p".into(),
            qos: 1,
            retain: false,
            ttl_seconds: 0,
            content_type: String::new(),
        })
        .unwrap();
        assert_eq!(m.qos, Qos::AtMostOnce);
        assert_eq!(m.ttl_seconds, None);
        assert_eq!(m.content_type, None);
    }
}
