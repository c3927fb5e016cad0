//! The publisher's instruments, collected from a meter provider installed in this test binary
//! (its own binary: the provider is global): `sse_publisher::run` on port 0 in this process, a
//! real Mosquitto whose ACL denies one topic, events through the generated gRPC client.
#![allow(clippy::unwrap_used, missing_docs)]

mod harness;

use anyhow::Result;
use harness::*;
use sse_contract::metrics::{self as catalogue, attr};
use sse_contract::publish_drops;
use sse_e2e::meters::{self, Collected};
use sse_e2e::mqtt::Subscriber;
use sse_proto::v1 as pb;

/// The conventions' attributes of a send to `topic`.
fn send_to(topic: &str) -> [(&'static str, &str); 4] {
    [
        (attr::MESSAGING_SYSTEM, "mqtt"),
        (attr::OPERATION_NAME, "send"),
        (attr::OPERATION_TYPE, "send"),
        (attr::DESTINATION, topic),
    ]
}

/// Data points of `name` to `topic` that carry `error.type`.
fn with_error_type(c: &Collected, name: &str, topic: &str) -> usize {
    c.attribute_sets(name)
        .iter()
        .filter(|s| s.contains(&format!("{}={topic}", attr::DESTINATION)))
        .filter(|s| s.iter().any(|kv| kv.starts_with(attr::ERROR_TYPE)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_refusals_drops_latency_and_the_connection_are_recorded() -> Result<()> {
    let meters = meters::install();
    let (mut broker, _acl) = acl_broker().await?;
    let sub = Subscriber::connect(broker.port, "allowed/#").await?;
    let p = publisher(&broker).await?;

    // Three QoS 1 events received 2 s ago, one received "in the future" (ingest's clock ahead),
    // two the ACL denies, one QoS 0 event, and one to a wildcard topic (never sent).
    let two_seconds_ago = now_nanos() - 2_000_000_000;
    let mut events: Vec<pb::Event> = (1..=3)
        .map(|i| {
            event(
                i,
                "dev-a",
                "allowed/a",
                pb::Qos::AtLeastOnce,
                two_seconds_ago,
            )
        })
        .collect();
    let ahead = now_nanos() + 3_600_000_000_000;
    events.push(event(
        4,
        "dev-skewed",
        "allowed/a",
        pb::Qos::AtLeastOnce,
        ahead,
    ));
    events.push(event(
        5,
        "dev-a",
        "denied/x",
        pb::Qos::AtLeastOnce,
        two_seconds_ago,
    ));
    events.push(event(
        6,
        "dev-a",
        "denied/x",
        pb::Qos::AtLeastOnce,
        two_seconds_ago,
    ));
    events.push(event(7, "dev-a", "allowed/q0", pb::Qos::AtMostOnce, 0));
    events.push(event(
        8,
        "dev-a",
        "allowed/#",
        pb::Qos::AtLeastOnce,
        two_seconds_ago,
    ));
    // And one whose route the publisher cannot convert (a kind the contract does not know).
    let mut unknown_kind = event(10, "dev-a", "", pb::Qos::AtLeastOnce, two_seconds_ago);
    unknown_kind.route.as_mut().unwrap().kind = 77;
    events.push(unknown_kind);
    let acks = publish(&p.url, events).await?;
    for seq in [1, 2, 3, 4, 7] {
        assert_eq!(acks[&seq], "", "{seq}: {acks:?}");
    }
    for seq in [5, 6] {
        assert!(acks[&seq].contains("NotAuthorized"), "{seq}: {acks:?}");
    }
    assert!(!acks[&8].is_empty(), "{acks:?}");
    assert!(acks.get(&10).is_some_and(|e| !e.is_empty()), "{acks:?}");
    sub.wait_until("the allowed events", |m| m.len() >= 5)
        .await?;

    let c = meters.collect();
    let sent = catalogue::SENT_MESSAGES.name;
    let duration = catalogue::OPERATION_DURATION.name;
    // Four acknowledged sends to allowed/a, one QoS 0 send, two refused ones; none for the
    // wildcard topic, which never reached the broker.
    let ok = |topic: &str| c.value(sent, &send_to(topic));
    assert_eq!(with_error_type(&c, sent, "allowed/a"), 0);
    assert_eq!(with_error_type(&c, sent, "allowed/q0"), 0);
    assert_eq!(ok("allowed/a"), 4.0, "{:?}", c.attribute_sets(sent));
    assert_eq!(ok("allowed/q0"), 1.0, "{:?}", c.attribute_sets(sent));
    let mut refused = send_to("denied/x").to_vec();
    refused.push((attr::ERROR_TYPE, "not_authorized"));
    assert_eq!(c.value(sent, &refused), 2.0, "{:?}", c.attribute_sets(sent));
    assert_eq!(c.value(sent, &send_to("allowed/#")), 0.0);
    let empty = format!("{}=", attr::DESTINATION);
    assert!(
        c.attribute_sets(sent)
            .iter()
            .flatten()
            .all(|kv| *kv != empty),
        "an event without a topic is no send: {:?}",
        c.attribute_sets(sent)
    );
    // PUBLISH to PUBACK: one per acknowledged QoS 1 send, refusals with their error type;
    // QoS 0 has no PUBACK and no duration.
    let (n, _, min) = c.histogram(duration, &send_to("allowed/a")).unwrap();
    assert_eq!(n, 4);
    assert!(min >= 0.0);
    assert_eq!(c.histogram(duration, &refused).unwrap().0, 2);
    assert!(c.points(duration, &send_to("allowed/q0")).is_empty());
    // End to end, per device and asset: at least the 2 s since "ingest received" them; the
    // skewed clock's event counts as 0, not as a negative time.
    let latency = catalogue::EVENT_LATENCY.name;
    let (n, sum, min) = c
        .histogram(latency, &[(attr::DEVICE, "dev-a"), (attr::ASSET, "boiler")])
        .unwrap();
    assert_eq!(n, 3, "only delivered events with an arrival time");
    assert!(sum >= 6.0 && min >= 2.0, "{sum} {min}");
    let (n, sum, _) = c
        .histogram(
            latency,
            &[(attr::DEVICE, "dev-skewed"), (attr::ASSET, "boiler")],
        )
        .unwrap();
    assert_eq!((n, sum), (1, 0.0));
    // Drops, by reason, device and asset.
    let dropped = catalogue::EVENTS_DROPPED.name;
    let dev = [(attr::DEVICE, "dev-a"), (attr::ASSET, "boiler")];
    let by = |reason: &str| {
        let mut a = dev.to_vec();
        a.push((attr::REASON, reason));
        c.value(dropped, &a)
    };
    assert_eq!(by(publish_drops::BROKER_REFUSED), 2.0);
    assert_eq!(by(publish_drops::INVALID_TOPIC), 1.0);
    assert_eq!(by(publish_drops::INVALID_EVENT), 1.0);
    assert_eq!(
        c.value(dropped, &[]),
        4.0,
        "{:?}",
        c.attribute_sets(dropped)
    );
    assert_eq!(c.value(catalogue::BROKER_CONNECTED.name, &[]), 1.0);
    assert_eq!(c.value(catalogue::BROKER_RECONNECTS.name, &[]), 0.0);

    // The broker goes away: the gauge says so; it comes back: one reconnect.
    broker.kill().await;
    sse_e2e::eventually("the publisher sees the broker gone", || async {
        (meters
            .collect()
            .value(catalogue::BROKER_CONNECTED.name, &[])
            == 0.0)
            .then_some(())
    })
    .await?;
    broker.restart().await?;
    let acks = publish(
        &p.url,
        vec![event(9, "dev-a", "allowed/a", pb::Qos::AtLeastOnce, 0)],
    )
    .await?;
    assert_eq!(acks[&9], "");
    let c = meters.collect();
    assert_eq!(c.value(catalogue::BROKER_RECONNECTS.name, &[]), 1.0);
    assert_eq!(c.value(catalogue::BROKER_CONNECTED.name, &[]), 1.0);
    assert_eq!(c.value(sent, &send_to("allowed/a")), 5.0);
    p.shutdown.token.cancel();
    Ok(())
}
