//! What an event belongs to and the CloudEvents names derived from it: the route kind, the
//! subject, `source` and `type`. Ingest, schema and the publisher all name an event this way, so
//! the rules live here once.

use std::fmt;

mod ids;

pub use ids::{
    RESOURCE_ID_BYTES_MAX, ResourceIds, check_resource_id, check_route_text, ref_id, shown_id,
};

/// The kind of data operation an event is routed to. The wire's "unspecified" value is no kind:
/// [`RouteKind::from_wire`] refuses it, so no service guesses one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// A dataset: every event of its stream.
    Dataset,
    /// An event of an event group: SSE events of one type.
    Event,
    /// A status report of the connector itself (`group` is `device` or `asset`): published as
    /// is and retained, with no schema and no CloudEvents properties.
    Status,
}

/// What an event belongs to (device, endpoint, asset, dataset or event) and where it goes: one
/// shape for every service. `D` is the destination as a service holds it (ingest: always one;
/// the publisher: `Option`, since the wire may leave it out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<D> {
    /// Device resource name.
    pub device: String,
    /// Inbound endpoint name of the device.
    pub endpoint: String,
    /// Asset resource name.
    pub asset: String,
    /// Dataset, event or status report.
    pub kind: RouteKind,
    /// Dataset name or event group name.
    pub group: String,
    /// Event name (events only).
    pub event: String,
    /// Dataset path or event type.
    pub data_source: String,
    /// Optional type reference.
    pub type_ref: String,
    /// Where events go.
    pub destination: D,
    /// The ADR ids of the device and asset, which CloudEvents name them by (all empty: the
    /// names).
    pub ids: ResourceIds,
    /// Where its events go when they fail for good (the asset's `deadLetter`, else the
    /// device's); `None`: they are counted and acknowledged, as without dead letters.
    pub dead_letter: Option<MqttDestination>,
}

impl<D> Route<D> {
    /// The CloudEvents subject ([`subject`]).
    pub fn subject(&self) -> String {
        subject(self.kind, &self.asset, &self.group, &self.event)
    }

    /// [`Route::subject`] into a buffer the caller keeps (once per event, without `format!`).
    pub fn write_subject(&self, out: &mut String) {
        write_subject(self.kind, &self.asset, &self.group, &self.event, out);
    }

    /// Whether an event of this (event) route takes SSE events of `event_type`: the data source
    /// equals the type, also when written with a leading `/`.
    pub fn matches_type(&self, event_type: &str) -> bool {
        self.data_source == event_type || self.data_source.strip_prefix('/') == Some(event_type)
    }
}

/// Why a wire route kind is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindError {
    /// `ROUTE_KIND_UNSPECIFIED` (0): the sender did not say what the event belongs to.
    Unspecified,
    /// A number this version does not know.
    Unknown(i32),
}

impl fmt::Display for KindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unspecified => f.write_str("route kind not set (ROUTE_KIND_UNSPECIFIED)"),
            Self::Unknown(n) => write!(f, "unknown route kind {n}"),
        }
    }
}

impl std::error::Error for KindError {}

impl RouteKind {
    /// The kind of a wire `RouteKind` number (`sseconnector.v1.RouteKind`); the one place that
    /// decides what an unspecified or unknown kind means: refused.
    pub fn from_wire(n: i32) -> Result<Self, KindError> {
        match n {
            0 => Err(KindError::Unspecified),
            1 => Ok(Self::Dataset),
            2 => Ok(Self::Event),
            3 => Ok(Self::Status),
            other => Err(KindError::Unknown(other)),
        }
    }

    /// The wire number of this kind (`sseconnector.v1.RouteKind`).
    pub fn to_wire(self) -> i32 {
        match self {
            Self::Dataset => 1,
            Self::Event => 2,
            Self::Status => 3,
        }
    }

    /// The CloudEvents `type` word of the kind; `None` for a status report, which has none.
    pub fn cloud_event_type(self) -> Option<&'static str> {
        match self {
            Self::Dataset => Some("DataSet"),
            Self::Event => Some("Event"),
            Self::Status => None,
        }
    }
}

/// The MQTT quality of service of a destination: the two levels the connector publishes at.
/// Ingest reads it from resources, the publisher publishes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    /// QoS 0: acked once written to the socket.
    AtMostOnce,
    /// QoS 1: acked on PUBACK (the default).
    AtLeastOnce,
}

/// A wire QoS number this version does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownQos(pub i32);

impl fmt::Display for UnknownQos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown qos {}", self.0)
    }
}

impl std::error::Error for UnknownQos {}

impl Qos {
    /// The QoS of a wire `Qos` number (`sseconnector.v1.Qos`): `QOS_UNSPECIFIED` (0) means QoS
    /// 1, as the proto documents; an unknown number is refused.
    pub fn from_wire(n: i32) -> Result<Self, UnknownQos> {
        match n {
            0 | 2 => Ok(Self::AtLeastOnce),
            1 => Ok(Self::AtMostOnce),
            other => Err(UnknownQos(other)),
        }
    }

    /// The wire number of this QoS (`sseconnector.v1.Qos`).
    pub fn to_wire(self) -> i32 {
        match self {
            Self::AtMostOnce => 1,
            Self::AtLeastOnce => 2,
        }
    }
}

/// Where an event goes: an MQTT topic or a broker state store key. Ingest reads it from
/// resources, the publisher delivers to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An MQTT topic.
    Mqtt(MqttDestination),
    /// A key of the broker state store.
    StateStore {
        /// Key to SET.
        key: String,
    },
}

/// MQTT publish options of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttDestination {
    /// Topic name.
    pub topic: String,
    /// Quality of service.
    pub qos: Qos,
    /// Retain flag.
    pub retain: bool,
    /// Message expiry in seconds (`None`: no expiry).
    pub ttl_seconds: Option<u32>,
}

/// Writes the subject of a route into `out` (cleared first): `<asset>/<dataset>`,
/// `<asset>/<group>/<event>`, or `status/<group>/<asset>` for a status report. A buffer the
/// caller keeps avoids an allocation per event.
pub fn write_subject(kind: RouteKind, asset: &str, group: &str, event: &str, out: &mut String) {
    out.clear();
    let (a, b) = match kind {
        RouteKind::Status => {
            out.push_str("status/");
            (group, asset)
        }
        RouteKind::Dataset | RouteKind::Event => (asset, group),
    };
    out.push_str(a);
    out.push('/');
    out.push_str(b);
    if kind == RouteKind::Event {
        out.push('/');
        out.push_str(event);
    }
}

/// [`write_subject`] into a new string.
pub fn subject(kind: RouteKind, asset: &str, group: &str, event: &str) -> String {
    let mut s = String::new();
    write_subject(kind, asset, group, event, &mut s);
    s
}

/// The subject a schema is registered under: that of a dataset or event with an asset; `None`
/// for a status report or a route without an asset, which get no schema.
pub fn schema_subject(kind: RouteKind, asset: &str, group: &str, event: &str) -> Option<String> {
    has_schema_subject(kind, asset).then(|| subject(kind, asset, group, event))
}

/// Whether events of a route get a schema: datasets and events with an asset do, status reports
/// do not.
pub fn has_schema_subject(kind: RouteKind, asset: &str) -> bool {
    kind != RouteKind::Status && !asset.is_empty()
}

/// CloudEvents `type`: `DataSet` or `Event`, plus `/<typeRef>` when the route has one; `None`
/// for a status report.
pub fn cloud_event_type(kind: RouteKind, type_ref: &str) -> Option<String> {
    let word = kind.cloud_event_type()?;
    Some(if type_ref.is_empty() {
        word.to_string()
    } else {
        [word, "/", type_ref].concat()
    })
}

/// CloudEvents `source`: `ms-aio:<device>` (the device's shown id:
/// [`Route::cloud_event_source`]), plus `/<data source>` when that is a non-empty valid
/// URI reference. The data source's query and fragment are left out: a query may carry a token,
/// and every subscriber reads this property.
pub fn source(device: &str, data_source: &str) -> String {
    let data_source = data_source
        .split_once(['?', '#'])
        .map_or(data_source, |(path, _)| path);
    let path = data_source.trim_start_matches('/');
    if !path.is_empty() && is_uri_reference(data_source) {
        ["ms-aio:", device, "/", path].concat()
    } else {
        ["ms-aio:", device].concat()
    }
}

/// Only RFC 3986 characters (unreserved, reserved, `%` with two hex digits), no spaces.
fn is_uri_reference(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = c.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=".contains(&c);
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests;
