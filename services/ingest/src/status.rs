//! What ingest is doing, kept current by the readers and the forwarder: per-stream counters and
//! state, per-route (dataset / event) schema reference and delivery error, the resources that
//! cannot be served, and from all of it the Azure Device Registry shaped status of every device
//! and asset (config error with code and message, runtime health Available / Unavailable).
//!
//! [`live`] holds the status as it changes; [`adr`] builds the ADR shaped report from it.

mod adr;
mod bytes;
mod dirty;
mod live;

pub use adr::{
    AssetStatus, ConfigStatus, DeviceStatus, EndpointStatus, Endpoints, EventGroupStatus,
    INVALID_CONFIGURATION, OperationStatus, Report, RuntimeHealth, Scope, StatusError, rfc3339,
};
pub use bytes::BytesRead;
pub use dirty::{Consumer, Dirty};
pub use live::{Changes, RouteStatus, SchemaReference, Status, StreamState, StreamStatus};

#[cfg(test)]
mod tests;
