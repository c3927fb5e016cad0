//! Why a connection of an SSE stream ended, as a small fixed set of label values: the
//! `sse.reason` of `sse_connector.stream.reconnects`. The status and the logs keep the words
//! (`ClientEvent::Disconnected::error`); a metric label must never carry error text.

/// The credentials for the connection could not be had (a secret file, an OAuth2 token request).
pub const CREDENTIALS: &str = "credentials";
/// The host name did not resolve, or no address accepted a TCP connection.
pub const CONNECT_FAILED: &str = "connect_failed";
/// The proxy could not be reached, or refused the tunnel or its credentials.
pub const PROXY: &str = "proxy";
/// A compressed body could not be decoded, or decoded past the event limit (a compression bomb).
pub const DECODE: &str = "decode";
/// The TLS handshake failed (certificate rejected either way, or another TLS error).
pub const TLS: &str = "tls";
/// No response within the read timeout, or no data for the read timeout on an open stream.
pub const TIMEOUT: &str = "timeout";
/// The server answered 401 or 403.
pub const AUTH: &str = "auth";
/// The server answered another status that is retried (429, 5xx, other 4xx).
pub const HTTP_STATUS: &str = "http_status";
/// The server answered a success that is not an event stream (204, another 2xx, or 200 with
/// another content type): retried with the long backoff.
pub const NOT_SSE: &str = "not_sse";
/// A redirect could not be followed (no or bad Location, https to http, too many).
pub const REDIRECT: &str = "redirect";
/// The server broke HTTP/1.1 framing or sent something else.
pub const PROTOCOL: &str = "protocol";
/// The server closed an open stream.
pub const EOF: &str = "eof";
/// Reading an open stream failed (connection reset, broken chunking).
pub const READ_ERROR: &str = "read_error";

/// Every reason, for the docs and the tests.
pub const ALL: [&str; 13] = [
    CREDENTIALS,
    CONNECT_FAILED,
    PROXY,
    DECODE,
    TLS,
    TIMEOUT,
    AUTH,
    HTTP_STATUS,
    NOT_SSE,
    REDIRECT,
    PROTOCOL,
    EOF,
    READ_ERROR,
];

/// The reason for a failure to open a connection (`HttpError` from connect, send or head).
pub(crate) fn of_open_error(e: &super::http::HttpError) -> &'static str {
    use super::http::HttpError as E;
    match e {
        E::Resolve { .. } | E::Connect(_) => CONNECT_FAILED,
        E::Tls(_) => TLS,
        E::Io(_) => READ_ERROR,
        E::Protocol(_) => PROTOCOL,
        E::Proxy(_) => PROXY,
    }
}
