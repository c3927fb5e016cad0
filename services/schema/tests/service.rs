//! `sse_schema::run` on 127.0.0.1:0 with a temporary data dir, driven with the generated client,
//! in front of a fake in-test publisher (a tonic server that acks everything and records events).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use sse_proto::v1::publisher_service_server::{PublisherService, PublisherServiceServer};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{
    Ack, Event, GetSchemaRequest, InferSchemaRequest, ListSchemasRequest, NoSchemaReason,
    ProcessRequest, ProcessResponse, PublishMessageRequest, PublishMessageResponse, PublishRequest,
    PublishResponse, PutSchemaRequest, Route, RouteKind,
};
use sse_runtime::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const DEADLINE: Duration = Duration::from_secs(20);

/// Waits for `f` to return `Some`, polling every 50 ms, at most [`DEADLINE`].
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A publisher that acks every event and records it; an event whose data is `BREAK` makes it
/// fail the stream instead.
#[derive(Clone, Default)]
struct FakePublisher {
    events: Arc<Mutex<Vec<Event>>>,
}

#[tonic::async_trait]
impl PublisherService for FakePublisher {
    type PublishStream = ReceiverStream<Result<PublishResponse, Status>>;

    async fn publish(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let mut input = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Ok(Some(batch)) = input.message().await {
                if batch.events.iter().any(|e| e.data.as_ref() == b"BREAK") {
                    let _ = tx.send(Err(Status::internal("boom"))).await;
                    return;
                }
                let acks = batch
                    .events
                    .iter()
                    .map(|e| Ack {
                        stream_key: e.stream_key.clone(),
                        seq: e.seq,
                        error: String::new(),
                        ..Default::default()
                    })
                    .collect();
                events.lock().unwrap().extend(batch.events);
                if tx.send(Ok(PublishResponse { acks })).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn publish_message(
        &self,
        _request: Request<PublishMessageRequest>,
    ) -> Result<Response<PublishMessageResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

struct Publisher {
    fake: FakePublisher,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Publisher {
    async fn start(listener: TcpListener) -> Self {
        let fake = FakePublisher::default();
        let stop = CancellationToken::new();
        let (_reporter, health) = tonic_health::server::health_reporter();
        let server = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(PublisherServiceServer::new(fake.clone()))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                stop.clone().cancelled_owned(),
            );
        let task = tokio::spawn(async move {
            server.await.unwrap();
        });
        Self { fake, stop, task }
    }

    /// A fake publisher on a free loopback port, and that port's address.
    async fn on_free_port() -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Self::start(listener).await, addr)
    }

    fn events(&self) -> Vec<Event> {
        self.fake.events.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(DEADLINE, self.task).await;
    }
}

struct Schema {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), sse_schema::Error>>,
}

impl Schema {
    async fn start(data_dir: &Path, publisher: SocketAddr) -> Self {
        Self::start_with(data_dir, publisher, &[]).await
    }

    /// [`Schema::start`] with `extra` flags.
    async fn start_with(data_dir: &Path, publisher: SocketAddr, extra: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut args = vec![
            "sse-schema".to_string(),
            format!("--listen={addr}"),
            format!("--publisher=http://{publisher}"),
            format!("--data-dir={}", data_dir.display()),
            "--registry-namespace=test-ns".into(),
            "--max-payload-bytes=4096".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let config = sse_schema::Config::try_parse_from(args).unwrap();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(sse_schema::run(
            listener,
            config.settings().unwrap(),
            shutdown.clone(),
        ));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn client(&self) -> SchemaServiceClient<Channel> {
        SchemaServiceClient::new(self.channel().await)
    }

    async fn health(&self, service: &str) -> Option<ServingStatus> {
        let mut h = HealthClient::new(self.channel().await);
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()?;
        ServingStatus::try_from(r.into_inner().status).ok()
    }

    async fn wait_serving(&self) {
        for service in ["", "sseconnector.v1.SchemaService"] {
            eventually("SERVING", || async {
                (self.health(service).await == Some(ServingStatus::Serving)).then_some(())
            })
            .await;
        }
    }

    async fn stop(self) {
        self.shutdown.token.cancel();
        let r = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("run returns after shutdown");
        r.unwrap().unwrap();
        assert!(self.shutdown.drain(DEADLINE).await);
    }
}

fn event(seq: u64, kind: RouteKind, group: &str, name: &str, data: &str) -> Event {
    Event {
        id: format!("id-{seq}"),
        seq,
        stream_key: "dev/ep http://x/readings".into(),
        data: data.as_bytes().to_vec().into(),
        sse_event: "message".into(),
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        route: Some(Route {
            device: "dev".into(),
            endpoint: "ep".into(),
            asset: "asset".into(),
            kind: kind as i32,
            group: group.into(),
            event: name.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn dataset(seq: u64, data: &str) -> Event {
    event(seq, RouteKind::Dataset, "readings", "", data)
}

/// A fake publisher and a schema service in `dir` relaying to it, serving; the publisher's
/// address, for a restart of the schema service.
async fn relaying(dir: &Path) -> (Publisher, Schema, SocketAddr) {
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir, paddr).await;
    schema.wait_serving().await;
    (publisher, schema, paddr)
}

/// An open `Process` stream: a sender of batches and the responses.
struct Stream {
    tx: mpsc::Sender<ProcessRequest>,
    rx: Streaming<ProcessResponse>,
}

impl Stream {
    async fn open(schema: &Schema) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let mut client = schema.client().await;
        let resp = client.process(ReceiverStream::new(rx)).await.unwrap();
        Self {
            tx,
            rx: resp.into_inner(),
        }
    }

    async fn send(&self, events: Vec<Event>) {
        self.tx.send(ProcessRequest { events }).await.unwrap();
    }

    /// Receives acks until `n` have arrived.
    async fn acks(&mut self, n: usize) -> Vec<Ack> {
        let mut acks = Vec::new();
        while acks.len() < n {
            let msg = tokio::time::timeout(DEADLINE, self.rx.message())
                .await
                .expect("acks in time")
                .unwrap()
                .expect("stream open");
            acks.extend(msg.acks);
        }
        acks
    }
}

fn version(dataschema: &str) -> &str {
    dataschema.rsplit(':').next().unwrap()
}

/// `PutSchema` and `InferSchema` take the size limit of events (and `InferSchema` the inference
/// limits of the pipeline), answering INVALID_ARGUMENT naming the limit; `PutSchema` answers
/// RESOURCE_EXHAUSTED once the registry's files would pass `--max-registry-bytes`.
#[tokio::test]
async fn put_and_infer_take_the_event_limits_and_the_registry_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start_with(dir.path(), paddr, &["--max-registry-bytes=3000"]).await;
    let mut c = schema.client().await;
    let max = sse_contract::limits::EVENT_BYTES_MAX;
    // A JSON string of `n` bytes, and a schema document of `n` bytes.
    let string_of = |n: usize| format!("\"{}\"", "a".repeat(n - 2));
    let schema_of = |n: usize| format!(r#"{{"description":"{}"}}"#, "a".repeat(n - 18));
    assert_eq!(schema_of(100).len(), 100);

    let err = c
        .infer_schema(InferSchemaRequest {
            payload: string_of(max + 1),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("event size limit") && err.message().contains(&max.to_string()),
        "{err:?}"
    );
    // Within the event limit but over this service's --max-payload-bytes (4096).
    let err = c
        .infer_schema(InferSchemaRequest {
            payload: string_of(5000),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("--max-payload-bytes 4096"),
        "{err:?}"
    );
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let err = c
        .infer_schema(InferSchemaRequest { payload: deep })
        .await
        .unwrap_err();
    assert!(err.message().contains("--max-depth 32"), "{err:?}");
    c.infer_schema(InferSchemaRequest {
        payload: string_of(4096),
    })
    .await
    .unwrap();

    let err = c
        .put_schema(PutSchemaRequest {
            content: schema_of(max + 1),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("event size limit"), "{err:?}");
    // The registry cap: the first schema fits in 3000 bytes, a second one does not.
    c.put_schema(PutSchemaRequest {
        content: schema_of(1500),
        version: "1".into(),
    })
    .await
    .unwrap();
    let err = c
        .put_schema(PutSchemaRequest {
            content: schema_of(1500),
            version: "2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("--max-registry-bytes"), "{err:?}");
    let listed = c
        .list_schemas(ListSchemasRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schemas.len(), 1);
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn registry_api() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir.path(), paddr).await;
    let mut c = schema.client().await;

    let inferred = c
        .infer_schema(InferSchemaRequest {
            payload: r#"{"b": ["x"], "a": 1}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let content: serde_json::Value = serde_json::from_str(&inferred.content).unwrap();
    assert_eq!(
        content["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
    assert_eq!(content["properties"]["a"]["type"], "integer");
    assert_eq!(content["properties"]["b"]["items"]["type"], "string");
    assert_eq!(
        inferred.name,
        sse_schema::canonical::name_of(&inferred.content)
    );
    let err = c
        .infer_schema(InferSchemaRequest {
            payload: "not json".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Put: content is stored canonical; version defaults to 1; same put is idempotent.
    let put = c
        .put_schema(PutSchemaRequest {
            content: r#"{ "type": "object", "properties": { "z": {}, "a": {} } }"#.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(put.version, "1");
    assert_eq!(put.subject, "");
    assert_eq!(put.namespace, "test-ns");
    assert_eq!(put.format, "JsonSchema/draft-07");
    assert_eq!(
        put.content,
        r#"{"properties":{"a":{},"z":{}},"type":"object"}"#
    );
    assert_eq!(put.name.len(), 64);
    let put2 = c
        .put_schema(PutSchemaRequest {
            content: put.content.clone(),
            version: "2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(put2.name, put.name);
    for bad in ["not json", "[1]", "\"s\""] {
        let err = c
            .put_schema(PutSchemaRequest {
                content: bad.into(),
                version: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
    }
    let err = c
        .put_schema(PutSchemaRequest {
            content: "{}".into(),
            version: "../1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Get: by version, highest when empty, NOT_FOUND when missing.
    let get = |name: &str, version: &str| GetSchemaRequest {
        name: name.into(),
        version: version.into(),
    };
    let got = c
        .get_schema(get(&put.name, "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.schema.unwrap(), put);
    let got = c.get_schema(get(&put.name, "")).await.unwrap().into_inner();
    assert_eq!(got.schema.unwrap(), put2);
    for (name, version) in [(put.name.as_str(), "3"), ("ABC", "")] {
        let err = c.get_schema(get(name, version)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }

    let list = c
        .list_schemas(ListSchemasRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.schemas, vec![put, put2]);

    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn process_tags_relays_and_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, paddr) = relaying(dir.path()).await;

    let mut s = Stream::open(&schema).await;
    s.send(vec![
        dataset(1, r#"{"station":"ws-01","temperature":21.5}"#),
        // Same shape, other key order and values (an integer where a number was seen).
        dataset(2, r#"{"temperature":22,"station":"ws-02"}"#),
    ])
    .await;
    s.send(vec![
        dataset(3, "plain text, not JSON"),
        dataset(4, r#"{"station":"ws-01","temperature":20,"ok":true}"#),
        event(5, RouteKind::Event, "alerts", "overheat", r#"{"t":1}"#),
    ])
    .await;
    let acks = s.acks(5).await;
    let seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(
        acks.iter()
            .all(|a| a.stream_key == "dev/ep http://x/readings")
    );
    // Each relayed ack says which schema its event got, or why none.
    let refs: Vec<Option<(String, String)>> = acks
        .iter()
        .map(|a| {
            a.schema
                .as_ref()
                .map(|r| (r.namespace.clone(), r.version.clone()))
        })
        .collect();
    let v = |n: &str| Some(("test-ns".to_string(), n.to_string()));
    assert_eq!(refs, vec![v("1"), v("1"), None, v("2"), v("1")]);
    assert_eq!(acks[2].no_schema_reason(), NoSchemaReason::NotJson);
    assert_eq!(acks[0].no_schema_reason(), NoSchemaReason::Unspecified);
    // Ingest ends its stream: the relay ends it cleanly after the acks.
    drop(s.tx);
    let end = tokio::time::timeout(DEADLINE, s.rx.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");

    let events = publisher.events();
    assert_eq!(events.len(), 5);
    let ds: Vec<&str> = events.iter().map(|e| e.dataschema.as_str()).collect();
    assert!(ds[0].starts_with("aio-sr://test-ns/"), "{}", ds[0]);
    assert_eq!(version(ds[0]), "1");
    assert_eq!(ds[1], ds[0]);
    assert_eq!(ds[2], "", "non-JSON passes through without a schema");
    assert_eq!(events[2].data.as_ref(), b"plain text, not JSON");
    assert_eq!(version(ds[3]), "2");
    assert_ne!(ds[3], ds[0]);
    assert_eq!(version(ds[4]), "1", "each subject numbers its own versions");
    // The event's trace continues (no exporter here: the incoming context is kept).
    assert!(
        events[0]
            .traceparent
            .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
    );

    let mut c = schema.client().await;
    let list = c
        .list_schemas(ListSchemasRequest {})
        .await
        .unwrap()
        .into_inner()
        .schemas;
    assert_eq!(list.len(), 3);
    let name = ds[3]
        .strip_prefix("aio-sr://test-ns/")
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let got = c
        .get_schema(GetSchemaRequest {
            name: name.into(),
            version: "2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(got.subject, "asset/readings");
    let content: serde_json::Value = serde_json::from_str(&got.content).unwrap();
    assert_eq!(content["properties"]["temperature"]["type"], "number");
    assert_eq!(
        content["required"],
        serde_json::json!(["station", "temperature"])
    );
    drop(c);
    let v2 = ds[3].to_string();
    schema.stop().await;

    // Restart on the same data dir: known shapes keep their version, numbering resumes.
    let schema = Schema::start(dir.path(), paddr).await;
    let mut s = Stream::open(&schema).await;
    s.send(vec![
        dataset(6, r#"{"ok":false,"temperature":1.25,"station":"x"}"#),
        dataset(
            7,
            r#"{"station":"x","temperature":1,"ok":true,"extra":[1]}"#,
        ),
    ])
    .await;
    s.acks(2).await;
    let events = publisher.events();
    assert_eq!(events[5].dataschema, v2);
    assert_eq!(version(&events[6].dataschema), "3");
    schema.stop().await;
    publisher.stop().await;
}

/// An event whose route kind is unspecified is refused the one way every service refuses it
/// (sse-contract's `RouteKind::from_wire`): the schema service registers no schema for it, not
/// even when its event name would make it look like an event, and relays it untagged.
#[tokio::test]
async fn an_unspecified_route_kind_gets_no_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, _) = relaying(dir.path()).await;

    let mut s = Stream::open(&schema).await;
    s.send(vec![
        event(
            1,
            RouteKind::Unspecified,
            "alerts",
            "overheat",
            r#"{"t":1}"#,
        ),
        event(2, RouteKind::Event, "alerts", "overheat", r#"{"t":1}"#),
    ])
    .await;
    let acks = s.acks(2).await;
    assert_eq!(acks[0].seq, 1);
    assert_eq!(acks[0].schema, None);
    assert_eq!(acks[0].no_schema_reason(), NoSchemaReason::NoRoute);
    assert!(acks[1].schema.is_some(), "{:?}", acks[1]);

    let events = publisher.events();
    assert_eq!(
        events[0].dataschema, "",
        "no schema guessed for an unspecified kind"
    );
    assert_ne!(events[1].dataschema, "");
    let mut c = schema.client().await;
    let list = c
        .list_schemas(ListSchemasRequest {})
        .await
        .unwrap()
        .into_inner()
        .schemas;
    assert_eq!(list.len(), 1, "only the event's subject: {list:?}");
    drop(c);
    drop(s);
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn waits_for_a_late_publisher_and_fails_the_stream_when_it_breaks() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port for the publisher, which starts later.
    let paddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let schema = Schema::start(dir.path(), paddr).await;
    assert_eq!(schema.health("").await, Some(ServingStatus::NotServing));
    let mut s = Stream::open(&schema).await;
    s.send(vec![dataset(1, r#"{"a":1}"#)]).await;
    assert_eq!(
        schema.health("sseconnector.v1.SchemaService").await,
        Some(ServingStatus::NotServing)
    );

    let publisher = Publisher::start(TcpListener::bind(paddr).await.unwrap()).await;
    let acks = s.acks(1).await;
    assert_eq!(acks[0].seq, 1);
    schema.wait_serving().await;

    // The publisher breaks the stream: ingest's stream ends with UNAVAILABLE.
    s.send(vec![dataset(2, "BREAK")]).await;
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match s.rx.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    assert_eq!(publisher.events().len(), 1);

    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir.path(), paddr).await;
    let mut s = Stream::open(&schema).await;
    s.send(vec![dataset(1, r#"{"a":1}"#)]).await;
    s.acks(1).await;
    schema.shutdown.token.cancel();
    let end = tokio::time::timeout(DEADLINE, s.rx.message())
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    schema.stop().await;
    publisher.stop().await;
}
