//! Per-service test: a real Mosquitto, `sse_publisher::run` on port 0, events through the
//! generated gRPC client, and a rumqttc v5 subscriber checking what the broker delivers.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish};
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use sse_e2e::mqtt::{StateStoreMock, StoreReply};
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_publisher::Config;
use sse_runtime::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};

const WAIT: Duration = Duration::from_secs(15);
const STORE_TOPIC: &str = "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke";

struct Broker {
    _dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

async fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    Ok(l.local_addr()?.port())
}

async fn mosquitto() -> Result<Broker> {
    mosquitto_on(free_port().await?).await
}

async fn mosquitto_on(port: u16) -> Result<Broker> {
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )?;
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn mosquitto")?;
    let deadline = Instant::now() + WAIT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("mosquitto did not listen on {port}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Broker {
        _dir: dir,
        child,
        port,
    })
}

/// Subscribes to `filters` (retain as published) and forwards every message.
async fn subscriber(port: u16, filters: &[&str]) -> Result<mpsc::Receiver<Publish>> {
    let mut opts = MqttOptions::new("test-subscriber", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let filters: Vec<Filter> = filters
        .iter()
        .map(|f| {
            let mut f = Filter::new(*f, QoS::AtLeastOnce);
            f.preserve_retain = true;
            f
        })
        .collect();
    client.subscribe_many(filters).await?;
    let (tx, rx) = mpsc::channel(64);
    let (subscribed_tx, subscribed_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut subscribed = Some(subscribed_tx);
        while let Ok(ev) = eventloop.poll().await {
            match ev {
                Event::Incoming(Incoming::SubAck(_)) => {
                    if let Some(s) = subscribed.take() {
                        let _ = s.send(());
                    }
                }
                Event::Incoming(Incoming::Publish(p)) if tx.send(p.clone()).await.is_err() => {
                    break;
                }
                _ => {}
            }
        }
    });
    timeout(WAIT, subscribed_rx).await??;
    Ok(rx)
}

struct Publisher {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), sse_publisher::Error>>,
}

async fn publisher(port: u16) -> Result<Publisher> {
    publisher_with(port, &[]).await
}

async fn publisher_with(port: u16, extra: &[&str]) -> Result<Publisher> {
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut args = vec![
        "sse-publisher",
        "--mqtt-url",
        &url,
        "--mqtt-client-id",
        "pub-test",
    ];
    args.extend_from_slice(extra);
    let config = Config::try_parse_from_args(&args)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = Shutdown::new();
    let task = tokio::spawn(sse_publisher::run(
        listener,
        config.settings().unwrap(),
        shutdown.clone(),
    ));
    Ok(Publisher {
        addr,
        shutdown,
        task,
    })
}

trait ParseArgs: Sized {
    fn try_parse_from_args(args: &[&str]) -> Result<Self>;
}

impl ParseArgs for Config {
    fn try_parse_from_args(args: &[&str]) -> Result<Self> {
        use clap::Parser;
        Ok(Config::try_parse_from(args)?)
    }
}

/// Connects to the publisher at `addr` and opens a Publish stream: where requests go in and the
/// acks come out.
async fn open_publish(
    addr: SocketAddr,
) -> Result<(
    mpsc::Sender<pb::PublishRequest>,
    tonic::Streaming<pb::PublishResponse>,
)> {
    let mut client = PublisherServiceClient::connect(format!("http://{addr}")).await?;
    let (req_tx, req_rx) = mpsc::channel(4);
    let acks = client
        .publish(tokio_stream::wrappers::ReceiverStream::new(req_rx))
        .await?
        .into_inner();
    Ok((req_tx, acks))
}

fn user_props(p: &Publish) -> Vec<(String, String)> {
    p.properties
        .as_ref()
        .map(|pr| pr.user_properties.clone())
        .unwrap_or_default()
}

fn mqtt_event(seq: u64, topic: &str, qos: pb::Qos, retain: bool, ttl: Option<u32>) -> pb::Event {
    pb::Event {
        id: format!("ev-{seq}"),
        seq,
        stream_key: "weather-station/sse-0".into(),
        data: bytes::Bytes::from_static(b"{\"temp\":21.5}"),
        sse_event: "temperature-threshold".into(),
        sse_id: format!("{seq}"),
        received_unix_nanos: 1_700_000_000_123_456_789,
        route: Some(pb::Route {
            device: "weather-station".into(),
            endpoint: "sse-0".into(),
            asset: "my-sse-source".into(),
            kind: pb::RouteKind::Event as i32,
            group: "alerts".into(),
            event: "overheat".into(),
            data_source: "temperature-threshold".into(),
            type_ref: String::new(),
            destination: Some(pb::Destination {
                target: Some(pb::destination::Target::Mqtt(pb::MqttDestination {
                    topic: topic.into(),
                    qos: qos as i32,
                    retain,
                    ttl_seconds: ttl,
                })),
            }),
            ..Default::default()
        }),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        tracestate: String::new(),
        dataschema: "aio-sr://ns/ABC:1".into(),
        subject: String::new(),
        dead_letter: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_events_and_acks_them() -> Result<()> {
    let _guard = sse_runtime::telemetry::init("sse-publisher-test", false).expect("telemetry");
    let broker = mosquitto().await?;
    let mut sub = subscriber(broker.port, &["test/#", "statestore/#"]).await?;
    let store =
        StateStoreMock::start(broker.port, std::sync::Arc::new(|_| StoreReply::Apply)).await?;
    let publ = publisher(broker.port).await?;
    let mut client = PublisherServiceClient::connect(format!("http://{}", publ.addr)).await?;

    // Health turns SERVING once the broker connection is up.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", publ.addr))?
        .connect()
        .await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let deadline = Instant::now() + WAIT;
    loop {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "sseconnector.v1.PublisherService".into(),
            })
            .await?
            .into_inner()
            .status;
        if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
            break;
        }
        if Instant::now() > deadline {
            bail!("publisher never became SERVING");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let ev1 = mqtt_event(1, "test/alerts", pb::Qos::Unspecified, false, Some(3600));
    let mut ev2 = mqtt_event(2, "test/readings", pb::Qos::AtMostOnce, true, None);
    ev2.data = bytes::Bytes::from_static(b"plain text");
    // Text gets no schema: the schema service tags only JSON it parsed.
    ev2.dataschema.clear();
    if let Some(r) = ev2.route.as_mut() {
        r.kind = pb::RouteKind::Dataset as i32;
        r.group = "all-readings".into();
        r.data_source = "/readings".into();
        r.type_ref = "dtmi:x;1".into();
    }
    ev2.sse_id.clear();
    ev2.sse_event.clear();
    let ev3 = mqtt_event(3, "test/+/bad", pb::Qos::AtLeastOnce, false, None);
    let mut ev4 = mqtt_event(4, "", pb::Qos::AtLeastOnce, false, None);
    if let Some(r) = ev4.route.as_mut() {
        r.destination = Some(pb::Destination {
            target: Some(pb::destination::Target::StateStore(
                pb::StateStoreDestination {
                    key: "weather-latest".into(),
                },
            )),
        });
    }

    let (req_tx, req_rx) = mpsc::channel(4);
    req_tx
        .send(pb::PublishRequest {
            events: vec![ev1, ev2],
            ack_now: false,
        })
        .await?;
    req_tx
        .send(pb::PublishRequest {
            events: vec![ev3, ev4],
            ack_now: false,
        })
        .await?;
    let mut acks_stream = client
        .publish(tokio_stream::wrappers::ReceiverStream::new(req_rx))
        .await?
        .into_inner();
    let mut acks: HashMap<u64, pb::Ack> = HashMap::new();
    while acks.len() < 4 {
        let resp = timeout(WAIT, acks_stream.message())
            .await
            .context("acks in time")??
            .context("ack stream ended early")?;
        for a in resp.acks {
            assert_eq!(a.stream_key, "weather-station/sse-0");
            acks.insert(a.seq, a);
        }
    }
    assert_eq!(acks[&1].error, "");
    assert_eq!(acks[&2].error, "");
    assert!(acks[&3].error.contains("invalid topic"), "{:?}", acks[&3]);
    assert_eq!(acks[&4].error, "");

    let mut got: HashMap<String, Publish> = HashMap::new();
    while got.len() < 3 {
        let p = timeout(WAIT, sub.recv())
            .await?
            .context("subscriber ended")?;
        got.insert(String::from_utf8(p.topic.to_vec())?, p);
    }

    // Event 1: QoS 1 (unspecified), no retain, expiry, JSON, every user property.
    let p1 = &got["test/alerts"];
    assert_eq!(p1.qos, QoS::AtLeastOnce);
    assert!(!p1.retain);
    assert_eq!(&p1.payload[..], b"{\"temp\":21.5}");
    let props1 = p1.properties.as_ref().unwrap();
    let expiry = props1.message_expiry_interval.unwrap();
    assert!((3590..=3600).contains(&expiry), "expiry {expiry}");
    assert_eq!(props1.content_type.as_deref(), Some("application/json"));
    let up1 = user_props(p1);
    let keys: Vec<&str> = up1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "dataschema",
            "aiodeviceref",
            "aioassetref",
            "sseevent",
            "sseid",
            "traceparent"
        ]
    );
    let m1: HashMap<_, _> = up1.iter().cloned().collect();
    assert_eq!(m1["specversion"], "1.0");
    assert_eq!(m1["id"], "ev-1");
    assert_eq!(m1["source"], "ms-aio:weather-station/temperature-threshold");
    assert_eq!(m1["type"], "Event");
    assert_eq!(m1["subject"], "my-sse-source/alerts/overheat");
    assert_eq!(m1["time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(m1["dataschema"], "aio-sr://ns/ABC:1");
    assert_eq!(m1["aiodeviceref"], "ms-aio:weather-station/sse-0");
    assert_eq!(m1["aioassetref"], "ms-aio:my-sse-source");
    assert_eq!(m1["sseevent"], "temperature-threshold");
    assert_eq!(m1["sseid"], "1");
    let tp = &m1["traceparent"];
    assert!(
        tp.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "same trace: {tp}"
    );
    assert!(!tp.contains("b7ad6b7169203331"), "own span id: {tp}");

    // Event 2: QoS 0, retained, no expiry, text, dataset properties.
    let p2 = &got["test/readings"];
    assert_eq!(p2.qos, QoS::AtMostOnce);
    assert!(p2.retain);
    assert_eq!(&p2.payload[..], b"plain text");
    let props2 = p2.properties.as_ref().unwrap();
    assert_eq!(props2.message_expiry_interval, None);
    assert_eq!(
        props2.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let m2: HashMap<_, _> = user_props(p2).into_iter().collect();
    assert_eq!(m2["type"], "DataSet/dtmi:x;1");
    assert_eq!(m2["subject"], "my-sse-source/all-readings");
    assert_eq!(m2["source"], "ms-aio:weather-station/readings");
    assert_eq!(m2["sseevent"], "message");
    assert!(!m2.contains_key("sseid"));

    // Event 4: the state store SET request.
    let p4 = &got[STORE_TOPIC];
    assert_eq!(p4.qos, QoS::AtLeastOnce);
    assert_eq!(
        &p4.payload[..],
        b"*3\r\n$3\r\nSET\r\n$14\r\nweather-latest\r\n$13\r\n{\"temp\":21.5}\r\n"
    );
    let props4 = p4.properties.as_ref().unwrap();
    assert_eq!(
        props4.response_topic.as_deref(),
        Some(format!("clients/pub-test/{STORE_TOPIC}/response").as_str())
    );
    assert_eq!(props4.correlation_data.as_ref().map(|c| c.len()), Some(16));
    let m4: HashMap<_, _> = user_props(p4).into_iter().collect();
    let ts: Vec<&str> = m4["__ts"].split(':').collect();
    assert_eq!((ts[0].len(), ts[1].len(), ts[2]), (15, 5, "pub-test"));
    // acked only after the store answered +OK
    assert_eq!(
        store.get("weather-latest").as_deref(),
        Some(&b"{\"temp\":21.5}"[..])
    );

    drop(req_tx);
    publ.shutdown.token.cancel();
    timeout(WAIT, publ.task).await???;
    Ok(())
}

/// Acks are held (here for an hour) and go in one response once 512 are waiting, or when the
/// caller closes its side and nothing is left in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_are_held_and_sent_together() -> Result<()> {
    let broker = mosquitto().await?;
    let mut sub = subscriber(broker.port, &["held/#"]).await?;
    let publ = publisher_with(broker.port, &["--ack-delay", "1h"]).await?;
    let (req_tx, mut acks) = open_publish(publ.addr).await?;
    let events = |from: u64, to: u64| held_events(from, to, false);
    // 600 events with the stream open: the first response comes once 512 acks wait.
    req_tx.send(events(0, 600)).await?;
    let first = timeout(WAIT, acks.message())
        .await??
        .context("ack stream ended")?;
    assert!(first.acks.len() >= 512, "{} acks", first.acks.len());
    let mut seen: Vec<u64> = first.acks.iter().map(|a| a.seq).collect();
    // The rest of them, and 3 more, go together once the caller closes its side.
    req_tx.send(events(600, 603)).await?;
    for _ in 0..603 {
        timeout(WAIT, sub.recv())
            .await?
            .context("subscriber ended")?;
    }
    drop(req_tx);
    while let Some(resp) = timeout(WAIT, acks.message()).await?? {
        assert!(resp.acks.iter().all(|a| a.error.is_empty()), "{resp:?}");
        seen.extend(resp.acks.iter().map(|a| a.seq));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..603).collect::<Vec<_>>());
    publ.shutdown.token.cancel();
    let _ = timeout(WAIT, publ.task).await;
    Ok(())
}

/// Events `from..to` on `held/t` at QoS 1, with `ack_now` as given.
fn held_events(from: u64, to: u64, ack_now: bool) -> pb::PublishRequest {
    pb::PublishRequest {
        events: (from..to)
            .map(|i| mqtt_event(i, "held/t", pb::Qos::AtLeastOnce, false, None))
            .collect(),
        ack_now,
    }
}

/// Reads acks until every seq of `want` has come (counting `seen` already); the seqs seen.
async fn acks_of(
    acks: &mut tonic::Streaming<pb::PublishResponse>,
    want: std::ops::Range<u64>,
    mut seen: Vec<u64>,
) -> Result<Vec<u64>> {
    while !want.clone().all(|s| seen.contains(&s)) {
        let resp = timeout(WAIT, acks.message())
            .await
            .context("acks held: ack_now was not honoured")??
            .context("ack stream ended")?;
        seen.extend(resp.acks.iter().map(|a| a.seq));
    }
    Ok(seen)
}

/// Ingest's window is full and it waits for acks: a request with `ack_now` gets the held ones
/// at once, and those of events still at the broker as their PUBACKs come, however long the
/// ack delay, unless a full batch of 512 is on its way. (Before, a window smaller than 512
/// events waited out the delay every time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_now_sends_the_held_acks_at_once() -> Result<()> {
    let broker = mosquitto().await?;
    let mut sub = subscriber(broker.port, &["held/#"]).await?;
    let publ = publisher_with(broker.port, &["--ack-delay", "1h"]).await?;
    let (req_tx, mut acks) = open_publish(publ.addr).await?;
    req_tx.send(held_events(0, 10, false)).await?;
    for _ in 0..10 {
        timeout(WAIT, sub.recv())
            .await?
            .context("subscriber ended")?;
    }
    // The broker has all ten; their acks are held (for an hour) until asked for.
    req_tx.send(held_events(0, 0, true)).await?;
    let seen = acks_of(&mut acks, 0..10, vec![]).await?;
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    // Asked for with the events: each ack goes as its PUBACK comes.
    req_tx.send(held_events(10, 20, true)).await?;
    acks_of(&mut acks, 10..20, vec![]).await?;
    // Asked for with enough events for a full batch: that batch comes first, whole (smaller
    // ones sooner would only cost the callers wake-ups), then the rest as they come.
    req_tx.send(held_events(20, 620, true)).await?;
    let first = timeout(WAIT, acks.message())
        .await??
        .context("ack stream ended")?;
    assert!(first.acks.len() >= 512, "{} acks", first.acks.len());
    let seen = first.acks.iter().map(|a| a.seq).collect();
    acks_of(&mut acks, 20..620, seen).await?;
    publ.shutdown.token.cancel();
    let _ = timeout(WAIT, publ.task).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_message_waits_for_the_broker_ack() -> Result<()> {
    let broker = mosquitto().await?;
    let mut sub = subscriber(broker.port, &["single/#"]).await?;
    let publ = publisher(broker.port).await?;
    let mut client = PublisherServiceClient::connect(format!("http://{}", publ.addr)).await?;

    client
        .publish_message(pb::PublishMessageRequest {
            topic: "single/one".into(),
            payload: "hello".into(),
            qos: pb::Qos::AtLeastOnce as i32,
            retain: false,
            ttl_seconds: 60,
            content_type: "text/plain".into(),
        })
        .await?;
    let p = timeout(WAIT, sub.recv())
        .await?
        .context("subscriber ended")?;
    assert_eq!(&p.topic[..], b"single/one");
    assert_eq!(&p.payload[..], b"hello");
    let props = p.properties.unwrap();
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert!(props.message_expiry_interval.is_some());

    for topic in ["", "single/#", "single/+/x"] {
        let err = client
            .publish_message(pb::PublishMessageRequest {
                topic: topic.into(),
                payload: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{topic:?}");
    }

    publ.shutdown.token.cancel();
    timeout(WAIT, publ.task).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_message_without_broker_is_unavailable() -> Result<()> {
    let port = free_port().await?; // nothing listens there
    let publ = publisher(port).await?;
    let mut client = PublisherServiceClient::connect(format!("http://{}", publ.addr)).await?;
    let err = client
        .publish_message(pb::PublishMessageRequest {
            topic: "t".into(),
            payload: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    publ.shutdown.token.cancel();
    timeout(WAIT, publ.task).await???;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_the_broker_restarts() -> Result<()> {
    let mut broker = mosquitto().await?;
    let port = broker.port;
    let publ = publisher(port).await?;
    let (req_tx, mut acks) = open_publish(publ.addr).await?;
    req_tx
        .send(pb::PublishRequest {
            events: vec![mqtt_event(
                1,
                "restart/a",
                pb::Qos::AtLeastOnce,
                false,
                None,
            )],
            ack_now: false,
        })
        .await?;
    let first = timeout(WAIT, acks.message()).await??.context("ack 1")?;
    assert_eq!(first.acks[0].seq, 1);

    // The broker goes away: the next event is not acked until it is back and has the message.
    broker.child.kill().await?;
    let _ = broker.child.wait().await;
    req_tx
        .send(pb::PublishRequest {
            events: vec![mqtt_event(2, "restart/b", pb::Qos::AtLeastOnce, true, None)],
            ack_now: false,
        })
        .await?;
    assert!(
        timeout(Duration::from_millis(500), acks.message())
            .await
            .is_err(),
        "no ack while the broker is away"
    );
    let _broker = mosquitto_on(port).await?;
    let second = timeout(WAIT * 2, acks.message()).await??.context("ack 2")?;
    assert_eq!((second.acks[0].seq, second.acks[0].error.as_str()), (2, ""));
    // It is on the broker (retained, so a late subscriber still sees it).
    let mut sub = subscriber(port, &["restart/#"]).await?;
    let p = timeout(WAIT, sub.recv())
        .await?
        .context("retained message")?;
    assert_eq!(&p.topic[..], b"restart/b");

    drop(req_tx);
    publ.shutdown.token.cancel();
    timeout(WAIT, publ.task).await???;
    Ok(())
}
