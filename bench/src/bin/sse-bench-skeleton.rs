//! `sse-bench-skeleton`: the bare architecture of the pipeline (three processes joined by tonic
//! gRPC bidi streams carrying the services' real messages) with none of the services' logic, so
//! `just bench` can tell what the architecture costs on a machine from what our code costs.
//!
//! `in` reads K SSE streams over plain HTTP/1.1 and sends every event on one
//! `SchemaService.Process` stream to `mid`; `mid` forwards each one unchanged on one
//! `PublisherService.Publish` stream to `out`; `out` publishes its data at QoS 1 to the topic the
//! event carries. No acks, no reconnects: an error ends the process with a message.
//!
//! With the services' `--grpc-tls-*` flags both gRPC hops run over mTLS through the services' own
//! TLS stack (`sse_runtime::mtls`: the same accept loop, client-certificate check and dialer), so
//! the `skeleton-mtls` contender is the like-for-like floor of the `mtls` one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use clap::Parser;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_proto::v1::publisher_service_server::{PublisherService, PublisherServiceServer};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::schema_service_server::{SchemaService, SchemaServiceServer};
use sse_runtime::link::{Link, Locals};
use sse_runtime::mtls::{GrpcSecurityArgs, Mtls, accept};
use sse_runtime::peers::Dialer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Server, Uri};
use tonic::{Request, Response, Status, Streaming};

/// Like the services: many small, short-lived buffers per event.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The name in the `<name> listening on <addr>` line, the services' format.
const NAME: &str = "sse-bench-skeleton";
/// Requests queued for a gRPC stream at most.
const QUEUE: usize = 64;

/// One role of the skeleton, with the options it needs (the others are ignored).
#[derive(Debug, Parser)]
#[command(name = NAME, about = "The pipeline's bare architecture, for sse-bench.")]
struct Cli {
    /// `in` reads the SSE streams, `mid` forwards, `out` publishes.
    role: Role,
    /// Address to listen on (port 0: any free port), printed as `<name> listening on <addr>`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// in, mid: the next role's URL.
    #[arg(long, default_value = "")]
    next: String,
    /// in: the load source, `http://host:port`; it reads `/s/0` to `/s/<streams - 1>`.
    #[arg(long, default_value = "")]
    source: String,
    /// in: how many streams.
    #[arg(long, default_value_t = 1)]
    streams: u32,
    /// in: stream i is published to `<prefix>/s<i>`.
    #[arg(long, default_value = "bench/skeleton")]
    prefix: String,
    /// out: the broker's port on 127.0.0.1.
    #[arg(long, default_value_t = 1883)]
    mqtt_port: u16,
    /// The services' gRPC security flags: with --grpc-tls-ca/-cert/-key, `mid` and `out` accept
    /// only clients whose certificate the CA signed, and `in` and `mid` present theirs and
    /// verify the next role's against the name in --next (then `https://`).
    #[command(flatten)]
    security: GrpcSecurityArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Role {
    In,
    Mid,
    Out,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mtls = match tls(&cli) {
        Ok(m) => m,
        Err(e) => {
            // Bad configuration, as the services exit on it.
            eprintln!("{NAME}: {e:#}");
            std::process::exit(64);
        }
    };
    // `in` serves nothing; it listens only to be started like the other two.
    let listener = bind(cli.listen).await?;
    match cli.role {
        Role::In => ingest(&cli, mtls).await,
        Role::Mid => {
            let next = channel(&cli.next, mtls.clone())
                .await
                .context("connect to out")?;
            let publisher = PublisherServiceClient::new(next);
            let mid = SchemaServiceServer::new(Mid { publisher });
            serve(Server::builder().add_service(mid), listener, mtls).await
        }
        Role::Out => {
            let (mqtt, mut eventloop) = sse_bench::raw::client("bench-skeleton", cli.mqtt_port);
            let out = PublisherServiceServer::new(Out { mqtt });
            let serve = serve(Server::builder().add_service(out), listener, mtls);
            tokio::select! {
                r = serve => r,
                e = async { loop { if let Err(e) = eventloop.poll().await { return e } } } => {
                    anyhow::bail!("MQTT connection lost: {e}")
                }
            }
        }
    }
}

/// The role's mTLS material when the `--grpc-tls-*` flags are given, after checking them and
/// that `--next` (for the roles that dial) is `https://` exactly when they are.
fn tls(cli: &Cli) -> anyhow::Result<Option<Arc<Mtls>>> {
    let security = cli.security.load()?;
    if matches!(cli.role, Role::In | Role::Mid) {
        let next: Uri = cli.next.parse().context("--next")?;
        cli.security.check_peer(&next).context("--next")?;
    }
    Ok(security.mtls)
}

/// Serves `router` on `listener`: over the services' authenticated accept loop with `mtls`
/// (TLS handshakes in their own tasks, client certificates checked against the CA), else over
/// plain TCP with nodelay, as the services do.
async fn serve(
    router: Router,
    listener: TcpListener,
    mtls: Option<Arc<Mtls>>,
) -> anyhow::Result<()> {
    match mtls {
        Some(mtls) => {
            // Nothing cancels it: the process ends by being killed.
            let incoming = accept::incoming(listener, mtls, CancellationToken::new());
            Ok(router.serve_with_incoming(incoming).await?)
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            Ok(router.serve_with_incoming(incoming).await?)
        }
    }
}

/// A channel to the next role at `next`: tonic's own connector in plaintext (as before mTLS
/// existed here), the services' dialer with `mtls` (this role's certificate presented, the next
/// one's verified against the CA and `next`'s host).
async fn channel(next: &str, mtls: Option<Arc<Mtls>>) -> anyhow::Result<Channel> {
    let Some(mtls) = mtls else {
        return Ok(Channel::from_shared(next.to_string())?.connect().await?);
    };
    let uri: Uri = next.parse().context("--next")?;
    let authority = uri.authority().context("--next has no host:port")?.as_str();
    let addr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .with_context(|| format!("{authority} resolves to no address"))?;
    let dialer = Dialer::new(Some(mtls), Locals::default());
    match dialer.connect(&Endpoint::from(uri), addr).await? {
        Link::Net(channel) => Ok(channel),
        Link::Local(_) => anyhow::bail!("no in-process link in the skeleton"),
    }
}

async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    println!("{NAME} listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// `in`: one reader per stream, all feeding one Process stream.
async fn ingest(cli: &Cli, mtls: Option<Arc<Mtls>>) -> anyhow::Result<()> {
    let authority = (cli.source.strip_prefix("http://"))
        .map(|a| a.trim_end_matches('/'))
        .context("--source must be http://host:port")?;
    let next = channel(&cli.next, mtls).await.context("connect to mid")?;
    let mut client = SchemaServiceClient::new(next);
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut responses = client.process(ReceiverStream::new(rx)).await?.into_inner();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async move {
        while responses.message().await?.is_some() {}
        anyhow::bail!("mid ended the Process stream")
    });
    for i in 0..cli.streams {
        let (tx, authority) = (tx.clone(), authority.to_string());
        let events = Events::new(i, &cli.source, &cli.prefix);
        tasks.spawn(async move { read(i, &authority, events, tx).await });
    }
    tasks.join_next().await.map_or(Ok(()), |r| r?)
}

/// Reads stream `i` and sends one ProcessRequest per event; returns only on an error or the end.
async fn read(
    i: u32,
    authority: &str,
    mut events: Events,
    tx: mpsc::Sender<pb::ProcessRequest>,
) -> anyhow::Result<()> {
    let mut sock = TcpStream::connect(authority)
        .await
        .with_context(|| format!("stream {i}: connect {authority}"))?;
    sock.set_nodelay(true)?;
    let req =
        format!("GET /s/{i} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\n\r\n");
    sock.write_all(req.as_bytes()).await?;
    let mut raw = BytesMut::with_capacity(16 * 1024);
    let mut body = loop {
        anyhow::ensure!(
            fill(&mut sock, &mut raw).await? > 0,
            "stream {i}: no response"
        );
        if let Some(body) = Chunked::head(&mut raw).with_context(|| format!("stream {i}"))? {
            break body;
        }
    };
    let mut sse = BytesMut::new();
    loop {
        let more = body.decode(&mut raw, &mut sse)?;
        while let Some(end) = memchr::memmem::find(&sse, b"\n\n") {
            let block = sse.split_to(end + 2).freeze();
            if let Some(data) = data_line(&block) {
                tx.send(events.next(data))
                    .await
                    .context("the Process stream is gone")?;
            }
        }
        anyhow::ensure!(more, "stream {i}: the response body ended");
        anyhow::ensure!(fill(&mut sock, &mut raw).await? > 0, "stream {i}: closed");
    }
}

async fn fill(sock: &mut TcpStream, raw: &mut BytesMut) -> std::io::Result<usize> {
    raw.reserve(16 * 1024);
    sock.read_buf(raw).await
}

/// A chunked response body (the bench source's hyper server sends an unsized body that way):
/// bytes left in the current chunk, and whether the CRLF after it is still due.
#[derive(Debug, Default)]
struct Chunked(usize, bool);

impl Chunked {
    /// Parses the response head at the start of `raw` (removed); `None` until it is complete.
    fn head(raw: &mut BytesMut) -> anyhow::Result<Option<Chunked>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(n) = resp.parse(raw)? else {
            anyhow::ensure!(raw.len() < 64 * 1024, "response head over 64 KiB");
            return Ok(None);
        };
        anyhow::ensure!(resp.code == Some(200), "HTTP status {:?}", resp.code);
        let chunked = resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("transfer-encoding")
                && h.value.eq_ignore_ascii_case(b"chunked")
        });
        anyhow::ensure!(chunked, "the response body is not chunked");
        raw.advance(n);
        Ok(Some(Chunked::default()))
    }

    /// Moves the body bytes of `raw` to `out`; false once the body has ended.
    fn decode(&mut self, raw: &mut BytesMut, out: &mut BytesMut) -> anyhow::Result<bool> {
        let Chunked(left, crlf) = self;
        loop {
            if *left > 0 {
                let n = raw.len().min(*left);
                out.extend_from_slice(&raw.split_to(n));
                *left -= n;
                if *left > 0 {
                    return Ok(true);
                }
                *crlf = true;
            }
            if *crlf {
                if raw.len() < 2 {
                    return Ok(true);
                }
                anyhow::ensure!(raw.starts_with(b"\r\n"), "no CRLF after a chunk");
                raw.advance(2);
                *crlf = false;
            }
            let Some(eol) = memchr::memmem::find(raw, b"\r\n") else {
                anyhow::ensure!(raw.len() < 1024, "chunk size line over 1 KiB");
                return Ok(true);
            };
            let line = std::str::from_utf8(&raw[..eol])?;
            let hex = line.split(';').next().unwrap_or_default().trim();
            *left =
                usize::from_str_radix(hex, 16).with_context(|| format!("chunk size {line:?}"))?;
            raw.advance(eol + 2);
            if *left == 0 {
                return Ok(false);
            }
        }
    }
}

/// The value of the first `data:` line of an event block, sharing `block`'s memory.
fn data_line(block: &Bytes) -> Option<Bytes> {
    let mut at = 0;
    for line in block.split(|b| *b == b'\n') {
        if let Some(v) = line.strip_prefix(b"data:") {
            let skip = usize::from(v.first() == Some(&b' '));
            let len = v.len() - usize::from(v.last() == Some(&b'\r'));
            return Some(block.slice(at + 5 + skip..at + 5 + len.max(skip)));
        }
        at += line.len() + 1;
    }
    None
}

/// Makes the events of one stream, with the string fields a real one carries filled alike.
struct Events {
    seq: u64,
    rng: u64,
    key: String,
    route: pb::Route,
}

impl Events {
    fn new(i: u32, source: &str, prefix: &str) -> Self {
        let mqtt = pb::MqttDestination {
            topic: format!("{prefix}/s{i}"),
            qos: pb::Qos::AtLeastOnce as i32,
            ..Default::default()
        };
        let route = pb::Route {
            device: "bench-source".into(),
            endpoint: "sse-0".into(),
            asset: format!("bench-{}", i / 100),
            kind: pb::RouteKind::Dataset as i32,
            group: format!("s{i}"),
            data_source: format!("/s/{i}"),
            destination: Some(pb::Destination {
                target: Some(pb::destination::Target::Mqtt(mqtt)),
            }),
            ..Default::default()
        };
        Self {
            seq: 0,
            rng: (unix_nanos() as u64 ^ (u64::from(i) << 32)) | 1,
            key: format!("bench-source/sse-0|{source}/s/{i}"),
            route,
        }
    }

    /// xorshift64*: ids that look like ingest's without its hashing.
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next(&mut self, data: Bytes) -> pb::ProcessRequest {
        self.seq += 1;
        let [a, b, c, d] = [(); 4].map(|_| self.random());
        let event = pb::Event {
            id: format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            ),
            seq: self.seq,
            stream_key: self.key.clone(),
            data,
            sse_event: "message".into(),
            // The bench source's `id:` is the event's number in its stream.
            sse_id: self.seq.to_string(),
            received_unix_nanos: unix_nanos(),
            route: Some(self.route.clone()),
            traceparent: format!("00-{c:016x}{a:016x}-{d:016x}-01"),
            ..Default::default()
        };
        pb::ProcessRequest {
            events: vec![event],
            ack_now: false,
        }
    }
}

fn unix_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What a unary RPC answers.
type Answer<T> = Result<Response<T>, Status>;

/// The answer of every RPC but the streams: the skeleton has no logic to answer with.
fn unimplemented<T>() -> Answer<T> {
    Err(Status::unimplemented("the skeleton only streams"))
}

/// The answer of a stream RPC: runs `work` on the requests and stays open (sending nothing)
/// until it ends; an error is logged.
fn until_done<T: Send + 'static>(
    work: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> Response<ReceiverStream<Result<T, Status>>> {
    let (done, open) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Err(e) = work.await {
            eprintln!("{NAME}: {e:#}");
        }
        drop(done);
    });
    Response::new(ReceiverStream::new(open))
}

/// `mid`: one Publish stream per Process stream, events forwarded unchanged.
struct Mid {
    publisher: PublisherServiceClient<Channel>,
}

#[tonic::async_trait]
impl SchemaService for Mid {
    type ProcessStream = ReceiverStream<Result<pb::ProcessResponse, Status>>;

    async fn process(
        &self,
        request: Request<Streaming<pb::ProcessRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut publisher = self.publisher.clone();
        let mut acks = publisher
            .publish(ReceiverStream::new(rx))
            .await?
            .into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = acks.message().await {} });
        Ok(until_done(async move {
            while let Some(r) = incoming.message().await? {
                let publish = pb::PublishRequest {
                    events: r.events,
                    ack_now: false,
                };
                tx.send(publish)
                    .await
                    .context("the Publish stream is gone")?;
            }
            Ok(())
        }))
    }

    async fn put_schema(&self, _: Request<pb::PutSchemaRequest>) -> Answer<pb::PutSchemaResponse> {
        unimplemented()
    }

    async fn get_schema(&self, _: Request<pb::GetSchemaRequest>) -> Answer<pb::GetSchemaResponse> {
        unimplemented()
    }

    async fn delete_schema(
        &self,
        _: Request<pb::DeleteSchemaRequest>,
    ) -> Answer<pb::DeleteSchemaResponse> {
        unimplemented()
    }

    async fn list_schemas(
        &self,
        _: Request<pb::ListSchemasRequest>,
    ) -> Answer<pb::ListSchemasResponse> {
        unimplemented()
    }

    async fn infer_schema(
        &self,
        _: Request<pb::InferSchemaRequest>,
    ) -> Answer<pb::InferSchemaResponse> {
        unimplemented()
    }

    async fn list_subjects(
        &self,
        _: Request<pb::ListSubjectsRequest>,
    ) -> Answer<pb::ListSubjectsResponse> {
        unimplemented()
    }
}

/// `out`: publishes every event of a Publish stream to the topic in its route.
struct Out {
    mqtt: AsyncClient,
}

#[tonic::async_trait]
impl PublisherService for Out {
    type PublishStream = ReceiverStream<Result<pb::PublishResponse, Status>>;
    type TailStream = ReceiverStream<Result<pb::TailResponse, Status>>;

    async fn publish(
        &self,
        request: Request<Streaming<pb::PublishRequest>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let (mut incoming, mqtt) = (request.into_inner(), self.mqtt.clone());
        Ok(until_done(async move {
            while let Some(r) = incoming.message().await? {
                for e in r.events {
                    let target = e.route.and_then(|r| r.destination).and_then(|d| d.target);
                    let Some(pb::destination::Target::Mqtt(m)) = target else {
                        anyhow::bail!("event {} has no MQTT topic", e.id);
                    };
                    mqtt.publish(m.topic, QoS::AtLeastOnce, false, e.data)
                        .await?;
                }
            }
            Ok(())
        }))
    }

    async fn publish_message(
        &self,
        _: Request<pb::PublishMessageRequest>,
    ) -> Answer<pb::PublishMessageResponse> {
        unimplemented()
    }

    async fn tail(&self, _: Request<pb::TailRequest>) -> Answer<Self::TailStream> {
        unimplemented()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_cut_anywhere_decodes_whole() {
        let events: [&[u8]; 2] = [b": hi\n\nid: 1\ndata: {\"a\":1}\n\n", b"data: two\n\n"];
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for (e, ext) in events.iter().zip(["", ";x=y"]) {
            wire.extend_from_slice(format!("{:x}{ext}\r\n", e.len()).as_bytes());
            wire.extend_from_slice(e);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        for cut in 0..wire.len() {
            let (mut raw, mut sse, mut body, mut ended) =
                (BytesMut::new(), BytesMut::new(), None, false);
            for part in [&wire[..cut], &wire[cut..]] {
                raw.extend_from_slice(part);
                if body.is_none() {
                    body = Chunked::head(&mut raw).unwrap();
                }
                if let Some(b) = body.as_mut().filter(|_| !ended) {
                    ended = !b.decode(&mut raw, &mut sse).unwrap();
                }
            }
            assert!(ended, "cut at {cut}");
            assert_eq!(sse, events.concat(), "cut at {cut}");
        }
    }

    #[test]
    fn data_line_value() {
        let d = |s: &'static str| data_line(&Bytes::from_static(s.as_bytes()));
        assert_eq!(d("id: 1\ndata: {\"a\":1}\n\n").unwrap(), "{\"a\":1}");
        assert_eq!(d("data:x\r\n\n").unwrap(), "x");
        assert_eq!(d("data:\n\n").unwrap(), "");
        assert_eq!(d(": keep-alive\n\n"), None);
    }
}
