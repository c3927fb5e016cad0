//! The `Process` stream, an edge adapter: events from ingest get their schema and a child trace
//! context, go on to the publisher's `Publish` stream in batches, and the publisher's acks come
//! back to ingest unchanged.
//!
//! One task per ingest stream, under the shutdown tracker. It waits (with backoff, reading nothing
//! from ingest, which therefore backs off too) until the publisher is reachable, then runs two
//! halves together: *forward* (ingest -> publisher) and *relay* (publisher acks -> ingest). Both
//! channels are bounded, so a slow publisher slows ingest down. How the stream ends:
//! - ingest ends its stream: the publisher stream is closed once everything was forwarded, the
//!   remaining acks are relayed, and the ingest stream ends OK;
//! - the publisher stream breaks or ends early: the ingest stream ends with UNAVAILABLE (ingest
//!   re-sends what was not acked);
//! - shutdown: no new events are read, the publisher stream is closed, acks are relayed for at
//!   most the drain period, and the ingest stream ends with UNAVAILABLE.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_proto::v1::{
    Event, ProcessRequest, ProcessResponse, PublishRequest, PublishResponse, RouteKind,
};
use sse_runtime::{Shutdown, telemetry};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::pipeline::Pipeline;
use crate::publisher;
use crate::registry::Registry;

/// Most events forwarded in one `PublishRequest`.
const BATCH_MAX_EVENTS: usize = 256;
/// Rough byte budget of one `PublishRequest` (a single larger event still goes, alone).
const BATCH_MAX_BYTES: usize = 1 << 20;
/// Per-event overhead assumed on top of its data when budgeting a batch.
const EVENT_OVERHEAD: usize = 512;
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

/// Starts `Process` streams: the pipeline, the publisher channel and the shutdown they share.
pub struct Relay<R> {
    pipeline: Arc<Pipeline<R>>,
    publisher: Channel,
    shutdown: Shutdown,
    drain: Duration,
}

impl<R> Clone for Relay<R> {
    fn clone(&self) -> Self {
        Self {
            pipeline: self.pipeline.clone(),
            publisher: self.publisher.clone(),
            shutdown: self.shutdown.clone(),
            drain: self.drain,
        }
    }
}

impl<R: Registry> Relay<R> {
    /// A relay; on shutdown each stream relays acks for at most `drain`.
    pub fn new(
        pipeline: Arc<Pipeline<R>>,
        publisher: Channel,
        shutdown: Shutdown,
        drain: Duration,
    ) -> Self {
        Self {
            pipeline,
            publisher,
            shutdown,
            drain,
        }
    }

    /// Starts relaying one ingest stream; returns the stream of responses to ingest.
    pub fn start<S>(&self, ingest: S) -> ReceiverStream<Result<ProcessResponse, Status>>
    where
        S: Stream<Item = Result<ProcessRequest, Status>> + Send + Unpin + 'static,
    {
        let (out, out_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let this = self.clone();
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
        let (pub_tx, pub_rx) = mpsc::channel::<PublishRequest>(CHANNEL_CAPACITY);
        let mut client = PublisherServiceClient::new(self.publisher.clone());
        let call = async move { client.publish(ReceiverStream::new(pub_rx)).await };
        let relay = relay_acks(call, out.clone());
        let forward = self.forward(&mut ingest, pub_tx, &token);
        let drain = self.drain;
        let drain_over = async {
            token.cancelled().await;
            tokio::time::sleep(drain).await;
        };
        tokio::pin!(relay, forward, drain_over);
        let mut forwarding = true;
        let end = loop {
            tokio::select! {
                r = &mut forward, if forwarding => {
                    forwarding = false;
                    if let Err(e) = r {
                        break e;
                    }
                }
                e = &mut relay => break e,
                _ = &mut drain_over => break End::Drained,
            }
        };
        let status = match end {
            End::IngestGone => None,
            End::PublisherClosed if forwarding => {
                Some(Status::unavailable("publisher closed the stream"))
            }
            End::PublisherClosed if token.is_cancelled() => {
                Some(Status::unavailable("schema service shutting down"))
            }
            End::PublisherClosed => None,
            End::PublisherBroke(s) => Some(Status::unavailable(format!(
                "publisher stream broke: {}",
                s.message()
            ))),
            End::Drained => Some(Status::unavailable("schema service shutting down")),
        };
        if let Some(status) = status {
            tracing::info!(reason = %status.message(), "ending ingest stream");
            let _ = out.send(Err(status)).await;
        }
    }

    /// Reads ingest, prepares each event and forwards batches; closes the publisher stream (by
    /// dropping `pub_tx`) when ingest ends or on shutdown.
    async fn forward<S>(
        &self,
        ingest: &mut S,
        pub_tx: mpsc::Sender<PublishRequest>,
        token: &CancellationToken,
    ) -> Result<(), End>
    where
        S: Stream<Item = Result<ProcessRequest, Status>> + Unpin,
    {
        loop {
            let first = tokio::select! {
                _ = token.cancelled() => return Ok(()),
                r = ingest.next() => r,
            };
            let Some(Ok(req)) = first else {
                return Ok(());
            };
            let mut events = req.events;
            let mut ended = false;
            // Take whatever else ingest has already sent, without waiting for more.
            while events.len() < BATCH_MAX_EVENTS {
                match ingest.next().now_or_never() {
                    Some(Some(Ok(more))) => events.extend(more.events),
                    Some(_) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            let mut batch = Vec::new();
            let mut bytes = 0;
            for ev in events {
                let ev = self.prepare(ev).await;
                let size = ev.data.len() + EVENT_OVERHEAD;
                if !batch.is_empty()
                    && (batch.len() >= BATCH_MAX_EVENTS || bytes + size > BATCH_MAX_BYTES)
                {
                    send(&pub_tx, std::mem::take(&mut batch), token).await?;
                    bytes = 0;
                }
                bytes += size;
                batch.push(ev);
            }
            if !batch.is_empty() {
                send(&pub_tx, batch, token).await?;
            }
            if ended || token.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Infers the event's schema under its own span, and makes that span the event's parent
    /// for the publisher.
    async fn prepare(&self, mut ev: Event) -> Event {
        let subject = subject_of(&ev);
        let span = tracing::info_span!(
            parent: None,
            "schema",
            otel.name = "schema infer",
            subject = %subject.as_deref().unwrap_or_default()
        );
        telemetry::set_parent(&span, &ev.traceparent, &ev.tracestate);
        match subject {
            Some(subject) => {
                match self
                    .pipeline
                    .process(&subject, &ev.data)
                    .instrument(span.clone())
                    .await
                {
                    Ok(Some(reference)) => ev.dataschema = reference,
                    Ok(None) => ev.dataschema.clear(),
                    Err(e) => span.in_scope(|| {
                        tracing::warn!(error = %e, "schema not registered; forwarding without it");
                    }),
                }
            }
            None => span.in_scope(|| tracing::debug!("event without a route: no schema")),
        }
        let (traceparent, tracestate) = telemetry::trace_context(&span);
        if !traceparent.is_empty() {
            ev.traceparent = traceparent;
            ev.tracestate = tracestate;
        }
        ev
    }
}

/// Sends one batch to the publisher; an error means the publisher stream is gone.
async fn send(
    pub_tx: &mpsc::Sender<PublishRequest>,
    events: Vec<Event>,
    token: &CancellationToken,
) -> Result<(), End> {
    tokio::select! {
        r = pub_tx.send(PublishRequest { events }) => r.map_err(|_| End::PublisherBroke(Status::unavailable("request stream closed"))),
        // Shutdown while the publisher holds us back: leave the rest unacked (ingest re-sends).
        _ = token.cancelled() => Ok(()),
    }
}

/// Relays the publisher's acks to ingest until one side ends.
async fn relay_acks<F>(call: F, out: Out) -> End
where
    F: Future<Output = Result<tonic::Response<tonic::Streaming<PublishResponse>>, Status>>,
{
    let mut acks = tokio::select! {
        _ = out.closed() => return End::IngestGone,
        r = call => match r {
            Ok(r) => r.into_inner(),
            Err(s) => return End::PublisherBroke(s),
        },
    };
    loop {
        let msg = tokio::select! {
            _ = out.closed() => return End::IngestGone,
            m = acks.message() => m,
        };
        match msg {
            Ok(Some(resp)) => {
                if out
                    .send(Ok(ProcessResponse { acks: resp.acks }))
                    .await
                    .is_err()
                {
                    return End::IngestGone;
                }
            }
            Ok(None) => return End::PublisherClosed,
            Err(s) => return End::PublisherBroke(s),
        }
    }
}

/// The subject of an event: `<asset>/<dataset>` or `<asset>/<group>/<event>`; `None` without a
/// route.
pub fn subject_of(ev: &Event) -> Option<String> {
    let route = ev.route.as_ref()?;
    if route.asset.is_empty() {
        return None;
    }
    let event_kind = match route.kind() {
        RouteKind::Event => true,
        RouteKind::Dataset => false,
        RouteKind::Unspecified => !route.event.is_empty(),
        // The connector's own status reports get no schema.
        RouteKind::Status => return None,
    };
    Some(if event_kind {
        format!("{}/{}/{}", route.asset, route.group, route.event)
    } else {
        format!("{}/{}", route.asset, route.group)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sse_proto::v1::Route;

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
    fn subjects() {
        assert_eq!(
            subject_of(&event(RouteKind::Dataset, "a", "d", "")).as_deref(),
            Some("a/d")
        );
        assert_eq!(
            subject_of(&event(RouteKind::Event, "a", "g", "e")).as_deref(),
            Some("a/g/e")
        );
        assert_eq!(
            subject_of(&event(RouteKind::Unspecified, "a", "g", "e")).as_deref(),
            Some("a/g/e")
        );
        assert_eq!(subject_of(&event(RouteKind::Dataset, "", "d", "")), None);
        assert_eq!(subject_of(&Event::default()), None);
    }
}
