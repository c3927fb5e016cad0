//! Ingest as a service: resources in a tempdir pointing at an in-test SSE server, a fake
//! in-test SchemaService that records and acknowledges events (and drops the first Process
//! stream without acking, so ingest must re-send), `run` on 127.0.0.1:0, and `ListStreams`
//! and health over the generated clients.

#![allow(clippy::unwrap_used, missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use sse_proto::v1 as pb;
use sse_proto::v1::ingest_service_client::IngestServiceClient;
use sse_proto::v1::schema_service_server::{SchemaService, SchemaServiceServer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

// ---- the SSE server ----

const READINGS: &str = "id: 1\nevent: reading\ndata: {\"t\":1}\n\nid: 2\nevent: reading\ndata: {\"t\":2}\n\nid: 3\ndata: plain\n\n";
const ALERTS: &str = "id: a1\nevent: temperature-threshold\ndata: {\"hot\":true}\n\nid: a2\nevent: other\ndata: {}\n\nid: a3\nevent: heartbeat\ndata: {\"ok\":1}\n\n";

fn respond(path: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let text = match path {
        "/base/readings" => READINGS,
        "/base" => ALERTS,
        _ => {
            return Response::builder()
                .status(404)
                .body(http_body_util::Empty::new().boxed())
                .unwrap();
        }
    };
    // Send the events, then hold the connection open.
    let frames = futures::stream::iter([Ok(Frame::data(Bytes::from(text)))])
        .chain(futures::stream::pending());
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(BodyExt::boxed(StreamBody::new(frames)))
        .unwrap()
}

async fn sse_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    Ok::<_, Infallible>(respond(req.uri().path()))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

// ---- the fake schema service ----

/// Events per Process stream, in arrival order.
#[derive(Clone)]
struct Recorder {
    streams: Arc<Mutex<Vec<Vec<pb::Event>>>>,
    /// Drop the first Process stream once it got [`DROP_AFTER`] events, without acking.
    drop_first: bool,
    /// Acknowledge events (else never).
    ack: bool,
}

impl Recorder {
    fn new(drop_first: bool, ack: bool) -> Self {
        Self {
            streams: Arc::default(),
            drop_first,
            ack,
        }
    }
}

/// Drops the first Process stream (without acking) once it received this many events.
const DROP_AFTER: usize = 5;

#[tonic::async_trait]
impl SchemaService for Recorder {
    type ProcessStream = ReceiverStream<Result<pb::ProcessResponse, tonic::Status>>;

    async fn process(
        &self,
        request: tonic::Request<tonic::Streaming<pb::ProcessRequest>>,
    ) -> Result<tonic::Response<Self::ProcessStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let idx = {
            let mut s = self.streams.lock().unwrap();
            s.push(Vec::new());
            s.len() - 1
        };
        let (tx, rx) = mpsc::channel(16);
        let streams = self.streams.clone();
        let (drop_first, ack) = (self.drop_first, self.ack);
        tokio::spawn(async move {
            while let Ok(Some(req)) = inbound.message().await {
                let total = {
                    let mut s = streams.lock().unwrap();
                    s[idx].extend(req.events.iter().cloned());
                    s[idx].len()
                };
                if idx == 0 && drop_first {
                    if total >= DROP_AFTER {
                        let _ = tx.send(Err(tonic::Status::unavailable("dropped"))).await;
                        return;
                    }
                    continue;
                }
                if !ack {
                    continue;
                }
                let acks = req
                    .events
                    .iter()
                    .map(|e| pb::Ack {
                        stream_key: e.stream_key.clone(),
                        seq: e.seq,
                        error: String::new(),
                        ..Default::default()
                    })
                    .collect();
                if tx.send(Ok(pb::ProcessResponse { acks })).await.is_err() {
                    return;
                }
            }
        });
        Ok(tonic::Response::new(ReceiverStream::new(rx)))
    }

    async fn put_schema(
        &self,
        _: tonic::Request<pb::PutSchemaRequest>,
    ) -> Result<tonic::Response<pb::PutSchemaResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn get_schema(
        &self,
        _: tonic::Request<pb::GetSchemaRequest>,
    ) -> Result<tonic::Response<pb::GetSchemaResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn delete_schema(
        &self,
        _: tonic::Request<pb::DeleteSchemaRequest>,
    ) -> Result<tonic::Response<pb::DeleteSchemaResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn list_schemas(
        &self,
        _: tonic::Request<pb::ListSchemasRequest>,
    ) -> Result<tonic::Response<pb::ListSchemasResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn infer_schema(
        &self,
        _: tonic::Request<pb::InferSchemaRequest>,
    ) -> Result<tonic::Response<pb::InferSchemaResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }

    async fn list_subjects(
        &self,
        _: tonic::Request<pb::ListSubjectsRequest>,
    ) -> Result<tonic::Response<pb::ListSubjectsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("fake"))
    }
}

async fn schema_server(recorder: Recorder) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(SchemaServiceServer::new(recorder))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

// ---- resources ----

fn resources(base: &str) -> String {
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: station }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.Sse
        address: {base}/base
        authentication: {{ method: Anonymous }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: asset-a }}
spec:
  deviceRef: {{ deviceName: station, endpointName: sse-0 }}
  defaultDatasetsDestinations:
    - {{ target: Mqtt, configuration: {{ topic: t/readings, qos: Qos1, retain: Never, ttl: 3600 }} }}
  defaultEventsDestinations:
    - {{ target: Mqtt, configuration: {{ topic: t/asset-default }} }}
  datasets:
    - {{ name: readings, dataSource: /readings, typeRef: weather }}
  eventGroups:
    - name: alerts
      dataSource: ""
      defaultDestinations:
        - {{ target: Mqtt, configuration: {{ topic: t/alerts }} }}
      events:
        - name: overheat
          dataSource: temperature-threshold
          destinations:
            - {{ target: Mqtt, configuration: {{ topic: t/overheat, qos: Qos0, retain: Keep, ttl: 60 }} }}
        - {{ name: beat, dataSource: /heartbeat }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: orphan }}
spec:
  deviceRef: {{ deviceName: no-such-device, endpointName: sse-0 }}
  datasets:
    - {{ name: lost, destinations: [ {{ target: Mqtt, configuration: {{ topic: t/lost }} }} ] }}
"#
    )
}

/// Polls `f` until it returns `Some`, at most `secs` seconds.
async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn topic(e: &pb::Event) -> String {
    match e
        .route
        .as_ref()
        .and_then(|r| r.destination.as_ref())
        .and_then(|d| d.target.as_ref())
    {
        Some(pb::destination::Target::Mqtt(m)) => m.topic.clone(),
        other => panic!("not an MQTT destination: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_events_resends_unacked_and_reports_status() {
    let telemetry = sse_runtime::telemetry::init("sse-ingest-test", false).expect("telemetry");
    let sse = sse_server().await;
    let recorder = Recorder::new(true, true);
    let schema = schema_server(recorder.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("resources.yaml"),
        resources(&format!("http://{sse}")),
    )
    .unwrap();

    let config = sse_ingest::Config::try_parse_from([
        "sse-ingest".to_string(),
        "--schema".into(),
        format!("http://{schema}"),
        "--resources".into(),
        dir.path().display().to_string(),
        // Status reports travel the same stream; these tests count only routed events.
        "--status-topic".into(),
        String::new(),
    ])
    .unwrap()
    .settings()
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = listener.local_addr().unwrap();
    let shutdown = sse_runtime::Shutdown::new();
    let run = tokio::spawn(sse_ingest::run(listener, config, shutdown.clone()));

    // The first Process stream gets every routed event and is dropped unacked; the second gets
    // them all again, in the same order with the same ids, and acks them.
    let (first, second) = eventually("the re-sent events", 20, || {
        let r = recorder.clone();
        async move {
            let s = r.streams.lock().unwrap();
            (s.len() >= 2 && s[1].len() >= DROP_AFTER).then(|| (s[0].clone(), s[1].clone()))
        }
    })
    .await;
    assert_eq!(first.len(), DROP_AFTER);
    let key = |e: &pb::Event| (e.stream_key.clone(), e.seq, e.id.clone());
    assert_eq!(
        first.iter().map(key).collect::<Vec<_>>(),
        second.iter().take(DROP_AFTER).map(key).collect::<Vec<_>>()
    );
    assert_eq!(second.len(), DROP_AFTER, "nothing else was routed");

    let readings_key = format!("station/sse-0|http://{sse}/base/readings");
    let base_key = format!("station/sse-0|http://{sse}/base");
    let on = |k: &str| -> Vec<pb::Event> {
        second
            .iter()
            .filter(|e| e.stream_key == k)
            .cloned()
            .collect()
    };

    // The dataset: every event of its path, seq from 1, the asset's default destination.
    let readings = on(&readings_key);
    assert_eq!(readings.len(), 3);
    assert_eq!(
        readings.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        readings
            .iter()
            .map(|e| e.sse_id.as_str())
            .collect::<Vec<_>>(),
        ["1", "2", "3"]
    );
    assert_eq!(
        readings
            .iter()
            .map(|e| e.sse_event.as_str())
            .collect::<Vec<_>>(),
        ["reading", "reading", "message"]
    );
    assert_eq!(&readings[0].data[..], b"{\"t\":1}");
    assert_eq!(&readings[2].data[..], b"plain");
    for e in &readings {
        let r = e.route.as_ref().unwrap();
        assert_eq!(r.kind, pb::RouteKind::Dataset as i32);
        assert_eq!(
            (r.device.as_str(), r.endpoint.as_str(), r.asset.as_str()),
            ("station", "sse-0", "asset-a")
        );
        assert_eq!(
            (r.group.as_str(), r.data_source.as_str()),
            ("readings", "/readings")
        );
        assert_eq!(r.type_ref, "weather");
        assert_eq!(topic(e), "t/readings");
    }

    // The event group: matching types only, own destination before the group default.
    let alerts = on(&base_key);
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    let (hot, beat) = (&alerts[0], &alerts[1]);
    let hr = hot.route.as_ref().unwrap();
    assert_eq!(hr.kind, pb::RouteKind::Event as i32);
    assert_eq!(
        (hr.group.as_str(), hr.event.as_str()),
        ("alerts", "overheat")
    );
    assert_eq!(hot.sse_id, "a1");
    assert_eq!(topic(hot), "t/overheat");
    match hr.destination.as_ref().unwrap().target.as_ref().unwrap() {
        pb::destination::Target::Mqtt(m) => {
            assert_eq!(m.qos, pb::Qos::AtMostOnce as i32);
            assert!(m.retain);
            assert_eq!(m.ttl_seconds, Some(60));
        }
        other => panic!("{other:?}"),
    }
    let br = beat.route.as_ref().unwrap();
    assert_eq!(
        (br.event.as_str(), br.data_source.as_str()),
        ("beat", "/heartbeat")
    );
    assert_eq!(
        (beat.sse_id.as_str(), beat.sse_event.as_str()),
        ("a3", "heartbeat")
    );
    assert_eq!(topic(beat), "t/alerts");

    // Ids unique and UUID-like; every event has its own trace context.
    let ids: std::collections::HashSet<&str> = second.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), second.len());
    for e in &second {
        assert_eq!(e.id.replace('-', "").len(), 32, "{}", e.id);
        assert!(e.traceparent.starts_with("00-"), "{e:?}");
        assert!(e.received_unix_nanos > 0);
    }
    assert_ne!(second[0].traceparent, second[1].traceparent);

    // ListStreams: counts, connection, last event id, and the broken asset.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{ingest}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = IngestServiceClient::new(channel.clone());
    let list = eventually("every event acknowledged", 10, || {
        let mut client = client.clone();
        async move {
            let l = client
                .list_streams(pb::ListStreamsRequest {})
                .await
                .ok()?
                .into_inner();
            let acked: u64 = l.streams.iter().map(|s| s.events_acknowledged).sum();
            (acked == 5).then_some(l)
        }
    })
    .await;
    assert_eq!(list.streams.len(), 2);
    let base = &list.streams[0];
    assert_eq!(base.key, base_key);
    assert_eq!(base.url, format!("http://{sse}/base"));
    assert!(base.connected);
    assert_eq!(
        (
            base.events_received,
            base.events_forwarded,
            base.events_unmatched,
            base.events_acknowledged
        ),
        (3, 2, 1, 2)
    );
    assert_eq!(base.last_event_id, "a3");
    assert_eq!(base.connects, 1);
    assert_eq!(
        base.routes,
        ["asset-a/alerts/overheat", "asset-a/alerts/beat"]
    );
    let rd = &list.streams[1];
    assert_eq!(rd.key, readings_key);
    assert!(rd.connected);
    assert_eq!(
        (
            rd.events_received,
            rd.events_forwarded,
            rd.events_unmatched,
            rd.events_acknowledged
        ),
        (3, 3, 0, 3)
    );
    assert_eq!(rd.last_event_id, "3");
    assert!(rd.last_error.is_empty(), "{}", rd.last_error);
    assert_eq!(list.resource_errors.len(), 1, "{:?}", list.resource_errors);
    let err = &list.resource_errors[0];
    assert_eq!(err.resource, "Asset/orphan");
    assert!(err.file.ends_with("resources.yaml"));
    assert!(err.message.contains("no-such-device"), "{}", err.message);

    // Health: serving while the Process stream is open.
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "sseconnector.v1.IngestService"] {
        let h = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            h.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }

    // Shutdown: run returns, every task stops within the drain timeout.
    shutdown.token.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(shutdown.drain(Duration::from_secs(10)).await);
    telemetry.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_in_flight_window_stops_forwarding() {
    let sse = sse_server().await;
    let recorder = Recorder::new(false, false);
    let schema = schema_server(recorder.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("resources.yaml"),
        resources(&format!("http://{sse}")),
    )
    .unwrap();
    let config = sse_ingest::Config::try_parse_from([
        "sse-ingest".to_string(),
        "--schema".into(),
        format!("http://{schema}"),
        "--resources".into(),
        dir.path().display().to_string(),
        "--max-in-flight".into(),
        "2".into(),
        "--status-topic".into(),
        String::new(),
    ])
    .unwrap()
    .settings()
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ingest = listener.local_addr().unwrap();
    let shutdown = sse_runtime::Shutdown::new();
    let run = tokio::spawn(sse_ingest::run(listener, config, shutdown.clone()));
    let client = IngestServiceClient::connect(format!("http://{ingest}"))
        .await
        .unwrap();
    let sent = || -> usize { recorder.streams.lock().unwrap().iter().map(Vec::len).sum() };
    // Every SSE event was read (the routed ones wait in bounded queues), and the window's worth
    // reached the schema service ...
    let list = eventually("all SSE events read, two of them sent", 10, || {
        let mut client = client.clone();
        let sent = sent();
        async move {
            let l = client
                .list_streams(pb::ListStreamsRequest {})
                .await
                .ok()?
                .into_inner();
            let received: u64 = l.streams.iter().map(|s| s.events_received).sum();
            let forwarded: u64 = l.streams.iter().map(|s| s.events_forwarded).sum();
            (received == 6 && forwarded == 2 && sent == 2).then_some(l)
        }
    })
    .await;
    // ... but no more than the window's worth, and nothing was acknowledged.
    let l = client
        .clone()
        .list_streams(pb::ListStreamsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.streams.iter().map(|s| s.events_forwarded).sum::<u64>(), 2);
    assert_eq!(sent(), 2);
    assert!(list.streams.iter().all(|s| s.events_acknowledged == 0));
    shutdown.token.cancel();
    tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // The drain gives up on the unacknowledged events after its bounded wait.
    assert!(shutdown.drain(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn missing_resources_dir_is_a_config_error() {
    // Validated into settings before anything starts.
    let e =
        sse_ingest::Config::try_parse_from(["sse-ingest", "--resources", "/definitely/not/here"])
            .unwrap()
            .settings()
            .unwrap_err();
    assert!(e.is_config());
    assert!(e.to_string().contains("/definitely/not/here"));
}
