//! `ssectl` over several publisher pods: each pod tails only what it publishes, so `ssectl
//! tail` given two publishers (one of them by the name `localhost`, which also resolves to ::1
//! where nothing listens) must merge both pods' messages. Real binaries and Mosquitto; the
//! messages are put with `PublisherService/PublishMessage` through grpcurl.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;
use std::sync::Arc;

use sse_e2e::broker::Mosquitto;
use sse_e2e::procs::{Service, bin_dir, read_into};
use sse_e2e::{eventually, grpcurl};

const PUBLISH_MESSAGE: &str = "sseconnector.v1.PublisherService/PublishMessage";

async fn start_publisher(broker: &Mosquitto) -> Service {
    let args = ["--mqtt-url".to_string(), broker.url()];
    Service::start("sse-publisher", &args, &[]).await.unwrap()
}

/// Puts one message on `topic` through the publisher at `addr`; `None` until it is connected.
async fn put(addr: &str, topic: &str) -> Option<()> {
    let body =
        serde_json::json!({"topic": topic, "payload": "{\"pod\":1}", "qos": "QOS_AT_LEAST_ONCE"});
    grpcurl::call(addr, Some(&body.to_string()), &[PUBLISH_MESSAGE])
        .await
        .ok()
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_merges_every_publisher_pod() {
    let broker = Mosquitto::start().await.unwrap();
    let a = start_publisher(&broker).await;
    let b = start_publisher(&broker).await;
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    for addr in [&a_addr, &b_addr] {
        eventually("the publisher's broker connection", || {
            put(addr, "e2e/warm")
        })
        .await
        .unwrap();
    }

    let publishers = format!("localhost:{},{}", a.addr.port(), b_addr);
    let mut child = tokio::process::Command::new(bin_dir().join("ssectl"))
        .args(["--publisher", &publishers, "tail", "--topic", "e2e/pod/#"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = Arc::default();
    read_into(child.stdout.take().unwrap(), &out);
    read_into(child.stderr.take().unwrap(), &out);

    // The tails register asynchronously: put on both pods until both lines are seen.
    let seen = eventually("both pods' messages in one ssectl tail", || {
        let (a_addr, b_addr, out) = (a_addr.clone(), b_addr.clone(), out.clone());
        async move {
            put(&a_addr, "e2e/pod/a").await?;
            put(&b_addr, "e2e/pod/b").await?;
            let text = out.lock().unwrap().clone();
            (text.contains("e2e/pod/a ") && text.contains("e2e/pod/b ")).then_some(text)
        }
    })
    .await;
    let text = out.lock().unwrap().clone();
    assert!(seen.is_ok(), "ssectl tail printed:\n{text}");
    assert!(
        !text.contains("e2e/warm"),
        "the topic filter let another topic through:\n{text}"
    );
    assert!(
        !text.contains("warning"),
        "localhost's other loopback family is not a warning:\n{text}"
    );
}
