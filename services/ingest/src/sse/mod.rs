//! Server-sent events: the WHATWG stream parser, the reconnecting client and its HTTP/1.1 transport.

pub mod client;
pub mod decode;
pub mod ended;
pub mod http;
pub mod parser;
pub mod proxy;
pub mod request;
pub mod tokens;

pub use client::{ClientConfig, ClientEvent, HeaderSource, Owner, run};
pub use parser::{Parser, ParserNotice, SseEvent};
pub use proxy::ProxyConfig;
pub use request::RequestSpec;
pub use tokens::{TokenError, TokenSource, Tokens};
