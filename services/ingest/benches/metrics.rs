//! What ingest's metrics cost (#22's target: under 3 µs of CPU per event for all metrics): the
//! per-event status bookkeeping the instruments read (stream and dataset counters, taken once
//! per batch and per ack), with the instruments registered on a real SDK meter provider and
//! without; and one collection over 10,000 streams, which happens once per export interval or
//! scrape, not per event.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Temporality,
};
use sse_ingest::budget::Budget;
use sse_ingest::checkpoint::Checkpoints;
use sse_ingest::metrics::{ForwardMeters, Sources, register};
use sse_ingest::resources::load_texts;
use sse_ingest::routing::{StreamPlan, plan};
use sse_ingest::status::Status;
use sse_proto::v1 as pb;

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const STREAMS: usize = 10_000;
const DEVICES: usize = 100;

/// A manual reader the bench collects with while the provider owns it.
#[derive(Debug, Clone)]
struct Reader(Arc<ManualReader>);

impl MetricReader for Reader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, t: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(t)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// 10,000 streams over 100 devices, one dataset each.
fn plans() -> Vec<StreamPlan> {
    let yaml = "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\n\
        metadata: { name: d }\nspec: { endpoints: { inbound: { e: { endpointType: Microsoft.SSE, address: \"http://h/x\" } } } }\n\
        ---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\nmetadata: { name: a }\n\
        spec:\n  deviceRef: { deviceName: d, endpointName: e }\n  datasets:\n    - { name: s, dataSource: /s, destinations: [ { target: Mqtt, configuration: { topic: t } } ] }\n";
    let res = load_texts([("r.yaml", yaml)]);
    let one = plan(&res).remove(0);
    (0..STREAMS)
        .map(|i| {
            let mut p = one.clone();
            p.device = format!("d{}", i % DEVICES);
            p.key = format!("{}/e|http://h/{i}", p.device);
            p
        })
        .collect()
}

/// A status of the plans, and the instruments registered on a provider when `metrics`.
fn setup(
    metrics: bool,
) -> (
    Arc<Status>,
    Vec<StreamPlan>,
    Option<(SdkMeterProvider, Reader)>,
) {
    let plans = plans();
    let status = Arc::new(Status::new(&plans, Vec::new()));
    let meters = metrics.then(|| {
        let reader = Reader(Arc::new(ManualReader::builder().build()));
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("bench");
        let sources = Sources {
            status: status.clone(),
            budget: Budget::new(1 << 20),
            max_in_flight: 10_000,
            forward: ForwardMeters::new(&meter),
            checkpoints: Arc::new(Checkpoints::in_memory()),
        };
        register(&meter, &sources);
        (provider, reader)
    });
    (status, plans, meters)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics");
    for metrics in [false, true] {
        let (status, plans, _meters) = setup(metrics);
        let p = &plans[0];
        let route = p.dispatch("message").routes[0].clone();
        let ack = pb::Ack {
            stream_key: p.key.clone(),
            seq: 1,
            ..Default::default()
        };
        let name = if metrics { "on" } else { "off" };
        group.bench_function(
            format!("per event: forwarded + acked, metrics {name}"),
            |b| {
                b.iter(|| {
                    status.count_forwarded([(p.key.as_str(), 1)], [(&*route, 1)]);
                    status.apply_ack(&route, black_box(&ack));
                })
            },
        );
    }
    let (status, plans, meters) = setup(true);
    for p in &plans {
        let route = p.dispatch("message").routes[0].clone();
        status.count_forwarded([(p.key.as_str(), 1)], [(&*route, 1)]);
    }
    let (_provider, reader) = meters.unwrap_or_else(|| unreachable!());
    group.sample_size(10);
    group.bench_function("one collection, 10,000 streams over 100 devices", |b| {
        b.iter(|| {
            let mut rm = ResourceMetrics::default();
            black_box(reader.collect(&mut rm).is_ok())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
