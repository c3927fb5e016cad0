//! `sse-console`: parses its flags (bad configuration exits 64), starts telemetry, serves the
//! console until SIGTERM.

use sse_console::{Config, Services, settings};
use sse_runtime::process;

const SERVICE: &str = "sse-console";

/// mimalloc, as every service binary uses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = process::parse::<Config>(SERVICE);
    let security = process::settings_or_exit(SERVICE, config.security.load());
    let listen = config.console.console_listen.or(config.listen);
    let listen = listen.unwrap_or_else(|| {
        settings::DEFAULT_LISTEN
            .parse()
            .expect("a valid default address")
    });
    // Refuse a console that could not serve safely before binding its port.
    process::settings_or_exit(SERVICE, config.console.access(listen));
    let services = Services {
        ingest: config.ingest,
        schema: config.schema,
        publisher: config.publisher,
        mtls: security.mtls,
        locals: Default::default(),
    };
    let targets = process::settings_or_exit(SERVICE, services.targets());
    // As every service: https:// exactly when the gRPC TLS flags are given.
    for (flag, list) in ["--ingest", "--schema", "--publisher"].iter().zip(&targets) {
        for t in list {
            let scheme = config.security.check_peer(&t.uri);
            process::settings_or_exit(
                SERVICE,
                scheme.map_err(|e| format!("{flag} {}: {e}", t.uri)),
            );
        }
    }
    let args = config.console;
    process::run(
        SERVICE,
        listen,
        &config.observability,
        std::time::Duration::from_secs(5),
        |listener, shutdown| sse_console::run(listener, args, services, shutdown.token.clone()),
    )
    .await
}
