//! One Process stream to one schema address: opening it (over gRPC, or in-process under
//! `sse-connector`), queueing requests on it in batches within the contract's message limit,
//! and following what it answers (acks applied, a broken or failed stream retried with backoff).

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use prost::Message;
use sse_contract::batch::Batcher;
use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_proto::paths;
use sse_proto::v1 as pb;
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_runtime::error_chain;
use sse_runtime::link::Messages;
use sse_runtime::peers::{Dialer, Peers};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{Forwarder, State};
use crate::grpc;

/// An open Process stream: where requests go, and the responses.
pub(super) struct Session {
    tx: mpsc::UnboundedSender<pb::ProcessRequest>,
    responses: Messages<pb::ProcessResponse>,
    /// Called in-process, messages unencoded (`sse-connector`), rather than over gRPC.
    in_process: bool,
}

/// A Process stream being opened: its address, its session number, the outcome.
pub(super) type Opening =
    Pin<Box<dyn Future<Output = (SocketAddr, u64, Result<Session, String>)> + Send>>;
/// One session's responses, tagged; `None` marks the end of the stream.
pub(super) type Responses = Pin<
    Box<
        dyn Stream<
                Item = (
                    SocketAddr,
                    u64,
                    Option<Result<pb::ProcessResponse, tonic::Status>>,
                ),
            > + Send,
    >,
>;

impl Forwarder {
    /// Starts opening the Process stream of `addr`.
    pub(super) fn start(&self, st: &mut State, addr: SocketAddr) {
        let Some(lane) = st.lanes.get_mut(&addr) else {
            return;
        };
        st.sessions += 1;
        let session = st.sessions;
        lane.session = session;
        lane.tx = None;
        lane.retry_at = None;
        let endpoint = self.endpoint.clone();
        let dialer = self.dialer.clone();
        st.openings.push(Box::pin(async move {
            let opened = open_session(&dialer, &endpoint, addr).await;
            (addr, session, opened)
        }));
    }

    /// A Process stream opened (or failed to): on success re-sends, in order, every
    /// unacknowledged event of the SSE streams it carries.
    pub(super) fn on_open(
        &self,
        st: &mut State,
        peers: &Peers,
        addr: SocketAddr,
        session: u64,
        opened: Result<Session, String>,
    ) {
        let Some(lane) = st.lanes.get_mut(&addr) else {
            return; // removed meanwhile; dropping the session closes it
        };
        if lane.session != session {
            return;
        }
        match opened {
            Ok(s) => {
                let again = std::mem::replace(&mut lane.was_open, true);
                lane.backoff.connected();
                lane.down = false;
                lane.tx = Some(s.tx.clone());
                st.responses.push(Box::pin(
                    s.responses
                        .map(Some)
                        .chain(futures::stream::once(async { None }))
                        .map(move |m| (addr, session, m)),
                ));
                self.reroute(st, Some(addr));
                let mut resend = Vec::new();
                for e in st.inflight.iter() {
                    if st.router.owner(&e.stream_key) == Some(addr) {
                        resend.push(grpc::event(e));
                    }
                }
                let link = if s.in_process { "in-process" } else { "grpc" };
                tracing::info!(schema = %self.endpoint.uri(), %addr, link, resend = resend.len(), "Process stream to schema open");
                if again {
                    self.meters.resent(resend.len());
                }
                send(&s.tx, resend, &mut st.asked);
            }
            Err(reason) => {
                let delay = lane.backoff.next_delay();
                lane.retry_at = Some(Instant::now() + delay);
                lane.down = true;
                tracing::warn!(schema = %self.endpoint.uri(), %addr, %reason, retry_in = ?delay, "Process stream to schema unavailable");
                peers.refresh();
                self.reroute(st, None);
            }
        }
    }

    /// Applies acks (from any session: an ack is an ack) and notices a broken stream.
    pub(super) fn on_response(
        &self,
        st: &mut State,
        peers: &Peers,
        addr: SocketAddr,
        session: u64,
        msg: Option<Result<pb::ProcessResponse, tonic::Status>>,
    ) {
        let reason = match msg {
            Some(Ok(r)) => {
                self.apply_acks(&mut st.inflight, r.acks);
                return;
            }
            Some(Err(s)) => format!("{}: {}", s.code(), s.message()),
            None => "schema closed the stream".to_string(),
        };
        let Some(lane) = st.lanes.get_mut(&addr) else {
            return;
        };
        if lane.session != session || lane.tx.is_none() {
            return; // an older session of this address
        }
        lane.tx = None;
        lane.down = true;
        let delay = lane.backoff.next_delay();
        lane.retry_at = Some(Instant::now() + delay);
        tracing::warn!(schema = %self.endpoint.uri(), %addr, %reason, unacknowledged = st.inflight.len(), retry_in = ?delay, "Process stream to schema broke");
        peers.refresh();
        self.reroute(st, None);
    }
}

/// Splits events into batches of at most [`GRPC_BATCH_BYTES`] encoded (at least one event
/// each), so no `ProcessRequest` exceeds the schema service's decode limit.
pub(super) fn batches(events: impl IntoIterator<Item = pb::Event>) -> VecDeque<pb::ProcessRequest> {
    let mut out = VecDeque::new();
    let mut batcher = Batcher::default();
    for e in events {
        let len = e.encoded_len();
        if let Some(events) = batcher.push(e, len) {
            out.push_back(pb::ProcessRequest {
                events,
                ack_now: false,
            });
        }
    }
    if !batcher.is_empty() {
        out.push_back(pb::ProcessRequest {
            events: batcher.take(),
            ack_now: false,
        });
    }
    out
}

/// Queues events on a Process stream in batches. The queue is bounded by the in-flight window
/// (every queued event is in flight); a closed stream is noticed on its response side. Clears
/// `asked`: events clear a publisher's `ack_now`, and a stream just opened was never asked, so
/// ingest asks again if it is stuck.
pub(super) fn send(
    tx: &mpsc::UnboundedSender<pb::ProcessRequest>,
    events: Vec<pb::Event>,
    asked: &mut bool,
) {
    *asked = false;
    for batch in batches(events) {
        if tx.send(batch).is_err() {
            return;
        }
    }
}

/// Asks every open Process stream for the acks held downstream (`ack_now`): ingest can send
/// nothing more until they come, and the publisher would otherwise hold them for its ack delay.
pub(super) fn ask_for_acks(st: &mut State) {
    st.asked = true;
    for tx in st.lanes.values().filter_map(|l| l.tx.as_ref()) {
        let ask = pb::ProcessRequest {
            events: vec![],
            ack_now: true,
        };
        let _ = tx.send(ask);
    }
}

/// Connects to one schema address and opens the Process stream.
async fn open_session(
    dialer: &Dialer,
    endpoint: &tonic::transport::Endpoint,
    addr: SocketAddr,
) -> Result<Session, String> {
    let link = dialer
        .connect(endpoint, addr)
        .await
        .map_err(|e| error_chain(&e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let requests = UnboundedReceiverStream::new(rx);
    // A schema service of this process (sse-connector): its messages as they are.
    if let Some(process) = link.stream(paths::SCHEMA_PROCESS) {
        let responses = process(Box::pin(requests.map(Ok)));
        return Ok(Session {
            tx,
            responses,
            in_process: true,
        });
    }
    // Both ways bounded by the contract: schema decodes up to the same limit, so a message
    // this side encodes is never refused there (and re-sent forever).
    let mut client = SchemaServiceClient::new(link)
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let responses = client
        .process(requests)
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    Ok(Session {
        tx,
        responses: Box::pin(responses),
        in_process: false,
    })
}
