//! The envelopes of the ADR base service's commands and notifications: request wrappers keyed
//! by the DTDL request name, the Result pattern of responses (`<commandName>Error` first), and
//! the service's error.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use sse_contract::topics::adr::command;

use super::{Asset, AssetStatus, Device};

/// A command's DTDL names: the command (last topic level), the key its request is wrapped in
/// (none for a command without a request) and the key of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// The command name.
    pub name: &'static str,
    /// The request's key; `None` sends a zero-byte payload.
    pub request: Option<&'static str>,
    /// The answer's key.
    pub answer: &'static str,
}

impl Command {
    const fn new(name: &'static str, request: Option<&'static str>, answer: &'static str) -> Self {
        Self {
            name,
            request,
            answer,
        }
    }
}

/// `getDevice`: no request, answer `device`.
pub const GET_DEVICE: Command = Command::new(command::GET_DEVICE, None, "device");
/// `getAsset`: `{"assetName": s}`, answer `asset`.
pub const GET_ASSET: Command = Command::new(command::GET_ASSET, Some("assetName"), "asset");
/// `updateDeviceStatus`.
pub const UPDATE_DEVICE_STATUS: Command = Command::new(
    command::UPDATE_DEVICE_STATUS,
    Some("deviceStatusUpdate"),
    "updatedDeviceStatus",
);
/// `updateAssetStatus`.
pub const UPDATE_ASSET_STATUS: Command = Command::new(
    command::UPDATE_ASSET_STATUS,
    Some("assetStatusUpdate"),
    "updatedAssetStatus",
);
/// `setNotificationPreferenceForDeviceUpdates`.
pub const SET_DEVICE_NOTIFICATIONS: Command = Command::new(
    command::SET_DEVICE_NOTIFICATIONS,
    Some("notificationPreferenceRequest"),
    "responsePayload",
);
/// `setNotificationPreferenceForAssetUpdates`.
pub const SET_ASSET_NOTIFICATIONS: Command = Command::new(
    command::SET_ASSET_NOTIFICATIONS,
    Some("notificationPreferenceRequest"),
    "responsePayload",
);

/// The service's error for a command it could not carry out (all three fields required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AkriServiceError {
    /// What kind of failure.
    pub code: AkriErrorCode,
    /// What went wrong.
    pub message: String,
    /// When (RFC 3339).
    pub timestamp: String,
}

/// The kinds of [`AkriServiceError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AkriErrorCode {
    /// The request is wrong (e.g. an unknown asset).
    BadRequest,
    /// Kubernetes refused or failed.
    KubeError,
    /// The service failed.
    InternalError,
    /// The service could not read or write a payload.
    SerializationError,
    /// The connector may not do this.
    Unauthorized,
}

impl fmt::Display for AkriServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// On or off, for notification preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationPreference {
    /// Send update notifications.
    On,
    /// Stop sending them.
    Off,
}

/// `updateAssetStatus`'s inner request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetStatusUpdate<'a> {
    /// Which asset.
    pub asset_name: &'a str,
    /// Its whole new status.
    pub asset_status: &'a AssetStatus,
}

/// `setNotificationPreferenceForAssetUpdates`'s inner request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetNotificationPreference<'a> {
    /// Which asset.
    pub asset_name: &'a str,
    /// On or off.
    pub notification_preference: NotificationPreference,
}

/// A request payload: `value` wrapped in an object under the DTDL request name `key`.
pub fn wrap(key: &str, value: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let mut map = Map::new();
    map.insert(key.to_string(), serde_json::to_value(value)?);
    serde_json::to_vec(&Value::Object(map))
}

/// Why a response payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// Reads a response payload of `command`: the service's error (field `<command>Error`) when
/// present, which takes priority as in the generated client, else the field `key`.
pub fn unwrap<T: DeserializeOwned>(
    command: &str,
    key: &str,
    payload: &[u8],
) -> Result<Result<T, AkriServiceError>, Unreadable> {
    let mut map: Map<String, Value> = serde_json::from_slice(payload)
        .map_err(|e| Unreadable(format!("{command} answer is not a JSON object: {e}")))?;
    if let Some(err) = map.remove(&format!("{command}Error")) {
        return serde_json::from_value(err)
            .map(Err)
            .map_err(|e| Unreadable(format!("{command}Error is not an AkriServiceError: {e}")));
    }
    let value = map
        .remove(key)
        .ok_or_else(|| Unreadable(format!("{command} answer has neither {key} nor an error")))?;
    serde_json::from_value(value)
        .map(Ok)
        .map_err(|e| Unreadable(format!("{command} answer's {key}: {e}")))
}

/// `deviceUpdateEvent`'s payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceUpdateEvent {
    /// The device.
    pub device_name: String,
    /// Its new definition.
    pub device: Device,
}

/// `assetUpdateEvent`'s payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetUpdateEvent {
    /// The asset.
    pub asset_name: String,
    /// Its new definition.
    pub asset: Asset,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_field_has_priority() {
        let both = br#"{"asset":{"deviceRef":{"deviceName":"d","endpointName":"e"}},
            "getAssetError":{"code":"BadRequest","message":"no such asset","timestamp":"2026-01-01T00:00:00Z"}}"#;
        let r: Result<Asset, _> = unwrap("getAsset", "asset", both).unwrap();
        let e = r.unwrap_err();
        assert_eq!(e.code, AkriErrorCode::BadRequest);
        assert_eq!(e.message, "no such asset");
        let ok = br#"{"asset":{"deviceRef":{"deviceName":"d","endpointName":"e"}}}"#;
        let a: Asset = unwrap("getAsset", "asset", ok).unwrap().unwrap();
        assert_eq!(a.device_ref.endpoint_name, "e");
        assert!(unwrap::<Asset>("getAsset", "asset", b"{}").is_err());
        assert!(unwrap::<Asset>("getAsset", "asset", b"[1]").is_err());
    }

    #[test]
    fn absent_optionals_are_omitted() {
        let status = AssetStatus::default();
        let req = AssetStatusUpdate {
            asset_name: "a",
            asset_status: &status,
        };
        assert_eq!(
            String::from_utf8(wrap("assetStatusUpdate", &req).unwrap()).unwrap(),
            r#"{"assetStatusUpdate":{"assetName":"a","assetStatus":{}}}"#
        );
    }
}
