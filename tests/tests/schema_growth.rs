//! End to end, schema growth is bounded (issue #19, point 5), with the three real binaries and
//! Mosquitto. Two datasets whose every event brings new keys: `growth` one new key per event
//! (1,500 events), `wide` 40 new keys per event. Before the caps, every event was a new schema
//! version rewriting the whole schema: 1,500 files and tens of MB. With the caps (set through the
//! schema service's environment), `growth` stops evolving at `SCHEMA_MAX_VERSIONS` and `wide` at
//! `SCHEMA_MAX_SCHEMA_PROPERTIES`; every event still reaches the broker, tagged with its subject's
//! last version; the data dir stays under the caps; and both the schema service's `ListSubjects`
//! and ingest's `GetStatus` say which subject stopped evolving and why. The data dir and its
//! files are private (0700 / 0600). The same load runs against `sse-connector`, given the caps
//! as flags (which it routes to its schema service).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::procs::{CONNECTOR_SCHEMA_PRINTS, Service, connector_args};
use sse_e2e::source::{Feed, Reply, SseSource, block, blocks_then_hold};
use sse_e2e::stack::Stack;
use sse_e2e::{eventually, grpcurl};

const GROWTH_EVENTS: usize = 1500;
const WIDE_EVENTS: usize = 20;
const WIDE_KEYS: usize = 40;
const MAX_VERSIONS: usize = 50;
const MAX_SCHEMA_PROPERTIES: usize = 200;
const MAX_REGISTRY_BYTES: u64 = 4 << 20;
/// The version `wide` stops at: the last one within the property cap.
const WIDE_LAST: usize = MAX_SCHEMA_PROPERTIES / WIDE_KEYS;

fn growth_blocks() -> Vec<String> {
    (1..=GROWTH_EVENTS)
        .map(|i| block(Some(&i.to_string()), None, &format!(r#"{{"k{i}":{i}}}"#)))
        .collect()
}

fn wide_blocks() -> Vec<String> {
    (1..=WIDE_EVENTS)
        .map(|i| {
            let members: Vec<String> = (0..WIDE_KEYS)
                .map(|j| format!(r#""w{i}_{j}":{j}"#))
                .collect();
            block(
                Some(&i.to_string()),
                None,
                &format!("{{{}}}", members.join(",")),
            )
        })
        .collect()
}

fn feed() -> Feed {
    Arc::new(|req| match req.path.as_str() {
        "/plant/growth" => Reply::Sse(blocks_then_hold(growth_blocks())),
        "/plant/wide" => Reply::Sse(blocks_then_hold(wide_blocks())),
        _ => Reply::not_found(),
    })
}

fn resources(base: &str) -> String {
    let datasets = [
        ("growth", "/growth", "e2e/growth"),
        ("wide", "/wide", "e2e/wide"),
    ];
    sse_e2e::resources::device(&format!("{base}/plant"))
        + &sse_e2e::resources::asset("plant", &datasets)
}

/// `sseid` -> the schema version of the first copy of that event on `topic` ("" for none).
fn versions(msgs: &[Received], topic: &str) -> BTreeMap<usize, String> {
    let mut out = BTreeMap::new();
    for m in msgs.iter().filter(|m| m.topic == topic) {
        let Some(id) = m.user("sseid").and_then(|s| s.parse().ok()) else {
            continue;
        };
        let version = m
            .user("dataschema")
            .and_then(|d| d.rsplit_once(':'))
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        out.entry(id).or_insert(version);
    }
    out
}

/// (files, bytes) in the registry's data dir, checking that the dir and its files are private.
fn disk_usage(dir: &Path) -> (usize, u64) {
    let mode = |m: &std::fs::Metadata| m.permissions().mode() & 0o777;
    assert_eq!(mode(&std::fs::metadata(dir).unwrap()), 0o700, "data dir");
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_file() {
            assert_eq!(mode(&meta), 0o600, "{:?}", entry.path());
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

/// The caps of both tests, as (flag, environment variable, value).
fn caps() -> [(&'static str, &'static str, String); 3] {
    [
        (
            "--max-versions",
            "SCHEMA_MAX_VERSIONS",
            MAX_VERSIONS.to_string(),
        ),
        (
            "--max-schema-properties",
            "SCHEMA_MAX_SCHEMA_PROPERTIES",
            MAX_SCHEMA_PROPERTIES.to_string(),
        ),
        (
            "--max-registry-bytes",
            "SCHEMA_MAX_REGISTRY_BYTES",
            MAX_REGISTRY_BYTES.to_string(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_at_a_cap_stops_evolving_and_its_events_flow_on() {
    let env = caps().map(|(_, var, v)| (var.to_string(), v));
    let (stack, sub) = Stack::start_with_schema_env(feed(), resources, env.to_vec())
        .await
        .unwrap();
    let data = stack.dir.path().join("schemas");
    let (schema, ingest) = (stack.schema.addr.to_string(), stack.ingest.addr.to_string());
    check(&sub, &data, &schema, &ingest, &|| stack.ingest.log_text()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_one_process_a_subject_at_a_cap_stops_evolving_too() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    std::fs::write(res.join("resources.yaml"), resources(&source.base_url())).unwrap();
    let data = dir.path().join("schemas");
    let mut args = connector_args(&broker.url(), &res, &data);
    for (flag, _, value) in caps() {
        args.extend([flag.to_string(), value]);
    }
    let mut connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    let ingest = connector.addr.to_string();
    let schema = connector
        .printed_addr(CONNECTOR_SCHEMA_PRINTS)
        .await
        .unwrap();
    let schema = schema.to_string();
    check(&sub, &data, &schema, &ingest, &|| connector.log_text()).await;
    let status = connector.terminate(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status:?}\n{}", connector.log_text());
}

/// Waits for every event at the broker, then checks their versions, the data dir, and what the
/// schema service (at `schema`) and ingest (at `ingest`, whose log `log` gives) say.
async fn check(
    sub: &Subscriber,
    data: &Path,
    schema: &str,
    ingest: &str,
    log: &dyn Fn() -> String,
) {
    let msgs = sub
        .wait_until("every event of both datasets", |m| {
            versions(m, "e2e/growth").len() == GROWTH_EVENTS
                && versions(m, "e2e/wide").len() == WIDE_EVENTS
        })
        .await
        .unwrap();

    let (files, bytes) = disk_usage(data);
    println!("registry data dir: {files} files, {bytes} bytes");

    // growth: one version per event up to the cap, then the last version for every event after.
    let growth = versions(&msgs, "e2e/growth");
    for (id, version) in &growth {
        let expected = (*id).min(MAX_VERSIONS).to_string();
        assert_eq!(version, &expected, "growth event {id}");
    }
    // wide: a version per event while the merged schema is within the property cap.
    let wide = versions(&msgs, "e2e/wide");
    for (id, version) in &wide {
        let expected = (*id).min(WIDE_LAST).to_string();
        assert_eq!(version, &expected, "wide event {id}");
    }
    assert!(
        files <= MAX_VERSIONS + WIDE_LAST,
        "{files} files in the data dir"
    );
    assert!(bytes <= MAX_REGISTRY_BYTES, "{bytes} bytes in the data dir");

    // The schema service says which subject stopped evolving and why.
    let subjects = grpcurl::call_json(
        schema,
        None,
        &["sseconnector.v1.SchemaService/ListSubjects"],
    )
    .await
    .unwrap();
    let subject = |name: &str| {
        subjects["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subject"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {subjects}"))
            .clone()
    };
    let g = subject("plant/growth");
    assert_eq!(g["schema"]["version"], MAX_VERSIONS.to_string(), "{g}");
    assert_eq!(
        g["schemaFrozenReason"], "SCHEMA_FROZEN_REASON_MAX_VERSIONS",
        "{g}"
    );
    assert!(
        g["schemaFrozenMessage"]
            .as_str()
            .unwrap()
            .contains("--max-versions"),
        "{g}"
    );
    let w = subject("plant/wide");
    assert_eq!(w["schema"]["version"], WIDE_LAST.to_string(), "{w}");
    assert_eq!(
        w["schemaFrozenReason"], "SCHEMA_FROZEN_REASON_MAX_SCHEMA_PROPERTIES",
        "{w}"
    );
    let list = grpcurl::call_json(schema, None, &["sseconnector.v1.SchemaService/ListSchemas"])
        .await
        .unwrap();
    assert_eq!(
        list["schemas"].as_array().unwrap().len(),
        MAX_VERSIONS + WIDE_LAST,
        "{list}"
    );

    // So does ingest's status, from the acks of the events it forwarded.
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    let datasets = eventually("both datasets frozen in ingest's status", || {
        let (ingest, last) = (ingest.to_string(), &last);
        async move {
            let s = grpcurl::call_json(&ingest, None, &["sseconnector.v1.IngestService/GetStatus"])
                .await
                .ok()?;
            *last.lock().unwrap() = s.clone();
            let asset = s["assets"]
                .as_array()?
                .iter()
                .find(|a| a["name"] == "plant")?;
            let datasets = asset["datasets"].as_array()?.clone();
            datasets
                .iter()
                .all(|d| d["error"]["code"] == "SchemaFrozen")
                .then_some(datasets)
        }
    })
    .await
    .unwrap_or_else(|e| {
        let log = log();
        let tail: Vec<&str> = log.lines().rev().take(80).collect();
        panic!(
            "{e:#}; ingest's last status: {}\ningest's last log lines (newest first):\n{}",
            last.lock().unwrap(),
            tail.join("\n")
        )
    });
    for d in &datasets {
        let message = d["error"]["message"].as_str().unwrap();
        let cap = if d["name"] == "growth" {
            "--max-versions"
        } else {
            "--max-schema-properties"
        };
        assert!(message.contains(cap), "{d}");
        assert!(
            d["messageSchemaReference"]["schemaVersion"].is_string(),
            "{d}"
        );
    }
}
