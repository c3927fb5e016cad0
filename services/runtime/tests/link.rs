//! In-process links (`sse-connector`): a client handed a server's [`Local`] for an address calls
//! that server's routes directly (unary, server-streaming and bidirectional calls alike; a
//! registered stream with its messages as they are), and every other address goes over the
//! network. Nothing is process-wide: a client handed nothing never links in-process.

#![allow(clippy::unwrap_used, missing_docs)]

use futures::StreamExt;
use sse_runtime::link::{Link, Local, Locals, Messages, Streams};
use sse_runtime::peers::Dialer;
use sse_runtime::serve::Serving;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

#[tokio::test]
async fn a_server_handed_over_is_called_in_process_before_and_while_it_serves() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = Serving::new(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let health = serving.health.clone();
    let dialer = Dialer::new(None, Locals::default().with(addr, serving.local().unwrap()));
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let link = dialer.connect_lazy(&endpoint, addr);
    assert!(matches!(link, Link::Local(_)), "{link:?}");

    // Handed over before it runs, so no call can race its start: health answers already.
    let mut early = HealthClient::new(link.clone());
    let r = early.check(HealthCheckRequest::default()).await.unwrap();
    assert_eq!(r.into_inner().status(), ServingStatus::Serving);
    let stop = CancellationToken::new();
    let server = tokio::spawn(serving.run(listener, stop.clone()));

    // Unary.
    let connected = dialer.connect(&endpoint, addr).await.unwrap();
    assert!(matches!(connected, Link::Local(_)), "{connected:?}");
    let mut client = HealthClient::new(connected);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    health
        .set_service_status("y", tonic_health::ServingStatus::NotServing)
        .await;
    let r = client.check(check("y")).await.unwrap().into_inner();
    assert_eq!(r.status(), ServingStatus::NotServing);

    // Server streaming: a change of status reaches a watcher.
    health
        .set_service_status("x", tonic_health::ServingStatus::Serving)
        .await;
    let mut watch = client.watch(check("x")).await.unwrap().into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    health
        .set_service_status("x", tonic_health::ServingStatus::NotServing)
        .await;
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::NotServing
    );

    // Bidirectional: each request on the stream gets its answer on the same stream.
    let mut reflection = ServerReflectionClient::new(link);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = reflection
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        tx.send(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        })
        .await
        .unwrap();
        let answer = answers.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("not a list: {answer:?}")
        };
        assert!(
            list.service
                .iter()
                .any(|s| s.name == "grpc.health.v1.Health"),
            "{list:?}"
        );
    }
    drop(tx);
    assert!(answers.message().await.unwrap().is_none());

    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_registered_stream_takes_and_yields_its_messages_as_they_are() {
    const PATH: &str = "/test.v1.Doubler/Double";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // A message type protobuf could not carry: only an unencoded call can pass it.
    #[derive(Debug, PartialEq)]
    struct Plain(std::sync::Arc<u64>);
    let serving = Serving::new(tonic_health::pb::FILE_DESCRIPTOR_SET).add_in_process_stream(
        PATH,
        |requests: Messages<Plain>| -> Messages<Plain> {
            Box::pin(requests.map(|r| r.map(|Plain(n)| Plain(std::sync::Arc::new(*n * 2)))))
        },
    );
    let link = Link::Local(serving.local().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(serving.run(listener, stop.clone()));

    // Only under its path, and only with its message types.
    assert!(
        link.stream::<Plain, Plain>("/test.v1.Doubler/Other")
            .is_none()
    );
    assert!(link.stream::<u64, Plain>(PATH).is_none());
    let double = link.stream::<Plain, Plain>(PATH).expect("registered");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut answers = double(Box::pin(
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(Ok),
    ));
    for n in [1, 21] {
        tx.send(Plain(std::sync::Arc::new(n))).unwrap();
        let answer = answers.next().await.unwrap().unwrap();
        assert_eq!(answer, Plain(std::sync::Arc::new(n * 2)));
    }
    drop(tx);
    assert!(answers.next().await.is_none());

    // A link over the network never has one.
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let net = Link::Net(endpoint.connect_lazy());
    assert!(net.stream::<Plain, Plain>(PATH).is_none());

    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_fake_peer_is_one_stream_closure() {
    const PATH: &str = "/test.v1.Echo/Echo";
    let mut streams = Streams::default();
    streams.add(PATH, |requests: Messages<u32>| -> Messages<u32> {
        requests
    });
    let fake = Local::streams(streams);
    let addr: std::net::SocketAddr = "192.0.2.1:1".parse().unwrap();
    let link = Dialer::new(None, Locals::default().with(addr, fake))
        .connect(&Endpoint::from_static("http://fake:1"), addr)
        .await
        .unwrap();
    let echo = link.stream::<u32, u32>(PATH).expect("the fake's stream");
    let mut answers = echo(Box::pin(futures::stream::iter([Ok(7)])));
    assert_eq!(answers.next().await.unwrap().unwrap(), 7);
    // Any other call is UNIMPLEMENTED, as a server without that method answers it.
    let status = HealthClient::new(link)
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}

#[tokio::test]
async fn a_client_handed_nothing_goes_over_the_network() {
    // A server of this very process, but not handed to the client: TCP, and it answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        Serving::new(tonic_health::pb::FILE_DESCRIPTOR_SET).run(listener, stop.clone()),
    );
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let other: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let fake = Local::streams(Streams::default());
    for dialer in [
        Dialer::default(),
        Dialer::new(None, Locals::default().with(other, fake)),
    ] {
        assert!(matches!(dialer.connect_lazy(&endpoint, addr), Link::Net(_)));
        let link = dialer.connect(&endpoint, addr).await.unwrap();
        assert!(matches!(link, Link::Net(_)), "{link:?}");
        let r = HealthClient::new(link)
            .check(HealthCheckRequest::default())
            .await
            .unwrap();
        assert_eq!(r.into_inner().status(), ServingStatus::Serving);
    }
    stop.cancel();
    server.await.unwrap().unwrap();
}
