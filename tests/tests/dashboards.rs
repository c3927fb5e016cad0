//! The Grafana dashboard and the Prometheus alert rules read only metrics of the catalogue
//! (`sse_contract::metrics`), under the names Prometheus stores them by; that each is really
//! scraped from running services is checked in `prometheus.rs`. The docs describe every one.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use sse_contract::metrics::{ALL, Kind};
use sse_e2e::prometheus::metric_names_in;

/// Names the catalogue's instruments are stored under (a histogram as its three series).
pub fn stored_names() -> Vec<String> {
    let mut out = Vec::new();
    for i in ALL {
        match i.kind {
            Kind::Histogram => {
                for s in ["_bucket", "_sum", "_count"] {
                    out.push(format!("{}{s}", i.prometheus));
                }
            }
            _ => out.push(i.prometheus.to_string()),
        }
    }
    out
}

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn dashboard_and_alerts_read_only_catalogue_metrics() {
    let known = stored_names();
    for file in [
        "deploy/grafana/sse-connector.json",
        "deploy/prometheus/alerts.yaml",
    ] {
        let names = metric_names_in(&read(file));
        assert!(names.len() >= 5, "{file} reads {names:?}");
        let unknown: Vec<_> = names.iter().filter(|n| !known.contains(n)).collect();
        assert!(
            unknown.is_empty(),
            "{file} reads metrics not in the catalogue: {unknown:?}"
        );
    }
}

#[test]
fn the_docs_name_every_instrument() {
    let docs = read("docs/observability.md");
    let missing: Vec<_> = ALL
        .iter()
        .filter(|i| !docs.contains(i.name) || !docs.contains(i.prometheus))
        .map(|i| i.name)
        .collect();
    assert!(
        missing.is_empty(),
        "docs/observability.md does not describe {missing:?}"
    );
}

#[test]
fn the_dashboard_has_the_panels_the_issue_asks_for() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/sse-connector.json")).unwrap();
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let all = exprs.join("\n");
    for (what, needle) in [
        ("rates", "rate(sse_connector_events_received_total"),
        ("errors", "sse_connector_events_dropped_total"),
        ("latency percentiles", "histogram_quantile(0.99"),
        ("stream states", "sse_connector_streams"),
        ("buffer fill", "sse_connector_inflight_events_limit"),
        (
            "schema activity",
            "sse_connector_schema_versions_created_total",
        ),
    ] {
        assert!(all.contains(needle), "no panel shows {what} ({needle})");
    }
}
