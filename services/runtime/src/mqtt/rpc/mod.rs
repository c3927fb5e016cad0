//! Azure IoT Operations MQTT 5 RPC (command invoker), protocol version 1.0, for every client of
//! the connector that calls an Azure service over the broker (schema registry, Azure Device
//! Registry): how a request is stamped, how its response is found and read, and how calls are
//! retried. Each service's client only adds its topics and payloads.
//!
//! A request is a QoS 1 publish with Response Topic `clients/<client id>/<request topic>`,
//! 16 random bytes of Correlation Data, payload format indicator 1, content type
//! `application/json`, a Message Expiry of the call timeout (whole seconds, rounded up) and the
//! user properties `__srcId`, `__ts` (hybrid logical clock), `__protVer` `1.0`, `$partition`
//! (the client id) and `$high_priority` (empty), as the SDK's invoker sends them. The answer
//! carries the same correlation data and `__stat` (with `__stMsg`, `__apErr`).
//!
//! Sharing one MQTT session: an [`Invoker`] is a cheap clone around one pending-call table, and
//! calls are told apart by correlation data alone, so every client of a process can call through
//! clones of one invoker; its [`Connection`] subscribes to the union of their response filters
//! and hands every other message (telemetry) to one channel, which a caller may split by topic.

mod connection;
mod invoker;
mod response;

pub use connection::Connection;
pub use invoker::{Invoker, Retry};
pub use response::{Response, RpcError};

/// The Azure IoT Operations RPC protocol version every invoker speaks (`__protVer`).
pub const PROTOCOL_VERSION: &str = "1.0";

/// The content type of every request (the services speak JSON).
pub const CONTENT_TYPE: &str = "application/json";
