//! What the schema service's metrics cost per event, with a collecting meter provider
//! installed (an in-memory exporter that never exports during the run) against metrics off
//! (no provider: no instruments, no clock read). One event's path: the clock read before and
//! after its processing and the processing time recorded with the conventions' attributes.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use sse_schema::metrics::Metrics;

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One event's metric work in the schema service; `None`: metrics off.
fn per_event(metrics: Option<&Metrics>) {
    let started = metrics.map(|_| Instant::now());
    black_box(());
    if let (Some(m), Some(t)) = (metrics, started) {
        m.processed(t.elapsed(), None);
    }
}

fn bench(c: &mut Criterion) {
    let exporter = InMemoryMetricExporter::default();
    let reader = PeriodicReader::builder(exporter)
        .with_interval(Duration::from_secs(3600))
        .build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    let metrics = Metrics::new(&provider.meter("bench"));
    c.bench_function("schema_metrics/on", |b| {
        b.iter(|| per_event(Some(&metrics)))
    });
    c.bench_function("schema_metrics/off", |b| b.iter(|| per_event(None)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
