//! The connection's side of RPC: subscribes to the response filters (and any telemetry filters)
//! at each connect, hands each response to the call waiting for its correlation data, and every
//! other message to the telemetry channel.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnAck, Filter, Publish, Subscribe, SubscribeReasonCode};
use rumqttc::v5::{Event, Incoming, Request};
use sse_contract::topics::RPC_RESPONSE_ROOT;
use tokio::sync::{mpsc, oneshot, watch};

use crate::mqtt::Handler;

/// The calls waiting for an answer, by correlation data; shared by an invoker's clones.
#[derive(Debug, Clone, Default)]
pub(super) struct Pending(Arc<Mutex<HashMap<Bytes, oneshot::Sender<Publish>>>>);

impl Pending {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<Bytes, oneshot::Sender<Publish>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The [`Handler`] of an invoker's connection, made and run by [`super::Invoker::start`] under
/// [`crate::mqtt::Supervisor::run`].
pub struct Connection {
    pub(super) filters: Vec<String>,
    pub(super) pending: Pending,
    pub(super) ready: watch::Sender<bool>,
    pub(super) telemetry: Option<mpsc::Sender<Publish>>,
}

impl Connection {
    /// Also subscribes to `filters` (QoS 1) and sends what arrives there (any message that is
    /// not a response) to `sink`; a full sink drops the message with a warning rather than stall
    /// the connection, whose responses other calls wait for.
    pub fn with_telemetry(mut self, filters: Vec<String>, sink: mpsc::Sender<Publish>) -> Self {
        self.filters.extend(filters);
        self.telemetry = Some(sink);
        self
    }

    fn deliver(&mut self, p: Publish) {
        let correlation = p
            .properties
            .as_ref()
            .and_then(|pp| pp.correlation_data.clone());
        let waiter = correlation.and_then(|c| self.pending.lock().remove(&c));
        if let Some(tx) = waiter {
            let _ = tx.send(p);
            return;
        }
        let is_response = p.topic.starts_with(RPC_RESPONSE_ROOT.as_bytes())
            && p.topic.get(RPC_RESPONSE_ROOT.len()) == Some(&b'/');
        match &self.telemetry {
            Some(sink) if !is_response => {
                if sink.try_send(p).is_err() {
                    tracing::warn!("telemetry queue full or closed; message dropped");
                }
            }
            _ => tracing::debug!("rpc response for no pending call (late or foreign); dropped"),
        }
    }
}

impl Handler for Connection {
    fn on_connected(&mut self, _ack: &ConnAck, pending: &mut VecDeque<Request>) {
        let filters = self
            .filters
            .iter()
            .map(|f| Filter::new(f.clone(), QoS::AtLeastOnce));
        pending.push_front(Request::Subscribe(Subscribe::new_many(filters, None)));
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Incoming::SubAck(ack)) => {
                let ok = ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                if ok {
                    let _ = self.ready.send(true);
                } else {
                    tracing::error!(filters = ?self.filters, codes = ?ack.return_codes, "the broker refused the rpc subscription");
                }
            }
            Event::Incoming(Incoming::Publish(p)) => self.deliver(p),
            _ => {}
        }
    }

    fn on_lost(&mut self, pending: &mut VecDeque<Request>) {
        let _ = self.ready.send(false);
        // Calls in flight fail now (their callers retry), and nothing is replayed later.
        self.pending.lock().clear();
        pending.clear();
    }
}
