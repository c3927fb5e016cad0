//! How long a calm device's event takes to reach the broker while another device floods, and how
//! fast the flood itself goes: the cost and the benefit of ingest's per-stream share
//! (`--max-in-flight-per-stream`). A measurement, not a test: it asserts nothing about time.
//!
//! ```sh
//! cargo build --release --workspace --bins
//! SSE_BIN_DIR=$PWD/target/release FLOOD_SHARES=1000,250 FLOOD_RUNS=3 \
//!   cargo run --release -p sse-e2e --example flood_latency
//! ```
//!
//! Each run starts Mosquitto, the flood source and the services (`FLOOD_FORM=three`, the
//! default, or `connector`), lets the flood pass 20,000 events, measures its rate over 4 s, then
//! sends `FLOOD_CALM_EVENTS` (40) calm events 50 ms apart, each once the one before has arrived,
//! and prints one line: the share, the flood's rate and the calm events' p50, p90 and max from
//! the source's write to a subscriber of `e2e/calm` (`FLOOD_CONSUMED=1`: of `e2e/#`, so the
//! broker also delivers the flood, as it would to the flood's consumers). Shares alternate run
//! by run, so each sees the same machine.

use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Filter;
use rumqttc::v5::{AsyncClient, MqttOptions};
use sse_e2e::broker::Mosquitto;
use sse_e2e::flood::{calm_event, feed, resources};
use sse_e2e::procs::{Service, connector_args};
use sse_e2e::source::SseSource;
use sse_e2e::stack::{Pipeline, PipelineArgs};
use tokio::sync::mpsc;

/// What one run measured.
struct Run {
    flood_rate: f64,
    calm_ms: Vec<f64>,
}

/// The flood stream's acknowledged events, from ingest's `ListStreams` at `ingest`.
async fn flood_acknowledged(ingest: &str) -> anyhow::Result<u64> {
    let s = sse_e2e::grpcurl::stream_status(ingest, "/flood").await?;
    Ok(s["eventsAcknowledged"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// The environment variable `name`, parsed, or `default`.
fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One run with `share` (or ingest's default): the rig, the flood's rate, the calm events.
async fn run(connector: bool, share: Option<u64>, calm_events: u64) -> anyhow::Result<Run> {
    let broker = Mosquitto::start().await?;
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let mut opts = MqttOptions::new("flood-latency", "127.0.0.1", broker.port);
    opts.set_max_packet_size(Some(1 << 20));
    let (client, eventloop) = AsyncClient::new(opts, 1024);
    // With a consumer of the flood, the broker also delivers the flood to this subscriber.
    let topic = if std::env::var("FLOOD_CONSUMED").is_ok_and(|v| v == "1") {
        "e2e/#"
    } else {
        "e2e/calm"
    };
    let filters = vec![Filter::new(topic, QoS::AtMostOnce)];
    let sub = sse_e2e::mqtt::subscribe_and_drive("calm", &client, eventloop, filters, move |p| {
        let _ = arrived_tx.send((Instant::now(), p.payload));
    })
    .await?;
    let (feed, calm) = feed();
    let source = SseSource::start(tokio::net::TcpListener::bind("127.0.0.1:0").await?, feed)?;
    let dir = resources(&source.base_url())?;
    let path = |p: &str| dir.path().join(p);
    let share: Vec<String> = share
        .map(|s| vec!["--max-in-flight-per-stream".into(), s.to_string()])
        .unwrap_or_default();
    let (_three, _one, ingest) = if connector {
        let mut args = connector_args(&broker.url(), &path("resources"), &path("schemas"));
        args.extend(share);
        let one = Service::start("sse-connector", &args, &[]).await?;
        let at = one.addr.to_string();
        (None, Some(one), at)
    } else {
        let three = Pipeline::start(PipelineArgs {
            mqtt_url: broker.url(),
            data_dir: path("schemas").display().to_string(),
            resources: path("resources").display().to_string(),
            publisher: vec![],
            ingest: share,
            env: None,
        })
        .await?;
        let at = three.ingest.addr.to_string();
        (Some(three), None, at)
    };
    sse_e2e::eventually("the flood past 20,000 events", || async {
        (flood_acknowledged(&ingest).await.ok()? > 20_000).then_some(())
    })
    .await?;
    let (a0, t0) = (flood_acknowledged(&ingest).await?, Instant::now());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let flood_rate = (flood_acknowledged(&ingest).await? - a0) as f64 / t0.elapsed().as_secs_f64();
    let mut calm_ms = Vec::new();
    for n in 1..=calm_events {
        let sent = Instant::now();
        calm.send(calm_event(n)).context("the calm stream closed")?;
        let want = format!(r#"{{"calm":{n}}}"#);
        loop {
            let (at, payload) = tokio::time::timeout(Duration::from_secs(30), arrived.recv())
                .await
                .context("a calm event took over 30 s")?
                .context("the subscriber stopped")?;
            if payload.as_ref() == want.as_bytes() {
                calm_ms.push((at - sent).as_secs_f64() * 1e3);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sub.abort(); // before the broker goes, or it reconnects forever
    Ok(Run {
        flood_rate,
        calm_ms,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let connector = std::env::var("FLOOD_FORM").is_ok_and(|f| f == "connector");
    let shares: Vec<Option<u64>> = std::env::var("FLOOD_SHARES")
        .map(|s| s.split(',').map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|_| vec![None]);
    let (runs, calm_events) = (env("FLOOD_RUNS", 1u32), env("FLOOD_CALM_EVENTS", 40u64));
    println!("| run | share | flood events/s | calm p50 ms | calm p90 ms | calm max ms |");
    println!("|---|---|---|---|---|---|");
    for i in 1..=runs {
        for share in &shares {
            let r = run(connector, *share, calm_events).await?;
            let mut ms = r.calm_ms;
            ms.sort_by(f64::total_cmp);
            let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
            let share = share.map_or("default".to_string(), |s| s.to_string());
            println!(
                "| {i} | {share} | {:.0} | {:.2} | {:.2} | {:.2} |",
                r.flood_rate,
                at(0.5),
                at(0.9),
                at(1.0)
            );
        }
    }
    Ok(())
}
