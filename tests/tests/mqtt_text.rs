//! Strings a broker refuses, end to end with the real binaries and Mosquitto. MQTT forbids NUL
//! and lets a broker treat control characters and Unicode non-characters as a malformed packet;
//! Mosquitto closes the connection on them. Before the publisher checked, one such string (a tab
//! in a `PublishMessage` content type, a control character in a device's `event:` type) closed
//! the publisher's connection, the unacknowledged message was re-sent after every reconnect and
//! closed that one too, and every stream stopped for good. Now a request holding one is refused
//! and named, a device's type or id is escaped and its event delivered, and everything else
//! keeps flowing.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::broker::Mosquitto;
use sse_e2e::grpcurl;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::numbered::numbers_on;
use sse_e2e::procs::{Service, connector_args};
use sse_e2e::resources::{asset, device};
use sse_e2e::source::{SseSource, block, by_path};

const PUBLISH_MESSAGE: &str = "sseconnector.v1.PublisherService/PublishMessage";

fn publish_message(topic: &str, content_type: &str) -> String {
    serde_json::json!({ "topic": topic, "payload": "x", "contentType": content_type }).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_message_with_a_string_brokers_refuse_is_refused_and_publishing_goes_on() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let args = ["--mqtt-url".to_string(), broker.url()];
    let publisher = Service::start("sse-publisher", &args, &[]).await.unwrap();
    let addr = publisher.addr.to_string();
    let before = publish_message("e2e/before", "text/plain");
    grpcurl::call_until_ok(
        "PublishMessage once the broker is connected",
        &addr,
        &before,
        &[PUBLISH_MESSAGE],
    )
    .await
    .unwrap();

    let long = "c".repeat(70_000);
    for (content_type, named) in [
        ("a\tb", "the content type holds U+0009"),
        ("a\u{85}b", "the content type holds U+0085"),
        (long.as_str(), "the content type is 70000 bytes"),
    ] {
        let body = publish_message("e2e/bad", content_type);
        let r = grpcurl::call_stdin(&addr, body.as_bytes(), &[PUBLISH_MESSAGE])
            .await
            .unwrap()
            .expect_err("refused");
        assert_eq!(r.code, "InvalidArgument", "{r:?}");
        assert!(r.message.contains(named), "{r:?}");
    }
    // The connection survived: the next message is published at once, not after a reconnect.
    let after = publish_message("e2e/after", "text/plain");
    grpcurl::call(&addr, Some(&after), &[PUBLISH_MESSAGE])
        .await
        .unwrap();
    let got = sub
        .wait_until("the message after the refusals", |m| {
            m.iter().any(|r| r.topic == "e2e/after")
        })
        .await
        .unwrap();
    assert!(got.iter().all(|m| m.topic != "e2e/bad"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_type_or_id_brokers_refuse_is_escaped_and_every_stream_flows() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let n = |i: u64| format!(r#"{{"n":{i}}}"#);
    let feed = by_path(move |path| match path {
        // A dataset takes every event type of its path, so the hostile type reaches the
        // publisher as the `sseevent` property, and the id as `sseid`.
        "/hostile" => Some(vec![
            block(Some("1"), Some("reading"), &n(1)),
            block(Some("2"), Some("read\u{1}ing"), &n(2)),
            block(Some("3\t3"), Some("reading"), &n(3)),
        ]),
        "/calm" => Some(
            (1..=3)
                .map(|i| block(Some(&i.to_string()), None, &n(i)))
                .collect(),
        ),
        _ => None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = device(&source.base_url())
        + &asset(
            "text",
            &[
                ("hostile", "/hostile", "e2e/hostile"),
                ("calm", "/calm", "e2e/calm"),
            ],
        );
    std::fs::write(res.join("text.yaml"), yaml).unwrap();
    let args = connector_args(&broker.url(), &res, &dir.path().join("schemas"));
    let _connector = Service::start("sse-connector", &args, &[]).await.unwrap();

    let msgs = sub
        .wait_until("every event, on both streams", |m| {
            numbers_on(m, "e2e/hostile").contains(&3) && numbers_on(m, "e2e/calm").contains(&3)
        })
        .await
        .unwrap();
    assert_eq!(
        numbers_on(&msgs, "e2e/hostile"),
        [1, 2, 3],
        "nothing is lost"
    );
    assert_eq!(numbers_on(&msgs, "e2e/calm"), [1, 2, 3]);
    let hostile: Vec<(Option<&str>, Option<&str>)> = msgs
        .iter()
        .filter(|m| m.topic == "e2e/hostile")
        .map(|m| (m.user("sseevent"), m.user("sseid")))
        .collect();
    assert_eq!(
        hostile,
        [
            (Some("reading"), Some("1")),
            (Some(r"read\u{1}ing"), Some("2")),
            (Some("reading"), Some(r"3\u{9}3")),
        ]
    );
}
