//! `sse-console`: parses its flags (bad configuration exits 64), starts telemetry, serves the
//! console until SIGTERM.

use sse_console::{Checked, Config, Services, settings};
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
    let services = Services {
        ingest: config.ingest,
        schema: config.schema,
        publisher: config.publisher,
        mtls: security.mtls,
        locals: Default::default(),
    };
    // Checked once, before the port is bound: a console that could not serve safely never
    // listens.
    let checked = Checked::new(config.console, listen, &services);
    let checked = process::settings_or_exit(SERVICE, checked);
    // As every service: https:// exactly when the gRPC TLS flags are given.
    for (flag, list) in ["--ingest", "--schema", "--publisher"]
        .iter()
        .zip(&checked.targets)
    {
        for t in list {
            let scheme = config.security.check_peer(&t.uri);
            process::settings_or_exit(
                SERVICE,
                scheme.map_err(|e| format!("{flag} {}: {e}", t.uri)),
            );
        }
    }
    process::run(
        SERVICE,
        listen,
        &config.observability,
        std::time::Duration::from_secs(5),
        |listener, shutdown| {
            sse_console::serve(listener, checked, services, shutdown.token.clone())
        },
    )
    .await
}
