//! Issue #24: `sse_connector.tail.readers` and `sse_connector.tail.dropped`, collected from the
//! in-memory meter provider of this test binary (its own binary: the provider is global). A
//! tail is opened and never read (a stalled console view) while messages go past its queue.
#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use futures::StreamExt;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use sse_contract::metrics as catalogue;
use sse_e2e::meters;
use sse_proto::v1 as pb;
use sse_publisher::event::Qos;
use sse_publisher::metrics::Metrics;
use sse_publisher::properties::Message;
use sse_publisher::tail::{Filter, Tail, TailLimits};
use tokio_util::sync::CancellationToken;

/// Queue of the tail under test: the messages past it are dropped.
const QUEUE: usize = 2;
/// Messages published while the reader stalls.
const PUBLISHED: usize = 7;

fn message(n: usize) -> Message {
    Message {
        topic: "plant/line".into(),
        qos: Qos::AtLeastOnce,
        retain: false,
        payload: Bytes::from(format!("{{\"n\":{n}}}")),
        properties: PublishProperties::default(),
    }
}

/// What the publish path does with a message once the broker has it.
fn publish(tail: &Tail, n: usize) {
    if let Some(t) = tail.tap("dev", "line", &message(n)) {
        t.deliver();
    }
}

/// (`tail.readers`, `tail.dropped`) as collected now; each must be exported.
fn collected(m: &meters::Meters) -> (f64, f64) {
    let c = m.collect();
    let (r, d) = (catalogue::TAIL_READERS.name, catalogue::TAIL_DROPPED.name);
    assert_eq!(c.points(r, &[]).len(), 1, "{r} is exported");
    assert_eq!(c.points(d, &[]).len(), 1, "{d} is exported");
    (c.value(r, &[]), c.value(d, &[]))
}

#[tokio::test]
async fn open_tails_and_the_drops_of_a_stalled_reader_are_counted() {
    let m = meters::install();
    let metrics = Metrics::from_global().unwrap();
    let tail = Tail::new(TailLimits {
        readers_max: 4,
        queue: QUEUE,
    });
    metrics.follow_tail(&tail);
    // Exported at 0 before any tail: the dashboard and an alert have a series from the start.
    assert_eq!(collected(m), (0.0, 0.0));
    // Nobody tails: nothing is dropped, whatever is published.
    publish(&tail, 0);
    assert_eq!(collected(m), (0.0, 0.0));

    let stop = CancellationToken::new();
    let mut stalled = tail.open(Filter::default(), 0, stop.clone()).unwrap();
    for n in 1..=PUBLISHED {
        publish(&tail, n);
    }
    let lost = (PUBLISHED - QUEUE) as f64;
    assert_eq!(collected(m), (1.0, lost));

    // The reader wakes: told of the drops first, then the queued messages. The counter is
    // cumulative: the notice resets the reader's count, not the instrument.
    let first = stalled.next().await.unwrap().unwrap();
    assert_eq!(
        first.item,
        Some(pb::tail_response::Item::Dropped(pb::TailDropped {
            count: lost as u64
        }))
    );
    for _ in 0..QUEUE {
        let item = stalled.next().await.unwrap().unwrap().item;
        assert!(matches!(item, Some(pb::tail_response::Item::Message(_))));
    }
    assert_eq!(collected(m), (1.0, lost));

    // A second tail, then both closed: the gauge follows, the counter keeps its total.
    let other = tail.open(Filter::default(), 0, stop).unwrap();
    assert_eq!(collected(m).0, 2.0);
    drop(stalled);
    drop(other);
    assert_eq!(collected(m), (0.0, lost));
}
