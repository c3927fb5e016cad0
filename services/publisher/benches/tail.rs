//! What the tail costs the publish path (issue #24): an event's message built as the publisher
//! builds it, then the tail's hook as `publish_one` runs it. `before` is the message alone (the
//! path without the hook); `nobody_tails` adds the hook with no tail open, which must cost
//! nothing measurable; the others show the cost once someone tails: a tail of another asset
//! (filtered out), and a matching tail whose reader never reads (its queue full, so every
//! message is dropped and counted).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sse_publisher::event::{
    Destination, Event, MqttDestination, Qos, ResourceIds, Route, RouteKind,
};
use sse_publisher::properties::{Message, StoreStamp, event_message};
use sse_publisher::tail::{Filter, TAIL_QUEUE, Tail};
use tokio_util::sync::CancellationToken;

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event() -> Event {
    Event {
        id: "3f1d14f1-d7bd-0194-27f8-37a1374dc80c".into(),
        seq: 7,
        stream_key: "weather-station/sse-0|http://h/alerts".into(),
        data: Bytes::from(vec![b'x'; 512]),
        sse_event: "temperature-threshold".into(),
        sse_id: "42".into(),
        received_unix_nanos: 1_700_000_000_123_456_789,
        route: Route {
            device: "weather-station".into(),
            endpoint: "sse-0".into(),
            asset: "my-sse-source".into(),
            kind: RouteKind::Event,
            group: "alerts".into(),
            event: "overheat".into(),
            data_source: "temperature-threshold".into(),
            type_ref: String::new(),
            destination: Some(Destination::Mqtt(MqttDestination {
                topic: "factory/weather/alerts".into(),
                qos: Qos::AtLeastOnce,
                retain: false,
                ttl_seconds: None,
            })),
            ids: ResourceIds::default(),
            dead_letter: None,
        },
        traceparent: String::new(),
        tracestate: String::new(),
        dataschema: String::new(),
        subject: "my-sse-source/alerts/overheat".into(),
        dead_letter: None,
    }
}

fn no_stamp() -> StoreStamp {
    unreachable!("an MQTT destination")
}

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The message of `ev`, then the tail's hook as `publish_one` and `outcome` run it.
fn publish_path(ev: &Event, tail: &Tail) -> Message {
    let message = event_message(ev, TP, no_stamp).unwrap();
    hook(ev, &message, tail);
    message
}

/// The tail's hook on `message` of `ev`, as `publish_one` and `outcome` run it.
fn hook(ev: &Event, message: &Message, tail: &Tail) {
    let tapped = tail.tap(&ev.route.device, &ev.route.asset, message);
    let kept = tail.active().then(|| tail.clone());
    if let Some(t) = tapped {
        t.deliver();
    }
    drop(black_box(kept));
}

fn bench(c: &mut Criterion) {
    let ev = event();
    c.bench_function("tail/before", |b| {
        b.iter(|| event_message(black_box(&ev), TP, no_stamp).unwrap())
    });
    let tail = Tail::default();
    c.bench_function("tail/nobody_tails", |b| {
        b.iter(|| publish_path(black_box(&ev), &tail))
    });
    // The hook alone, on a message already built.
    let message = event_message(&ev, TP, no_stamp).unwrap();
    c.bench_function("tail/hook_alone_nobody_tails", |b| {
        b.iter(|| hook(black_box(&ev), black_box(&message), &tail))
    });
    let stop = CancellationToken::new();
    let other = Filter {
        asset: Some("another-asset".into()),
        ..Filter::default()
    };
    let filtered = tail.open(other, 0, stop.clone()).unwrap();
    c.bench_function("tail/one_tail_filtered_out", |b| {
        b.iter(|| publish_path(black_box(&ev), &tail))
    });
    c.bench_function("tail/hook_alone_one_tail_filtered_out", |b| {
        b.iter(|| hook(black_box(&ev), black_box(&message), &tail))
    });
    drop(filtered);
    let stalled = tail.open(Filter::default(), 0, stop).unwrap();
    for _ in 0..TAIL_QUEUE {
        publish_path(&ev, &tail);
    }
    c.bench_function("tail/stalled_reader_drops", |b| {
        b.iter(|| publish_path(black_box(&ev), &tail))
    });
    c.bench_function("tail/hook_alone_stalled_reader_drops", |b| {
        b.iter(|| hook(black_box(&ev), black_box(&message), &tail))
    });
    drop(stalled);
}

criterion_group!(benches, bench);
criterion_main!(benches);
