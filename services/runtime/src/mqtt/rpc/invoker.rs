//! The command invoker: stamps and sends a request, waits for its response, retries.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Publish, PublishProperties};
use sse_contract::clock::Hlc;
use sse_contract::topics::rpc_response;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::connection::{Connection, Pending};
use super::{CONTENT_TYPE, PROTOCOL_VERSION, Response, RpcError};
use crate::mqtt::{ClientSettings, Supervisor, pause};
use crate::{Backoff, Shutdown};

/// How often a call is attempted: the SDK's exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per call, counting the first; `None` retries until shutdown.
    pub attempts: Option<u32>,
    /// Delay before the first retry, then doubling (with jitter).
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
}

impl Retry {
    /// At most `attempts` (at least one), the first retry after `initial`, capped at 30 s.
    pub fn bounded(attempts: u32, initial: Duration) -> Self {
        Self {
            attempts: Some(attempts.max(1)),
            initial,
            max: Duration::from_secs(30),
        }
    }

    /// Until the call succeeds, fails for good, or the process shuts down.
    pub fn until_shutdown(initial: Duration) -> Self {
        Self {
            attempts: None,
            initial,
            max: Duration::from_secs(60),
        }
    }
}

/// An RPC client on one supervised MQTT connection; clones share the connection and its table
/// of pending calls.
#[derive(Debug, Clone)]
pub struct Invoker {
    client: AsyncClient,
    pending: Pending,
    ready: watch::Receiver<bool>,
    client_id: String,
    timeout: Duration,
    hlc: Arc<Mutex<Hlc>>,
    token: CancellationToken,
}

impl Invoker {
    /// Connects (in the background, under `shutdown`) with `settings`, named `what` in logs,
    /// answering on `response_filters`; `telemetry` adds filters whose messages go to a channel.
    /// Each call waits `timeout` for its answer.
    pub fn start(
        settings: ClientSettings,
        what: &'static str,
        timeout: Duration,
        response_filters: Vec<String>,
        telemetry: Option<(Vec<String>, mpsc::Sender<Publish>)>,
        shutdown: &Shutdown,
    ) -> Self {
        let client_id = settings.client_id.clone();
        let supervisor = Supervisor::new(settings, what);
        let (client, eventloop) = supervisor.client(64);
        let (ready_tx, ready) = watch::channel(false);
        let pending = Pending::default();
        let mut connection = Connection {
            filters: response_filters,
            pending: pending.clone(),
            ready: ready_tx,
            telemetry: None,
        };
        if let Some((filters, sink)) = telemetry {
            connection = connection.with_telemetry(filters, sink);
        }
        shutdown.tracker.spawn(supervisor.run(
            client.clone(),
            eventloop,
            connection,
            shutdown.token.clone(),
        ));
        Self {
            client,
            pending,
            ready,
            client_id,
            timeout,
            hlc: Arc::default(),
            token: shutdown.token.clone(),
        }
    }

    /// The client id: `__srcId`, `$partition` and part of every response topic.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `__ts`: sse-contract's hybrid logical clock, never going backwards.
    fn timestamp(&self) -> String {
        let mut h = self.hlc.lock().unwrap_or_else(|p| p.into_inner());
        h.next_ts(&self.client_id)
    }

    /// The request properties of one call (reference: the SDK's `invoke_internal`).
    fn properties(&self, topic: &str, correlation: Bytes) -> PublishProperties {
        let expiry = self.timeout.as_secs() + u64::from(self.timeout.subsec_nanos() > 0);
        PublishProperties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(u32::try_from(expiry.max(1)).unwrap_or(u32::MAX)),
            response_topic: Some(rpc_response(&self.client_id, topic)),
            correlation_data: Some(correlation),
            user_properties: vec![
                ("__srcId".into(), self.client_id.clone()),
                ("__ts".into(), self.timestamp()),
                ("__protVer".into(), PROTOCOL_VERSION.into()),
                ("$partition".into(), self.client_id.clone()),
                ("$high_priority".into(), String::new()),
            ],
            content_type: Some(CONTENT_TYPE.into()),
            ..Default::default()
        }
    }

    /// Waits (at most the call timeout) until the connection is up.
    async fn connected(&self) -> Result<(), RpcError> {
        let mut ready = self.ready.clone();
        tokio::select! {
            r = tokio::time::timeout(self.timeout, ready.wait_for(|r| *r)) => {
                if r.map_or(true, |r| r.is_err()) {
                    return Err(RpcError::Network("not connected to the broker".into()));
                }
            }
            _ = self.token.cancelled() => return Err(RpcError::Cancelled),
        }
        Ok(())
    }

    /// One request/response exchange on `topic`: the response's headers and payload, or why
    /// none came.
    pub async fn invoke(&self, topic: &str, payload: Vec<u8>) -> Result<Response, RpcError> {
        self.connected().await?;
        let correlation = Bytes::from(rand::rng().random::<[u8; 16]>().to_vec());
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(correlation.clone(), tx);
        let props = self.properties(topic, correlation.clone());
        let sent = self
            .client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await;
        let result = match sent {
            Err(e) => Err(RpcError::Network(format!("cannot send the request: {e}"))),
            Ok(()) => self.answer(rx).await,
        };
        self.pending.lock().remove(&correlation);
        result
    }

    async fn answer(&self, rx: oneshot::Receiver<Publish>) -> Result<Response, RpcError> {
        tokio::select! {
            r = tokio::time::timeout(self.timeout, rx) => match r {
                Ok(Ok(p)) => Response::read(&p),
                Ok(Err(_)) => Err(RpcError::Network("connection to the broker lost".into())),
                Err(_) => Err(RpcError::Network(format!(
                    "no answer within {:?}",
                    self.timeout
                ))),
            },
            _ = self.token.cancelled() => Err(RpcError::Cancelled),
        }
    }

    /// Sends telemetry on `topic`, fire and forget (QoS 1, no answer), stamped as the SDK's
    /// telemetry sender stamps it: random correlation data, no response topic, JSON, the call
    /// timeout as expiry, `__ts`, `__protVer`, `__srcId`. Waits at most the timeout for the
    /// connection.
    pub async fn send_telemetry(&self, topic: &str, payload: Vec<u8>) -> Result<(), RpcError> {
        self.connected().await?;
        let correlation = Bytes::from(rand::rng().random::<[u8; 16]>().to_vec());
        let mut props = self.properties(topic, correlation);
        props.response_topic = None;
        // Telemetry carries the sender's stamps only, not the request's routing hints.
        props.user_properties.retain(|(k, _)| k.starts_with("__"));
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload, props)
            .await
            .map_err(|e| RpcError::Network(format!("cannot send the telemetry: {e}")))
    }

    /// Calls `topic` with `payload` until `read` makes an answer of a response or a failure is
    /// final: retryable failures ([`RpcError::is_retryable`], from the exchange or from `read`)
    /// are retried as `retry` says; shutdown ends the call with [`RpcError::Cancelled`].
    pub async fn call<T>(
        &self,
        topic: &str,
        payload: &[u8],
        retry: &Retry,
        read: impl Fn(Response) -> Result<T, RpcError>,
    ) -> Result<T, RpcError> {
        let mut backoff = Backoff::new(retry.initial, retry.max);
        let mut attempt = 1;
        loop {
            let e = match self.invoke(topic, payload.to_vec()).await.and_then(&read) {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if !e.is_retryable() || retry.attempts.is_some_and(|n| attempt >= n) {
                return Err(e);
            }
            let delay = backoff.next_delay();
            tracing::debug!(topic, attempt, error = %e, ?delay, "rpc call failed; retrying");
            if !pause(delay, &self.token).await {
                return Err(RpcError::Cancelled);
            }
            attempt += 1;
        }
    }
}
