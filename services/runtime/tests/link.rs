//! In-process links (`sse-connector`): once a process calls `serve_in_process`, a client of an
//! address this process serves calls the server's routes directly (unary, server-streaming and
//! bidirectional calls alike; a registered stream with its messages as they are), and a link made
//! after that server stops goes over the network.
//! Its own test binary: the switch is process-wide.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use futures::StreamExt;
use sse_runtime::link::{Link, Messages};
use sse_runtime::peers;
use sse_runtime::serve::Serving;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// The in-process link to `addr`, once the server there has registered itself (as it starts
/// serving).
async fn registered(addr: std::net::SocketAddr) -> Link {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(l) = Link::in_process(addr) {
                return l;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_server_of_this_process_is_called_in_process_and_over_tcp_once_it_stops() {
    sse_runtime::link::serve_in_process();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = Serving::new(tonic_health::pb::FILE_DESCRIPTOR_SET);
    let health = serving.health.clone();
    let stop = CancellationToken::new();
    let server = tokio::spawn(serving.run(listener, stop.clone()));
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();

    // The server registers itself as it starts serving.
    let link = registered(addr).await;
    assert!(matches!(link, Link::Local(_)), "{link:?}");
    assert!(matches!(
        peers::connect_lazy(&endpoint, addr, None),
        Link::Local(_)
    ));

    // Unary.
    let connected = peers::connect(&endpoint, addr, None).await.unwrap();
    assert!(matches!(connected, Link::Local(_)), "{connected:?}");
    let mut client = HealthClient::new(connected);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    let r = client.check(check("liveness")).await.unwrap().into_inner();
    assert_eq!(r.status(), ServingStatus::Serving);

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

    // Stopped: its address is no longer answered in-process, and a new link goes over TCP.
    stop.cancel();
    server.await.unwrap().unwrap();
    assert!(Link::in_process(addr).is_none());
    assert!(matches!(
        peers::connect_lazy(&endpoint, addr, None),
        Link::Net(_)
    ));
    let refused = peers::connect(&endpoint, addr, None).await;
    assert!(refused.is_err(), "nothing listens on {addr} any more");
}

#[tokio::test]
async fn a_registered_stream_takes_and_yields_its_messages_as_they_are() {
    sse_runtime::link::serve_in_process();
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
    let stop = CancellationToken::new();
    let server = tokio::spawn(serving.run(listener, stop.clone()));
    let link = registered(addr).await;

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
    assert!(Link::in_process(addr).is_none());
}

#[tokio::test]
async fn served_waits_for_the_server_to_register() {
    sse_runtime::link::serve_in_process();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut served = Box::pin(sse_runtime::link::served(addr));
    // Bound, but not serving yet: a link made now would go over TCP.
    assert!(futures::FutureExt::now_or_never(&mut served).is_none());
    assert!(Link::in_process(addr).is_none());
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        Serving::new(tonic_health::pb::FILE_DESCRIPTOR_SET).run(listener, stop.clone()),
    );
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("served once the server registered");
    assert!(matches!(Link::in_process(addr), Some(Link::Local(_))));
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn without_the_switch_nothing_is_in_process() {
    // This binary's other test turns the switch on; a fresh process would not. What can be
    // checked here: an address nobody in this process serves is never in-process.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(Link::in_process(addr).is_none());
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    assert!(matches!(
        peers::connect_lazy(&endpoint, addr, None),
        Link::Net(_)
    ));
}
