//! The metrics as an operator sees them: a real Prometheus scrapes the three real services'
//! `/metrics` while a known set of events flows, with a drop (an oversized event), a reconnect
//! (the source ends its response) and broker refusals (a Mosquitto ACL denies one topic) caused
//! on purpose; the values are read back through Prometheus' query API. Every metric the
//! dashboard and the alert rules read is among what Prometheus scraped.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use sse_contract::drops;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::prometheus::{Prometheus, metric_names_in};
use sse_e2e::resources::{asset, device};
use sse_e2e::source::{Feed, Reply, SeenRequest, SseSource, block, blocks_then_hold};
use sse_e2e::stack::{Pipeline, PipelineArgs};

/// Events on `/ok` before the source ends the first response, and after the reconnect.
const FIRST: u64 = 10;
const SECOND: u64 = 5;
/// Events on `/denied`, whose topic the broker refuses.
const DENIED: u64 = 3;
/// Ingest's `--max-event-bytes` in this test: the one big event goes over it.
const MAX_EVENT: usize = 1024;

fn data(n: u64) -> String {
    format!(r#"{{"n":{n},"temperature":21.5}}"#)
}

/// `/ok`: FIRST events and one oversized, then the response ends; the reconnect (it carries
/// `Last-Event-ID`) gets SECOND more and stays open. `/denied`: DENIED events, held open.
fn feed(connects: Arc<AtomicUsize>) -> Feed {
    Arc::new(move |req: &SeenRequest| match req.path.as_str() {
        "/ok" if connects.fetch_add(1, Ordering::SeqCst) == 0 => {
            let mut blocks: Vec<String> = (1..=FIRST)
                .map(|n| block(Some(&n.to_string()), None, &data(n)))
                .collect();
            blocks.push(block(Some("big"), None, &"x".repeat(2 * MAX_EVENT)));
            Reply::Sse(Box::pin(futures::stream::iter(
                blocks.into_iter().map(Bytes::from),
            )))
        }
        "/ok" => Reply::Sse(blocks_then_hold(
            (FIRST + 1..=FIRST + SECOND)
                .map(|n| block(Some(&n.to_string()), None, &data(n)))
                .collect(),
        )),
        "/denied" => Reply::Sse(blocks_then_hold(
            (1..=DENIED)
                .map(|n| block(Some(&n.to_string()), None, &data(n)))
                .collect(),
        )),
        _ => Reply::not_found(),
    })
}

struct Running {
    prometheus: Prometheus,
    _sub: Subscriber,
    _pipeline: Pipeline,
    _source: SseSource,
    _broker: Mosquitto,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite #\ntopic deny e2e/denied\n").unwrap();
    let broker = Mosquitto::start_with(&[&format!("acl_file {}", acl.display())])
        .await
        .unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed(Arc::default())).unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = device(&source.base_url())
        + &asset(
            "line",
            &[("ok", "/ok", "e2e/ok"), ("denied", "/denied", "e2e/denied")],
        );
    std::fs::write(res.join("resources.yaml"), yaml).unwrap();
    // Port 0: each service prints the admin address it bound (no port picked ahead and raced for).
    let env = |_: &str| vec![("ADMIN_LISTEN".to_string(), "127.0.0.1:0".to_string())];
    let s = |x: &str| x.to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.path().join("schemas").display().to_string(),
        resources: res.display().to_string(),
        publisher: vec![],
        ingest: vec![s("--max-event-bytes"), MAX_EVENT.to_string()],
        env: Some(&env),
    })
    .await
    .unwrap();
    let mut admin: Vec<(&str, SocketAddr)> = Vec::new();
    for svc in [&pipeline.publisher, &pipeline.schema, &pipeline.ingest] {
        let prefix = format!("{} admin listening on ", svc.name);
        let addr = svc.printed_addr(&prefix).await.unwrap();
        admin.push((svc.name.as_str(), addr));
    }
    let prometheus = Prometheus::start(&admin).await.unwrap();
    Running {
        prometheus,
        _sub: sub,
        _pipeline: pipeline,
        _source: source,
        _broker: broker,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_known_values_of_a_known_run() {
    let r = start().await;
    let p = &r.prometheus;
    let ok = FIRST + SECOND;
    // Every event of /ok acknowledged: the flow is over for the counters read below.
    p.wait_for(
        r#"sum(sse_connector_events_acknowledged_total{sse_route="ok"})"#,
        |v| v == ok as f64,
    )
    .await
    .unwrap();
    let exact = [
        (
            r#"sum(messaging_client_sent_messages_total{messaging_destination_name="e2e/ok", error_type=""})"#
                .to_string(),
            ok as f64,
        ),
        (
            r#"sum(messaging_client_sent_messages_total{messaging_destination_name="e2e/denied", error_type!=""})"#
                .to_string(),
            DENIED as f64,
        ),
        (
            format!(
                r#"sum(sse_connector_events_dropped_total{{sse_reason="{}"}})"#,
                drops::EVENT_TOO_LARGE
            ),
            1.0,
        ),
        (
            r#"sum(sse_connector_events_forwarded_total{sse_asset="line"})"#.to_string(),
            (ok + DENIED) as f64,
        ),
        (
            r#"sum(sse_connector_streams{sse_state="Connected"})"#.to_string(),
            2.0,
        ),
        (
            "sum(sse_connector_broker_connected_ratio)".to_string(),
            1.0,
        ),
        // Nobody tails in this run: both exported at 0 (a series an alert can watch).
        ("sum(sse_connector_tail_readers)".to_string(), 0.0),
        ("sum(sse_connector_tail_dropped_total)".to_string(), 0.0),
    ];
    for (q, want) in &exact {
        p.wait_for(q, |v| v == *want)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let at_least = [
        ("sum(sse_connector_stream_reconnects_total)", 1.0),
        ("sum(sse_connector_event_latency_seconds_count)", ok as f64),
        (
            "sum(messaging_client_operation_duration_seconds_count)",
            ok as f64,
        ),
        (
            "sum(messaging_process_duration_seconds_count)",
            (ok + DENIED) as f64,
        ),
        ("sum(sse_connector_schema_versions_created_total)", 1.0),
        ("sum(sse_connector_stream_received_bytes_total)", 1.0),
        ("sum(sse_connector_inflight_events_limit)", 1.0),
    ];
    for (q, min) in at_least {
        p.wait_for(q, |v| v >= min)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    // The refused events are failed deliveries, not acknowledged ones.
    assert_eq!(
        p.value(r#"sum(sse_connector_events_acknowledged_total{sse_route="denied"})"#)
            .await
            .unwrap()
            .unwrap_or(0.0),
        0.0
    );

    // What the dashboard and the alert rules read is really there.
    let scraped = p.metric_names().await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "deploy/grafana/sse-connector.json",
        "deploy/prometheus/alerts.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let missing: Vec<_> = metric_names_in(&text)
            .into_iter()
            .filter(|n| !scraped.contains(n))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} reads metrics nobody exports: {missing:?}"
        );
    }
}
