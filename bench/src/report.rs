//! The report of one `just bench`: what was measured, the medians, the targets of issue #8, and
//! its JSON and Markdown forms.

use std::fmt::Write;

use serde::Serialize;

use crate::contender::{Kind, RunResult};
use crate::criterion::Estimate;
use crate::machine::Machine;
use crate::noise;
use crate::series;

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

/// How far a three-process form is from the skeleton of the same transport, at most: issue
/// #25's target for the CPU per event.
pub const SKELETON_RATIO_MAX: f64 = 1.3;

/// The pairs compared like with like: each three-process form and the skeleton over the same
/// transport (plaintext, mTLS).
const SKELETON_PAIRS: [(Kind, Kind); 2] = [
    (Kind::Pipeline, Kind::Skeleton),
    (Kind::Mtls, Kind::SkeletonMtls),
];

/// One form's median CPU per event against its skeleton's, in the same scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkeletonRatio {
    /// The three-process form.
    pub contender: Kind,
    /// The skeleton over the same transport.
    pub skeleton: Kind,
    /// The form's median CPU per event, µs.
    pub contender_us: f64,
    /// The skeleton's, µs.
    pub skeleton_us: f64,
    /// `contender_us / skeleton_us`.
    pub ratio: f64,
}

impl SkeletonRatio {
    /// "pipeline / skeleton".
    pub fn name(&self) -> String {
        format!("{} / {}", self.contender.name(), self.skeleton.name())
    }

    /// Whether the form is within [`SKELETON_RATIO_MAX`] of its skeleton.
    pub fn met(&self) -> bool {
        self.ratio <= SKELETON_RATIO_MAX
    }
}

/// The ratios of the pairs of `sc` that both ran with a CPU per event (the skeleton's above 0).
pub fn skeleton_ratios(sc: &Scenario) -> Vec<SkeletonRatio> {
    let cpu = |k| sc.get(k).and_then(|s| s.cpu_us_per_event);
    SKELETON_PAIRS
        .into_iter()
        .filter_map(|(contender, skeleton)| {
            let (contender_us, skeleton_us) = (cpu(contender)?, cpu(skeleton)?);
            (skeleton_us > 0.0).then(|| SkeletonRatio {
                contender,
                skeleton,
                contender_us,
                skeleton_us,
                ratio: contender_us / skeleton_us,
            })
        })
        .collect()
}

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

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
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

    /// The Markdown page (also printed as the table on the terminal).
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::new();
        let _ = writeln!(s, "# Benchmarks\n");
        let _ = writeln!(
            s,
            "Written by `just bench` (crate `bench/`, issue #8). Generator, broker, subscriber and the \
             system under test share one machine, so only ratios within one run mean much; every \
             number is the median of {} interleaved runs{}.\n",
            self.runs,
            if (self.scale - 1.0).abs() > 1e-9 {
                format!(
                    ", at **scale {} of the issue's loads** (BENCH_SCALE)",
                    self.scale
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "| machine | |\n|---|---|");
        let _ = writeln!(s, "| CPU | {} ({} cores) |", m.cpu, m.cores);
        let _ = writeln!(s, "| memory | {} MiB |", m.memory_mib);
        let _ = writeln!(s, "| kernel | {} |", m.kernel);
        let _ = writeln!(s, "| rustc | {} |", m.rustc);
        let _ = writeln!(s, "| Mosquitto | {} |", m.mosquitto);
        let _ = writeln!(s, "| Python | {} |", m.python);
        let _ = writeln!(s, "| load average at start | {} |", m.load_average);
        let _ = writeln!(s, "| date | {} |", m.date);
        let _ = writeln!(
            s,
            "| harness wall time | {:.0} s ({}) |\n",
            self.seconds,
            self.timings
                .iter()
                .map(|(n, t)| format!("{n} {t:.0} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );

        let _ = writeln!(
            s,
            "How it is measured: a load source in the harness serves K SSE streams (`/s/<i>`, \
             ~200-byte JSON events carrying a send timestamp in ns and a sequence number; it honours \
             `Last-Event-ID`). The pipeline is the three release binaries (sse-ingest → sse-schema → \
             sse-publisher) with one dataset per stream publishing at QoS 1; `raw` is one rumqttc \
             client publishing the same payloads straight to Mosquitto ({} in flight); `python` is \
             bench/python/bridge.py (httpx-sse + paho-mqtt v5, QoS 1, one reader thread per stream, \
             at most {} un-acknowledged publishes). One MQTT 5 QoS 1 subscriber per contender counts \
             every event per stream (lost, duplicated, out of order) and its latency. Each contender \
             first carries one warm-up event per stream; runs interleave, each \
             starting with the next contender (pipeline, raw, python; raw, python, pipeline; …), \
             all from copies of the binaries made at start. `connector` is the same three services \
             in one process (`sse-connector`: each keeps its own gRPC server and port, and they \
             call each other's gRPC routes in-process, without HTTP/2 or sockets between them, the \
             two event streams with their messages unencoded); its CPU is that one process's. Re-run with `just bench`; `BENCH_SCALE=0.1 just bench` is a quick run.{}\n",
            crate::raw::IN_FLIGHT,
            crate::python::IN_FLIGHT,
            if self.has(Kind::Skeleton) || self.has(Kind::SkeletonMtls) {
                " `skeleton` (opt-in: `BENCH_CONTENDERS=pipeline,skeleton`) is the pipeline's bare \
                 architecture, bench/src/bin/sse-bench-skeleton.rs: three processes (`in` reads \
                 the SSE streams, `mid`, `out` publishes at QoS 1) joined by the same tonic gRPC \
                 bidi streams and protobuf messages, with none of the services' logic (no routing, \
                 schemas, acks or tracing), so the pipeline's CPU per event minus the skeleton's \
                 is what our code costs on this machine, the acks sent back upstream included. \
                 `skeleton-mtls` (opt-in) is the same skeleton with both gRPC hops over the \
                 services' own mTLS (sse-runtime's accept loop and dialer, each role with its own \
                 certificate of one test CA), the floor `mtls` is compared with."
            } else {
                ""
            }
        );
        if !self.targets.is_empty() {
            let _ = writeln!(s, "## Targets (issue #8)\n");
            let _ = writeln!(s, "| | target | measured | met |\n|---|---|---|---|");
            for t in &self.targets {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    t.what,
                    t.target,
                    t.measured,
                    if t.met { "yes" } else { "**no**" }
                );
            }
            s.push('\n');
        }
        if let Some(a) = &self.source_alone {
            let _ = writeln!(s, "## The load source alone\n");
            let _ = writeln!(
                s,
                "{} streams, {} events each, read over raw TCP by the harness, no contender running: \
                 **{} events/s** ({:.0} MiB/s), runs: {}.\n",
                a.streams,
                a.events_per_stream,
                thousands(a.events_per_s),
                a.mib_per_s,
                a.runs
                    .iter()
                    .map(|r| thousands(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        for sc in [&self.throughput, &self.latency].into_iter().flatten() {
            scenario_md(&mut s, sc);
        }
        skeleton_md(&mut s, &self.cpu_against_skeleton);
        if let Some(i) = &self.idle {
            let _ = writeln!(s, "## 3. Many idle streams\n");
            let _ = writeln!(
                s,
                "{} SSE streams into one sse-ingest, keep-alive comments every 15 s; all open after {:.1} s; \
                 CPU measured over {:.0} s from {} s after the last one opened.\n",
                i.streams,
                i.connect_seconds,
                i.window_seconds,
                crate::scenarios::IDLE_SETTLE.as_secs()
            );
            let _ = writeln!(s, "| | value |\n|---|---|");
            let _ = writeln!(s, "| ingest RSS, 1 stream | {} KiB |", i.ingest_rss_one_kib);
            let _ = writeln!(
                s,
                "| ingest RSS, {} streams | {} KiB |",
                i.streams, i.ingest_rss_kib
            );
            let _ = writeln!(s, "| memory per stream | **{:.1} KiB** |", i.kib_per_stream);
            for (n, c) in &i.cpu_percent {
                let _ = writeln!(
                    s,
                    "| {n} CPU over {:.0} s idle ({} keep-alives) | {c:.2} % of a core |",
                    i.window_seconds, i.keepalives
                );
            }
            for (n, r) in &i.other_rss_kib {
                let _ = writeln!(s, "| {n} RSS | {r} KiB |");
            }
            s.push('\n');
        }
        if !self.micro.is_empty() {
            let _ = writeln!(s, "## 4. Micro-benchmarks (criterion, short measurement)\n");
            let _ = writeln!(
                s,
                "| benchmark | time per iteration | throughput | events/s | ns per event |\n|---|---|---|---|---|"
            );
            for e in &self.micro {
                let thr = match (e.bytes_per_s, e.elements_per_s) {
                    (Some(b), _) => format!("{:.0} MiB/s", b / 1048576.0),
                    (_, Some(el)) => format!("{} elements/s", thousands(el)),
                    _ => "–".into(),
                };
                let eps = e.events_per_s.or(e.elements_per_s);
                let _ = writeln!(
                    s,
                    "| {} `{}` | {} | {} | {} | {} |",
                    e.package,
                    e.id,
                    human_ns(e.time_ns),
                    thr,
                    eps.map(thousands).unwrap_or_else(|| "–".into()),
                    eps.map(|x| format!("{:.0}", 1e9 / x))
                        .unwrap_or_else(|| "–".into()),
                );
            }
            s.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(s, "## Notes\n");
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
            s.push('\n');
        }
        s
    }
}

/// The latency scenario's "CPU per event against the skeleton" block: one line per pair that
/// ran, nothing when none did.
fn skeleton_md(s: &mut String, ratios: &[SkeletonRatio]) {
    if ratios.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "CPU per event against the skeleton (scenario 2, medians; issue #25: within \
         {SKELETON_RATIO_MAX}× of the skeleton of the same transport):\n"
    );
    for r in ratios {
        let _ = writeln!(
            s,
            "- {}: **{:.2}×** ({:.1} µs / {:.1} µs)",
            r.name(),
            r.ratio,
            r.contender_us,
            r.skeleton_us
        );
    }
    s.push('\n');
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

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn scenario_md(s: &mut String, sc: &Scenario) {
    let _ = writeln!(s, "## {}\n", sc.title);
    if let Some(n) = &sc.noise {
        let _ = writeln!(
            s,
            "Noise (`BENCH_NOISE=1`, docs/performance.md \"Noise\"): `{}`, pinned to core {}, \
             from before the first measured window until after the last.{}\n",
            n.argv.join(" "),
            n.core,
            n.error
                .as_ref()
                .map(|e| format!(" **It did not run throughout: {e}**"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        s,
        "| contender | events per run | events/s | p50 | p99 | p99.9 | max | CPU per event | CPU split (µs/event) | lost | dup | out of order |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &sc.contenders {
        if let Some(e) = &c.error {
            let _ = writeln!(
                s,
                "| {} | skipped: {e} | | | | | | | | | | |",
                c.kind.name()
            );
            continue;
        }
        let split = c
            .cpu_split
            .iter()
            .map(|(n, v)| format!("{n} {v:.1}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "| {} | {} | **{}** | {} µs | {} µs | {} µs | {} µs | {} | {} | {} | {} | {} |",
            c.kind.name(),
            thousands((c.events_per_stream * u64::from(sc.streams)) as f64),
            c.events_per_s.map(thousands).unwrap_or_else(|| "–".into()),
            opt(c.p50_us, 0),
            opt(c.p99_us, 0),
            opt(c.p999_us, 0),
            opt(c.max_us, 0),
            c.cpu_us_per_event
                .map(|v| format!("{v:.1} µs"))
                .unwrap_or_else(|| "–".into()),
            if split.is_empty() {
                "–".into()
            } else {
                split
            },
            c.lost,
            c.duplicates,
            c.out_of_order
        );
    }
    let _ = writeln!(s, "\nEvery run (events/s; p99 / p99.9 / max µs):\n");
    for c in &sc.contenders {
        if c.runs.is_empty() {
            continue;
        }
        let runs = c
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{} ({} / {} / {})",
                    thousands(r.events_per_s),
                    opt(r.p99_us, 0),
                    opt(r.p999_us, 0),
                    opt(r.max_us, 0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(s, "- {}: {runs}", c.kind.name());
    }
    s.push('\n');
    if sc.rate.is_some() {
        worst_buckets_md(s, sc);
    }
}

/// The worst buckets shown per contender: enough to see whether a stall repeats.
const WORST_SHOWN: usize = 3;

/// One line per contender naming its worst 100 ms buckets over all runs, so a stall shows at a
/// glance (the whole series is in the JSON and the CSV files).
fn worst_buckets_md(s: &mut String, sc: &Scenario) {
    let _ = writeln!(
        s,
        "Worst {} ms buckets of arrival (run, time since the window started: worst latency, events in the bucket; empty: buckets in which nothing arrived):\n",
        series::BUCKET.as_millis()
    );
    for c in &sc.contenders {
        if c.runs.is_empty() {
            continue;
        }
        let _ = writeln!(s, "- {}: {}", c.kind.name(), worst_line(&c.runs));
    }
    s.push('\n');
}

/// "run 1 +4.3 s: 261.0 ms (12 events), …; empty: 3" over every run of one contender.
fn worst_line(runs: &[RunResult]) -> String {
    let mut worst: Vec<(usize, series::Bucket)> = runs
        .iter()
        .flat_map(|r| r.series.worst(WORST_SHOWN).into_iter().map(|b| (r.run, b)))
        .collect();
    worst.sort_by(|a, b| b.1.max_us.total_cmp(&a.1.max_us));
    worst.truncate(WORST_SHOWN);
    let empty: usize = runs.iter().map(|r| r.series.empty()).sum();
    let named = worst
        .iter()
        .map(|(run, b)| {
            format!(
                "run {run} +{:.1} s: {:.1} ms ({} events)",
                b.start_ms as f64 / 1e3,
                b.max_us / 1e3,
                b.count
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("{named}; empty: {empty}")
}

/// The latency series of every run of every contender of `sc` as CSV files: (file name,
/// contents), one file per contender.
pub fn series_csv(sc: &Scenario) -> Vec<(String, String)> {
    sc.contenders
        .iter()
        .filter(|c| !c.runs.is_empty())
        .map(|c| {
            let mut text = series::CSV_HEADER.to_string();
            for r in &c.runs {
                text.push_str(&r.series.csv_rows(r.run));
            }
            (format!("latency-series-{}.csv", c.kind.name()), text)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    /// A run of `kind` whose latencies (µs) are `p` at p50/p99/p99.9/max and whose series has
    /// a stall: nothing in the second bucket, a 250 ms worst in the third.
    fn run(kind: Kind, run: usize, p: [f64; 4]) -> RunResult {
        const MS: u64 = 1_000_000;
        let samples = [(MS, 400_000), (250 * MS, 250 * MS), (260 * MS, 1_000)];
        RunResult {
            kind,
            run,
            events: 3,
            lost: 0,
            duplicates: 0,
            out_of_order: 0,
            seconds: 0.3,
            events_per_s: 10.0,
            p50_us: Some(p[0]),
            p99_us: Some(p[1]),
            p999_us: Some(p[2]),
            max_us: Some(p[3]),
            cpu_us_per_event: None,
            cpu_split: vec![],
            series: series::Series::bucket(0, series::BUCKET, &samples),
        }
    }

    fn latency_scenario() -> Scenario {
        let runs = vec![
            run(Kind::Connector, 0, [300.0, 900.0, 5_000.0, 250_000.0]),
            run(Kind::Connector, 1, [310.0, 950.0, 7_000.0, 90_000.0]),
        ];
        Scenario {
            title: "2. Latency".into(),
            streams: 1,
            rate: Some(10.0),
            contenders: vec![Summary::new(Kind::Connector, 3, runs, None)],
            noise: Some(crate::noise::Record {
                core: 1,
                argv: vec![
                    "taskset".into(),
                    "-c".into(),
                    "1".into(),
                    "stress-ng".into(),
                ],
                error: None,
            }),
        }
    }

    #[test]
    fn every_contender_gets_p999_and_max_medians_over_its_runs() {
        let sc = latency_scenario();
        let c = &sc.contenders[0];
        assert_eq!(c.p999_us, Some(6_000.0));
        assert_eq!(c.max_us, Some(170_000.0));
        let mut md = String::new();
        scenario_md(&mut md, &sc);
        assert!(md.contains("| p50 | p99 | p99.9 | max |"), "{md}");
        assert!(
            md.contains("| 305 µs | 925 µs | 6000 µs | 170000 µs |"),
            "{md}"
        );
        assert!(md.contains("(900 / 5000 / 250000)"), "{md}");
        let v = serde_json::to_value(&sc).unwrap();
        assert_eq!(v["contenders"][0]["p999_us"], 6_000.0);
        assert_eq!(v["contenders"][0]["runs"][1]["max_us"], 90_000.0);
        assert_eq!(v["contenders"][0]["runs"][0]["series"]["count"][1], 0);
        assert_eq!(v["noise"]["core"], 1);
    }

    #[test]
    fn the_report_names_the_worst_buckets_and_the_noise() {
        let sc = latency_scenario();
        let mut md = String::new();
        scenario_md(&mut md, &sc);
        assert!(
            md.contains(
                "- connector: run 0 +0.2 s: 250.0 ms (2 events), run 1 +0.2 s: 250.0 ms \
                 (2 events), run 0 +0.0 s: 0.4 ms (1 events); empty: 2"
            ),
            "{md}"
        );
        assert!(
            md.contains("`taskset -c 1 stress-ng`, pinned to core 1"),
            "{md}"
        );
        // Throughput (no rate) has no series lines.
        let mut fast = latency_scenario();
        fast.rate = None;
        let mut md = String::new();
        scenario_md(&mut md, &fast);
        assert!(!md.contains("Worst 100 ms buckets"), "{md}");
    }

    #[test]
    fn one_csv_file_per_contender_with_every_run() {
        let files = series_csv(&latency_scenario());
        assert_eq!(files.len(), 1);
        let (name, text) = &files[0];
        assert_eq!(name, "latency-series-connector.csv");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "run,start_ms,count,p99_us,max_us");
        assert_eq!(
            &lines[1..],
            [
                "0,0,1,400.0,400.0",
                "0,100,0,,",
                "0,200,2,250000.0,250000.0",
                "1,0,1,400.0,400.0",
                "1,100,0,,",
                "1,200,2,250000.0,250000.0"
            ]
        );
    }

    /// A latency summary of `kind` with one run costing `cpu` µs of CPU per event.
    fn costing(kind: Kind, cpu: f64) -> Summary {
        let mut r = run(kind, 0, [300.0, 900.0, 5_000.0, 9_000.0]);
        r.cpu_us_per_event = Some(cpu);
        Summary::new(kind, 3, vec![r], None)
    }

    fn report(latency: Scenario) -> Report {
        Report {
            machine: Machine {
                cpu: "test".into(),
                cores: 2,
                memory_mib: 1,
                kernel: String::new(),
                rustc: String::new(),
                mosquitto: String::new(),
                python: String::new(),
                load_average: String::new(),
                date: String::new(),
            },
            scale: 1.0,
            runs: 1,
            source_alone: None,
            throughput: None,
            latency: Some(latency),
            cpu_against_skeleton: vec![],
            idle: None,
            micro: vec![],
            targets: vec![],
            notes: vec![],
            timings: vec![],
            seconds: 0.0,
        }
    }

    #[test]
    fn each_form_is_judged_against_the_skeleton_of_its_transport() {
        let mut sc = latency_scenario();
        sc.contenders = vec![
            costing(Kind::Pipeline, 150.0),
            costing(Kind::Skeleton, 120.0),
            costing(Kind::Mtls, 200.0),
            costing(Kind::SkeletonMtls, 125.0),
        ];
        let mut r = report(sc);
        r.judge();
        let ratios = &r.cpu_against_skeleton;
        assert_eq!(ratios.len(), 2, "{ratios:?}");
        assert_eq!(ratios[0].name(), "pipeline / skeleton");
        assert_eq!(ratios[0].ratio, 1.25);
        assert!(ratios[0].met());
        assert_eq!(ratios[1].name(), "mtls / skeleton-mtls");
        assert_eq!(ratios[1].ratio, 1.6);
        assert!(!ratios[1].met());
        let target = |what: &str| r.targets.iter().find(|t| t.what.contains(what)).cloned();
        let plain = target("pipeline / skeleton").unwrap();
        assert!(plain.met, "{plain:?}");
        assert_eq!(plain.target, "≤ 1.3×");
        assert_eq!(plain.measured, "1.25× (150.0 / 120.0 µs)");
        let tls = target("mtls / skeleton-mtls").unwrap();
        assert!(!tls.met, "{tls:?}");
        let md = r.markdown();
        assert!(md.contains("CPU per event against the skeleton"), "{md}");
        assert!(
            md.contains("- pipeline / skeleton: **1.25×** (150.0 µs / 120.0 µs)"),
            "{md}"
        );
        assert!(
            md.contains("- mtls / skeleton-mtls: **1.60×** (200.0 µs / 125.0 µs)"),
            "{md}"
        );
        assert!(
            md.contains("| cost: CPU per event, mtls / skeleton-mtls (issue #25) | ≤ 1.3× |"),
            "{md}"
        );
        let v = serde_json::to_value(&r).unwrap();
        let json = &v["cpu_against_skeleton"];
        assert_eq!(json[1]["contender"], "mtls");
        assert_eq!(json[1]["skeleton"], "skeleton-mtls");
        assert_eq!(json[1]["ratio"], 1.6);
        assert_eq!(json[0]["skeleton_us"], 120.0);
        assert!(
            v["latency"]["contenders"].is_array(),
            "existing fields stay"
        );
    }

    #[test]
    fn no_skeleton_block_or_target_without_both_of_a_pair() {
        let mut sc = latency_scenario();
        let mut failed = costing(Kind::SkeletonMtls, 100.0);
        failed.error = Some("did not start".into());
        sc.contenders = vec![
            costing(Kind::Pipeline, 150.0),
            costing(Kind::Mtls, 200.0),
            failed,
        ];
        let mut r = report(sc);
        r.judge();
        assert!(r.cpu_against_skeleton.is_empty());
        assert!(!r.targets.iter().any(|t| t.what.contains("skeleton")));
        assert!(!r.markdown().contains("against the skeleton"));
        // A skeleton that used no CPU gives no ratio rather than an infinite one.
        let mut sc = latency_scenario();
        sc.contenders = vec![costing(Kind::Pipeline, 1.0), costing(Kind::Skeleton, 0.0)];
        assert!(skeleton_ratios(&sc).is_empty());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
