use futures::StreamExt;
use rumqttc::v5::mqttbytes::v5::PublishProperties;

use super::*;

fn message(topic: &str, payload: &[u8]) -> Message {
    Message {
        topic: topic.into(),
        qos: Qos::AtLeastOnce,
        retain: true,
        payload: Bytes::copy_from_slice(payload),
        properties: PublishProperties {
            user_properties: vec![("specversion".into(), "1.0".into())],
            content_type: Some("application/json".into()),
            message_expiry_interval: Some(60),
            ..Default::default()
        },
    }
}

fn filter(device: &str, asset: &str, topic: &str) -> Filter {
    Filter::from_request(&pb::TailRequest {
        device: device.into(),
        asset: asset.into(),
        topic: topic.into(),
        max_payload_bytes: 0,
    })
    .unwrap()
}

/// The next item, which must be there already.
async fn next(s: &mut TailStream) -> pb::tail_response::Item {
    let item = tokio::time::timeout(std::time::Duration::from_secs(5), s.next()).await;
    item.unwrap().unwrap().unwrap().item.unwrap()
}

/// Delivers `n` messages, `t/0` to `t/{n - 1}`, through the tap of device `d`, asset `a`.
fn deliver(tail: &Tail, n: usize) {
    for i in 0..n {
        tail.tap("d", "a", &message(&format!("t/{i}"), b"p"))
            .unwrap()
            .deliver();
    }
}

/// What a reader that stalled is told: `dropped` messages lost, then the `kept` it still has,
/// `t/0` to `t/{kept - 1}`, oldest first.
async fn expect_dropped_then_kept(s: &mut TailStream, dropped: usize, kept: usize) {
    assert_eq!(
        next(s).await,
        pb::tail_response::Item::Dropped(pb::TailDropped {
            count: dropped as u64
        })
    );
    for i in 0..kept {
        let pb::tail_response::Item::Message(m) = next(s).await else {
            panic!("message {i} was expected")
        };
        assert_eq!(m.topic, format!("t/{i}"));
    }
}

#[test]
fn topic_filters_match_as_mqtt_does() {
    assert!(topic_matches("a/b", "a/b"));
    assert!(!topic_matches("a/b", "a/b/c"));
    assert!(topic_matches("a/+/c", "a/x/c"));
    assert!(!topic_matches("a/+/c", "a/x/y"));
    assert!(topic_matches("a/#", "a"));
    assert!(topic_matches("a/#", "a/b/c"));
    assert!(topic_matches("#", "x/y"));
    assert!(!topic_matches("#", "$SYS/x"));
    assert!(!topic_matches("+/x", "$SYS/x"));
    assert!(valid_topic_filter("a/+/#"));
    assert!(!valid_topic_filter("a/#/b"));
    assert!(!valid_topic_filter("a/b+"));
    let bad = pb::TailRequest {
        topic: "a/#/b".into(),
        ..Default::default()
    };
    assert!(matches!(
        Filter::from_request(&bad),
        Err(TailError::BadFilter(_))
    ));
}

#[test]
fn filters_combine_device_asset_and_topic() {
    let f = filter("dev", "line", "plant/#");
    assert!(f.matches("dev", "line", "plant/a"));
    assert!(!f.matches("other", "line", "plant/a"));
    assert!(!f.matches("dev", "other", "plant/a"));
    assert!(!f.matches("dev", "line", "x/a"));
    assert!(filter("", "", "").matches("any", "", "t"));
}

#[test]
fn nobody_tailing_takes_nothing() {
    let tail = Tail::default();
    assert!(!tail.active());
    assert!(tail.tap("d", "a", &message("t", b"x")).is_none());
}

#[tokio::test]
async fn messages_reach_the_tails_that_want_them_truncated_to_their_limit() {
    let tail = Tail::default();
    let stop = CancellationToken::new();
    let mut small = tail.open(filter("dev", "", ""), 4, stop.clone()).unwrap();
    let mut whole = tail.open(filter("", "", "t/#"), 0, stop.clone()).unwrap();
    let mut other = tail.open(filter("other", "", ""), 0, stop.clone()).unwrap();
    // Nobody wants this one: nothing is taken.
    assert!(tail.tap("x", "a", &message("u", b"0123456789")).is_none());
    let tapped = tail
        .tap("dev", "line", &message("t/1", b"0123456789"))
        .unwrap();
    tapped.deliver();
    let pb::tail_response::Item::Message(m) = next(&mut small).await else {
        panic!("a message was expected")
    };
    assert_eq!(&m.payload[..], b"0123");
    assert!(m.truncated);
    assert_eq!(m.payload_bytes, 10);
    assert_eq!((m.device.as_str(), m.asset.as_str()), ("dev", "line"));
    assert_eq!(m.qos, pb::Qos::AtLeastOnce as i32);
    assert!(m.retain);
    assert_eq!(m.content_type, "application/json");
    assert_eq!(m.ttl_seconds, 60);
    assert_eq!(m.user_properties[0].name, "specversion");
    let pb::tail_response::Item::Message(m) = next(&mut whole).await else {
        panic!("a message was expected")
    };
    assert_eq!(&m.payload[..], b"0123456789");
    assert!(!m.truncated);
    // The third tail wanted another device: nothing for it.
    stop.cancel();
    assert!(other.next().await.is_none());
}

#[tokio::test]
async fn a_full_queue_drops_and_the_reader_is_told_how_many() {
    let tail = Tail::default();
    let mut s = tail
        .open(Filter::default(), 0, CancellationToken::new())
        .unwrap();
    let extra = 5;
    deliver(&tail, TAIL_QUEUE + extra);
    expect_dropped_then_kept(&mut s, extra, TAIL_QUEUE).await;
}

#[tokio::test]
async fn tails_are_capped_and_a_closed_one_frees_its_slot() {
    let tail = Tail::default();
    let stop = CancellationToken::new();
    let mut open: Vec<TailStream> = (0..TAILS_MAX)
        .map(|_| tail.open(Filter::default(), 0, stop.clone()).unwrap())
        .collect();
    assert!(matches!(
        tail.open(Filter::default(), 0, stop.clone()),
        Err(TailError::TooMany(TAILS_MAX))
    ));
    open.pop();
    assert!(tail.open(Filter::default(), 0, stop.clone()).is_ok());
    drop(open);
    assert!(!tail.active());
}

#[tokio::test]
async fn a_limit_of_one_refuses_the_second_tail_naming_the_flag() {
    let tail = Tail::new(TailLimits {
        readers_max: 1,
        queue: TAIL_QUEUE,
    });
    let stop = CancellationToken::new();
    let first = tail.open(Filter::default(), 0, stop.clone()).unwrap();
    let Err(e) = tail.open(Filter::default(), 0, stop.clone()) else {
        panic!("a second tail was opened past --tail-readers-max=1")
    };
    let status = tonic::Status::from(e);
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    assert!(
        status.message().contains("--tail-readers-max=1"),
        "{}",
        status.message()
    );
    drop(first);
    assert!(tail.open(Filter::default(), 0, stop).is_ok());
}

#[tokio::test]
async fn a_queue_of_n_drops_past_n_for_a_stalled_reader() {
    let queue = 3;
    let tail = Tail::new(TailLimits {
        readers_max: TAILS_MAX,
        queue,
    });
    let mut s = tail
        .open(Filter::default(), 0, CancellationToken::new())
        .unwrap();
    // The reader stalls (reads nothing) while 2 × N messages are delivered.
    deliver(&tail, 2 * queue);
    expect_dropped_then_kept(&mut s, queue, queue).await;
    // Nothing more was kept: the next message delivered is the next one read.
    tail.tap("d", "a", &message("t/last", b"p"))
        .unwrap()
        .deliver();
    let pb::tail_response::Item::Message(m) = next(&mut s).await else {
        panic!("the last message was expected")
    };
    assert_eq!(m.topic, "t/last");
}

#[test]
fn state_store_requests_are_not_tailed() {
    let tail = Tail::default();
    let _s = tail
        .open(Filter::default(), 0, CancellationToken::new())
        .unwrap();
    assert!(
        tail.tap("d", "a", &message(state_store::REQUEST_TOPIC, b"x"))
            .is_none()
    );
}
