//! The Akri operator's deployment contract, read by the ADR resource source (issue #26): which
//! device endpoints and assets this connector is allocated ([`allocations`]), the connector's
//! id and where the allocations are mounted ([`contract`]).
//! Definitions of the allocated resources come from Azure Device Registry over MQTT RPC, not
//! from these files.

pub mod allocations;
pub mod contract;
