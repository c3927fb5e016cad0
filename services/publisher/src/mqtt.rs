//! The broker connection: one supervised task owns the rumqttc v5 `EventLoop`, reconnects with
//! backoff, publishes the messages handed to it and resolves each one once the broker has it.
//!
//! - [`connection`]: the task's poll loop: connect, admit messages, deadlines, drain;
//! - [`book`]: which message each rumqttc event is about: PUBACKs, re-sends across a
//!   reconnect, state store responses;
//! - [`describe`]: what the broker's and the state store's answers mean, for errors and logs.
//!
//! This root holds the handle the gRPC side uses ([`Mqtt`], [`Slot`], [`Delivery`]).

mod book;
mod connection;
mod describe;
mod packed;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::MqttSettings;
use crate::error::Error;
use crate::metrics::{Metrics, TopicMeter};
use crate::properties::{Message, StoreStamp};
use crate::state_store::Hlc;

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
    /// What its outcome is recorded with (`None`: metrics are off).
    meter: Option<Arc<TopicMeter>>,
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
    /// Queues `message`; the returned [`Delivery`] resolves when the broker has it. Its
    /// PUBLISH is recorded with `meter` (made once per topic) when metrics are on.
    pub fn send(self, message: Message, meter: Option<Arc<TopicMeter>>) -> Delivery {
        let (reply, rx) = oneshot::channel();
        self.0.send(Job {
            message,
            reply,
            attempts: 0,
            meter,
        });
        rx
    }
}

impl Mqtt {
    /// Starts the connection task under `shutdown` (it keeps retrying until connected),
    /// recording the connection's state and reconnects with `metrics` when they are on.
    pub fn start(
        settings: MqttSettings,
        shutdown: &sse_runtime::Shutdown,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        let (jobs_tx, jobs_rx) = mpsc::channel(usize::from(settings.max_inflight));
        let (connected_tx, connected_rx) = watch::channel(false);
        if let Some(m) = &metrics {
            m.follow_connection(connected_rx.clone());
        }
        let stamper = Arc::new(Stamper {
            client_id: settings.client.client_id.clone().into(),
            hlc: Mutex::new(Hlc::default()),
        });
        shutdown.tracker.spawn(connection::run(
            settings,
            jobs_rx,
            connected_tx,
            shutdown.token.clone(),
            stamper.clone(),
            metrics,
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
