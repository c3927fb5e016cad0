//! A subject's schema history end to end: the real binaries, Mosquitto and a real SSE source
//! that starts sending a new field. The device and asset are made with `ssectl --dry-run`, whose
//! YAML is written into the resources directory sse-ingest watches (so the loader must accept it
//! byte for byte); the schema gets version 2, and `ssectl schemas diff` and the console's
//! `/schemas/view` both name the added field.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use sse_e2e::broker::Mosquitto;
use sse_e2e::procs::{Exited, bin_dir, run_to_exit};
use sse_e2e::source::{Reply, SeenRequest, SseSource, block};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A source whose `/` sends `{"t":n}` every 50 ms, and `{"t":n,"humidity":0.5}` once `grown`.
fn growing(grown: Arc<AtomicBool>) -> sse_e2e::source::Feed {
    Arc::new(move |req: &SeenRequest| {
        if req.path.split('?').next() != Some("/") {
            return Reply::not_found();
        }
        let grown = grown.clone();
        let ticks = futures::stream::unfold(1u64, move |n| {
            let grown = grown.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let data = if grown.load(Ordering::SeqCst) {
                    format!(r#"{{"t":{n},"humidity":0.5}}"#)
                } else {
                    format!(r#"{{"t":{n}}}"#)
                };
                Some((Bytes::from(block(Some(&n.to_string()), None, &data)), n + 1))
            }
        });
        Reply::Sse(Box::pin(ticks))
    })
}

async fn ssectl(p: &Pipeline, args: &[&str]) -> Exited {
    let (i, s, u) = (
        p.ingest.addr.to_string(),
        p.schema.addr.to_string(),
        p.publisher.addr.to_string(),
    );
    let mut all = vec!["--ingest", &i, "--schema", &s, "--publisher", &u];
    all.extend_from_slice(args);
    run_to_exit("ssectl", &all).await.unwrap()
}

fn ok(e: Exited) -> String {
    assert_eq!(
        e.code,
        Some(0),
        "exit {:?}\nstdout: {}\nstderr: {}",
        e.code,
        e.stdout,
        e.stderr
    );
    e.stdout
}

/// Versions of `subject` in `ssectl schemas list -o yaml` (YAML, parsed).
async fn versions(p: &Pipeline, subject: &str) -> Vec<String> {
    let out = ssectl(p, &["-o", "yaml", "schemas", "list"]).await;
    let v: Value = serde_yaml_ng::from_str(&out.stdout).unwrap_or(Value::Null);
    let Some(all) = v.as_array() else {
        return vec![];
    };
    all.iter()
        .filter(|s| s["subject"] == subject)
        .filter_map(|s| s["version"].as_str().map(str::to_owned))
        .collect()
}

/// A pipeline reading the [`growing`] source, with the files the resources directory holds.
struct Plant {
    p: Pipeline,
    grown: Arc<AtomicBool>,
    res: std::path::PathBuf,
    _source: SseSource,
    _broker: Mosquitto,
    _dir: tempfile::TempDir,
}

/// Starts the pipeline and writes, from `ssectl --dry-run` output, device `plant` (endpoint
/// `sse` on the growing source) and one asset per name in `assets`, each with its dataset to
/// `hist/<name>`.
async fn plant(assets: &[&str]) -> Plant {
    let broker = Mosquitto::start().await.unwrap();
    let grown = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, growing(grown.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let p = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();

    // A dry run writes nothing; its output, written as a file, is the device.
    let device = ok(ssectl(&p, &["device", "create", "plant", "--dry-run"]).await);
    assert_eq!(std::fs::read_dir(&res).unwrap().count(), 0);
    std::fs::write(res.join("plant.yaml"), &device).unwrap();
    sse_e2e::eventually("the dry-run device loaded", || async {
        let out = ssectl(&p, &["-o", "json", "device", "show", "plant"]).await;
        (out.code == Some(0)).then_some(())
    })
    .await
    .unwrap();
    let base = source.base_url();
    let add = [
        "device",
        "endpoint",
        "add",
        "sse",
        "--device",
        "plant",
        "--name",
        "sse",
        "--address",
        &base,
        "--dry-run",
    ];
    let device = ok(ssectl(&p, &add).await);
    assert!(device.contains(&base), "{device}");
    std::fs::write(res.join("plant.yaml"), &device).unwrap();
    for name in assets {
        let dest = format!("topic=hist/{name}");
        let create = [
            "asset",
            "sse",
            "create",
            name,
            "--device",
            "plant",
            "--endpoint",
            "sse",
            "--dataset-dest",
            &dest,
            "--dry-run",
        ];
        let asset = ok(ssectl(&p, &create).await);
        std::fs::write(res.join(format!("{name}.yaml")), &asset).unwrap();
    }
    Plant {
        p,
        grown,
        res,
        _source: source,
        _broker: broker,
        _dir: dir,
    }
}

/// The subject of `asset`'s dataset, once `ssectl schemas list` shows a schema for it.
async fn subject_of(p: &Pipeline, asset: &str) -> String {
    let prefix = format!("{asset}/");
    sse_e2e::eventually(&format!("a schema for asset {asset}"), || async {
        let out = ssectl(p, &["-o", "json", "schemas", "list"]).await;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v.as_array()?
            .iter()
            .find_map(|s| s["subject"].as_str().filter(|s| s.starts_with(&prefix)))
            .map(str::to_owned)
    })
    .await
    .unwrap()
}

/// Waits until `subject` has version 2 in `ssectl schemas list`.
async fn version_2(p: &Pipeline, subject: &str) {
    sse_e2e::eventually(&format!("version 2 of {subject}"), || async {
        versions(p, subject)
            .await
            .iter()
            .any(|v| v == "2")
            .then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_yaml_is_applied_and_schema_diff_names_the_added_field() {
    let plant = plant(&["line"]).await;
    let (p, grown, res) = (&plant.p, &plant.grown, &plant.res);
    // Nothing the dry runs printed was written by the server: only our two files are there.
    assert_eq!(std::fs::read_dir(res).unwrap().count(), 2);

    // The loader accepted both: the stream runs and the schema gets its first version.
    let subject = subject_of(p, "line").await;
    let listed = ok(ssectl(p, &["-o", "json", "asset", "list"]).await);
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["name"], "line", "{listed}");
    assert_eq!(listed[0]["error"], "", "{listed}");

    // With one version there is nothing to compare: the server is not at fault, exit 1 says so.
    let one = ssectl(p, &["schemas", "diff", &subject]).await;
    assert_eq!(one.code, Some(1), "{}", one.stdout);
    assert!(one.stderr.contains("nothing to compare"), "{}", one.stderr);
    // A subject nothing has is named as such (it said "has 0 version(s)").
    let typo = ssectl(p, &["schemas", "diff", "lien/temps"]).await;
    assert_eq!(typo.code, Some(1), "{}", typo.stdout);
    assert!(
        typo.stderr
            .contains(r#"no schema has subject "lien/temps""#),
        "{}",
        typo.stderr
    );

    grown.store(true, Ordering::SeqCst);
    version_2(p, &subject).await;

    let table = ok(ssectl(p, &["schemas", "diff", &subject]).await);
    assert!(table.contains("version 1 -> 2"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("humidity"))
        .unwrap_or("");
    assert!(row.contains("added") && row.contains("number"), "{table}");
    let json = ok(ssectl(p, &["-o", "json", "schemas", "diff", &subject]).await);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (json["from"].as_str(), json["to"].as_str()),
        (Some("1"), Some("2"))
    );
    let changes = json["changes"].as_array().unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == "humidity" && c["kind"] == "added"),
        "{json}"
    );
    let explicit = ok(ssectl(
        p,
        &["schemas", "diff", &subject, "--from", "2", "--to", "1"],
    )
    .await);
    assert!(explicit.contains("removed"), "{explicit}");

    // A dry-run delete deletes nothing.
    let dry = ok(ssectl(p, &["asset", "delete", "line", "--dry-run"]).await);
    assert!(dry.contains("Asset/line"), "{dry}");
    assert!(res.join("line.yaml").is_file());

    // The console's page shows the same history.
    let console = Console::start(p).await;
    let page = sse_e2e::admin::get(console.addr, &format!("/schemas/view?subject={subject}"))
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"<li data-version="2">"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<pre id="schema">"#), "{}", page.body);
    assert!(
        page.body
            .contains(r#"<li class="diff-added">added humidity (number)</li>"#),
        "{}",
        page.body
    );
    let list = sse_e2e::admin::get(console.addr, "/schemas").await.unwrap();
    assert!(
        list.body
            .contains(&format!(r#"<tr data-subject="{subject}">"#)),
        "{}",
        list.body
    );
}

/// Identical devices send events of one shape: the registry stores each version once, for
/// every subject that uses it, and each subject's history (listed, diffed, on the console) has
/// it, not only the subject that registered it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_version_two_subjects_share_is_in_both_histories() {
    let plant = plant(&["line", "belt"]).await;
    let (p, grown) = (&plant.p, &plant.grown);
    let subjects = [subject_of(p, "line").await, subject_of(p, "belt").await];
    grown.store(true, Ordering::SeqCst);
    let console = Console::start(p).await;
    for subject in &subjects {
        version_2(p, subject).await;
        assert_eq!(versions(p, subject).await, ["1", "2"], "{subject}");
        let table = ok(ssectl(p, &["schemas", "diff", subject]).await);
        assert!(table.contains("version 1 -> 2"), "{subject}: {table}");
        let path = format!("/schemas/view?subject={subject}");
        let page = sse_e2e::admin::get(console.addr, &path).await.unwrap();
        assert_eq!(page.status, 200, "{subject}: {}", page.body);
        assert!(
            page.body.contains(r#"<li data-version="2">"#),
            "{subject}: {}",
            page.body
        );
    }
    // One stored version per shape, listing both subjects.
    let out = ok(ssectl(p, &["-o", "json", "schemas", "show", &subjects[1]]).await);
    let shown: Value = serde_json::from_str(&out).unwrap();
    let mut listed: Vec<&str> = shown["subjects"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    listed.sort_unstable();
    let mut want: Vec<&str> = subjects.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(listed, want, "{shown}");
}

/// A running `sse-console` on a free loopback port, killed when dropped.
struct Console {
    _child: tokio::process::Child,
    addr: SocketAddr,
}

impl Console {
    async fn start(p: &Pipeline) -> Self {
        let mut child = tokio::process::Command::new(bin_dir().join("sse-console"))
            .args(["--console-listen", "127.0.0.1:0"])
            .args(["--ingest", &p.ingest.url(), "--schema", &p.schema.url()])
            .args(["--publisher", &p.publisher.url()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(sse_e2e::DEADLINE, async {
            while let Some(l) = lines.next_line().await.unwrap() {
                if let Some(a) = l.strip_prefix("sse-console listening on ") {
                    return a.trim().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("sse-console exited before printing its address")
        })
        .await
        .unwrap();
        // Keep reading so the console never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            _child: child,
            addr,
        }
    }
}
