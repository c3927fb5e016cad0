//! Server-sent events: the WHATWG stream parser, the reconnecting client and its HTTP/1.1 transport.

pub mod client;
pub mod ended;
pub mod http;
pub mod parser;
pub mod tokens;

pub use client::{ClientConfig, ClientEvent, HeaderSource, Owner, run};
pub use parser::{Parser, ParserNotice, SseEvent};
pub use tokens::{TokenError, TokenSource, Tokens};
