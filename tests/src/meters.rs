//! Metrics of services run in the test process: a global meter provider exporting to memory,
//! and what a collection holds, by instrument name and attributes. A global provider affects
//! the whole test binary, so the tests that use it live in their own binaries and keep their
//! label values apart.

use std::sync::OnceLock;

use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

/// The test binary's meter provider and where it exports to.
pub struct Meters {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
}

/// One data point's value: a counter's or gauge's, or a histogram's count, sum and minimum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    /// A sum or a gauge.
    Value(f64),
    /// A histogram.
    Histogram {
        /// Measurements recorded.
        count: u64,
        /// Their sum.
        sum: f64,
        /// The smallest.
        min: f64,
    },
}

/// Installs (once per test binary) the global meter provider and tells the services that
/// metrics are collected; call it before starting a service.
pub fn install() -> &'static Meters {
    static METERS: OnceLock<Meters> = OnceLock::new();
    METERS.get_or_init(|| {
        let exporter = InMemoryMetricExporter::default();
        // Exports when the test asks (force_flush), not on a timer the test would wait for.
        let reader = PeriodicReader::builder(exporter.clone())
            .with_interval(std::time::Duration::from_secs(3600))
            .build();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        opentelemetry::global::set_meter_provider(provider.clone());
        // The flag the services read when they start: metrics are collected.
        sse_runtime::metrics::set_enabled(true);
        Meters { provider, exporter }
    })
}

impl Meters {
    /// Collects now: every data point of every instrument (cumulative since the start).
    pub fn collect(&self) -> Collected {
        self.exporter.reset();
        let _ = self.provider.force_flush();
        Collected(self.exporter.get_finished_metrics().unwrap_or_default())
    }
}

/// One collection.
pub struct Collected(Vec<ResourceMetrics>);

impl Collected {
    /// The data points of instrument `name` whose attributes include every one of `attrs`.
    pub fn points(&self, name: &str, attrs: &[(&str, &str)]) -> Vec<Point> {
        let mut out = Vec::new();
        let metrics = self
            .0
            .iter()
            .flat_map(|r| r.scope_metrics())
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name);
        for m in metrics {
            match m.data() {
                AggregatedMetrics::U64(d) => points(d, attrs, |v| v as f64, &mut out),
                AggregatedMetrics::I64(d) => points(d, attrs, |v| v as f64, &mut out),
                AggregatedMetrics::F64(d) => points(d, attrs, |v| v, &mut out),
            }
        }
        out
    }

    /// The sum of the counter (or gauge) values of `name` with `attrs`; 0 when none.
    pub fn value(&self, name: &str, attrs: &[(&str, &str)]) -> f64 {
        self.points(name, attrs)
            .iter()
            .map(|p| match p {
                Point::Value(v) => *v,
                Point::Histogram { .. } => 0.0,
            })
            .sum()
    }

    /// The histogram data point of `name` whose attributes are exactly `attrs`: (count, sum,
    /// minimum).
    pub fn histogram(&self, name: &str, attrs: &[(&str, &str)]) -> Option<(u64, f64, f64)> {
        let found: Vec<_> = self
            .points(name, attrs)
            .into_iter()
            .zip(self.point_attribute_counts(name, attrs))
            .filter(|(_, n)| *n == attrs.len())
            .map(|(p, _)| p)
            .filter_map(|p| match p {
                Point::Histogram { count, sum, min } => Some((count, sum, min)),
                Point::Value(_) => None,
            })
            .collect();
        match found.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// How many attributes each of [`Collected::points`]'s points has, in the same order.
    fn point_attribute_counts(&self, name: &str, attrs: &[(&str, &str)]) -> Vec<usize> {
        let mut out = Vec::new();
        for m in self
            .0
            .iter()
            .flat_map(|r| r.scope_metrics())
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
        {
            if let AggregatedMetrics::F64(MetricData::Histogram(h)) = m.data() {
                out.extend(
                    h.data_points()
                        .filter(|p| matches(p.attributes(), attrs))
                        .map(|p| p.attributes().count()),
                );
            }
        }
        out
    }

    /// Every attribute set of `name`'s data points, as sorted `key=value` lists (for messages).
    pub fn attribute_sets(&self, name: &str) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for m in self
            .0
            .iter()
            .flat_map(|r| r.scope_metrics())
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
        {
            let mut push = |attrs: &mut dyn Iterator<Item = &opentelemetry::KeyValue>| {
                let mut v: Vec<String> =
                    attrs.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
                v.sort();
                out.push(v);
            };
            match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(s)) => {
                    s.data_points().for_each(|p| push(&mut p.attributes()))
                }
                AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                    h.data_points().for_each(|p| push(&mut p.attributes()))
                }
                AggregatedMetrics::U64(MetricData::Gauge(g)) => {
                    g.data_points().for_each(|p| push(&mut p.attributes()))
                }
                _ => {}
            }
        }
        out
    }
}

/// Whether `have` includes every one of `want`.
fn matches<'a>(
    have: impl Iterator<Item = &'a opentelemetry::KeyValue>,
    want: &[(&str, &str)],
) -> bool {
    let have: Vec<_> = have.collect();
    want.iter().all(|(k, v)| {
        have.iter()
            .any(|kv| kv.key.as_str() == *k && kv.value == Value::from(v.to_string()))
    })
}

fn points<T: Copy>(
    d: &MetricData<T>,
    attrs: &[(&str, &str)],
    f: impl Fn(T) -> f64,
    out: &mut Vec<Point>,
) {
    match d {
        MetricData::Sum(s) => out.extend(
            s.data_points()
                .filter(|p| matches(p.attributes(), attrs))
                .map(|p| Point::Value(f(p.value()))),
        ),
        MetricData::Gauge(g) => out.extend(
            g.data_points()
                .filter(|p| matches(p.attributes(), attrs))
                .map(|p| Point::Value(f(p.value()))),
        ),
        MetricData::Histogram(h) => out.extend(
            h.data_points()
                .filter(|p| matches(p.attributes(), attrs))
                .map(|p| Point::Histogram {
                    count: p.count(),
                    sum: f(p.sum()),
                    min: p.min().map(&f).unwrap_or(f64::NAN),
                }),
        ),
        MetricData::ExponentialHistogram(_) => {}
    }
}
