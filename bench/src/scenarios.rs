//! The scenarios of issue #8: the source alone, throughput, latency and cost, many idle streams
//! and the criterion micro-benchmarks.

use std::path::Path;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use tokio::time::Instant;

use crate::contender::{Contender, Kind, RunResult};
use crate::criterion::{self, Estimate};
use crate::noise;
use crate::pipeline::Pipeline;
use crate::report::{Idle, Scenario, SourceAlone, Summary, median};
use crate::source::{self, LoadSource};

/// Time between the last idle stream opening and the start of the idle CPU window.
pub const IDLE_SETTLE: Duration = Duration::from_secs(2);

/// How long without a new event counts the missing ones as lost.
const STALL: Duration = Duration::from_secs(15);

/// Measures the load source alone: `streams` streams of `per_stream` events read over raw TCP.
pub async fn source_alone(
    streams: u32,
    per_stream: u64,
    runs: usize,
) -> anyhow::Result<SourceAlone> {
    let mut rates = Vec::new();
    let mut bytes_per_event = 0.0;
    for _ in 0..runs {
        let src = LoadSource::start(streams, Duration::from_secs(15)).await?;
        let addr = src.base_url().trim_start_matches("http://").to_string();
        let readers = source::drain_count(&addr, streams, per_stream).await?;
        wait_for("source streams open", Duration::from_secs(10), || {
            src.open_streams() == streams as usize
        })
        .await?;
        let go = Instant::now();
        src.send_until(per_stream, None);
        let mut total = 0;
        for r in readers {
            total += r.await??;
        }
        let secs = go.elapsed().as_secs_f64();
        rates.push(total as f64 / secs);
        let mut one = Vec::new();
        crate::payload::write_sse_event(&mut one, 0, per_stream / 2, crate::payload::now_ns());
        bytes_per_event = one.len() as f64;
    }
    let eps = median(rates.clone()).unwrap_or_default();
    Ok(SourceAlone {
        streams,
        events_per_stream: per_stream,
        events_per_s: eps,
        mib_per_s: eps * bytes_per_event / 1048576.0,
        runs: rates,
    })
}

/// Polls `cond` every 50 ms until it holds, failing after `deadline`.
async fn wait_for(
    what: &str,
    deadline: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    while !cond() {
        anyhow::ensure!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The order of `n` contenders in run `run`: each run starts with the next one (pipeline, raw,
/// python; raw, python, pipeline; ...), so no contender always runs first or always right after the
/// same one, and every one takes every place equally often when runs are a multiple of `n`. (An
/// A/A test that first seemed to show the first place costing more turned out to measure the
/// binary file instead; see `install` in lib.rs. Balancing the order costs nothing all the same.)
fn run_order(run: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (run + k) % n)
}

/// Runs every contender (`kind`, events per stream per run) for `runs` interleaved runs over
/// `streams` streams at `rate` (events/s over all streams, or as fast as possible), with `noise`
/// running from before the first measured window until after the last.
pub async fn contest(
    broker: &Mosquitto,
    title: &str,
    streams: u32,
    contenders: &[(Kind, u64)],
    rate: Option<f64>,
    runs: usize,
    noise: Option<&noise::Plan>,
) -> anyhow::Result<Scenario> {
    let (mut ready, mut summaries) = start_all(broker, title, streams, contenders).await;
    let running = match noise {
        Some(plan) => {
            let n = plan.start().await?;
            eprintln!(
                "bench: {title}: noise running on core {} (process group {})",
                plan.core,
                n.pgid()
            );
            Some(n)
        }
        None => None,
    };
    for run in 0..runs {
        for i in run_order(run, ready.len()) {
            measure(title, run, rate, &mut ready[i]).await;
        }
    }
    let noise = running.map(noise::Noise::stop);
    for (c, per_stream, results, error) in ready {
        summaries.push(Summary::new(c.kind, per_stream, results, error));
    }
    summaries.sort_by_key(|s| {
        contenders
            .iter()
            .position(|(k, _)| *k == s.kind)
            .unwrap_or(usize::MAX)
    });
    Ok(Scenario {
        title: title.to_string(),
        streams,
        rate,
        contenders: summaries,
        noise,
    })
}

/// A started contender with its events per stream, its results so far and why it stopped.
type Ready = (Contender, u64, Vec<RunResult>, Option<String>);

/// Starts every contender; those that fail to start get a summary with the error instead.
async fn start_all(
    broker: &Mosquitto,
    title: &str,
    streams: u32,
    contenders: &[(Kind, u64)],
) -> (Vec<Ready>, Vec<Summary>) {
    let mut ready = Vec::new();
    let mut failed = Vec::new();
    for &(kind, per_stream) in contenders {
        eprintln!("bench: {title}: starting {}", kind.name());
        match Contender::start(kind, broker, streams).await {
            Ok(c) => ready.push((c, per_stream, Vec::new(), None)),
            Err(e) => failed.push(Summary::new(
                kind,
                per_stream,
                vec![],
                Some(format!("{e:#}")),
            )),
        }
    }
    (ready, failed)
}

/// Measures run `run` of one contender (unless it already failed) and prints its line.
async fn measure(title: &str, run: usize, rate: Option<f64>, contender: &mut Ready) {
    let (c, per_stream, results, error) = contender;
    if error.is_some() {
        return;
    }
    match c.window(*per_stream, rate, STALL).await {
        Ok(mut r) => {
            r.run = run;
            let us = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
            eprintln!(
                "bench: {title}: run {run} {:<8} {:>9.0} events/s  p50 {:>8} µs  p99 {:>8} µs  p99.9 {:>8} µs  max {:>8} µs  cpu {:>6} µs/event  broker {:>5} µs/event  lost {} dup {} ooo {}",
                c.kind.name(),
                r.events_per_s,
                us(r.p50_us),
                us(r.p99_us),
                us(r.p999_us),
                us(r.max_us),
                r.cpu_us_per_event
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_default(),
                r.broker_cpu_us_per_event
                    .map(|v| format!("{v:.1}"))
                    .unwrap_or_default(),
                r.lost,
                r.duplicates,
                r.out_of_order
            );
            results.push(r);
        }
        Err(e) => *error = Some(format!("run {run}: {e:#}")),
    }
}

/// Scenario 3: `streams` idle streams into one ingest; memory per stream against a one-stream
/// ingest, and CPU over an idle `window`.
pub async fn idle(broker: &Mosquitto, streams: u32, window: Duration) -> anyhow::Result<Idle> {
    let keepalive = Duration::from_secs(15);
    let prefix = "bench/idle";
    let rss_one = {
        let src = LoadSource::start(1, keepalive).await?;
        let p = Pipeline::start(&crate::pipeline_dir(), broker, &src, 1, prefix, false).await?;
        wait_for("one idle stream open", Duration::from_secs(60), || {
            src.open_streams() == 1
        })
        .await?;
        p.rss_kib()[0]
    };
    let src = LoadSource::start(streams, keepalive).await?;
    let start = Instant::now();
    let p = Pipeline::start(&crate::pipeline_dir(), broker, &src, streams, prefix, false).await?;
    let mut last_report = Instant::now();
    wait_for(
        &format!("{streams} idle streams open"),
        Duration::from_secs(180),
        || {
            if last_report.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "bench: idle: {} of {streams} streams open",
                    src.open_streams()
                );
                last_report = Instant::now();
            }
            src.open_streams() >= streams as usize
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", p.log_tail()))?;
    let connect_seconds = start.elapsed().as_secs_f64();
    // Let the tail of connecting (status reports, first reads) pass: idle means steady state.
    // The window still holds each stream's first keep-alive (15 s after it opened).
    tokio::time::sleep(IDLE_SETTLE).await;
    let (cpu0, ka0, t0) = (p.cpu(), src.keepalives(), Instant::now());
    tokio::time::sleep(window).await;
    let (cpu1, ka1, secs) = (p.cpu(), src.keepalives(), t0.elapsed().as_secs_f64());
    let rss = p.rss_kib();
    let names = ["ingest", "schema", "publisher"];
    Ok(Idle {
        streams,
        connect_seconds,
        ingest_rss_one_kib: rss_one,
        ingest_rss_kib: rss[0],
        kib_per_stream: rss[0].saturating_sub(rss_one) as f64 / f64::from(streams.max(2) - 1),
        window_seconds: secs,
        keepalives: ka1 - ka0,
        cpu_percent: names
            .iter()
            .zip(cpu0.iter().zip(&cpu1))
            .map(|(n, (a, b))| {
                (
                    n.to_string(),
                    100.0 * b.saturating_sub(*a).as_secs_f64() / secs,
                )
            })
            .collect(),
        other_rss_kib: vec![("schema".into(), rss[1]), ("publisher".into(), rss[2])],
    })
}

/// Scenario 4: the parser benchmark of ingest and, when present, the inference benchmark of
/// schema. Returns the estimates and a note for each benchmark that could not run.
pub fn micro(root: &Path, measurement: Duration) -> (Vec<Estimate>, Vec<String>) {
    let mut est = Vec::new();
    let mut notes = Vec::new();
    let benches = [
        ("sse-ingest", "parser", "services/ingest/benches/parser.rs"),
        ("sse-schema", "infer", "services/schema/benches/infer.rs"),
    ];
    for (package, bench, file) in benches {
        if !root.join(file).exists() {
            notes.push(format!(
                "{file} does not exist (yet): no {package} {bench} numbers"
            ));
            continue;
        }
        eprintln!("bench: criterion: {package} {bench}");
        match criterion::run(root, package, bench, measurement) {
            Ok(mut e) => est.append(&mut e),
            Err(e) => notes.push(format!("{package} {bench}: {e:#}")),
        }
    }
    (est, notes)
}

#[cfg(test)]
mod tests {
    use super::run_order;

    #[test]
    fn every_contender_takes_every_place() {
        let runs: Vec<Vec<usize>> = (0..3).map(|r| run_order(r, 3).collect()).collect();
        assert_eq!(runs, [[0, 1, 2], [1, 2, 0], [2, 0, 1]]);
        for place in 0..3 {
            let mut at: Vec<usize> = runs.iter().map(|r| r[place]).collect();
            at.sort_unstable();
            assert_eq!(at, [0, 1, 2], "place {place}");
        }
        assert_eq!(run_order(0, 0).count(), 0);
    }
}
