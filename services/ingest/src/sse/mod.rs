//! Server-sent events: the WHATWG stream parser and the reconnecting HTTP client.

pub mod client;
pub mod parser;

pub use client::{ClientConfig, ClientEvent, HeaderSource, run};
pub use parser::{Parser, ParserNotice, SseEvent};
