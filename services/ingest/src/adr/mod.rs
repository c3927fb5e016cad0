//! The Azure Device Registry (ADR) base service over MQTT 5 RPC (issue #26): a client for its
//! commands (`getDevice`, `getAsset`, status updates, notification preferences) and its update
//! notifications, with the Device, Asset and status models exactly as the service's DTDL
//! (`dtmi:com:microsoft:akri:AdrBaseService;1`) defines them.
//!
//! The ADR resource source ([`crate::adr_source`]) reads definitions and follows notifications
//! with it; [`crate::adr_status`] reports status and runtime health with the same client.

/// Defines a DTDL object as a serde struct with the wire's conventions: camelCase names, the
/// required fields (before `;`) as they are, the optional ones (after it) as `Option`s that
/// read as `None` when absent and are omitted when `None`; unknown fields are ignored.
macro_rules! dtdl_object {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[doc = $rdoc:literal])* $req:ident : $rty:ty, )*
            ;
            $( $(#[doc = $odoc:literal])* $opt:ident : $oty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $( $(#[doc = $rdoc])* pub $req: $rty, )*
            $(
                $(#[doc = $odoc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $opt: Option<$oty>,
            )*
        }
    };
}

mod asset;
mod client;
pub mod from_status;
pub mod health;
mod health_event;
mod model;
mod status;
pub mod wire;

use rumqttc::v5::mqttbytes::v5::Publish;
use sse_contract::topics::adr::{parse_telemetry, telemetry};

pub use asset::*;
pub use client::{
    AdrClient, AdrError, AdrSettings, NOTIFICATION_QUEUE_DEFAULT, RETRY_INITIAL_DEFAULT,
    TIMEOUT_DEFAULT, UPDATE_ATTEMPTS_DEFAULT, client_settings,
};
pub use health_event::HealthEvent;
pub use model::*;
pub use status::*;
pub use wire::{AkriErrorCode, AkriServiceError, NotificationPreference};

/// An update notification of the service: a definition changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `deviceUpdateEvent`: the device and endpoint come from the topic.
    Device {
        /// The device (topic level).
        device_name: String,
        /// The inbound endpoint (topic level).
        endpoint_name: String,
        /// The new definition.
        device: Box<Device>,
    },
    /// `assetUpdateEvent`: the device and endpoint come from the topic, the asset's name from
    /// the payload.
    Asset {
        /// The device (topic level).
        device_name: String,
        /// The inbound endpoint (topic level).
        endpoint_name: String,
        /// The asset (payload).
        asset_name: String,
        /// The new definition.
        asset: Box<Asset>,
    },
}

impl Notification {
    /// Reads a telemetry message of the connector `client_id`: topic and payload
    /// (`{"<telemetryName>": {...}}`).
    pub fn read(client_id: &str, p: &Publish) -> Result<Self, String> {
        let topic = std::str::from_utf8(&p.topic).map_err(|_| "topic is not UTF-8".to_string())?;
        let (device, endpoint, name) = parse_telemetry(client_id, topic)
            .ok_or_else(|| format!("{topic:?} is not an ADR telemetry topic of {client_id}"))?;
        let (device_name, endpoint_name) = (device.to_string(), endpoint.to_string());
        match name {
            telemetry::DEVICE_UPDATE => {
                let e: wire::DeviceUpdateEvent = unwrap_event(name, &p.payload)?;
                Ok(Notification::Device {
                    device_name,
                    endpoint_name,
                    device: Box::new(e.device),
                })
            }
            telemetry::ASSET_UPDATE => {
                let e: wire::AssetUpdateEvent = unwrap_event(name, &p.payload)?;
                Ok(Notification::Asset {
                    device_name,
                    endpoint_name,
                    asset_name: e.asset_name,
                    asset: Box::new(e.asset),
                })
            }
            other => Err(format!("unknown ADR telemetry {other:?}")),
        }
    }
}

/// The payload of telemetry `name`: the object under the key `name`.
fn unwrap_event<T: serde::de::DeserializeOwned>(name: &str, payload: &[u8]) -> Result<T, String> {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).map_err(|e| format!("{name}: {e}"))?;
    let inner = map
        .remove(name)
        .ok_or_else(|| format!("{name}: no {name} key"))?;
    serde_json::from_value(inner).map_err(|e| format!("{name}: {e}"))
}
