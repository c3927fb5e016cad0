//! `ssectl` reads with one address that does not answer: the real binaries against a running
//! pipeline, given a live address and a dead one (`127.0.0.1:1`, where nothing listens). The live
//! replica's answers are printed, the dead address is named on stderr and the exit code is 1;
//! when no address answers, every one is named.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::Value;
use sse_e2e::broker::Mosquitto;
use sse_e2e::procs::{Exited, run_to_exit};
use sse_e2e::source::SseSource;
use sse_e2e::stack::{Pipeline, PipelineArgs};

/// Nothing listens there: connecting is refused.
const DEAD: &str = "127.0.0.1:1";

/// A pipeline reading one ticking source into asset `line`, and what keeps it running.
struct Running {
    p: Pipeline,
    base: String,
    _broker: Mosquitto,
    _source: SseSource,
    _dir: tempfile::TempDir,
}

async fn running() -> Running {
    let broker = Mosquitto::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, sse_e2e::source::ticking_root()).unwrap();
    let base = source.base_url();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let yaml = sse_e2e::resources::device(&base)
        + &sse_e2e::resources::asset("line", &[("line", "/", "partial/line")]);
    std::fs::write(res.join("resources.yaml"), yaml).unwrap();
    let p = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();
    Running {
        p,
        base,
        _broker: broker,
        _source: source,
        _dir: dir,
    }
}

/// Runs `ssectl` with `flag` set to `addrs` and `args`.
async fn ssectl(flag: &str, addrs: &str, args: &[&str]) -> Exited {
    let mut all = vec![flag, addrs];
    all.extend_from_slice(args);
    run_to_exit("ssectl", &all).await.unwrap()
}

/// Asserts a run that printed what the live address answered and named the dead one, exit 1.
fn partial(e: &Exited, printed: &str) {
    assert_eq!(e.code, Some(1), "{}", e.told());
    assert!(e.stdout.contains(printed), "no {printed}: {}", e.told());
    let named = format!("error: {DEAD}: cannot connect");
    assert_eq!(e.stderr.matches(&named).count(), 1, "{}", e.told());
}

/// The JSON list a run printed.
fn listed(e: &Exited) -> Vec<Value> {
    let v: Value = serde_json::from_str(&e.stdout).unwrap_or_else(|x| panic!("{x}: {}", e.told()));
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_ingest_address_hides_no_live_answer() {
    let r = running().await;
    let live = r.p.ingest.addr.to_string();
    sse_e2e::eventually("the stream in ssectl streams", || async {
        let out = ssectl("--ingest", &live, &["-o", "json", "streams"]).await;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        (v.as_array()?.len() == 1 && out.code == Some(0)).then_some(())
    })
    .await
    .unwrap();

    for addrs in [format!("{live},{DEAD}"), format!("{DEAD},{live}")] {
        let table = ssectl("--ingest", &addrs, &["streams"]).await;
        partial(&table, "STREAM");
        assert_eq!(table.stdout.lines().count(), 2, "{}", table.told());

        let json = ssectl("--ingest", &addrs, &["-o", "json", "streams"]).await;
        partial(&json, &r.base);
        let rows = listed(&json);
        assert_eq!(rows.len(), 1, "{}", json.told());
        assert!(
            rows[0]["url"].as_str().unwrap().starts_with(&r.base),
            "{}",
            json.told()
        );

        let devices = ssectl("--ingest", &addrs, &["device", "list"]).await;
        partial(&devices, "dev");
        let assets = ssectl("--ingest", &addrs, &["-o", "json", "asset", "list"]).await;
        partial(&assets, "\"line\"");
        let status = ssectl("--ingest", &addrs, &["-o", "json", "status"]).await;
        partial(&status, "\"line\"");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_schema_address_hides_no_live_schema() {
    let r = running().await;
    let live = r.p.schema.addr.to_string();
    let subject = sse_e2e::eventually("a schema in ssectl schemas list", || async {
        let out = ssectl("--schema", &live, &["-o", "json", "schemas", "list"]).await;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        let first = v.as_array()?.first()?;
        first["subject"].as_str().map(str::to_owned)
    })
    .await
    .unwrap();

    for addrs in [format!("{live},{DEAD}"), format!("{DEAD},{live}")] {
        let table = ssectl("--schema", &addrs, &["schemas", "list"]).await;
        partial(&table, &subject);
        assert!(table.stdout.starts_with("SUBJECT"), "{}", table.told());

        let json = ssectl("--schema", &addrs, &["-o", "json", "schemas", "list"]).await;
        partial(&json, &subject);
        assert!(
            listed(&json)
                .iter()
                .any(|s| s["subject"] == subject.as_str()),
            "{}",
            json.told()
        );

        let shown = ssectl(
            "--schema",
            &addrs,
            &["-o", "json", "schemas", "show", &subject],
        )
        .await;
        partial(&shown, "\"content\"");
    }
}

#[tokio::test]
async fn every_address_dead_exits_1_naming_each() {
    // A port that was free a moment ago: nothing listens there either.
    let other = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let with_password = "http://u:hunter2@127.0.0.1:1";
    let addrs = format!("{DEAD},{other},{with_password}");
    for (flag, verb) in [
        ("--ingest", &["streams"][..]),
        ("--ingest", &["device", "list"]),
        ("--schema", &["schemas", "list"]),
    ] {
        let e = ssectl(flag, &addrs, verb).await;
        assert_eq!(e.code, Some(1), "{verb:?}: {}", e.told());
        assert_eq!(e.stdout, "", "{verb:?}: {}", e.told());
        for named in [DEAD, &other, "http://***@127.0.0.1:1/"] {
            let line = format!("error: {named}: ");
            assert!(e.stderr.contains(&line), "{verb:?}: {line}: {}", e.told());
        }
        assert!(!e.stderr.contains("hunter2"), "{verb:?}: {}", e.told());
        assert_eq!(e.stderr.lines().count(), 3, "{verb:?}: {}", e.told());
    }
}
