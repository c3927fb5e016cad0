//! `sse-connector`: parses the three services' flags with one composed command, starts
//! telemetry and the one admin port of the process, runs [`sse_connector::run`] until SIGTERM, which stops ingest, schema and publisher
//! in that order.

use sse_connector::args::{self, Parsed};
use sse_connector::{Configs, Error};
use sse_runtime::{Shutdown, exit_config_error, process, readiness};

const SERVICE: &str = "sse-connector";

/// mimalloc: the services allocate many small, short-lived buffers per event; glibc malloc
/// spent up to 10% of their CPU there, consolidating (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread for all three services: an event then crosses no thread or process boundary
// between the SSE socket and the broker (docs/performance.md: one process).
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let configs = match args::parse(std::env::args_os()) {
        Ok(Parsed::Print(text)) => {
            // Not `print!`, which panics when stdout is a closed pipe (`--help | head`); a
            // reader that stopped early has what it wanted, as clap's own printing assumes.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
            return Ok(());
        }
        Ok(Parsed::Run(matches)) => Configs::parse(&matches),
        Err(e) => exit_config_error(SERVICE, &e),
    };
    let configs = configs.unwrap_or_else(|e: Error| exit_config_error(SERVICE, &e));
    // The services share the observability flags: one admin port, ready when all three are.
    let observability = configs.ingest.flags.observability.clone();
    readiness::expect(3);
    let observed = process::observe(SERVICE, &observability).await;
    let signals = Shutdown::on_signals();
    let result = sse_connector::run(configs, signals.token.clone()).await;
    observed.shutdown().await;
    match result {
        Err(e) if e.is_config() => exit_config_error(SERVICE, &e),
        r => Ok(r?),
    }
}
