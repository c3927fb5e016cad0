//! The console's flags, validated into [`Settings`]. The `--console-*` flags are shared with
//! `sse-connector`, which embeds the console when `--console-listen` is given; the standalone
//! binary adds where the three services are and its gRPC identity.

use std::net::SocketAddr;
use std::path::PathBuf;

use sse_runtime::Observability;
use sse_runtime::mtls::GrpcSecurityArgs;

/// Default address of the standalone console: loopback, where pages need no login.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The console's own flags (shared with `sse-connector`).
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleArgs {
    /// Address of the console's web pages. On loopback the pages work without login; on any
    /// other address --console-token-file is required.
    #[arg(long, env = "CONSOLE_LISTEN")]
    pub console_listen: Option<SocketAddr>,
    /// File holding the login token (one line); required off loopback, re-read at each login.
    #[arg(long, env = "CONSOLE_TOKEN_FILE")]
    pub console_token_file: Option<PathBuf>,
    /// Live event views open at once; each holds one tail slot on every publisher (a
    /// publisher has 8). One more is refused with 503 until one closes.
    #[arg(long, env = "CONSOLE_LIVE_VIEWS_MAX", default_value_t = crate::pages::events::LIVE_VIEWS_MAX, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub console_live_views_max: usize,
    /// Payload bytes a live view shows of one message; the rest is cut, and marked so (the
    /// publisher caps it at 16 KiB).
    #[arg(long, env = "CONSOLE_EVENT_PAYLOAD_BYTES", default_value_t = crate::pages::events::EVENT_PAYLOAD_BYTES, value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub console_event_payload_bytes: u32,
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
}
