//! The report of one `just bench`: what was measured, the medians, the targets of issue #8, and
//! its JSON and Markdown forms.

use serde::Serialize;

use crate::contender::{Kind, RunResult};
use crate::criterion::Estimate;
use crate::machine::Machine;
use crate::noise;

/// The medians of one contender over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Which contender.
    pub kind: Kind,
    /// Events per stream in each run.
    pub events_per_stream: u64,
    /// Every run, in order.
    pub runs: Vec<RunResult>,
    /// Median events per second.
    pub events_per_s: Option<f64>,
    /// Median of the runs' median latency, µs.
    pub p50_us: Option<f64>,
    /// Median of the runs' 99th percentile latency, µs.
    pub p99_us: Option<f64>,
    /// Median of the runs' 99.9th percentile latency, µs.
    pub p999_us: Option<f64>,
    /// Median of the runs' worst latency, µs (one sample per run: reported, never a target).
    pub max_us: Option<f64>,
    /// Median CPU time of the bridging processes per event, µs.
    pub cpu_us_per_event: Option<f64>,
    /// The same per process.
    pub cpu_split: Vec<(String, f64)>,
    /// Median CPU time of the broker per event, µs.
    pub broker_cpu_us_per_event: Option<f64>,
    /// Lost events over all runs.
    pub lost: u64,
    /// Duplicates over all runs.
    pub duplicates: u64,
    /// Out-of-order deliveries over all runs.
    pub out_of_order: u64,
    /// Why this contender did not run (or stopped).
    pub error: Option<String>,
}

/// The median of `v` (mean of the middle two for an even count); `None` when empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl Summary {
    /// Summarises `runs` of `kind`.
    pub fn new(
        kind: Kind,
        events_per_stream: u64,
        runs: Vec<RunResult>,
        error: Option<String>,
    ) -> Self {
        let med =
            |f: &dyn Fn(&RunResult) -> Option<f64>| median(runs.iter().filter_map(f).collect());
        let names: Vec<String> = runs
            .first()
            .map(|r| r.cpu_split.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        let cpu_split = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| Some((n.clone(), med(&|r| r.cpu_split.get(i).map(|c| c.1))?)))
            .collect();
        Self {
            kind,
            events_per_stream,
            events_per_s: med(&|r| Some(r.events_per_s)),
            p50_us: med(&|r| r.p50_us),
            p99_us: med(&|r| r.p99_us),
            p999_us: med(&|r| r.p999_us),
            max_us: med(&|r| r.max_us),
            cpu_us_per_event: med(&|r| r.cpu_us_per_event),
            cpu_split,
            broker_cpu_us_per_event: med(&|r| r.broker_cpu_us_per_event),
            lost: runs.iter().map(|r| r.lost).sum(),
            duplicates: runs.iter().map(|r| r.duplicates).sum(),
            out_of_order: runs.iter().map(|r| r.out_of_order).sum(),
            runs,
            error,
        }
    }
}

/// One load scenario with its contenders.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Title.
    pub title: String,
    /// Streams.
    pub streams: u32,
    /// Offered rate over all streams (events/s); `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Each contender's medians and runs.
    pub contenders: Vec<Summary>,
    /// The noise that ran during the scenario (`BENCH_NOISE=1`), if any.
    pub noise: Option<noise::Record>,
}

impl Scenario {
    /// The summary of `kind`, when it ran.
    pub fn get(&self, kind: Kind) -> Option<&Summary> {
        self.contenders
            .iter()
            .find(|s| s.kind == kind && s.error.is_none())
    }
}

/// The load source measured alone (read over raw TCP, nothing else running).
#[derive(Debug, Clone, Serialize)]
pub struct SourceAlone {
    /// Streams.
    pub streams: u32,
    /// Events per stream per run.
    pub events_per_stream: u64,
    /// Median events per second.
    pub events_per_s: f64,
    /// Median MiB per second on the wire.
    pub mib_per_s: f64,
    /// Every run's events per second.
    pub runs: Vec<f64>,
}

/// Scenario 3: many idle streams in one ingest.
#[derive(Debug, Clone, Serialize)]
pub struct Idle {
    /// Concurrent streams.
    pub streams: u32,
    /// Seconds from ingest start until every stream was open at the source.
    pub connect_seconds: f64,
    /// Ingest resident memory with one stream, KiB.
    pub ingest_rss_one_kib: u64,
    /// Ingest resident memory with every stream, KiB.
    pub ingest_rss_kib: u64,
    /// (RSS with all − RSS with one) / (streams − 1), KiB.
    pub kib_per_stream: f64,
    /// Measured idle window, s.
    pub window_seconds: f64,
    /// Keep-alive comments the source sent in the window.
    pub keepalives: u64,
    /// CPU of each service over the window, % of one core.
    pub cpu_percent: Vec<(String, f64)>,
    /// Resident memory of schema and publisher, KiB.
    pub other_rss_kib: Vec<(String, u64)>,
}

mod markdown;
mod skeleton;

pub use markdown::series_csv;
pub use skeleton::{SKELETON_RATIO_MAX, SkeletonRatio, skeleton_ratios};

/// A target of issue #8 and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The target.
    pub target: String,
    /// The measured value.
    pub measured: String,
    /// Met?
    pub met: bool,
}

/// Everything `just bench` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Machine and versions.
    pub machine: Machine,
    /// The scale factor of the loads (1 = the loads).
    pub scale: f64,
    /// Interleaved runs per contender.
    pub runs: usize,
    /// The load source alone.
    pub source_alone: Option<SourceAlone>,
    /// Scenario 1.
    pub throughput: Option<Scenario>,
    /// Scenario 2.
    pub latency: Option<Scenario>,
    /// Scenario 2's CPU per event of each three-process form against the skeleton of the same
    /// transport, for the pairs that ran (issue #25: within 1.3×).
    pub cpu_against_skeleton: Vec<SkeletonRatio>,
    /// Scenario 3.
    pub idle: Option<Idle>,
    /// Scenario 4.
    pub micro: Vec<Estimate>,
    /// Targets and verdicts.
    pub targets: Vec<Target>,
    /// Anything skipped or worth knowing.
    pub notes: Vec<String>,
    /// Wall time of each scenario, s.
    pub timings: Vec<(String, f64)>,
    /// Wall time of the harness, s.
    pub seconds: f64,
}

impl Report {
    /// Whether `kind` is a contender of a scenario of this report (to explain it only then).
    fn has(&self, kind: Kind) -> bool {
        [&self.throughput, &self.latency]
            .into_iter()
            .flatten()
            .any(|sc| sc.contenders.iter().any(|c| c.kind == kind))
    }

    /// Checks the targets of issue #8 against the medians.
    pub fn judge(&mut self) {
        let mut t = Vec::new();
        if let Some(s) = &self.throughput {
            let rate = |k| s.get(k).and_then(|x| x.events_per_s);
            for k in [Kind::Pipeline, Kind::Connector] {
                if let (Some(p), Some(r)) = (rate(k), rate(Kind::Raw)) {
                    t.push(Target {
                        what: format!("throughput: {} / raw", k.name()),
                        target: "≥ 50 %".into(),
                        measured: format!("{:.0} %", 100.0 * p / r),
                        met: p >= 0.5 * r,
                    });
                }
                if let (Some(p), Some(py)) = (rate(k), rate(Kind::Python)) {
                    t.push(Target {
                        what: format!("throughput: {} / python", k.name()),
                        target: "≥ 3×".into(),
                        measured: format!("{:.1}×", p / py),
                        met: p >= 3.0 * py,
                    });
                }
            }
            for c in &s.contenders {
                if c.error.is_none() {
                    t.push(zero_lost("throughput", c));
                }
            }
        }
        if let Some(s) = &self.latency {
            for (k, processes) in [
                (Kind::Pipeline, "three processes"),
                (Kind::Connector, "one process"),
            ] {
                let Some(p) = s.get(k) else { continue };
                if let Some(p99) = p.p99_us {
                    t.push(Target {
                        what: format!("latency: {} p99", k.name()),
                        target: "< 600 µs".into(),
                        measured: format!("{p99:.0} µs"),
                        met: p99 < 600.0,
                    });
                }
                if let Some(cpu) = p.cpu_us_per_event {
                    t.push(Target {
                        what: format!(
                            "cost: CPU of the three services per event ({}, {processes})",
                            k.name()
                        ),
                        target: "< 100 µs".into(),
                        measured: format!("{cpu:.0} µs"),
                        met: cpu < 100.0,
                    });
                }
            }
            for r in skeleton_ratios(s) {
                t.push(Target {
                    what: format!("cost: CPU per event, {} (issue #25)", r.name()),
                    target: format!("≤ {SKELETON_RATIO_MAX}×"),
                    measured: format!(
                        "{:.2}× ({:.1} / {:.1} µs)",
                        r.ratio, r.contender_us, r.skeleton_us
                    ),
                    met: r.met(),
                });
            }
            for c in &s.contenders {
                if c.error.is_none() {
                    t.push(zero_lost("latency", c));
                }
            }
        }
        self.cpu_against_skeleton = self
            .latency
            .as_ref()
            .map(skeleton_ratios)
            .unwrap_or_default();
        if let Some(i) = &self.idle {
            t.push(Target {
                what: format!("{} idle streams: ingest memory per stream", i.streams),
                target: "< 32 KiB".into(),
                measured: format!("{:.1} KiB", i.kib_per_stream),
                met: i.kib_per_stream < 32.0,
            });
            if let Some((_, cpu)) = i.cpu_percent.first() {
                t.push(Target {
                    what: format!("{} idle streams: ingest CPU", i.streams),
                    target: "near 0 (< 2 % of a core)".into(),
                    measured: format!("{cpu:.2} %"),
                    met: *cpu < 2.0,
                });
            }
        }
        self.targets = t;
    }
}

fn zero_lost(scenario: &str, c: &Summary) -> Target {
    Target {
        what: format!("{scenario}: {} lost, every run", c.kind.name()),
        target: "0".into(),
        measured: format!(
            "{} lost, {} duplicated, {} out of order",
            c.lost, c.duplicates, c.out_of_order
        ),
        met: c.lost == 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
