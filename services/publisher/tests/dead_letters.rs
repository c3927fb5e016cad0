//! Dead letters at the publisher (#23 point 8): `sse_publisher::run` in this process (its own
//! test binary: the meter provider is global), a real Mosquitto whose ACL lets the connector
//! write `allowed/#` and `sse-connector/dead-letter/ok/#` only, and a mock of the state store.
//! A refused event and a state store error go to the route's dead-letter topic with why, where
//! and which event; a marked event goes there straight; a dead letter refused in turn is counted
//! (`dead_letter_failed`) and acknowledged; `PublishMessage` cannot write a dead letter.
#![allow(clippy::unwrap_used, missing_docs)]

mod harness;

use std::sync::Arc;

use anyhow::Result;
use harness::*;
use sse_contract::dead_letter::{self as dl, Reason};
use sse_contract::metrics::{self as catalogue, attr};
use sse_contract::publish_drops;
use sse_e2e::broker::Mosquitto;
use sse_e2e::meters;
use sse_e2e::mqtt::{Received, StateStoreMock, StoreReply, Subscriber};
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_runtime::Shutdown;
use tokio::net::TcpListener;

const DL_OK: &str = "sse-connector/dead-letter/ok/line";
const DL_REFUSED: &str = "sse-connector/dead-letter/refused";

async fn broker() -> Result<(Mosquitto, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "topic readwrite allowed/#\ntopic readwrite clients/#\ntopic readwrite statestore/#\ntopic readwrite sse-connector/dead-letter/ok/#\n",
    )?;
    let line = format!("acl_file {}", acl.display());
    Ok((Mosquitto::start_with(&[&line]).await?, dir))
}

/// The publisher in this process, with one state store attempt (an `-ERR` is final at once).
async fn start(broker: &Mosquitto) -> Result<(String, Shutdown)> {
    use clap::Parser;
    let url = broker.url();
    let args = [
        "sse-publisher",
        "--mqtt-url",
        &url,
        "--mqtt-client-id",
        "pub-dead-letters",
        "--state-store-attempts",
        "1",
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
    Ok((format!("http://{addr}"), shutdown))
}

/// An event of `harness::event` whose route has the dead-letter topic `dead_letter`.
fn with_dead_letter(seq: u64, topic: &str, dead_letter: &str) -> pb::Event {
    let mut ev = event(seq, "dev-a", topic, pb::Qos::AtLeastOnce, 0);
    let route = ev.route.as_mut().unwrap();
    route.dead_letter = Some(pb::MqttDestination {
        topic: dead_letter.into(),
        qos: pb::Qos::AtLeastOnce as i32,
        retain: false,
        ttl_seconds: None,
    });
    ev
}

fn to_key(seq: u64, key: &str) -> pb::Event {
    let mut ev = with_dead_letter(seq, "unused", DL_OK);
    ev.route.as_mut().unwrap().destination = Some(pb::Destination {
        target: Some(pb::destination::Target::StateStore(
            pb::StateStoreDestination { key: key.into() },
        )),
    });
    ev
}

fn dead_letter_of<'a>(msgs: &'a [Received], id: &str) -> Option<&'a Received> {
    msgs.iter()
        .find(|m| m.topic == DL_OK && m.user(dl::PROP_ID) == Some(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_go_to_the_dead_letter_topic_and_a_refused_one_is_counted() -> Result<()> {
    let meters = meters::install();
    let (broker, _acl) = broker().await?;
    let sub = Subscriber::connect_filters(broker.port, &["allowed/#", "sse-connector/#"]).await?;
    let _store = StateStoreMock::start(
        broker.port,
        Arc::new(|_| StoreReply::Error("ERR the quota has been exceeded".into())),
    )
    .await?;
    let (url, shutdown) = start(&broker).await?;

    let mut marked = with_dead_letter(5, "allowed/never", DL_OK);
    marked.data = bytes::Bytes::from_static(b"first bytes");
    marked.dead_letter = Some(pb::DeadLetter {
        reason: Reason::TooLarge.to_wire(),
        detail: "over --max-event-bytes".into(),
        truncated: true,
        original_bytes: 5000,
    });
    let mut unroutable = marked.clone();
    unroutable.seq = 6;
    unroutable.route.as_mut().unwrap().dead_letter = None;
    let acks = publish(
        &url,
        vec![
            with_dead_letter(1, "allowed/a", DL_OK),
            with_dead_letter(2, "denied/a", DL_OK),
            with_dead_letter(3, "denied/b", DL_REFUSED),
            to_key(4, "err-key"),
            marked,
            unroutable,
        ],
    )
    .await?;
    assert_eq!(acks[&1], "");
    assert!(
        acks[&2].starts_with(&format!("dead-lettered to {DL_OK}: broker rejected")),
        "{}",
        acks[&2]
    );
    // The dead letter refused in turn: the original error, acknowledged all the same.
    assert!(acks[&3].starts_with("broker rejected"), "{}", acks[&3]);
    assert!(
        acks[&4].starts_with(&format!("dead-lettered to {DL_OK}: state store")),
        "{}",
        acks[&4]
    );
    assert_eq!(acks[&5], "");
    assert!(acks[&6].starts_with("invalid message"), "{}", acks[&6]);

    let msgs = sub
        .wait_until("three dead letters", |m| {
            ["ev-2", "ev-4", "ev-5"]
                .iter()
                .all(|id| dead_letter_of(m, id).is_some())
        })
        .await?;
    let refused = dead_letter_of(&msgs, "ev-2").unwrap();
    assert_eq!(refused.user(dl::PROP_REASON), Some("broker_refused"));
    assert_eq!(refused.user(dl::PROP_DESTINATION), Some("denied/a"));
    assert_eq!(refused.user("id"), Some("ev-2"));
    assert_eq!(number(refused), Some(2), "the original payload");
    let store = dead_letter_of(&msgs, "ev-4").unwrap();
    assert_eq!(store.user(dl::PROP_REASON), Some("state_store"));
    assert_eq!(store.user(dl::PROP_DESTINATION), Some("statestore:err-key"));
    assert!(store.user(dl::PROP_DETAIL).unwrap().contains("quota"));
    let truncated = dead_letter_of(&msgs, "ev-5").unwrap();
    assert_eq!(truncated.user(dl::PROP_REASON), Some("too_large"));
    assert_eq!(truncated.user(dl::PROP_TRUNCATED), Some("true"));
    assert_eq!(truncated.user(dl::PROP_ORIGINAL_BYTES), Some("5000"));
    assert_eq!(&truncated.payload[..], b"first bytes");
    // A marked event never reaches its destination; nothing reached a refused topic.
    assert!(msgs.iter().all(|m| m.topic != "allowed/never"));

    // Counted: the refusals under their reason, the dead letter that failed once more.
    let c = meters.collect();
    let by = |reason: &str| {
        c.value(
            catalogue::EVENTS_DROPPED.name,
            &[
                (attr::DEVICE, "dev-a"),
                (attr::ASSET, "boiler"),
                (attr::REASON, reason),
            ],
        )
    };
    assert_eq!(by(publish_drops::BROKER_REFUSED), 2.0);
    assert_eq!(by(publish_drops::STATE_STORE), 1.0);
    assert_eq!(by(publish_drops::DEAD_LETTER_FAILED), 1.0);
    assert_eq!(by(publish_drops::INVALID_EVENT), 1.0);

    // No one can forge a dead letter with PublishMessage.
    let mut client = PublisherServiceClient::connect(url.clone()).await?;
    let err = client
        .publish_message(pb::PublishMessageRequest {
            topic: DL_OK.into(),
            payload: "forged".into(),
            qos: pb::Qos::AtLeastOnce as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    shutdown.token.cancel();
    Ok(())
}

fn number(m: &Received) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(&m.payload)
        .ok()?
        .get("n")?
        .as_u64()
}
