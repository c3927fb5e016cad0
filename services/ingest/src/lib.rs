//! sse-ingest: reads SSE streams of devices, routes each event to its asset dataset or event,
//! and streams it to the schema service.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod error;
pub mod resources;
pub mod routing;
pub mod sse;

pub use config::Config;
pub use error::Error;
