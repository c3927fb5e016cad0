//! The wire contract of sse-connector in plain Rust (no tonic, no I/O): the rules every service
//! and every broker client must agree on, defined once so that they cannot drift apart.

pub mod access;
pub mod akri;
pub mod batch;
pub mod clock;
pub mod dataschema;
pub mod dead_letter;
pub mod drops;
pub mod limits;
pub mod metrics;
pub mod mqtt_text;
pub mod publish_drops;
pub mod resources;
pub mod route;
pub mod topics;
