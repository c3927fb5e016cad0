//! The Azure Device Registry (ADR) base service's MQTT topics (Akri connector protocol,
//! `dtmi:com:microsoft:akri:AdrBaseService;1`): command requests, telemetry both ways, and the
//! rule every topic token must follow, checked before anything is sent.

use std::fmt;

/// Root of the base service's command topics:
/// `<root>/{connectorClientId}/{deviceName}/{inboundEndpointName}/{commandName}`.
pub const COMMAND_ROOT: &str = "akri/connector/resources";

/// Root of the base service's telemetry topics:
/// `<root>/{connectorClientId}/{deviceName}/{inboundEndpointName}/{telemetryName}`.
pub const TELEMETRY_ROOT: &str = "akri/connector/resources/telemetry";

/// The base service's commands (the DTDL names, used as the last topic level).
pub mod command {
    /// Reads a device with the endpoint named in the topic.
    pub const GET_DEVICE: &str = "getDevice";
    /// Reads an asset of the device and endpoint named in the topic.
    pub const GET_ASSET: &str = "getAsset";
    /// Replaces a device's status (its endpoint's entry).
    pub const UPDATE_DEVICE_STATUS: &str = "updateDeviceStatus";
    /// Replaces an asset's status.
    pub const UPDATE_ASSET_STATUS: &str = "updateAssetStatus";
    /// Turns device update notifications on or off.
    pub const SET_DEVICE_NOTIFICATIONS: &str = "setNotificationPreferenceForDeviceUpdates";
    /// Turns asset update notifications on or off.
    pub const SET_ASSET_NOTIFICATIONS: &str = "setNotificationPreferenceForAssetUpdates";
}

/// The base service's notifications to the connector (telemetry names).
pub mod telemetry {
    /// A device definition changed.
    pub const DEVICE_UPDATE: &str = "deviceUpdateEvent";
    /// An asset definition changed.
    pub const ASSET_UPDATE: &str = "assetUpdateEvent";
    /// The connector's runtime health of a device's inbound endpoint (connector to service).
    pub const DEVICE_ENDPOINT_HEALTH: &str = "deviceEndpointRuntimeHealthEvent";
    /// The connector's runtime health of an asset's datasets (connector to service).
    pub const DATASET_HEALTH: &str = "datasetRuntimeHealthEvent";
    /// The connector's runtime health of an asset's events (connector to service).
    pub const EVENT_HEALTH: &str = "eventRuntimeHealthEvent";
}

/// A topic token that breaks the protocol's rule, with which token it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{token} {value:?} cannot be an ADR topic token: {why}")]
pub struct BadToken {
    /// Which token (`connectorClientId`, `deviceName`, ...).
    pub token: &'static str,
    /// The value, shortened to 64 characters.
    pub value: String,
    /// The rule it breaks.
    pub why: &'static str,
}

/// Checks one token value: non-empty printable ASCII (`!` to `~`) without `+`, `#`, `{`, `}`,
/// not starting or ending with `/` and without `//` (the SDK's `is_valid_replacement`).
pub fn check_token(token: &'static str, value: &str) -> Result<(), BadToken> {
    let why = if value.is_empty() {
        Some("it is empty")
    } else if !value.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        Some("only printable ASCII without spaces is allowed")
    } else if value.contains(['+', '#', '{', '}']) {
        Some("it contains +, #, { or }")
    } else if value.starts_with('/') || value.ends_with('/') || value.contains("//") {
        Some("it starts or ends with / or contains //")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(BadToken {
            token,
            value: value.chars().take(64).collect(),
            why,
        }),
    }
}

/// Where a command or telemetry goes: the connector and the device's inbound endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope<'a> {
    /// The connector's own MQTT client id.
    pub client_id: &'a str,
    /// The device.
    pub device: &'a str,
    /// The device's inbound endpoint.
    pub endpoint: &'a str,
}

impl Scope<'_> {
    fn topic(&self, root: &str, name: &'static str) -> Result<String, BadToken> {
        check_token("connectorClientId", self.client_id)?;
        check_token("deviceName", self.device)?;
        check_token("inboundEndpointName", self.endpoint)?;
        Ok(format!(
            "{root}/{}/{}/{}/{name}",
            self.client_id, self.device, self.endpoint
        ))
    }

    /// The request topic of `command` (one of [`command`]).
    pub fn command_topic(&self, command: &'static str) -> Result<String, BadToken> {
        self.topic(COMMAND_ROOT, command)
    }

    /// The topic of telemetry `name` for this device and endpoint.
    pub fn telemetry_topic(&self, name: &'static str) -> Result<String, BadToken> {
        self.topic(TELEMETRY_ROOT, name)
    }
}

/// The filter receiving notification `name` (one of [`telemetry`]) for every device and
/// endpoint of the connector `client_id`.
pub fn notification_filter(client_id: &str, name: &'static str) -> Result<String, BadToken> {
    check_token("connectorClientId", client_id)?;
    Ok(format!("{TELEMETRY_ROOT}/{client_id}/+/+/{name}"))
}

/// The filter of the responses to every command of the connector `client_id`.
pub fn response_filter(client_id: &str) -> Result<String, BadToken> {
    check_token("connectorClientId", client_id)?;
    Ok(super::rpc_response(
        client_id,
        &format!("{COMMAND_ROOT}/{client_id}/+/+/+"),
    ))
}

/// The device, endpoint and telemetry name of a telemetry topic of the connector `client_id`,
/// or None for any other topic.
pub fn parse_telemetry<'t>(client_id: &str, topic: &'t str) -> Option<(&'t str, &'t str, &'t str)> {
    let rest = topic
        .strip_prefix(TELEMETRY_ROOT)?
        .strip_prefix('/')?
        .strip_prefix(client_id)?
        .strip_prefix('/')?;
    let mut levels = rest.split('/');
    let (device, endpoint, name) = (levels.next()?, levels.next()?, levels.next()?);
    levels.next().is_none().then_some((device, endpoint, name))
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.device, self.endpoint)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_thing_model() {
        let s = Scope {
            client_id: "conn-0",
            device: "dev",
            endpoint: "ep_1",
        };
        assert_eq!(
            s.command_topic(command::GET_ASSET).unwrap(),
            "akri/connector/resources/conn-0/dev/ep_1/getAsset"
        );
        assert_eq!(
            s.telemetry_topic(telemetry::DATASET_HEALTH).unwrap(),
            "akri/connector/resources/telemetry/conn-0/dev/ep_1/datasetRuntimeHealthEvent"
        );
        assert_eq!(
            notification_filter("conn-0", telemetry::ASSET_UPDATE).unwrap(),
            "akri/connector/resources/telemetry/conn-0/+/+/assetUpdateEvent"
        );
        assert_eq!(
            response_filter("conn-0").unwrap(),
            "clients/conn-0/akri/connector/resources/conn-0/+/+/+"
        );
        assert_eq!(
            parse_telemetry(
                "conn-0",
                "akri/connector/resources/telemetry/conn-0/d/e/deviceUpdateEvent"
            ),
            Some(("d", "e", "deviceUpdateEvent"))
        );
        assert_eq!(
            parse_telemetry("conn-0", "akri/connector/resources/telemetry/conn-1/d/e/x"),
            None
        );
    }

    #[test]
    fn refuses_bad_tokens() {
        for bad in ["", "a b", "a+b", "a#", "{x}", "/a", "a/", "a//b", "é"] {
            let e = check_token("deviceName", bad).unwrap_err();
            assert_eq!(e.token, "deviceName");
        }
        assert!(check_token("deviceName", "a/b").is_ok());
        let e = Scope {
            client_id: "c",
            device: "d",
            endpoint: "a+",
        }
        .command_topic(command::GET_DEVICE)
        .unwrap_err();
        assert!(e.to_string().contains("inboundEndpointName"), "{e}");
    }
}
