use super::markdown::{scenario_md, thousands};
use super::*;
use crate::series;

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
        broker_cpu_us_per_event: None,
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
fn the_brokers_cpu_is_its_own_column_and_not_in_the_bridges() {
    let mut runs = vec![
        run(Kind::Connector, 0, [300.0, 900.0, 5_000.0, 9_000.0]),
        run(Kind::Connector, 1, [310.0, 950.0, 7_000.0, 9_000.0]),
    ];
    for (r, broker) in runs.iter_mut().zip([20.0, 30.0]) {
        r.cpu_us_per_event = Some(70.0);
        r.broker_cpu_us_per_event = Some(broker);
    }
    let mut sc = latency_scenario();
    sc.contenders = vec![Summary::new(Kind::Connector, 3, runs, None)];
    assert_eq!(sc.contenders[0].broker_cpu_us_per_event, Some(25.0));
    let mut md = String::new();
    scenario_md(&mut md, &sc);
    assert!(
        md.contains("| CPU split (µs/event) | broker CPU per event |"),
        "{md}"
    );
    assert!(md.contains("| 70.0 µs | – | 25.0 µs |"), "{md}");
    let v = serde_json::to_value(&sc).unwrap();
    assert_eq!(
        v["contenders"][0]["runs"][1]["broker_cpu_us_per_event"],
        30.0
    );
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
