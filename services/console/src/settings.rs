//! The console's flags, validated into [`Settings`]. The `--console-*` flags are shared with
//! `sse-connector`, which embeds the console when `--console-listen` is given; the standalone
//! binary adds where the three services are and its gRPC identity.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sse_runtime::Observability;
use sse_runtime::mtls::GrpcSecurityArgs;

/// Default address of the standalone console: loopback, where pages need no login.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The console's own flags (shared with `sse-connector`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Address of the console's web pages (sse-console: 127.0.0.1:8080 when not given;
    /// sse-connector: no console unless given). On loopback the pages work without login; on any
    /// other address --console-token-file is required, and HTTPS (--console-tls-cert and
    /// --console-tls-key, or --console-allow-http behind an ingress that terminates TLS).
    #[arg(long, env = "CONSOLE_LISTEN")]
    pub console_listen: Option<SocketAddr>,
    /// File holding the login token (one line); required off loopback, re-read at each login.
    /// Given on loopback, it turns the login on there too.
    #[arg(long, env = "CONSOLE_TOKEN_FILE")]
    pub console_token_file: Option<PathBuf>,
    /// How long a login lasts.
    #[arg(long, env = "CONSOLE_SESSION_LIFETIME", default_value = crate::auth::session::LIFETIME_DEFAULT, value_parser = crate::auth::session::LIFETIME.parser())]
    pub console_session_lifetime: Duration,
    /// Most logged-in sessions kept at once; a login beyond it ends the oldest.
    #[arg(long, env = "CONSOLE_MAX_SESSIONS", default_value_t = crate::auth::session::MAX_DEFAULT, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub console_max_sessions: u32,
    /// Certificate chain (PEM) to serve the pages over HTTPS; with --console-tls-key.
    #[arg(long, env = "CONSOLE_TLS_CERT", requires = "console_tls_key")]
    pub console_tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --console-tls-cert.
    #[arg(long, env = "CONSOLE_TLS_KEY", requires = "console_tls_cert")]
    pub console_tls_key: Option<PathBuf>,
    /// Serve plain HTTP off loopback (behind an ingress that terminates TLS).
    #[arg(long, env = "CONSOLE_ALLOW_HTTP")]
    pub console_allow_http: bool,
    /// Live event views open at once; each holds one tail slot on every publisher (a
    /// publisher has 8). One more is refused with 503 until one closes.
    #[arg(long, env = "CONSOLE_LIVE_VIEWS_MAX", default_value_t = crate::pages::events::LIVE_VIEWS_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub console_live_views_max: usize,
    /// Items one live events page keeps (the newest); older ones are removed as new ones
    /// arrive, so a page left open stays small.
    #[arg(long, env = "CONSOLE_LIVE_LIST_MAX", default_value_t = crate::pages::events::LIVE_LIST_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=10_000))]
    pub console_live_list_max: usize,
    /// Pages following the live streams table at once (it is built once a second for all of
    /// them). One more is refused with 503 until one closes.
    #[arg(long, env = "CONSOLE_STREAM_VIEWS_MAX", default_value_t = crate::pages::streams::STREAM_VIEWS_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub console_stream_views_max: usize,
    /// Payload bytes a live view shows of one message; the rest is cut, and marked so (the
    /// publisher caps it at 16 KiB).
    #[arg(long, env = "CONSOLE_EVENT_PAYLOAD_BYTES", default_value_t = crate::pages::events::EVENT_PAYLOAD_BYTES, value_parser = clap::value_parser!(u32).range(1..=sse_contract::limits::TAIL_PAYLOAD_BYTES_MAX as i64))]
    pub console_event_payload_bytes: u32,
}

/// The console's access settings, validated against the address it listens on.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// It listens on loopback.
    pub loopback: bool,
    /// `Some`: a login is required, with the token of this file.
    pub token_file: Option<PathBuf>,
    /// How long a login lasts.
    pub session_lifetime: Duration,
    /// Most sessions at once.
    pub max_sessions: u32,
    /// `Some`: serve HTTPS with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl ConsoleArgs {
    /// Checks the flags against `listen` (before binding when the caller can): off loopback a
    /// readable token file and either TLS or --console-allow-http; the TLS files load.
    pub fn access(&self, listen: SocketAddr) -> Result<AccessSettings, SettingsError> {
        let loopback = listen.ip().is_loopback();
        if !loopback && self.console_token_file.is_none() {
            return Err(SettingsError::NoToken(listen));
        }
        if let Some(path) = &self.console_token_file {
            crate::auth::login::read_token_file(path).map_err(|reason| {
                SettingsError::TokenFile {
                    path: path.clone(),
                    reason,
                }
            })?;
        }
        let tls = match (&self.console_tls_cert, &self.console_tls_key) {
            (Some(cert), Some(key)) => Some(crate::https::server_config(cert, key)?),
            (None, None) => None,
            _ => return Err(SettingsError::TlsPair),
        };
        if !loopback && tls.is_none() && !self.console_allow_http {
            return Err(SettingsError::NoTls(listen));
        }
        Ok(AccessSettings {
            loopback,
            token_file: self.console_token_file.clone(),
            session_lifetime: self.console_session_lifetime,
            max_sessions: self.console_max_sessions,
            tls,
        })
    }
}

/// The standalone `sse-console` command.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "sse-console", version, about)]
pub struct Config {
    /// The console's own flags.
    #[command(flatten)]
    pub console: ConsoleArgs,
    /// --console-listen under the name every service binary takes (hidden: one spelling in the
    /// docs); --console-listen wins when both are given.
    #[arg(long, hide = true)]
    pub listen: Option<SocketAddr>,
    /// sse-ingest: `http(s)://host:port`, a comma list, or a headless Service name (every
    /// address it resolves to is asked).
    #[arg(long, env = "INGEST_URL", default_value = "http://127.0.0.1:50051")]
    pub ingest: String,
    /// sse-schema, written as --ingest.
    #[arg(long, env = "SCHEMA_URL", default_value = "http://127.0.0.1:50052")]
    pub schema: String,
    /// sse-publisher, written as --ingest.
    #[arg(long, env = "PUBLISHER_URL", default_value = "http://127.0.0.1:50053")]
    pub publisher: String,
    /// The console's gRPC identity (mTLS as the console role).
    #[command(flatten)]
    pub security: GrpcSecurityArgs,
    /// The admin port and metrics flags.
    #[command(flatten)]
    pub observability: Observability,
}

/// Why the console's flags cannot be used; names the flag.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A service address does not parse.
    #[error("--{flag}: {source}")]
    Peer {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        source: sse_runtime::peers::PeersError,
    },
    /// The gRPC security flags are wrong.
    #[error(transparent)]
    Security(#[from] sse_runtime::mtls::SecurityError),
    /// Off loopback without a token file.
    #[error(
        "--console-listen {0} is not a loopback address: give --console-token-file (CONSOLE_TOKEN_FILE) so the pages ask for a login"
    )]
    NoToken(SocketAddr),
    /// The token file cannot be used (its content is never shown).
    #[error("--console-token-file {}: {reason}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong: missing, unreadable, empty or too large.
        reason: String,
    },
    /// Off loopback without TLS and without --console-allow-http.
    #[error(
        "--console-listen {0} is not a loopback address: give --console-tls-cert and --console-tls-key to serve HTTPS, or --console-allow-http (CONSOLE_ALLOW_HTTP) if an ingress in front terminates TLS; the login token and cookie must not cross the network in clear"
    )]
    NoTls(SocketAddr),
    /// Only one of the two TLS flags.
    #[error("--console-tls-cert and --console-tls-key go together")]
    TlsPair,
    /// The TLS files do not load.
    #[error("--console-tls-cert/--console-tls-key: {0}")]
    Tls(#[from] sse_runtime::tls::TlsError),
}
