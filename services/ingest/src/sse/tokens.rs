//! Credentials a connection gets over the network (OAuth2 access tokens): unlike the header
//! source, which reads files on the blocking pool, getting one is asynchronous I/O, so it runs on
//! the reader's own task; and the source is told when a server refused what it gave.

use std::sync::Arc;

use futures::future::BoxFuture;
use http::HeaderValue;

/// Gives each connection an `Authorization` value and forgets one a server refused.
pub trait TokenSource: Send + Sync {
    /// The `Authorization` value for the next connection: cached, or fetched (concurrent
    /// callers share one fetch). Errors name the problem, never a secret or a token.
    fn authorization(&self) -> BoxFuture<'_, Result<HeaderValue, TokenError>>;

    /// The SSE server answered 401 to `sent`: the next call fetches a fresh value (unless
    /// another caller already replaced it).
    fn refused(&self, sent: &HeaderValue);
}

/// A shared token source, as the client configuration holds it.
pub type Tokens = Arc<dyn TokenSource>;

/// Why no token could be had; the text is shown in the stream's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TokenError {
    /// What went wrong, without secrets (the token endpoint's status and RFC 6749 error).
    pub message: String,
    /// Whether someone must act (a refused client, a bad answer): the long backoff; else
    /// (network, 5xx, timeout) the ordinary backoff.
    pub lasting: bool,
}

impl TokenError {
    /// A problem that needs someone to act.
    pub fn lasting(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            lasting: true,
        }
    }

    /// A problem that may pass by itself.
    pub fn passing(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            lasting: false,
        }
    }
}
