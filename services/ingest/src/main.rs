//! `sse-ingest`: parses its configuration, starts telemetry, binds, and hands off to
//! [`sse_ingest::run`] until SIGTERM; then drains with a timeout.

use std::time::Duration;

use clap::Parser;
use sse_ingest::Config;

const SERVICE: &str = "sse-ingest";

/// mimalloc: the services allocate many small, short-lived buffers per event; glibc malloc
/// spent up to 10% of their CPU there, consolidating (see docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// One thread: the work is I/O bound, and at low event rates a multi-thread runtime spends most
// of its CPU waking threads (`just bench`: 370 -> 252 µs of CPU per event over the three
// services at 1,000 events/s). Scale out with replicas.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse().with_aliases(|k| std::env::var(k).ok());
    if let Err(e) = config.validate() {
        sse_runtime::exit_config_error(SERVICE, &e);
    }
    let telemetry = sse_runtime::telemetry::init(SERVICE);
    let listener = sse_runtime::bind(config.listen, SERVICE).await?;
    let shutdown = sse_runtime::Shutdown::on_signals();
    let result = sse_ingest::run(listener, config, shutdown.clone()).await;
    if !shutdown.drain(Duration::from_secs(10)).await {
        tracing::warn!("shutdown: tasks still running after 10 s; exiting anyway");
    }
    tracing::debug!("drained");
    telemetry.shutdown().await;
    match result {
        Err(e) if e.is_config() => sse_runtime::exit_config_error(SERVICE, &e),
        r => Ok(r?),
    }
}
