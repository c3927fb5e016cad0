//! Reads one SSE stream over HTTP(S), reconnecting with backoff and `Last-Event-ID`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::parser::{ParserNotice, SseEvent};

/// What a stream reader reports to its owner, in order.
#[derive(Debug)]
pub enum ClientEvent {
    /// A connection attempt starts (1 for the first).
    Connecting {
        /// The attempt number since the reader started.
        attempt: u64,
    },
    /// The server answered 200 with `text/event-stream`: events follow.
    Connected,
    /// One dispatched event.
    Event(SseEvent),
    /// The connection ended or failed; `error` names the problem (no secrets); reconnect follows after `retry_in` unless stopped.
    Disconnected {
        /// What went wrong, without secrets.
        error: String,
        /// How long the reader waits before the next attempt.
        retry_in: Option<Duration>,
    },
    /// The server said stop (204) or the problem is permanent: no reconnection until the resource changes.
    Stopped {
        /// Why the reader stopped.
        reason: String,
    },
    /// A parser notice (e.g. an event over the size limit was discarded).
    Notice(ParserNotice),
}

/// Builds the per-connection request headers (auth); called at every connect so rotated secrets apply. Errors name the problem, never the secret.
pub type HeaderSource = Arc<dyn Fn() -> Result<http::HeaderMap, String> + Send + Sync>;

/// How to read one SSE stream.
#[derive(Clone)]
pub struct ClientConfig {
    /// The stream's URL (reconnects always go back to it, not to a redirect target).
    pub url: url::Url,
    /// Per-connection headers (auth).
    pub headers: HeaderSource,
    /// TLS settings for `https` URLs.
    pub tls: Arc<rustls::ClientConfig>,
    /// Silence longer than this = dead connection (default 60 s).
    pub read_timeout: Duration,
    /// Events with more data than this are discarded (default 16 MiB).
    pub max_event_bytes: usize,
    /// Reconnect delays after failures (default `Backoff::standard()`).
    pub backoff: sse_runtime::Backoff,
}

impl ClientConfig {
    /// A config with the defaults: 60 s read timeout, 16 MiB events, standard backoff.
    pub fn new(url: url::Url, headers: HeaderSource, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            url,
            headers,
            tls,
            read_timeout: Duration::from_secs(60),
            max_event_bytes: 16 * 1024 * 1024,
            backoff: sse_runtime::Backoff::standard(),
        }
    }
}

/// Reads the stream until `token` is cancelled or it is stopped for good, reconnecting with backoff;
/// sends every ClientEvent with `tx.send(..).await` (so a slow consumer stops the reading: backpressure).
/// Returns when cancelled, when stopped, or when `tx` is closed.
pub async fn run(
    cfg: ClientConfig,
    last_event_id: String,
    tx: mpsc::Sender<ClientEvent>,
    token: CancellationToken,
) {
    let _ = (cfg, last_event_id, tx, token);
    todo!()
}
