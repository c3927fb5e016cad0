//! The `Process` stream, an edge adapter: events from ingest get their schema and a child trace
//! context, go on to the publisher's `Publish` streams in batches, and the publishers' acks come
//! back to ingest unchanged.
//!
//! One task per ingest stream, under the shutdown tracker. It waits (with backoff, reading nothing
//! from ingest, which therefore backs off too) until a publisher is reachable, then opens one
//! `Publish` stream per publisher address and runs two halves together: *forward* (ingest ->
//! publishers; each event goes to the address its ingest stream key is assigned to by rendezvous
//! hashing, so one SSE stream stays in order on one publisher) and *relay* (publisher acks ->
//! ingest). All channels are bounded, so a slow publisher slows ingest down. An event whose schema
//! waits on the registry is [parked](parked) with the events of its SSE stream behind it, and the
//! other SSE streams go on (within [`parked::PARKED_EVENTS_MAX`] held events). How the stream ends:
//! - ingest ends its stream: the publisher streams are closed once everything was forwarded
//!   (parked events too), the remaining acks are relayed, and the ingest stream ends OK;
//! - a publisher stream breaks or ends early: the ingest stream ends with UNAVAILABLE (ingest
//!   re-sends what was not acked);
//! - the publisher address set changes: forwarding pauses between batches, parked events are
//!   forwarded when ready, the publisher streams are closed and their acks relayed, and
//!   forwarding resumes over streams to the new set (so no SSE stream is ever on two publishers
//!   at once); a removed publisher that is gone breaks its stream, and ingest re-sends (at least
//!   once, same ids);
//! - shutdown: no new events are read (parked ones are dropped, unacked), the publisher streams
//!   are closed, acks are relayed for at most the drain period, and the ingest stream ends with
//!   UNAVAILABLE.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::SelectAll;
use futures::{FutureExt, Stream, StreamExt};
use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_contract::metrics::attr;
use sse_contract::route::{self, RouteKind};
use sse_proto::paths;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_proto::v1::{Event, ProcessRequest, ProcessResponse, PublishRequest, PublishResponse};
use sse_runtime::link::Messages;
use sse_runtime::peers::Peer;
use sse_runtime::{Shutdown, telemetry};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::Instrument;

use crate::acks::AckNotes;
use crate::metrics::PROCESS;
use crate::pipeline::{Outcome, Pipeline};
use crate::publisher;
use crate::registry::Registry;
use outgoing::Outgoing;
use parked::{Now, Parked};

mod outgoing;
mod parked;

/// Most events forwarded in one `PublishRequest`.
const BATCH_MAX_EVENTS: usize = 256;
/// Capacity of the channels between ingest, this service and the publisher (in messages).
const CHANNEL_CAPACITY: usize = 16;

/// The sender of responses to ingest.
type Out = mpsc::Sender<Result<ProcessResponse, Status>>;

/// Why a stream ended.
#[derive(Debug)]
enum End {
    /// Ingest stopped listening for acks.
    IngestGone,
    /// The publisher ended its ack stream.
    PublisherClosed,
    /// The publisher call failed or broke.
    PublisherBroke(Status),
    /// Shutdown: the drain period is over.
    Drained,
}

/// How the forward half stopped without an error.
#[derive(Debug, PartialEq, Eq)]
enum Forwarded {
    /// Ingest ended its stream, or shutdown.
    Done,
    /// The publisher address set changed: the publisher streams are to be renewed.
    Switch,
}

/// How one set of publisher streams ended.
enum Epoch {
    /// The address set changed and every publisher stream closed cleanly: go on with new ones.
    Switch,
    /// The ingest stream is over, with this error for ingest, if any.
    End(Option<Status>),
}

/// Starts `Process` streams: the pipeline, the publishers and the shutdown they share.
pub struct Relay<R> {
    pipeline: Arc<Pipeline<R>>,
    publisher: publisher::Publishers,
    shutdown: Shutdown,
    drain: Duration,
    /// Schema notes of this stream's events, for the acks (a fresh set per stream).
    notes: Arc<AckNotes>,
}

impl<R> Clone for Relay<R> {
    fn clone(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
            publisher: self.publisher.clone(),
            shutdown: self.shutdown.clone(),
            drain: self.drain,
            notes: self.notes.clone(),
        }
    }
}

impl<R: Registry> Relay<R> {
    /// A relay; on shutdown each stream relays acks for at most `drain`.
    pub fn new(
        pipeline: Arc<Pipeline<R>>,
        publisher: publisher::Publishers,
        shutdown: Shutdown,
        drain: Duration,
    ) -> Self {
        Self {
            pipeline,
            publisher,
            shutdown,
            drain,
            notes: Arc::default(),
        }
    }

    /// Starts relaying one ingest stream; returns the stream of responses to ingest.
    pub fn start<S>(&self, ingest: S) -> ReceiverStream<Result<ProcessResponse, Status>>
    where
        S: Stream<Item = Result<ProcessRequest, Status>> + Send + Unpin + 'static,
    {
        let (out, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut this = self.clone();
        this.notes = Arc::default();
        self.shutdown
            .tracker
            .spawn(async move { this.run_stream(ingest, out).await });
        ReceiverStream::new(out_rx)
    }

    async fn run_stream<S>(self, mut ingest: S, out: Out)
    where
        S: Stream<Item = Result<ProcessRequest, Status>> + Send + Unpin + 'static,
    {
        let token = self.shutdown.token.clone();
        // The publisher may not be up yet: wait without failing (or reading) the ingest stream.
        if !publisher::wait_reachable(&self.publisher, &token).await {
            let _ = out
                .send(Err(Status::unavailable("schema service shutting down")))
                .await;
            return;
        }
        let mut set = self.publisher.subscribe();
        let status = loop {
            set.borrow_and_update();
            let peers = self.publisher.live().await;
            match self.epoch(&mut ingest, &out, &peers, &set, &token).await {
                Epoch::Switch => {
                    tracing::info!(
                        publishers = ?set.borrow().iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
                        "publisher addresses changed; renewing the publisher streams"
                    );
                }
                Epoch::End(status) => break status,
            }
        };
        if let Some(status) = status {
            tracing::info!(reason = %status.message(), "ending ingest stream");
            let _ = out.send(Err(status)).await;
        }
    }

    /// Runs the ingest stream over one `Publish` stream per address in `peers` until it ends or
    /// the address set changes.
    async fn epoch<S>(
        &self,
        ingest: &mut S,
        out: &Out,
        peers: &[Peer],
        set: &watch::Receiver<Vec<Peer>>,
        token: &CancellationToken,
    ) -> Epoch
    where
        S: Stream<Item = Result<ProcessRequest, Status>> + Send + Unpin + 'static,
    {
        if peers.is_empty() {
            self.publisher.refresh();
            return Epoch::End(Some(Status::unavailable("no publisher address known")));
        }
        let (lanes, calls, in_process) = self.open_lanes(peers);
        let publishers = self.publisher.clone();
        tracing::info!(
            publishers = ?peers.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>(),
            in_process,
            "Publish streams open"
        );
        let relay = relay_acks(calls, out.clone(), self.notes.clone(), publishers);
        let forward = self.forward(ingest, peers, lanes, set.clone(), token);
        let drain = self.drain;
        let drain_over = async {
            token.cancelled().await;
            tokio::time::sleep(drain).await;
        };
        tokio::pin!(relay, forward, drain_over);
        let mut forwarding = true;
        let mut switching = false;
        let end = loop {
            tokio::select! {
                r = &mut forward, if forwarding => {
                    forwarding = false;
                    match r {
                        Ok(Forwarded::Switch) => switching = true,
                        Ok(Forwarded::Done) => {}
                        Err(e) => break e,
                    }
                }
                e = &mut relay => break e,
                _ = &mut drain_over => break End::Drained,
            }
        };
        if let (true, End::PublisherBroke(s)) = (switching, &end) {
            tracing::info!(error = %s.message(), "a publisher stream broke while switching addresses");
        }
        self.end_of(end, forwarding, switching, token)
    }

    /// One `Publish` stream per address of `peers`: the senders of the lanes, the calls that
    /// yield each address's acks, and how many of them are in this process.
    fn open_lanes(
        &self,
        peers: &[Peer],
    ) -> (
        Vec<mpsc::Sender<PublishRequest>>,
        Vec<(SocketAddr, AckCall)>,
        usize,
    ) {
        let mut lanes = Vec::with_capacity(peers.len());
        let mut calls = Vec::with_capacity(peers.len());
        let mut in_process = 0;
        for p in peers {
            let (pub_tx, pub_rx) = mpsc::channel::<PublishRequest>(CHANNEL_CAPACITY);
            let link = self.publisher.channel_to(p);
            let call: AckCall = match link.stream(paths::PUBLISHER_PUBLISH) {
                // A publisher of this process (sse-connector): its messages as they are.
                Some(publish) => {
                    in_process += 1;
                    let acks = publish(Box::pin(ReceiverStream::new(pub_rx).map(Ok)));
                    Box::pin(async move { Ok(acks) })
                }
                None => {
                    let mut client = PublisherServiceClient::new(link)
                        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
                    Box::pin(async move {
                        let acks = client.publish(ReceiverStream::new(pub_rx)).await?;
                        Ok(Box::pin(acks.into_inner()) as Messages<PublishResponse>)
                    })
                }
            };
            calls.push((p.addr, call));
            lanes.push(pub_tx);
        }
        (lanes, calls, in_process)
    }

    /// How an epoch that ended with `end` ends the ingest stream (or switches addresses).
    fn end_of(
        &self,
        end: End,
        forwarding: bool,
        switching: bool,
        token: &CancellationToken,
    ) -> Epoch {
        Epoch::End(match end {
            End::IngestGone => None,
            End::PublisherClosed if forwarding => {
                Some(Status::unavailable("publisher closed the stream"))
            }
            End::PublisherClosed if token.is_cancelled() => {
                Some(Status::unavailable("schema service shutting down"))
            }
            End::PublisherClosed if switching => return Epoch::Switch,
            End::PublisherClosed => None,
            End::PublisherBroke(s) => {
                self.publisher.refresh();
                Some(Status::unavailable(format!(
                    "publisher stream broke: {}",
                    s.message()
                )))
            }
            End::Drained => Some(Status::unavailable("schema service shutting down")),
        })
    }

    /// Reads ingest, prepares each event and forwards batches, each event on the publisher
    /// stream of its ingest stream key's address; closes the publisher streams (by dropping
    /// `lanes`) when ingest ends, on shutdown, or, between batches, when the address set changes.
    /// An event whose preparation waits (on the registry) is [parked](parked): the other SSE
    /// streams go on; it and the events of its stream behind it are forwarded when it is ready,
    /// and before the streams close.
    async fn forward<S>(
        &self,
        ingest: &mut S,
        peers: &[Peer],
        lanes: Vec<mpsc::Sender<PublishRequest>>,
        mut set: watch::Receiver<Vec<Peer>>,
        token: &CancellationToken,
    ) -> Result<Forwarded, End>
    where
        S: Stream<Item = Result<ProcessRequest, Status>> + Unpin,
    {
        let mut set_live = true;
        let mut out = Outgoing::new(peers, &lanes);
        // Outside tokio's cooperative budget: an event ready at once is not parked only because
        // the task had used its budget (the subject's lock answers `Pending` then, after about
        // 128 events of a batch). The loop still yields on ingest and on the publisher lanes.
        let prepare = |ev: Event| tokio::task::unconstrained(self.prepare(ev)).boxed();
        let mut parked = Parked::default();
        let far = tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        // Made once: a new `cancelled()` at every turn registered and removed a waiter (two
        // locks) for every event.
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        loop {
            let next_probe = self.publisher.next_probe();
            let first = tokio::select! {
                () = &mut cancelled => return Ok(Forwarded::Done),
                changed = set.changed(), if set_live => {
                    if changed.is_err() {
                        set_live = false;
                    }
                    set.borrow_and_update();
                    if self.publisher.live().await.as_slice() != peers {
                        return settle(&mut parked, &prepare, &mut out, token, Forwarded::Switch).await;
                    }
                    continue;
                }
                // An address left out is due for a probe: take it back if it answers.
                _ = tokio::time::sleep_until(next_probe.unwrap_or(far)), if next_probe.is_some() => {
                    if self.publisher.live().await.as_slice() != peers {
                        return settle(&mut parked, &prepare, &mut out, token, Forwarded::Switch).await;
                    }
                    continue;
                }
                Some(ready) = parked.next(&prepare), if !parked.is_empty() => {
                    out.send_ready(ready, !parked.is_empty(), token).await?;
                    continue;
                }
                r = ingest.next(), if parked.has_room() => r,
            };
            let Some(Ok(req)) = first else {
                return settle(&mut parked, &prepare, &mut out, token, Forwarded::Done).await;
            };
            let (events, ack_now, ended) = gather(ingest, req);
            for ev in events {
                if let Some(ev) = parked.offer(ev, |ev| self.prepare_now(ev), &prepare) {
                    out.push(ev, token).await?;
                }
            }
            out.flush(token).await?;
            if ack_now {
                out.ask_for_acks(!parked.is_empty(), token).await?;
            }
            if ended || token.is_cancelled() {
                return settle(&mut parked, &prepare, &mut out, token, Forwarded::Done).await;
            }
        }
    }

    /// Infers the event's schema under its own span, and makes that span the event's parent
    /// for the publisher; the time it took is recorded when metrics are on.
    async fn prepare(&self, ev: Event) -> Event {
        let started = self.pipeline.metrics().map(|_| Instant::now());
        // An event already bound for its dead letter (truncated by ingest) gets no schema.
        let subject = subject_of(&ev).filter(|_| ev.dead_letter.is_none());
        let trace = telemetry::EventTrace::start(
            || process_span(subject.as_deref()),
            &ev.traceparent,
            &ev.tracestate,
        );
        let outcome = match &subject {
            Some(subject) => Some(
                self.pipeline
                    .tag(subject, &ev.data)
                    .instrument(trace.span.clone())
                    .await,
            ),
            None => None,
        };
        self.finish(ev, trace, outcome, started)
    }

    /// [`Relay::prepare`] when it needs no wait (the subject's schema covers the event, or it
    /// has no subject), without a future to box and poll; else the event back for `prepare`.
    /// Both paths make the same event. When spans are exported, always `prepare`: its span
    /// covers the schema check, and none is made for an event that then waits.
    fn prepare_now(&self, ev: Event) -> Now {
        if telemetry::exporting() {
            return Now::Wait(ev);
        }
        let started = self.pipeline.metrics().map(|_| Instant::now());
        let subject = subject_of(&ev).filter(|_| ev.dead_letter.is_none());
        let outcome = match &subject {
            Some(subject) => match self.pipeline.try_tag(subject, &ev.data) {
                Some(outcome) => Some(outcome),
                None => return Now::Wait(ev),
            },
            None => None,
        };
        let trace = telemetry::EventTrace::start(
            || process_span(subject.as_deref()),
            &ev.traceparent,
            &ev.tracestate,
        );
        Now::Ready(self.finish(ev, trace, outcome, started))
    }

    /// Tags `ev` with what inference made of it (`None`: it has no subject), notes that for its
    /// ack, and carries its trace on.
    fn finish(
        &self,
        mut ev: Event,
        trace: telemetry::EventTrace,
        outcome: Option<Outcome>,
        started: Option<Instant>,
    ) -> Event {
        let mut without = None;
        match outcome {
            Some(outcome) => {
                match outcome.dataschema() {
                    Some(d) => ev.dataschema = d.to_string(),
                    None => ev.dataschema.clear(),
                }
                without = outcome.no_schema();
                if let Some(reason) = without {
                    trace.span.record(attr::ERROR_TYPE, reason.label());
                    dead_letter_if_rejected(&mut ev, reason);
                }
                self.notes.record(&ev, Some(&outcome));
            }
            None => {
                self.notes.record(&ev, None);
                trace
                    .span
                    .in_scope(|| tracing::debug!("event without a route: no schema"));
            }
        }
        if !trace.traceparent.is_empty() {
            ev.traceparent = trace.traceparent;
            ev.tracestate = trace.tracestate;
        }
        if let (Some(m), Some(t)) = (self.pipeline.metrics(), started) {
            m.processed(t.elapsed(), without);
        }
        ev
    }
}

/// Marks `ev` for its route's dead-letter destination when it has one and the schema stage
/// could not accept its payload ([`NoSchema::rejects_payload`]); the publisher then sends it
/// there with the reason. Without a dead-letter destination it goes on without a schema.
fn dead_letter_if_rejected(ev: &mut Event, reason: crate::pipeline::NoSchema) {
    let has_dead_letter = ev.route.as_ref().is_some_and(|r| r.dead_letter.is_some());
    if reason.rejects_payload() && has_dead_letter && ev.dead_letter.is_none() {
        ev.dead_letter = Some(sse_proto::v1::DeadLetter {
            reason: sse_contract::dead_letter::Reason::SchemaRejected.to_wire(),
            detail: format!("schema stage: payload {}", reason.as_str()),
            truncated: false,
            original_bytes: 0,
        });
    }
}

/// The process span of an event of `subject`, with the messaging conventions' attributes:
/// made only when traces are exported.
fn process_span(subject: Option<&str>) -> tracing::Span {
    tracing::info_span!(
        parent: None,
        "process",
        otel.name = PROCESS,
        otel.kind = "consumer",
        { attr::MESSAGING_SYSTEM } = "sse",
        { attr::OPERATION_NAME } = PROCESS,
        { attr::OPERATION_TYPE } = PROCESS,
        subject = %subject.unwrap_or_default(),
        { attr::ERROR_TYPE } = tracing::field::Empty,
    )
}

/// Forwards every parked event as it gets ready, then says `how` forwarding stopped; on
/// shutdown, at once (what is parked stays unacked: ingest sends it again).
async fn settle<'a>(
    parked: &mut Parked<'a>,
    prepare: &impl Fn(Event) -> BoxFuture<'a, Event>,
    out: &mut Outgoing<'_>,
    token: &CancellationToken,
    how: Forwarded,
) -> Result<Forwarded, End> {
    while !parked.is_empty() {
        let ready = tokio::select! {
            _ = token.cancelled() => return Ok(Forwarded::Done),
            r = parked.next(prepare) => r,
        };
        if let Some(ready) = ready {
            out.send_ready(ready, !parked.is_empty(), token).await?;
        }
    }
    Ok(how)
}

/// The events of `first` plus whatever else ingest has already sent, without waiting for more
/// (up to a batch); whether ingest asked for acks at once after the last of them (`ack_now`);
/// `true` when ingest ended meanwhile.
fn gather<S>(ingest: &mut S, first: ProcessRequest) -> (Vec<Event>, bool, bool)
where
    S: Stream<Item = Result<ProcessRequest, Status>> + Unpin,
{
    let (mut events, mut ack_now) = (first.events, first.ack_now);
    while events.len() < BATCH_MAX_EVENTS {
        match ingest.next().now_or_never() {
            Some(Some(Ok(more))) => {
                // Events sent after an `ack_now` mean ingest has room again.
                ack_now = more.ack_now || (ack_now && more.events.is_empty());
                events.extend(more.events);
            }
            Some(_) => return (events, ack_now, true),
            None => break,
        }
    }
    (events, ack_now, false)
}

/// A request carrying `events` only.
fn events_only(events: Vec<Event>) -> PublishRequest {
    PublishRequest {
        events,
        ack_now: false,
    }
}

/// Sends one request to the publisher; an error means the publisher stream is gone.
async fn send(
    pub_tx: &mpsc::Sender<PublishRequest>,
    request: PublishRequest,
    token: &CancellationToken,
) -> Result<(), End> {
    // The send goes first: with room in the queue no cancellation waiter is registered.
    tokio::select! {
        biased;
        r = pub_tx.send(request) => r.map_err(|_| End::PublisherBroke(Status::unavailable("request stream closed"))),
        // Shutdown while the publisher holds us back: leave the rest unacked (ingest re-sends).
        _ = token.cancelled() => Ok(()),
    }
}

/// What one publisher stream yields to the relay.
enum LaneEvent {
    /// Acks, or the call's or stream's failure.
    Item(Result<PublishResponse, Status>),
    /// The publisher ended the stream.
    Closed,
}

/// A `Publish` call being made: the stream of its acks, or why it failed.
type AckCall = Pin<Box<dyn Future<Output = Result<Messages<PublishResponse>, Status>> + Send>>;

/// Relays the acks of every publisher stream to ingest until ingest goes, one stream fails, or
/// every one has closed.
async fn relay_acks(
    calls: Vec<(SocketAddr, AckCall)>,
    out: Out,
    notes: Arc<AckNotes>,
    publishers: publisher::Publishers,
) -> End {
    let lanes = calls.len();
    let mut merged = SelectAll::new();
    for (addr, call) in calls {
        merged.push(
            futures::stream::once(call)
                .flat_map(|r| match r {
                    Ok(acks) => acks
                        .map(LaneEvent::Item)
                        .chain(futures::stream::once(async { LaneEvent::Closed }))
                        .left_stream(),
                    Err(s) => {
                        futures::stream::once(async move { LaneEvent::Item(Err(s)) }).right_stream()
                    }
                })
                .map(move |e| (addr, e))
                .boxed(),
        );
    }
    let mut closed = 0;
    loop {
        let msg = tokio::select! {
            _ = out.closed() => return End::IngestGone,
            m = merged.next() => m,
        };
        match msg {
            Some((_, LaneEvent::Item(Ok(mut resp)))) => {
                notes.annotate(&mut resp.acks);
                if out
                    .send(Ok(ProcessResponse { acks: resp.acks }))
                    .await
                    .is_err()
                {
                    return End::IngestGone;
                }
            }
            Some((addr, LaneEvent::Item(Err(s)))) => {
                // Leave the address out of the next streams until it answers again.
                tracing::info!(%addr, error = %s.message(), "publisher stream failed");
                publishers.mark_down(addr);
                return End::PublisherBroke(s);
            }
            Some((_, LaneEvent::Closed)) => {
                closed += 1;
                if closed == lanes {
                    return End::PublisherClosed;
                }
            }
            None => return End::PublisherClosed,
        }
    }
}

/// The subject an event's schema is registered under: the one ingest computed, carried in the
/// event (sse-contract's rule applied to the route when an older sender left it out); `None`
/// for an event without a dataset or event route: none at all, a status report, or a kind the
/// contract refuses (unspecified or unknown), which the publisher then fails with that reason.
/// No kind is guessed.
pub fn subject_of(ev: &Event) -> Option<String> {
    let route = ev.route.as_ref()?;
    let kind = RouteKind::from_wire(route.kind).ok()?;
    if !route::has_schema_subject(kind, &route.asset) {
        return None;
    }
    Some(if ev.subject.is_empty() {
        route::subject(kind, &route.asset, &route.group, &route.event)
    } else {
        ev.subject.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_proto::v1::{Route, RouteKind};

    fn event(kind: RouteKind, asset: &str, group: &str, name: &str) -> Event {
        Event {
            route: Some(Route {
                asset: asset.into(),
                kind: kind as i32,
                group: group.into(),
                event: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn payloads_the_schema_stage_rejects_are_marked_for_the_dead_letter_only() {
        use crate::pipeline::NoSchema;
        let with_dl = || {
            let mut ev = event(RouteKind::Dataset, "a", "d", "");
            ev.route.as_mut().unwrap().dead_letter = Some(sse_proto::v1::MqttDestination {
                topic: "sse-connector/dead-letter/a".into(),
                ..Default::default()
            });
            ev
        };
        for reason in NoSchema::ALL {
            let mut ev = with_dl();
            dead_letter_if_rejected(&mut ev, reason);
            assert_eq!(
                ev.dead_letter.is_some(),
                reason.rejects_payload(),
                "{reason:?}"
            );
        }
        let mut ev = with_dl();
        dead_letter_if_rejected(&mut ev, NoSchema::NotJson);
        let mark = ev.dead_letter.unwrap();
        assert_eq!(
            mark.reason,
            sse_contract::dead_letter::Reason::SchemaRejected.to_wire()
        );
        assert!(mark.detail.contains("not JSON"), "{}", mark.detail);
        // Without a dead-letter destination the event goes on without a schema, as before.
        let mut ev = event(RouteKind::Dataset, "a", "d", "");
        dead_letter_if_rejected(&mut ev, NoSchema::NotJson);
        assert!(ev.dead_letter.is_none());
        assert!(!NoSchema::RegistryError.rejects_payload());
        assert!(!NoSchema::Frozen.rejects_payload());
    }

    #[test]
    fn gathered_requests_ask_for_acks_when_the_last_word_was_ack_now() {
        let req = |events: usize, ack_now: bool| ProcessRequest {
            events: vec![Event::default(); events],
            ack_now,
        };
        let run = |reqs: Vec<ProcessRequest>| {
            let mut rest = futures::stream::iter(reqs[1..].iter().cloned().map(Ok))
                .chain(futures::stream::pending());
            let (events, ack_now, ended) = gather(&mut rest, reqs[0].clone());
            assert!(!ended);
            (events.len(), ack_now)
        };
        assert_eq!(run(vec![req(2, false), req(0, true)]), (2, true));
        assert_eq!(run(vec![req(2, true)]), (2, true));
        assert_eq!(
            run(vec![req(0, true), req(0, false)]),
            (0, true),
            "nothing sent since"
        );
        assert_eq!(
            run(vec![req(0, true), req(3, false)]),
            (3, false),
            "room again"
        );
        assert_eq!(run(vec![req(1, false), req(1, false)]), (2, false));
    }

    #[test]
    fn subjects() {
        assert_eq!(
            subject_of(&event(RouteKind::Dataset, "a", "d", "")).as_deref(),
            Some("a/d")
        );
        assert_eq!(
            subject_of(&event(RouteKind::Event, "a", "g", "e")).as_deref(),
            Some("a/g/e")
        );
        // An unspecified kind is refused, not guessed from the event name.
        assert_eq!(
            subject_of(&event(RouteKind::Unspecified, "a", "g", "e")),
            None
        );
        assert_eq!(
            subject_of(&event(RouteKind::Status, "a", "device", "")),
            None
        );
        assert_eq!(subject_of(&event(RouteKind::Dataset, "", "d", "")), None);
        assert_eq!(subject_of(&Event::default()), None);
        // The subject ingest sent is the one used.
        let mut ev = event(RouteKind::Event, "a", "g", "e");
        ev.subject = "a/g/e-from-ingest".into();
        assert_eq!(subject_of(&ev).as_deref(), Some("a/g/e-from-ingest"));
    }
}
