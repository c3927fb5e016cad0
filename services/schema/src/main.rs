//! `sse-schema`: parse the configuration, start telemetry, bind, serve until SIGTERM, drain.

use std::time::Duration;

use clap::Parser;
use sse_runtime::{Shutdown, exit_config_error, telemetry};
use sse_schema::Config;

const SERVICE: &str = "sse-schema";

/// mimalloc: the services allocate many small, short-lived buffers per event; glibc malloc
/// spent up to 10% of their CPU there, consolidating (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: the work is I/O bound, and at low event rates a multi-thread runtime spends most
// of its CPU waking threads (`just bench`: 370 -> 252 µs of CPU per event over the three
// services at 1,000 events/s). Scale out with replicas.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => exit_config_error(SERVICE, &e),
        Err(e) => e.exit(),
    };
    if let Err(e) = config.validate() {
        exit_config_error(SERVICE, &e);
    }
    let guard = telemetry::init(SERVICE);
    let listener = match sse_runtime::bind(config.listen, SERVICE).await {
        Ok(l) => l,
        Err(e) => exit_config_error(SERVICE, &format!("cannot listen on {}: {e}", config.listen)),
    };
    let shutdown = Shutdown::on_signals();
    let result = sse_schema::run(listener, config, shutdown.clone()).await;
    if !shutdown
        .drain(sse_schema::STREAM_DRAIN + Duration::from_secs(5))
        .await
    {
        tracing::warn!("shutdown drain timed out");
    }
    guard.shutdown().await;
    match result {
        Err(e) if e.is_config() => exit_config_error(SERVICE, &e),
        r => Ok(r?),
    }
}
