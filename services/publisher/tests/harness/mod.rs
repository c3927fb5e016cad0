//! The publisher's test harness shared by its in-process test binaries: `sse_publisher::run` on
//! port 0 in the test process, a Mosquitto whose ACL denies every topic but `allowed/#`, events
//! of a known route, and one Publish stream's acks.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use sse_e2e::broker::Mosquitto;
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_runtime::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// A Mosquitto that lets clients write `allowed/#` (and the state store's topics) only, and
/// the directory of its ACL file.
pub async fn acl_broker() -> Result<(Mosquitto, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "topic readwrite allowed/#\ntopic readwrite clients/#\ntopic readwrite statestore/#\n",
    )?;
    let line = format!("acl_file {}", acl.display());
    Ok((Mosquitto::start_with(&[&line]).await?, dir))
}

/// The publisher in this process, and how to stop it.
pub struct InProcess {
    pub url: String,
    pub shutdown: Shutdown,
}

pub async fn publisher(broker: &Mosquitto) -> Result<InProcess> {
    use clap::Parser;
    let url = broker.url();
    let args = [
        "sse-publisher",
        "--mqtt-url",
        &url,
        "--mqtt-client-id",
        "pub-metrics",
    ];
    let config = sse_publisher::Config::try_parse_from(args)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    tokio::spawn(sse_publisher::run(
        listener,
        config.settings()?,
        shutdown.clone(),
    ));
    Ok(InProcess {
        url: format!("http://{addr}"),
        shutdown,
    })
}

pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        .try_into()
        .unwrap()
}

/// An event of `device`/`asset` to `topic`, received by ingest at `received_unix_nanos`.
pub fn event(seq: u64, device: &str, topic: &str, qos: pb::Qos, received: i64) -> pb::Event {
    pb::Event {
        id: format!("ev-{seq}"),
        seq,
        stream_key: format!("{device}/sse-0"),
        data: bytes::Bytes::from(format!("{{\"n\":{seq}}}")),
        received_unix_nanos: received,
        route: Some(pb::Route {
            device: device.into(),
            endpoint: "sse-0".into(),
            asset: "boiler".into(),
            kind: pb::RouteKind::Dataset as i32,
            group: "readings".into(),
            data_source: "/readings".into(),
            destination: Some(pb::Destination {
                target: Some(pb::destination::Target::Mqtt(pb::MqttDestination {
                    topic: topic.into(),
                    qos: qos as i32,
                    retain: false,
                    ttl_seconds: None,
                })),
            }),
            ..Default::default()
        }),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        ..Default::default()
    }
}

/// Sends `events` on one Publish stream; every ack's error by seq.
pub async fn publish(url: &str, events: Vec<pb::Event>) -> Result<HashMap<u64, String>> {
    let mut client = PublisherServiceClient::connect(url.to_string()).await?;
    let n = events.len();
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::PublishRequest {
        events,
        ack_now: false,
    })
    .await?;
    let mut acks = client.publish(ReceiverStream::new(rx)).await?.into_inner();
    let mut out = HashMap::new();
    while out.len() < n {
        let resp = tokio::time::timeout(sse_e2e::DEADLINE, acks.message())
            .await
            .context("acks in time")??
            .context("ack stream ended early")?;
        for a in resp.acks {
            out.insert(a.seq, a.error);
        }
    }
    Ok(out)
}
