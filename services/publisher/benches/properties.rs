//! What one event's MQTT message costs the publisher: the CloudEvents user properties built from
//! its route, for a route named by resource names (file mode) and one carrying ADR ids (the
//! external ids and uuids name the device and asset).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use sse_publisher::event::{
    Destination, Event, MqttDestination, Qos, ResourceIds, Route, RouteKind,
};
use sse_publisher::properties::{StoreStamp, event_message};

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event(ids: ResourceIds) -> Event {
    Event {
        id: "3f1d14f1-d7bd-0194-27f8-37a1374dc80c".into(),
        seq: 7,
        stream_key: "weather-station/sse-0|http://h/alerts".into(),
        data: Bytes::from_static(br#"{"temp":21.5,"unit":"C"}"#),
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
            type_ref: "dtmi:com:example:Overheat;1".into(),
            destination: Some(Destination::Mqtt(MqttDestination {
                topic: "factory/weather/alerts".into(),
                qos: Qos::AtLeastOnce,
                retain: false,
                ttl_seconds: None,
            })),
            ids,
            dead_letter: None,
        },
        traceparent: String::new(),
        tracestate: String::new(),
        dataschema: "aio-sr://ns/ABC:1".into(),
        subject: "my-sse-source/alerts/overheat".into(),
        dead_letter: None,
    }
}

fn no_stamp() -> StoreStamp {
    unreachable!("an MQTT destination")
}

fn bench(c: &mut Criterion) {
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let by_names = event(ResourceIds::default());
    c.bench_function("event_message/names", |b| {
        b.iter(|| event_message(black_box(&by_names), tp, no_stamp).unwrap())
    });
    let adr = event(ResourceIds {
        device_uuid: "5f0a6c1e-3b1d-4c6e-9a47-2f0d8e6b7c11".into(),
        external_device_id: "press-7".into(),
        asset_uuid: "9b1e0f3a-77c2-4d2b-8a5e-61c0d4e2f900".into(),
        external_asset_id: "line-7".into(),
    });
    c.bench_function("event_message/adr_ids", |b| {
        b.iter(|| event_message(black_box(&adr), tp, no_stamp).unwrap())
    });
    // What the book checks of every message before it is written: the strings brokers refuse.
    let message = event_message(&adr, tp, no_stamp).unwrap();
    c.bench_function("event_message/check_text", |b| {
        b.iter(|| black_box(&message).check_text().unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
