//! The report as text: its Markdown page (also printed as the table on the terminal) and the
//! latency series as CSV files.

use std::fmt::Write;

use super::skeleton::skeleton_md;
use super::{Report, Scenario};
use crate::contender::{Kind, RunResult};
use crate::series;

impl Report {
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
             sse-publisher) with one dataset per stream publishing at QoS 1 and ingest's checkpoints \
             kept on the same broker, as the Kubernetes manifests deploy it; `raw` is one rumqttc \
             client publishing the same payloads straight to Mosquitto ({} in flight); `python` is \
             bench/python/bridge.py (httpx-sse + paho-mqtt v5, QoS 1, one reader thread per stream, \
             at most {} un-acknowledged publishes). One MQTT 5 QoS 1 subscriber per contender counts \
             every event per stream (lost, duplicated, out of order) and its latency. Each contender \
             first carries one warm-up event per stream; runs interleave, each \
             starting with the next contender (pipeline, raw, python; raw, python, pipeline; …), \
             all from copies of the binaries made at start. `connector` is the same three services \
             in one process (`sse-connector`: each keeps its own gRPC server and port, and they \
             call each other's gRPC routes in-process, without HTTP/2 or sockets between them, the \
             two event streams with their messages unencoded; checkpoints on the broker, its \
             default); its CPU is that one process's. The broker's CPU per event is Mosquitto's \
             over the same window (it also delivers to the subscriber). Re-run with `just bench`; `BENCH_SCALE=0.1 just bench` is a quick run.{}\n",
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

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

pub(super) fn thousands(v: f64) -> String {
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

fn human_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub(super) fn scenario_md(s: &mut String, sc: &Scenario) {
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
        "| contender | events per run | events/s | p50 | p99 | p99.9 | max | CPU per event | CPU split (µs/event) | broker CPU per event | lost | dup | out of order |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &sc.contenders {
        if let Some(e) = &c.error {
            let _ = writeln!(
                s,
                "| {} | skipped: {e} | | | | | | | | | | | |",
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
            "| {} | {} | **{}** | {} µs | {} µs | {} µs | {} µs | {} | {} | {} | {} | {} | {} |",
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
            c.broker_cpu_us_per_event
                .map(|v| format!("{v:.1} µs"))
                .unwrap_or_else(|| "–".into()),
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
