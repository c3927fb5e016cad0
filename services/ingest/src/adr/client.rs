//! The ADR base-service client: typed commands over the connector's RPC invoker, and the update
//! notifications as a channel.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Publish;
use serde::de::DeserializeOwned;
use sse_contract::limits::MQTT_ADR_PACKET_BYTES_MAX;
use sse_contract::topics::adr::{self, BadToken, Scope, telemetry};
use sse_runtime::Shutdown;
use sse_runtime::mqtt::rpc::{Invoker, Response, Retry, RpcError};
use sse_runtime::mqtt::{Broker, ClientSettings};
use tokio::sync::mpsc;

use super::wire::{self, AkriServiceError, NotificationPreference};
use super::{Asset, AssetStatus, Device, DeviceStatus, HealthEvent, Notification};

/// Default wait for one answer (the Rust connector's ADR timeout).
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// Default attempts of a status update, counting the first (reads retry until shutdown).
pub const UPDATE_ATTEMPTS_DEFAULT: u32 = 5;
/// Default delay before the first retry, then doubling with jitter (the SDK's 500 ms).
pub const RETRY_INITIAL_DEFAULT: Duration = Duration::from_millis(500);
/// Default number of notifications queued for the caller before new ones are dropped: each
/// holds a definition of up to `MQTT_ADR_PACKET_BYTES_MAX`, so this bounds their memory.
pub const NOTIFICATION_QUEUE_DEFAULT: usize = 64;
/// Raw notifications between the connection and their decoder (drained at once).
const RAW_NOTIFICATION_QUEUE: usize = 8;

/// How to reach ADR's broker and how patient to be.
#[derive(Debug, Clone)]
pub struct AdrSettings {
    /// The broker and this client's session (see [`client_settings`]); its client id is the
    /// `{connectorClientId}` of every topic, so it must be the connector's id ADR knows.
    pub client: ClientSettings,
    /// How long one call waits for its answer.
    pub timeout: Duration,
    /// Attempts of a status update, counting the first.
    pub update_attempts: u32,
    /// Delay before the first retry.
    pub retry_initial: Duration,
    /// Notifications queued for the caller.
    pub notification_queue: usize,
}

impl AdrSettings {
    /// The defaults above, for `client`.
    pub fn new(client: ClientSettings) -> Self {
        Self {
            client,
            timeout: TIMEOUT_DEFAULT,
            update_attempts: UPDATE_ATTEMPTS_DEFAULT,
            retry_initial: RETRY_INITIAL_DEFAULT,
            notification_queue: NOTIFICATION_QUEUE_DEFAULT,
        }
    }
}

/// The ADR client's connection settings: incoming packets up to `MQTT_ADR_PACKET_BYTES_MAX`
/// (an answer or notification carries a definition), announced to the broker.
pub fn client_settings(broker: Broker, client_id: String) -> ClientSettings {
    ClientSettings::new(broker, client_id, MQTT_ADR_PACKET_BYTES_MAX)
}

/// Why an ADR call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdrError {
    /// A name cannot be a topic token; nothing was sent.
    #[error(transparent)]
    BadToken(#[from] BadToken),
    /// The service answered with its error (`<command>Error`).
    #[error("ADR refused {command}: {error}")]
    Service {
        /// The command.
        command: &'static str,
        /// The service's error.
        error: AkriServiceError,
    },
    /// No usable answer: the protocol failed, or retries ran out, or shutdown.
    #[error("ADR {command}: {source}")]
    Rpc {
        /// The command.
        command: &'static str,
        /// Why.
        source: RpcError,
    },
    /// The request could not be encoded.
    #[error("cannot encode the ADR {command} request: {message}")]
    Encode {
        /// The command.
        command: &'static str,
        /// Why.
        message: String,
    },
}

/// The client of the ADR base service for one connector (its MQTT client id).
#[derive(Debug, Clone)]
pub struct AdrClient {
    rpc: Invoker,
    reads: Retry,
    updates: Retry,
}

impl AdrClient {
    /// Connects (in the background, under `shutdown`), subscribed to the command responses and
    /// the device and asset update notifications, which arrive on the returned channel.
    pub fn start(
        settings: &AdrSettings,
        shutdown: &Shutdown,
    ) -> Result<(Self, mpsc::Receiver<Notification>), AdrError> {
        let id = settings.client.client_id.clone();
        let notifications = vec![
            adr::notification_filter(&id, telemetry::DEVICE_UPDATE)?,
            adr::notification_filter(&id, telemetry::ASSET_UPDATE)?,
        ];
        let (raw_tx, raw_rx) = mpsc::channel(RAW_NOTIFICATION_QUEUE);
        let (tx, rx) = mpsc::channel(settings.notification_queue.max(1));
        let rpc = Invoker::start(
            settings.client.clone(),
            "the device registry's broker",
            settings.timeout,
            vec![adr::response_filter(&id)?],
            Some((notifications, raw_tx)),
            shutdown,
        );
        shutdown
            .tracker
            .spawn(forward_notifications(id, raw_rx, tx));
        let client = Self {
            rpc,
            reads: Retry::until_shutdown(settings.retry_initial),
            updates: Retry::bounded(settings.update_attempts, settings.retry_initial),
        };
        Ok((client, rx))
    }

    /// Where a command for `device`'s `endpoint` goes.
    fn scope<'a>(&'a self, device: &'a str, endpoint: &'a str) -> Scope<'a> {
        Scope {
            client_id: self.rpc.client_id(),
            device,
            endpoint,
        }
    }

    /// Calls `command` for `device`'s `endpoint` with `request` (wrapped in the command's
    /// request key), reading the answer's key.
    async fn call<T: DeserializeOwned>(
        &self,
        (device, endpoint): (&str, &str),
        command: &wire::Command,
        request: Option<&dyn erased::Request>,
        retry: &Retry,
    ) -> Result<T, AdrError> {
        let name = command.name;
        let topic = self.scope(device, endpoint).command_topic(name)?;
        let payload = match (command.request, request) {
            (Some(key), Some(value)) => value.wrap(key),
            _ => Ok(Vec::new()),
        }
        .map_err(|e| AdrError::Encode {
            command: name,
            message: e.to_string(),
        })?;
        let read = |r: Response| {
            let payload = r.into_payload()?;
            wire::unwrap::<T>(name, command.answer, &payload).map_err(RpcError::unreadable)
        };
        match self.rpc.call(&topic, &payload, retry, read).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(error)) => Err(AdrError::Service {
                command: name,
                error,
            }),
            Err(source) => Err(AdrError::Rpc {
                command: name,
                source,
            }),
        }
    }

    /// The device `device` with its inbound endpoint `endpoint` (retried until shutdown).
    pub async fn get_device(&self, device: &str, endpoint: &str) -> Result<Device, AdrError> {
        let at = (device, endpoint);
        self.call(at, &wire::GET_DEVICE, None, &self.reads).await
    }

    /// The asset `asset` of `device`'s `endpoint` (retried until shutdown).
    pub async fn get_asset(
        &self,
        device: &str,
        endpoint: &str,
        asset: &str,
    ) -> Result<Asset, AdrError> {
        let at = (device, endpoint);
        self.call(at, &wire::GET_ASSET, Some(&asset), &self.reads)
            .await
    }

    /// Replaces the status of `device` (its `endpoint`'s entry); the service's stored status.
    pub async fn update_device_status(
        &self,
        device: &str,
        endpoint: &str,
        status: &DeviceStatus,
    ) -> Result<DeviceStatus, AdrError> {
        let at = (device, endpoint);
        self.call(at, &wire::UPDATE_DEVICE_STATUS, Some(status), &self.updates)
            .await
    }

    /// Replaces the status of `asset` on `device`'s `endpoint`; the service's stored status.
    pub async fn update_asset_status(
        &self,
        device: &str,
        endpoint: &str,
        asset: &str,
        status: &AssetStatus,
    ) -> Result<AssetStatus, AdrError> {
        let update = wire::AssetStatusUpdate {
            asset_name: asset,
            asset_status: status,
        };
        let at = (device, endpoint);
        self.call(at, &wire::UPDATE_ASSET_STATUS, Some(&update), &self.updates)
            .await
    }

    /// Turns `device` update notifications on or off; the service's `responsePayload`.
    pub async fn set_device_notifications(
        &self,
        device: &str,
        endpoint: &str,
        preference: NotificationPreference,
    ) -> Result<String, AdrError> {
        let at = (device, endpoint);
        let c = &wire::SET_DEVICE_NOTIFICATIONS;
        self.call(at, c, Some(&preference), &self.updates).await
    }

    /// Turns `asset` update notifications on or off; the service's `responsePayload`.
    pub async fn set_asset_notifications(
        &self,
        device: &str,
        endpoint: &str,
        asset: &str,
        preference: NotificationPreference,
    ) -> Result<String, AdrError> {
        let request = wire::AssetNotificationPreference {
            asset_name: asset,
            notification_preference: preference,
        };
        let at = (device, endpoint);
        let c = &wire::SET_ASSET_NOTIFICATIONS;
        self.call(at, c, Some(&request), &self.updates).await
    }
}

impl AdrClient {
    /// Sends `event` as telemetry for `device`'s `endpoint` (fire and forget, QoS 1): the
    /// runtime health the service ages to Unknown when it stops coming.
    pub async fn send_health(
        &self,
        device: &str,
        endpoint: &str,
        event: &HealthEvent,
    ) -> Result<(), AdrError> {
        let command = event.name();
        let topic = self.scope(device, endpoint).telemetry_topic(command)?;
        let payload = event.payload().map_err(|e| AdrError::Encode {
            command,
            message: e.to_string(),
        })?;
        (self.rpc.send_telemetry(&topic, payload).await)
            .map_err(|source| AdrError::Rpc { command, source })
    }
}

/// A request value of any type, wrapped under its command's key (object-safe, so one `call`
/// serves every command).
mod erased {
    /// Something a request can carry.
    pub trait Request: Send + Sync {
        /// `{key: self}` as JSON.
        fn wrap(&self, key: &str) -> Result<Vec<u8>, serde_json::Error>;
    }

    impl<T: serde::Serialize + Send + Sync> Request for T {
        fn wrap(&self, key: &str) -> Result<Vec<u8>, serde_json::Error> {
            super::wire::wrap(key, self)
        }
    }
}

/// Reads each notification the connection received; an unreadable one is logged and dropped,
/// and a full queue drops the newest (the caller re-reads definitions on its own schedule).
async fn forward_notifications(
    client_id: String,
    mut raw: mpsc::Receiver<Publish>,
    out: mpsc::Sender<Notification>,
) {
    while let Some(p) = raw.recv().await {
        match Notification::read(&client_id, &p) {
            Ok(n) => {
                if out.try_send(n).is_err() {
                    tracing::warn!("ADR notification queue full or closed; notification dropped");
                }
            }
            Err(e) => tracing::warn!(error = %e, "unreadable ADR notification dropped"),
        }
    }
}
