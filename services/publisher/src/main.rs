//! `sse-publisher`: parse the configuration, start telemetry, bind, run until SIGTERM, drain.

use std::time::Duration;

use clap::Parser;
use sse_publisher::Config;
use sse_runtime::{Shutdown, exit_config_error, telemetry};

const SERVICE: &str = "sse-publisher";

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
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => exit_config_error(SERVICE, &e),
    };
    if let Err(e) = config.mqtt_settings() {
        exit_config_error(SERVICE, &e);
    }
    if let Err(e) = config.grpc.load() {
        exit_config_error(SERVICE, &e);
    }
    let guard = telemetry::init(SERVICE);
    let listener = sse_runtime::bind(config.listen, SERVICE).await?;
    let shutdown = Shutdown::on_signals();
    let result = sse_publisher::run(listener, config, shutdown.clone()).await;
    if !shutdown.drain(Duration::from_secs(10)).await {
        tracing::warn!("drain timed out");
    }
    guard.shutdown().await;
    if let Err(e @ sse_publisher::Error::Config(_)) = &result {
        exit_config_error(SERVICE, e);
    }
    result.map_err(Into::into)
}
