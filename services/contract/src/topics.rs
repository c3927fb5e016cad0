//! The MQTT topics the connector owns, and who may publish where: defined once so that the
//! publisher (routes and `PublishMessage`), ingest's resource validator and the docs cannot drift
//! apart. A route or admin call that could write to these topics could forge status, plant a
//! checkpoint (ingest would then send `Last-Event-ID: <anything>`), drive the state store or the
//! schema registry, or answer the connector's own requests.
//!
//! Topics match level by level, as MQTT does: `sse-connector/status` owns
//! `sse-connector/status` and everything under `sse-connector/status/`, not
//! `sse-connector/statusx`. Matching is case-sensitive, like MQTT's.

use std::fmt;

use crate::mqtt_text::Unfit;

pub mod adr;

/// The connector's own namespace: everything under it is reserved for the connector.
pub const ROOT: &str = "sse-connector";

/// Default prefix of the retained status reports (`<prefix>/device/<name>`,
/// `<prefix>/asset/<name>`); only a status route may publish under it.
pub const STATUS_PREFIX: &str = "sse-connector/status";

/// Default prefix of the retained checkpoints ingest writes and reads back at start.
pub const CHECKPOINT_PREFIX: &str = "sse-connector/checkpoint";

/// Suggested root of ingest's discovery topic (`--discovery-topic`, off by default): the
/// discovered event types of each endpoint as retained JSON, `<prefix>/<device>/<endpoint>`.
/// Only ingest's own reports (route kind `STATUS`) may publish under it.
pub const DISCOVERY_PREFIX: &str = "sse-connector/discovery";

/// The dead-letter namespace: every dead-letter topic a Device or Asset configures is under it
/// (`sse_contract::dead_letter::check_topic`), and only the publisher's dead letters write there.
pub const DEAD_LETTER_PREFIX: &str = "sse-connector/dead-letter";

/// The Azure IoT Operations state store's topic tree (protocol v1, the store's fixed id).
pub const STATE_STORE_PREFIX: &str = "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8";

/// The state store's request topic: RESP3 commands as MQTT RPC requests.
pub const STATE_STORE_REQUEST: &str =
    "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke";

/// The Azure IoT Operations schema registry's command topics (`<prefix>/put`, `<prefix>/get`).
pub const SCHEMA_REGISTRY_PREFIX: &str = "adr/dtmi:ms:adr:SchemaRegistry;2";

/// The schema registry's PUT command topic.
pub const SCHEMA_REGISTRY_PUT: &str = "adr/dtmi:ms:adr:SchemaRegistry;2/put";

/// The schema registry's GET command topic.
pub const SCHEMA_REGISTRY_GET: &str = "adr/dtmi:ms:adr:SchemaRegistry;2/get";

/// First level of every MQTT RPC response topic (`clients/<client id>/<request topic>`, the
/// Azure IoT Operations SDK's default pattern).
pub const RPC_RESPONSE_ROOT: &str = "clients";

/// The largest MQTT topic name, in bytes (a two-byte length prefix).
pub const TOPIC_BYTES_MAX: usize = crate::mqtt_text::STRING_BYTES_MAX;

/// The response topic a client `client_id` names in a request on `request_topic`
/// (`clients/<client id>/<request topic>`).
pub fn rpc_response(client_id: &str, request_topic: &str) -> String {
    format!("{RPC_RESPONSE_ROOT}/{client_id}/{request_topic}")
}

/// The response topic a client `client_id` asks the state store to answer on.
pub fn state_store_response(client_id: &str) -> String {
    rpc_response(client_id, &format!("{STATE_STORE_REQUEST}/response"))
}

/// A rule of the owned-topic list: which part of the topic space a topic falls in. Its
/// `Display` names the rule and who may write there, for refusals and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnedTopic {
    /// `$`-topics (`$SYS/...`, `$share/...`, ...): the broker's own.
    Broker,
    /// The status reports under [`STATUS_PREFIX`].
    Status,
    /// The checkpoints under [`CHECKPOINT_PREFIX`].
    Checkpoint,
    /// The discovery reports under [`DISCOVERY_PREFIX`].
    Discovery,
    /// The dead letters under [`DEAD_LETTER_PREFIX`].
    DeadLetter,
    /// The rest of the connector's namespace [`ROOT`].
    Connector,
    /// The state store's requests under [`STATE_STORE_PREFIX`].
    StateStoreRequest,
    /// The state store's responses and notifications (`clients/.../statestore/...`).
    StateStoreResponse,
    /// The schema registry's requests under [`SCHEMA_REGISTRY_PREFIX`].
    RegistryRequest,
    /// The schema registry's responses (`clients/<client id>/adr/...SchemaRegistry;2/...`).
    RegistryResponse,
    /// Azure Device Registry's requests and notifications under [`adr::COMMAND_ROOT`].
    AdrRequest,
    /// Azure Device Registry's answers (`clients/<client id>/akri/connector/resources/...`).
    AdrResponse,
}

impl OwnedTopic {
    /// Every rule, for documentation and exhaustive tests.
    pub const ALL: [OwnedTopic; 12] = [
        OwnedTopic::Broker,
        OwnedTopic::Status,
        OwnedTopic::Checkpoint,
        OwnedTopic::Discovery,
        OwnedTopic::DeadLetter,
        OwnedTopic::Connector,
        OwnedTopic::StateStoreRequest,
        OwnedTopic::StateStoreResponse,
        OwnedTopic::RegistryRequest,
        OwnedTopic::RegistryResponse,
        OwnedTopic::AdrRequest,
        OwnedTopic::AdrResponse,
    ];

    /// A topic under this rule, for documentation and tests that try each rule.
    pub fn example(self) -> &'static str {
        match self {
            OwnedTopic::Broker => "$SYS/broker/uptime",
            OwnedTopic::Status => "sse-connector/status/asset/forged",
            OwnedTopic::Checkpoint => "sse-connector/checkpoint/0123456789abcdef",
            OwnedTopic::Discovery => "sse-connector/discovery/device/forged",
            OwnedTopic::DeadLetter => "sse-connector/dead-letter/asset/dataset",
            OwnedTopic::Connector => "sse-connector/anything",
            OwnedTopic::StateStoreRequest => STATE_STORE_REQUEST,
            OwnedTopic::StateStoreResponse => {
                "clients/sse-publisher/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response"
            }
            OwnedTopic::RegistryRequest => SCHEMA_REGISTRY_PUT,
            OwnedTopic::RegistryResponse => {
                "clients/sse-schema/adr/dtmi:ms:adr:SchemaRegistry;2/put"
            }
            OwnedTopic::AdrRequest => "akri/connector/resources/sse-connector/press/sse/getDevice",
            OwnedTopic::AdrResponse => {
                "clients/sse-connector/akri/connector/resources/sse-connector/press/sse/getDevice"
            }
        }
    }
}

impl fmt::Display for OwnedTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rule = match self {
            OwnedTopic::Broker => "$-topics ($SYS/#, $share/...) belong to the broker",
            OwnedTopic::Status => {
                "sse-connector/status/# takes only the connector's own status reports"
            }
            OwnedTopic::Checkpoint => {
                "sse-connector/checkpoint/# is written only by ingest's checkpoint store"
            }
            OwnedTopic::Discovery => {
                "sse-connector/discovery/# is written only by the connector's discovery"
            }
            OwnedTopic::DeadLetter => {
                "sse-connector/dead-letter/# is written only by the connector's dead-letter queue"
            }
            OwnedTopic::Connector => "sse-connector/# is reserved for the connector",
            OwnedTopic::StateStoreRequest => {
                "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/# takes only the state store requests of ingest's routes"
            }
            OwnedTopic::StateStoreResponse => {
                "clients/+/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/# carries only the state store's answers"
            }
            OwnedTopic::RegistryRequest => {
                "adr/dtmi:ms:adr:SchemaRegistry;2/# is written only by the schema service's registry client"
            }
            OwnedTopic::RegistryResponse => {
                "clients/+/adr/dtmi:ms:adr:SchemaRegistry;2/# carries only the schema registry's answers"
            }
            OwnedTopic::AdrRequest => {
                "akri/connector/resources/# carries only Azure Device Registry's calls and notifications"
            }
            OwnedTopic::AdrResponse => {
                "clients/+/akri/connector/resources/# carries only Azure Device Registry's answers"
            }
        };
        f.write_str(rule)
    }
}

/// Whether `topic` is `prefix` or a topic under it, level by level.
fn under(topic: &str, prefix: &str) -> bool {
    topic
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Whether `topic` is a response or notification topic of `request_prefix`: `clients/<client
/// id>/<request_prefix>/...`, or `clients/<request_prefix>/...` (the state store's
/// notifications).
fn response_of(topic: &str, request_prefix: &str) -> bool {
    let Some(rest) = topic
        .strip_prefix(RPC_RESPONSE_ROOT)
        .and_then(|r| r.strip_prefix('/'))
    else {
        return false;
    };
    under(rest, request_prefix)
        || rest
            .split_once('/')
            .is_some_and(|(_, tail)| under(tail, request_prefix))
}

/// The rule of the owned-topic list `topic` falls under, or None for a topic anyone may use.
pub fn owned(topic: &str) -> Option<OwnedTopic> {
    if topic.starts_with('$') {
        return Some(OwnedTopic::Broker);
    }
    if under(topic, ROOT) {
        return Some(
            [
                (STATUS_PREFIX, OwnedTopic::Status),
                (CHECKPOINT_PREFIX, OwnedTopic::Checkpoint),
                (DISCOVERY_PREFIX, OwnedTopic::Discovery),
                (DEAD_LETTER_PREFIX, OwnedTopic::DeadLetter),
            ]
            .into_iter()
            .find(|(prefix, _)| under(topic, prefix))
            .map_or(OwnedTopic::Connector, |(_, rule)| rule),
        );
    }
    if under(topic, STATE_STORE_PREFIX) {
        return Some(OwnedTopic::StateStoreRequest);
    }
    if under(topic, SCHEMA_REGISTRY_PREFIX) {
        return Some(OwnedTopic::RegistryRequest);
    }
    if response_of(topic, STATE_STORE_PREFIX) {
        return Some(OwnedTopic::StateStoreResponse);
    }
    if response_of(topic, SCHEMA_REGISTRY_PREFIX) {
        return Some(OwnedTopic::RegistryResponse);
    }
    if under(topic, adr::COMMAND_ROOT) {
        return Some(OwnedTopic::AdrRequest);
    }
    if response_of(topic, adr::COMMAND_ROOT) {
        return Some(OwnedTopic::AdrResponse);
    }
    None
}

/// Who asks to publish: decides which owned topics, and whether the state store, it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Ingest's status reporter and discovery topic (route kind `STATUS`): the status and
    /// discovery topics, and the rest of the connector's namespace (a `--status-topic` under [`ROOT`]), besides any topic not owned.
    StatusReport,
    /// A dataset or event route of ingest (from the Device and Asset resources): topics not
    /// owned, and the state store.
    Route,
    /// An admin call (`PublishMessage`): topics not owned only.
    Admin,
    /// The publisher sending an event that failed for good to its route's dead-letter topic:
    /// the dead-letter namespace only ([`DEAD_LETTER_PREFIX`]).
    DeadLetter,
}

impl Writer {
    /// Whether this writer may publish under `rule`.
    pub fn may_write(self, rule: OwnedTopic) -> bool {
        match self {
            Writer::StatusReport => matches!(
                rule,
                OwnedTopic::Status | OwnedTopic::Discovery | OwnedTopic::Connector
            ),
            Writer::DeadLetter => rule == OwnedTopic::DeadLetter,
            Writer::Route | Writer::Admin => false,
        }
    }
}

/// Why a destination is refused. `Display` names the rule that refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The topic is empty.
    #[error("MQTT topic is empty")]
    Empty,
    /// The topic has an MQTT wildcard: a topic name to publish to cannot.
    #[error("MQTT topic contains a wildcard (+ or #)")]
    Wildcard,
    /// The topic is longer than [`TOPIC_BYTES_MAX`] bytes, or holds a character MQTT forbids or
    /// lets a broker refuse (a broker closes the connection on it): sse-contract's `mqtt_text`.
    #[error("MQTT topic {0}")]
    Unfit(Unfit),
    /// The topic is owned by the connector (or the broker) and this writer may not use it.
    #[error("topic owned by the connector: {0}")]
    Owned(OwnedTopic),
    /// Only ingest's routes write to the state store.
    #[error("only ingest's routes write to the state store")]
    StateStore,
}

impl Refusal {
    /// Whether the destination is well-formed but not allowed to this writer (gRPC
    /// `PERMISSION_DENIED`), rather than malformed (`INVALID_ARGUMENT`).
    pub fn is_permission(self) -> bool {
        matches!(self, Refusal::Owned(_) | Refusal::StateStore)
    }
}

/// Checks that `topic` is an MQTT topic name to publish to (non-empty, no wildcard, no character
/// brokers refuse, at most [`TOPIC_BYTES_MAX`] bytes), whoever publishes.
pub fn check_name(topic: &str) -> Result<(), Refusal> {
    if topic.is_empty() {
        return Err(Refusal::Empty);
    }
    if topic.contains(['+', '#']) {
        return Err(Refusal::Wildcard);
    }
    crate::mqtt_text::check(topic).map_err(Refusal::Unfit)
}

/// Whether `name` can be one level of a topic name (a resource name in a status topic): non-empty,
/// with no wildcard, no level separator and no character brokers refuse.
pub fn is_level(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['+', '#', '/'])
        && !name.contains(crate::mqtt_text::is_forbidden)
}

/// Checks that `writer` may publish to `topic`: a valid topic name, and not owned unless the
/// rule lets this writer in.
pub fn check_destination(topic: &str, writer: Writer) -> Result<(), Refusal> {
    check_name(topic)?;
    match owned(topic) {
        Some(rule) if !writer.may_write(rule) => Err(Refusal::Owned(rule)),
        _ => Ok(()),
    }
}

/// Checks a topic prefix configured for the connector's own `rule` (`--status-topic` for
/// [`OwnedTopic::Status`], `--checkpoint-topic` for [`OwnedTopic::Checkpoint`]): a valid topic
/// name that falls under no other owned rule, so the connector's own topics cannot collide. A
/// prefix outside [`ROOT`] is accepted, but only [`ROOT`] is protected from routes and admin calls.
pub fn check_own_prefix(prefix: &str, rule: OwnedTopic) -> Result<(), Refusal> {
    check_name(prefix)?;
    match owned(prefix) {
        Some(other) if other != rule && other != OwnedTopic::Connector => {
            Err(Refusal::Owned(other))
        }
        _ => Ok(()),
    }
}

/// Checks that `writer` may write to the state store: only ingest's routes may.
pub fn check_state_store(writer: Writer) -> Result<(), Refusal> {
    match writer {
        Writer::Route => Ok(()),
        Writer::StatusReport | Writer::Admin | Writer::DeadLetter => Err(Refusal::StateStore),
    }
}

#[cfg(test)]
mod tests;
