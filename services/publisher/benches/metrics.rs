//! What the publisher's metrics cost per event, with a collecting meter provider installed
//! (an in-memory exporter that never exports during the run) against metrics off (no provider:
//! the publisher makes no instruments and skips every per-event step). One event's path: its
//! route's attributes found in the stream's cache, the PUBLISH counted with its round trip, and
//! the end-to-end latency recorded; the routes cycle over 50 (device, asset, topic) triples
//! (`on`), or every event has the same route (`on_one_route`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use sse_publisher::metrics::{Metrics, RouteCache};

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROUTES: usize = 50;

fn routes() -> Vec<(String, String, String)> {
    (0..ROUTES)
        .map(|i| {
            (
                format!("device-{}", i % 10),
                format!("asset-{i}"),
                format!("factory/line-{}/asset-{i}/readings", i % 10),
            )
        })
        .collect()
}

/// One event's metric work in the publisher; `None`: metrics off.
fn per_event(cache: Option<&mut RouteCache>, route: &(String, String, String), received: i64) {
    let Some(cache) = cache else { return };
    let labels = cache.get(&route.0, &route.1, &route.2);
    if let Some(t) = &labels.topic {
        t.sent(Some(Duration::from_micros(350)), None);
    }
    labels.delivered(received);
}

fn bench(c: &mut Criterion) {
    let exporter = InMemoryMetricExporter::default();
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let metrics = Arc::new(Metrics::new(&provider.meter("bench")));
    let mut cache = RouteCache::new(metrics);
    let routes = routes();
    let received = 1_700_000_000_123_456_789;
    let mut i = 0;
    c.bench_function("publisher_metrics/on", |b| {
        b.iter(|| {
            i = (i + 1) % ROUTES;
            per_event(Some(&mut cache), black_box(&routes[i]), received)
        })
    });
    c.bench_function("publisher_metrics/on_one_route", |b| {
        b.iter(|| per_event(Some(&mut cache), black_box(&routes[0]), received))
    });
    c.bench_function("publisher_metrics/off", |b| {
        b.iter(|| {
            i = (i + 1) % ROUTES;
            per_event(None, black_box(&routes[i]), received)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
