//! What every sse-connector service needs, and nothing service-specific: telemetry set-up
//! (traces, metrics, logs over OTLP) and trace-context helpers, the admin HTTP port and the
//! readiness it reports, gRPC serving with health and reflection, the shutdown signal, backoff,
//! TLS client configuration and certificate files that reload, the one MQTT client stack (URLs,
//! options, TLS, credentials, packet limits, the supervised connection loop), private state
//! files, bounded duration flags, the seq-ordered queue of the ack bookkeeping, and the exit code for bad configuration
//! and the life of a service process (parse, bind, run, drain), and the health helper.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod admin_rate;
pub mod backoff;
pub mod client_io;
pub mod duration_flag;
pub mod echo;
pub mod error_chain;
pub mod health;
pub mod link;
pub mod metrics;
pub mod mqtt;
pub mod mtls;
pub mod observability;
pub mod peers;
pub mod private_file;
pub mod process;
pub mod readiness;
pub mod reload;
pub mod rendezvous;
pub mod seq;
pub mod serve;
pub mod shown_url;
pub mod shutdown;
pub mod spki;
pub mod telemetry;
pub mod tls;

pub use backoff::Backoff;
pub use error_chain::error_chain;
pub use observability::Observability;
pub use process::exit_config_error;
pub use serve::{Serving, bind};
pub use shutdown::Shutdown;

/// Exit code for bad configuration (`EX_USAGE` of sysexits.h).
pub const EXIT_CONFIG: i32 = 64;
