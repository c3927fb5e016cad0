//! Scenario 4: the criterion micro-benchmarks of the services (the SSE parser, schema inference),
//! run with a short measurement time; their printed estimates are parsed into the report.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

/// One criterion benchmark's estimate (the middle of its confidence interval).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    /// Package the benchmark belongs to.
    pub package: String,
    /// Benchmark id (`group/function`).
    pub id: String,
    /// Time per iteration, ns.
    pub time_ns: f64,
    /// Bytes per second, when the benchmark declares byte throughput.
    pub bytes_per_s: Option<f64>,
    /// Elements per second, when it declares element throughput.
    pub elements_per_s: Option<f64>,
    /// Events per second, when the benchmark printed its events per iteration.
    pub events_per_s: Option<f64>,
}

/// Runs `cargo bench -p <package> --bench <bench>` with `measurement` time per benchmark and
/// parses what it printed.
pub fn run(
    root: &Path,
    package: &str,
    bench: &str,
    measurement: Duration,
) -> anyhow::Result<Vec<Estimate>> {
    let secs = format!("{:.2}", measurement.as_secs_f64().max(0.5));
    let out = std::process::Command::new("cargo")
        .current_dir(root)
        .args(["bench", "--quiet", "-p", package, "--bench", bench, "--"])
        .args([
            "--warm-up-time",
            "0.3",
            "--measurement-time",
            &secs,
            "--noplot",
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cargo bench -p {package} --bench {bench}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "cargo bench -p {package} --bench {bench} failed: {}",
        stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
    );
    let mut est = parse(package, &stdout);
    if let Some(events) = events_per_iteration(&stderr) {
        for e in &mut est {
            e.events_per_s = Some(events as f64 * 1e9 / e.time_ns);
        }
    }
    anyhow::ensure!(
        !est.is_empty(),
        "no estimates in the output of cargo bench -p {package} --bench {bench}"
    );
    Ok(est)
}

/// The events per iteration a benchmark printed as `<n> bytes, <m> events, ...`.
fn events_per_iteration(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| {
        let (_, rest) = l.split_once(" bytes, ")?;
        rest.split_once(" events")?.0.trim().parse().ok()
    })
}

/// Parses criterion's report: an id line (or an id before `time:` on the same line), then
/// `time: [lo mid hi]` and optionally `thrpt: [lo mid hi]`; `change:` blocks are skipped.
pub fn parse(package: &str, stdout: &str) -> Vec<Estimate> {
    let mut out: Vec<Estimate> = Vec::new();
    let mut previous = "";
    let mut in_change = false;
    for line in stdout.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Benchmarking") {
            continue;
        }
        if let Some((before, rest)) = t.split_once("time:") {
            let id = if before.trim().is_empty() {
                previous
            } else {
                before.trim()
            };
            in_change = id == "change:";
            let ns = middle(rest).and_then(|(v, u)| time_ns(v, u));
            match ns {
                Some(ns) if !in_change => out.push(Estimate {
                    package: package.to_string(),
                    id: id.to_string(),
                    time_ns: ns,
                    bytes_per_s: None,
                    elements_per_s: None,
                    events_per_s: None,
                }),
                _ => {}
            }
        } else if let Some((_, rest)) = t.split_once("thrpt:") {
            let last = out.last_mut().filter(|_| !in_change);
            match (last, middle(rest).and_then(|(v, u)| rate(v, u))) {
                (Some(e), Some((r, true))) => e.bytes_per_s = Some(r),
                (Some(e), Some((r, false))) => e.elements_per_s = Some(r),
                _ => {}
            }
        }
        previous = t;
    }
    out
}

/// The middle value and unit of `[lo unit mid unit hi unit]`.
fn middle(s: &str) -> Option<(f64, &str)> {
    let inner = s.split_once('[')?.1.split_once(']')?.0;
    let parts: Vec<&str> = inner.split_whitespace().collect();
    if parts.len() != 6 {
        return None;
    }
    Some((parts[2].parse().ok()?, parts[3]))
}

fn time_ns(v: f64, unit: &str) -> Option<f64> {
    let f = match unit {
        "ps" => 1e-3,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(v * f)
}

/// A throughput in units per second, and whether it counts bytes.
fn rate(v: f64, unit: &str) -> Option<(f64, bool)> {
    let (scale, bytes) = match unit {
        "B/s" => (1.0, true),
        "KiB/s" => (1024.0, true),
        "MiB/s" => (1024.0 * 1024.0, true),
        "GiB/s" => (1024.0 * 1024.0 * 1024.0, true),
        "KB/s" => (1e3, true),
        "MB/s" => (1e6, true),
        "GB/s" => (1e9, true),
        "elem/s" => (1.0, false),
        "Kelem/s" => (1e3, false),
        "Melem/s" => (1e6, false),
        "Gelem/s" => (1e9, false),
        _ => return None,
    };
    Some((v * scale, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "\
Benchmarking parser/100B events, 1460B chunks: Warming up for 1.0000 s
parser/100B events, 1460B chunks
                        time:   [1.6300 ms 1.6400 ms 1.6500 ms]
                        thrpt:  [606.06 MiB/s 609.76 MiB/s 613.50 MiB/s]
                 change:
                        time:   [-1.2% +0.1% +1.5%] (p = 0.90 > 0.05)
                        thrpt:  [-1.5% -0.1% +1.2%]
                        No change in performance detected.
Found 3 outliers among 100 measurements (3.00%)
  3 (3.00%) high mild
infer/known shape       time:   [812.10 ns 815.00 ns 818.40 ns]
                        thrpt:  [1.2219 Melem/s 1.2270 Melem/s 1.2314 Melem/s]
Benchmarking schema/Shape::covers_json (fast path alone): Analyzing
schema/Shape::covers_json (fast path alone)
                        time:   [95.100 ns 96.000 ns 97.000 ns]
                        change: [-3.1% -2.0% -1.0%] (p = 0.00 < 0.05)
                        Performance has improved.
";

    #[test]
    fn parses_time_and_throughput_of_each_benchmark() {
        let e = parse("p", OUT);
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e[2].id, "schema/Shape::covers_json (fast path alone)");
        assert!((e[2].time_ns - 96.0).abs() < 1e-9);
        assert_eq!(e[0].id, "parser/100B events, 1460B chunks");
        assert!((e[0].time_ns - 1.64e6).abs() < 1.0);
        assert!((e[0].bytes_per_s.expect("bytes") - 609.76 * 1048576.0).abs() < 1.0);
        assert_eq!(e[1].id, "infer/known shape");
        assert!((e[1].time_ns - 815.0).abs() < 1e-9);
        assert!((e[1].elements_per_s.expect("elements") - 1.227e6).abs() < 1.0);
    }

    #[test]
    fn reads_events_per_iteration() {
        assert_eq!(
            events_per_iteration("1048600 bytes, 11200 events, 93 bytes per event\n"),
            Some(11200)
        );
        assert_eq!(events_per_iteration("nothing"), None);
    }
}
