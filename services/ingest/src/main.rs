//! `sse-ingest`: parses and validates its configuration, then runs [`sse_ingest::run`] under the
//! runtime's process helper (telemetry, bind, SIGTERM, drain; exit 64 on bad configuration).

use sse_ingest::Config;
use sse_runtime::process;

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
    let config = process::parse::<Config>(SERVICE).with_aliases(|k| std::env::var(k).ok());
    let settings = process::settings_or_exit(SERVICE, config.settings());
    let listen = settings.flags.listen;
    let observability = settings.flags.observability.clone();
    process::run(
        SERVICE,
        listen,
        &observability,
        sse_ingest::SHUTDOWN_DRAIN,
        |listener, shutdown| sse_ingest::run(listener, settings, shutdown),
    )
    .await
}
