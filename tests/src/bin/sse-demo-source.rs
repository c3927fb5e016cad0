//! A demo weather station serving SSE: `/readings` (JSON readings, `event: reading`) and
//! `/alerts` (`temperature-threshold` alerts and `heartbeat`s), with `id:` lines and
//! `Last-Event-ID` resume. `just up` points the local resources at it.

use std::net::SocketAddr;
use std::time::Duration;

/// Command line of the demo source.
#[derive(clap::Parser)]
#[command(
    name = "sse-demo-source",
    version,
    about = "Demo SSE source: a weather station"
)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the bound address is printed).
    #[arg(long, env = "DEMO_LISTEN", default_value = "127.0.0.1:8088")]
    listen: SocketAddr,
    /// Time between events on each stream.
    #[arg(long, env = "DEMO_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A bad flag exits 64, as every binary of the project does.
    let args: Args = sse_runtime::process::parse("sse-demo-source");
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("sse-demo-source listening on {}", listener.local_addr()?);
    let _source =
        sse_e2e::source::SseSource::start(listener, sse_e2e::source::demo_feed(args.interval))?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}
