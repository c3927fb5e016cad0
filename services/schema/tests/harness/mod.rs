//! The schema service's test harness, shared by its test binaries: a fake publisher that acks
//! everything, the service run in-process on a free port, and a `Process` stream to feed it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use sse_proto::v1::publisher_service_server::{PublisherService, PublisherServiceServer};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{
    Ack, Event, ProcessRequest, ProcessResponse, PublishMessageRequest, PublishMessageResponse,
    PublishRequest, PublishResponse, Route, RouteKind,
};
use sse_runtime::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// Waits for `f` to return `Some`, polling every 50 ms, at most [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
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
/// fail the stream instead. With `hold_acks` set it holds the acks until a request asks for
/// them (`ack_now`), as the real one does for its ack delay.
#[derive(Clone, Default)]
pub struct FakePublisher {
    pub events: Arc<Mutex<Vec<Event>>>,
    pub hold_acks: Arc<std::sync::atomic::AtomicBool>,
}

#[tonic::async_trait]
impl PublisherService for FakePublisher {
    type PublishStream = ReceiverStream<Result<PublishResponse, Status>>;
    type TailStream = ReceiverStream<Result<sse_proto::v1::TailResponse, Status>>;

    async fn publish(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let mut input = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let events = self.events.clone();
        let hold = self.hold_acks.clone();
        tokio::spawn(async move {
            let mut held: Vec<Ack> = Vec::new();
            while let Ok(Some(batch)) = input.message().await {
                if batch.events.iter().any(|e| e.data.as_ref() == b"BREAK") {
                    let _ = tx.send(Err(Status::internal("boom"))).await;
                    return;
                }
                held.extend(batch.events.iter().map(|e| Ack {
                    stream_key: e.stream_key.clone(),
                    seq: e.seq,
                    error: String::new(),
                    ..Default::default()
                }));
                events.lock().unwrap().extend(batch.events);
                let holding = hold.load(std::sync::atomic::Ordering::SeqCst);
                if held.is_empty() || (holding && !batch.ack_now) {
                    continue;
                }
                let acks = std::mem::take(&mut held);
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

    async fn tail(
        &self,
        _request: Request<sse_proto::v1::TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

pub struct Publisher {
    pub fake: FakePublisher,
    pub stop: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Publisher {
    pub async fn start(listener: TcpListener) -> Self {
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
    pub async fn on_free_port() -> (Self, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Self::start(listener).await, addr)
    }

    pub fn events(&self) -> Vec<Event> {
        self.fake.events.lock().unwrap().clone()
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(DEADLINE, self.task).await;
    }
}

pub struct Schema {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub task: JoinHandle<Result<(), sse_schema::Error>>,
}

impl Schema {
    pub async fn start(data_dir: &Path, publisher: SocketAddr) -> Self {
        Self::start_with(data_dir, publisher, &[]).await
    }

    /// [`Schema::start`] with `extra` flags.
    pub async fn start_with(data_dir: &Path, publisher: SocketAddr, extra: &[&str]) -> Self {
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

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> SchemaServiceClient<Channel> {
        SchemaServiceClient::new(self.channel().await)
    }

    pub async fn health(&self, service: &str) -> Option<ServingStatus> {
        let mut h = HealthClient::new(self.channel().await);
        let r = h
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()?;
        ServingStatus::try_from(r.into_inner().status).ok()
    }

    pub async fn wait_serving(&self) {
        for service in ["", "sseconnector.v1.SchemaService"] {
            eventually("SERVING", || async {
                (self.health(service).await == Some(ServingStatus::Serving)).then_some(())
            })
            .await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.token.cancel();
        let r = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("run returns after shutdown");
        r.unwrap().unwrap();
        assert!(self.shutdown.drain(DEADLINE).await);
    }
}

pub fn event(seq: u64, kind: RouteKind, group: &str, name: &str, data: &str) -> Event {
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

pub fn dataset(seq: u64, data: &str) -> Event {
    event(seq, RouteKind::Dataset, "readings", "", data)
}

/// A fake publisher and a schema service in `dir` relaying to it, serving; the publisher's
/// address, for a restart of the schema service.
pub async fn relaying(dir: &Path) -> (Publisher, Schema, SocketAddr) {
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir, paddr).await;
    schema.wait_serving().await;
    (publisher, schema, paddr)
}

/// An open `Process` stream: a sender of batches and the responses.
pub struct Stream {
    pub tx: mpsc::Sender<ProcessRequest>,
    pub rx: Streaming<ProcessResponse>,
}

impl Stream {
    pub async fn open(schema: &Schema) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let mut client = schema.client().await;
        let resp = client.process(ReceiverStream::new(rx)).await.unwrap();
        Self {
            tx,
            rx: resp.into_inner(),
        }
    }

    pub async fn send(&self, events: Vec<Event>) {
        self.tx
            .send(ProcessRequest {
                events,
                ack_now: false,
            })
            .await
            .unwrap();
    }

    /// Sends `events` and asks for the acks held downstream at once (`ack_now`), as ingest
    /// does when its window is full.
    pub async fn send_asking(&self, events: Vec<Event>) {
        self.tx
            .send(ProcessRequest {
                events,
                ack_now: true,
            })
            .await
            .unwrap();
    }

    /// Receives acks until `n` have arrived.
    pub async fn acks(&mut self, n: usize) -> Vec<Ack> {
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
