//! The instruments' values for known inputs, read through a real SDK meter provider with a
//! manual reader (no global provider: tests run in parallel).

use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{ManualReader, Pipeline, SdkMeterProvider, Temporality};
use sse_contract::metrics::{self as catalogue, Instrument, attr};
use sse_proto::v1 as pb;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ForwardMeters, Sources, register};
use crate::budget::Budget;
use crate::checkpoint::Checkpoints;
use crate::status::{Status, StreamState};
use crate::streams::StreamTask;
use crate::streams::tests::{accept_stream, plan_for, settings};

/// A manual reader the test keeps a handle on while the provider owns it.
#[derive(Debug, Clone)]
pub(crate) struct Reader(Arc<ManualReader>);

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
    fn temporality(&self, kind: opentelemetry_sdk::metrics::InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// A meter provider of its own and the reader to collect it with.
pub(crate) fn provider() -> (SdkMeterProvider, Reader) {
    let reader = Reader(Arc::new(ManualReader::builder().build()));
    let provider = SdkMeterProvider::builder()
        .with_reader(reader.clone())
        .build();
    (provider, reader)
}

/// One data point: instrument, attributes as text, value.
type Point = (String, Vec<(String, String)>, f64);

/// One collection's data points.
pub(crate) struct Points(Vec<Point>);

impl Points {
    /// Collects everything `reader` sees now.
    pub(crate) fn collect(reader: &Reader) -> Self {
        let mut rm = ResourceMetrics::default();
        reader.collect(&mut rm).unwrap();
        let mut out = Vec::new();
        for scope in rm.scope_metrics() {
            for m in scope.metrics() {
                points_of(m.name(), m.data(), &mut out);
            }
        }
        Self(out)
    }

    /// The value of `i` whose attributes include every one of `want`; panics unless exactly
    /// one point matches.
    pub(crate) fn value(&self, i: Instrument, want: &[(&str, &str)]) -> f64 {
        let found: Vec<f64> = self.matching(i, want).collect();
        assert_eq!(
            found.len(),
            1,
            "{} {want:?}: {found:?}\n{:?}",
            i.name,
            self.0
        );
        found[0]
    }

    /// Values of `i` whose attributes include every one of `want`.
    pub(crate) fn matching<'a>(
        &'a self,
        i: Instrument,
        want: &'a [(&str, &str)],
    ) -> impl Iterator<Item = f64> + 'a {
        self.0
            .iter()
            .filter(move |(name, attrs, _)| {
                name == i.name
                    && want
                        .iter()
                        .all(|(k, v)| attrs.iter().any(|(ak, av)| ak == k && av == v))
            })
            .map(|p| p.2)
    }
}

fn points_of(name: &str, data: &AggregatedMetrics, out: &mut Vec<Point>) {
    let attrs = |it: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
        it.map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect::<Vec<_>>()
    };
    match data {
        AggregatedMetrics::U64(MetricData::Sum(s)) => {
            for p in s.data_points() {
                out.push((name.into(), attrs(&mut p.attributes()), p.value() as f64));
            }
        }
        AggregatedMetrics::U64(MetricData::Gauge(g)) => {
            for p in g.data_points() {
                out.push((name.into(), attrs(&mut p.attributes()), p.value() as f64));
            }
        }
        AggregatedMetrics::F64(MetricData::Gauge(g)) => {
            for p in g.data_points() {
                out.push((name.into(), attrs(&mut p.attributes()), p.value()));
            }
        }
        _ => {}
    }
}

/// Sources around `status` with in-memory checkpoints and the given limits.
fn sources(status: &Arc<Status>, budget: Budget, forward: ForwardMeters) -> Sources {
    Sources {
        status: status.clone(),
        budget,
        max_in_flight: 7,
        forward,
        checkpoints: Arc::new(Checkpoints::in_memory()),
    }
}

#[tokio::test]
async fn stream_instruments_count_a_real_stream() {
    let (provider, reader) = provider();
    let meter = provider.meter("test");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plan = plan_for(&format!("http://{}/", listener.local_addr().unwrap()));
    let key = plan.key.clone();
    let status = Arc::new(Status::new(std::slice::from_ref(&plan), Vec::new()));
    let settings = crate::streams::StreamSettings {
        max_event_bytes: 64,
        ..settings()
    };
    register(
        &meter,
        &sources(&status, settings.budget.clone(), ForwardMeters::new(&meter)),
    );
    let (tx, mut rx) = mpsc::channel(8);
    let task = StreamTask::new(Arc::new(plan), settings, status.clone(), tx);
    let stop = CancellationToken::new();
    let run = tokio::spawn(task.run(stop.clone()));
    let mut sock = accept_stream(&listener).await;
    // Two events kept, one over --max-event-bytes between them.
    let body = format!("data: one\n\ndata: {}\n\ndata: two\n\n", "x".repeat(100));
    sock.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(&*rx.recv().await.unwrap().data, b"one");
    assert_eq!(&*rx.recv().await.unwrap().data, b"two");
    // The server ends the stream: the reader reports why before it connects again.
    drop(sock);
    let _second = accept_stream(&listener).await;

    let p = Points::collect(&reader);
    let dev = [(attr::DEVICE, "dev")];
    let received = [(attr::DEVICE, "dev"), (attr::ENDPOINT, "sse-0")];
    assert_eq!(p.value(catalogue::EVENTS_RECEIVED, &received), 2.0);
    let too_large = [
        (attr::DEVICE, "dev"),
        (attr::REASON, sse_contract::drops::EVENT_TOO_LARGE),
    ];
    assert_eq!(p.value(catalogue::EVENTS_DROPPED, &too_large), 1.0);
    let eof = [
        (attr::DEVICE, "dev"),
        (attr::REASON, crate::sse::ended::EOF),
    ];
    assert_eq!(p.value(catalogue::STREAM_RECONNECTS, &eof), 1.0);
    assert_eq!(
        p.value(catalogue::STREAM_RECEIVED_BYTES, &dev),
        body.len() as f64
    );
    let state = |s: StreamState| {
        p.value(
            catalogue::STREAMS,
            &[(attr::DEVICE, "dev"), (attr::STATE, s.as_str())],
        )
    };
    assert_eq!(state(StreamState::Connected), 0.0);
    assert_eq!(
        state(StreamState::Disconnected) + state(StreamState::Connecting),
        1.0
    );
    assert!(
        p.value(catalogue::STREAM_DOWN, &dev) > 0.0,
        "a stream is down"
    );
    assert_eq!(status.get(&key).unwrap().reconnects.len(), 1);
    stop.cancel();
    run.await.unwrap();
}

/// The route of the one dataset of `plan_for`'s plan.
fn dataset_route(plan: &crate::routing::StreamPlan) -> Arc<crate::routing::Route> {
    plan.dispatch("message").routes[0].clone()
}

#[test]
fn route_instruments_count_forwarded_acknowledged_and_failed_per_dataset() {
    let (provider, reader) = provider();
    let meter = provider.meter("test");
    let plan = plan_for("http://127.0.0.1:1/");
    let status = Arc::new(Status::new(std::slice::from_ref(&plan), Vec::new()));
    register(
        &meter,
        &sources(&status, Budget::new(1000), ForwardMeters::new(&meter)),
    );
    let route = dataset_route(&plan);
    status.count_forwarded([(plan.key.as_str(), 5)], [(&*route, 5)]);
    let ack = |seq, error: &str| pb::Ack {
        stream_key: plan.key.clone(),
        seq,
        error: error.into(),
        ..Default::default()
    };
    for seq in 1..=3 {
        status.apply_ack(&route, &ack(seq, ""));
    }
    status.apply_ack(&route, &ack(4, "broker refused it"));

    let p = Points::collect(&reader);
    let at = [
        (attr::DEVICE, "dev"),
        (attr::ASSET, "a"),
        (attr::ROUTE, "all"),
    ];
    assert_eq!(p.value(catalogue::EVENTS_FORWARDED, &at), 5.0);
    assert_eq!(p.value(catalogue::EVENTS_ACKNOWLEDGED, &at), 3.0);
    let failed = [
        (attr::DEVICE, "dev"),
        (attr::ASSET, "a"),
        (attr::ROUTE, "all"),
        (attr::REASON, super::routes::DELIVERY_FAILED),
    ];
    assert_eq!(p.value(catalogue::EVENTS_DROPPED, &failed), 1.0);
    // The next collection walks the status afresh.
    status.apply_ack(&route, &ack(5, ""));
    let p = Points::collect(&reader);
    assert_eq!(p.value(catalogue::EVENTS_ACKNOWLEDGED, &at), 4.0);
    assert_eq!(p.value(catalogue::EVENTS_FORWARDED, &at), 5.0);
    assert_eq!(
        status.get(&plan.key).unwrap().forwarded,
        5,
        "stream counted too"
    );
}

#[tokio::test]
async fn inflight_gauges_read_the_budget_the_window_and_their_limits() {
    let (provider, reader) = provider();
    let meter = provider.meter("test");
    let status = Arc::new(Status::default());
    let budget = Budget::new(1000);
    let forward = ForwardMeters::new(&meter);
    register(&meter, &sources(&status, budget.clone(), forward.clone()));
    let held = budget.take(&crate::budget::Share::new(1), 300).await;
    forward.set_inflight(4);

    let p = Points::collect(&reader);
    assert_eq!(p.value(catalogue::INFLIGHT_SIZE, &[]), 300.0);
    assert_eq!(p.value(catalogue::INFLIGHT_SIZE_LIMIT, &[]), 1000.0);
    assert_eq!(p.value(catalogue::INFLIGHT_EVENTS, &[]), 4.0);
    assert_eq!(p.value(catalogue::INFLIGHT_EVENTS_LIMIT, &[]), 7.0);
    drop(held);
    assert_eq!(
        Points::collect(&reader).value(catalogue::INFLIGHT_SIZE, &[]),
        0.0
    );
}

#[test]
fn resends_count_with_the_ingest_schema_link() {
    let (provider, reader) = provider();
    let forward = ForwardMeters::new(&provider.meter("test"));
    forward.resent(0);
    forward.resent(3);
    forward.resent(2);
    let p = Points::collect(&reader);
    assert_eq!(
        p.value(catalogue::GRPC_RESENDS, &[(attr::LINK, "ingest-schema")]),
        5.0
    );
}

#[test]
fn a_connected_stream_is_not_down() {
    let (provider, reader) = provider();
    let meter = provider.meter("test");
    let plan = plan_for("http://127.0.0.1:1/");
    let status = Arc::new(Status::new(std::slice::from_ref(&plan), Vec::new()));
    register(
        &meter,
        &sources(&status, Budget::new(10), ForwardMeters::new(&meter)),
    );
    status.update(&plan.key, |s| s.set_state(StreamState::Connected));
    let p = Points::collect(&reader);
    assert_eq!(
        p.value(catalogue::STREAM_DOWN, &[(attr::DEVICE, "dev")]),
        0.0
    );
    let connected = [(attr::DEVICE, "dev"), (attr::STATE, "Connected")];
    assert_eq!(p.value(catalogue::STREAMS, &connected), 1.0);
}

#[test]
fn collecting_ten_thousand_streams_is_bounded() {
    let (provider, reader) = provider();
    let meter = provider.meter("test");
    let plans: Vec<_> = (0..10_000)
        .map(|i| {
            let mut p = plan_for("http://127.0.0.1:1/");
            p.key = format!("dev{}/sse-0|http://h/{i}", i % 100);
            p.device = format!("dev{}", i % 100);
            p
        })
        .collect();
    let status = Arc::new(Status::new(&plans, Vec::new()));
    register(
        &meter,
        &sources(&status, Budget::new(10), ForwardMeters::new(&meter)),
    );
    for p in &plans {
        status.update(&p.key, |s| s.received += 1);
    }
    let first = Instant::now();
    let p = Points::collect(&reader);
    let cold = first.elapsed();
    let again = Instant::now();
    let _ = Points::collect(&reader);
    println!(
        "10,000 streams: first collection {cold:?}, then {:?}",
        again.elapsed()
    );
    let total: f64 = p.matching(catalogue::EVENTS_RECEIVED, &[]).sum();
    assert_eq!(total, 10_000.0);
}
