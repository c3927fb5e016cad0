//! The Akri operator's deployment contract, read by the ADR resource source (issue #26): which
//! device endpoints and assets this connector is allocated ([`allocations`]), the connector's
//! id and where the allocations are mounted ([`contract`]), and the SDKs' other layouts of the
//! device credential and trust bundle mounts ([`mounts`]).
//! Definitions of the allocated resources come from Azure Device Registry over MQTT RPC, not
//! from these files.

pub mod allocations;
pub mod contract;
pub mod mounts;
