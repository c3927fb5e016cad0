//! `ssectl` end to end: the real binary against the real services and Mosquitto. It creates a
//! device, adds an SSE endpoint pointing at a test source, creates an asset, and sees the
//! stream in `ssectl streams`, the events on MQTT and in `ssectl tail`; a bad destination QoS
//! is the server's field error (exit 1), bad usage exits 64.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::mtls::{Identity, LoneIngest};
use sse_e2e::procs::{Exited, bin_dir, read_into, run_into_closed_pipe, run_to_exit};
use sse_e2e::source::SseSource;
use sse_e2e::stack::{Pipeline, PipelineArgs};

/// Runs `ssectl` with the pipeline's addresses and `args`.
async fn ssectl(p: &Pipeline, args: &[&str]) -> Exited {
    let ingest = p.ingest.addr.to_string();
    let schema = p.schema.addr.to_string();
    let publisher = p.publisher.addr.to_string();
    let mut all = vec![
        "--ingest",
        &ingest,
        "--schema",
        &schema,
        "--publisher",
        &publisher,
    ];
    all.extend_from_slice(args);
    run_to_exit("ssectl", &all).await.unwrap()
}

fn ok(e: Exited) -> String {
    assert_eq!(e.code, Some(0), "{}", e.told());
    e.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssectl_creates_a_device_and_an_asset_and_watches_them() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "cli/#").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, sse_e2e::source::ticking_root()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let p = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();

    ok(ssectl(&p, &["device", "create", "plant"]).await);
    let base = source.base_url();
    let add = [
        "device", "endpoint", "add", "sse", "--device", "plant", "--name", "sse",
    ];
    ok(ssectl(&p, &[&add[..], &["--address", &base]].concat()).await);
    let shown = ok(ssectl(&p, &["-o", "json", "device", "show", "plant"]).await);
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["spec"]["endpoints"]["inbound"]["sse"]["address"],
        base.as_str()
    );

    // A QoS the server does not know is its field error, printed as it came, exit 1.
    let create = [
        "asset",
        "sse",
        "create",
        "line",
        "--device",
        "plant",
        "--endpoint",
        "sse",
    ];
    let bad = ssectl(
        &p,
        &[
            &create[..],
            &["--dataset-dest", "topic=cli/line", "qos=Qos9"],
        ]
        .concat(),
    )
    .await;
    assert_eq!(bad.code, Some(1), "{}", bad.told());
    assert!(bad.stderr.contains("qos"), "{}", bad.told());
    assert!(bad.stderr.contains("Qos9"), "{}", bad.told());

    let dest = [
        "--dataset-dest",
        "topic=cli/line",
        "qos=Qos1",
        "retain=Never",
        "ttl=3600",
    ];
    ok(ssectl(&p, &[&create[..], &dest[..]].concat()).await);

    // The stream is listed and its events reach MQTT.
    sse_e2e::eventually("the stream in ssectl streams", || async {
        let out = ssectl(&p, &["-o", "json", "streams"]).await;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        let s = v
            .as_array()?
            .iter()
            .find(|s| s["url"].as_str().is_some_and(|u| u.starts_with(&base)))?
            .clone();
        (s["eventsForwarded"].as_u64()? > 0).then_some(())
    })
    .await
    .unwrap();
    sub.wait_until("events on MQTT", |m| {
        m.iter().any(|m| m.topic == "cli/line")
    })
    .await
    .unwrap();
    let listed = ok(ssectl(&p, &["asset", "list"]).await);
    assert!(listed.contains("line"), "{listed}");
    let table = ok(ssectl(&p, &["streams"]).await);
    assert!(table.starts_with("STREAM"), "{table}");

    let status = ok(ssectl(&p, &["-o", "json", "status", "--asset", "line"]).await);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert!(status["assets"]["line"]["datasets"].is_array(), "{status}");

    // The registry inferred the dataset's schema; it is listed and shown by subject.
    let subject = sse_e2e::eventually("a schema in ssectl schemas list", || async {
        let out = ssectl(&p, &["-o", "json", "schemas", "list"]).await;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        let first = v.as_array()?.first()?;
        first["subject"].as_str().map(str::to_owned)
    })
    .await
    .unwrap();
    let schema = ok(ssectl(&p, &["-o", "json", "schemas", "show", &subject]).await);
    let schema: Value = serde_json::from_str(&schema).unwrap();
    assert!(schema["content"].is_object(), "{schema}");

    // `ssectl tail` prints the asset's messages as they are published.
    let tail = Tail::start(&p, "line", &[]);
    sse_e2e::eventually("a message in ssectl tail", || async {
        tail.text()
            .lines()
            .any(|l| l.starts_with("cli/line {\"n\":"))
            .then_some(())
    })
    .await
    .unwrap();
    // A filter naming an asset ingest does not know gets a note (it waited in silence before).
    let typo = Tail::start(&p, "lien", &[]);
    let note = sse_e2e::eventually("a note on the unknown asset", || async {
        let e = typo.errors();
        (!e.is_empty()).then_some(e)
    })
    .await
    .unwrap();
    assert!(
        note.contains(r#"no Asset named "lien"; tailing anyway"#),
        "{note}"
    );
    assert_eq!(tail.errors(), "", "the known asset gets no note");
    // For scripts, `-o json` prints one JSON object per message (JSON Lines).
    let tail = Tail::start(&p, "line", &["-o", "json"]);
    let line = sse_e2e::eventually("a JSON line in ssectl tail -o json", || async {
        // A whole line only: the reader may have seen part of one.
        tail.text().split_once('\n').map(|(l, _)| l.to_owned())
    })
    .await
    .unwrap();
    let m: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(m["topic"], "cli/line", "{line}");
    assert_eq!(m["asset"], "line", "{line}");
    assert!(
        m["payload"].as_str().unwrap().starts_with("{\"n\":"),
        "{line}"
    );
    let props = m["userProperties"].as_array().unwrap();
    assert!(
        props
            .iter()
            .any(|p| p["name"] == "specversion" && p["value"] == "1.0"),
        "{line}"
    );

    // The device the asset still uses is not deleted: the server's reason, printed, exit 1.
    let refused = ssectl(&p, &["device", "delete", "plant"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.told());
    assert!(
        refused.stderr.contains("FailedPrecondition")
            && refused
                .stderr
                .contains("Device/plant is still used by 1 asset (line)"),
        "{}",
        refused.told()
    );
    ok(ssectl(&p, &["asset", "delete", "line"]).await);
    let gone = ssectl(&p, &["asset", "show", "line"]).await;
    assert_eq!(gone.code, Some(1), "{}", gone.told());
    ok(ssectl(&p, &["device", "delete", "plant"]).await);
}

/// Under mTLS, ssectl presents the identity its flags name: the console's writes, a peer
/// service's is refused by the server (exit 1, its message printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssectl_speaks_mtls_with_the_identity_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let LoneIngest {
        service: ingest,
        console,
        schema,
    } = LoneIngest::start(dir.path(), &res).await.unwrap();
    let s = |x: &str| x.to_string();
    let addr = ingest.addr.to_string();
    let as_ = |who: &Identity, verb: &[&str]| {
        let (ca, cert, key) = (who.ca.clone(), who.cert.clone(), who.key.clone());
        let verb: Vec<String> = verb.iter().map(|v| v.to_string()).collect();
        let addr = addr.clone();
        async move {
            let mut a = vec![s("--ingest"), addr, s("--tls-ca"), ca.display().to_string()];
            a.extend([s("--tls-cert"), cert.display().to_string()]);
            a.extend([s("--tls-key"), key.display().to_string()]);
            a.extend(verb);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            run_to_exit("ssectl", &a).await.unwrap()
        }
    };

    let refused = as_(&schema, &["device", "create", "plant"]).await;
    assert_eq!(refused.code, Some(1), "{}", refused.told());
    assert!(
        refused.stderr.contains("PermissionDenied"),
        "{}",
        refused.told()
    );
    assert!(!res.join("device-plant.yaml").exists());
    ok(as_(&console, &["device", "create", "plant"]).await);
    assert!(res.join("device-plant.yaml").is_file());
    let shown = ok(as_(&schema, &["device", "show", "plant"]).await);
    assert!(shown.contains("name: plant"), "{shown}");
    // Without the client identity the handshake fails: exit 1, naming the address.
    let plain = run_to_exit("ssectl", &["--ingest", &addr, "device", "list"])
        .await
        .unwrap();
    assert_eq!(plain.code, Some(1), "{}", plain.told());
    assert!(plain.stderr.contains(&addr), "{}", plain.told());
}

#[tokio::test]
async fn bad_usage_exits_64() {
    for args in [
        &[][..],
        &["frobnicate"],
        &[
            "asset",
            "sse",
            "create",
            "x",
            "--device",
            "d",
            "--endpoint",
            "e",
            "--dataset-dest",
            "topc=t",
        ],
    ] {
        let e = run_to_exit("ssectl", args).await.unwrap();
        assert_eq!(e.code, Some(64), "{args:?}: {}", e.told());
    }
    let e = run_to_exit("ssectl", &["--help"]).await.unwrap();
    assert_eq!(e.code, Some(0), "{}", e.told());
}

/// `ssectl ... | head`: the reader of its output goes away before `ssectl` is done writing.
/// That ends it quietly and successfully, as it ends Unix tools, not with a panic or an error.
#[tokio::test]
async fn a_closed_stdout_ends_ssectl_quietly() {
    for args in [
        &["device", "create", "plant", "--dry-run"][..],
        &["asset", "delete", "line", "--dry-run"],
        &["completions", "bash"],
    ] {
        let e = run_into_closed_pipe("ssectl", args).await.unwrap();
        assert_eq!(e.code, Some(0), "{args:?}: {}", e.stderr);
        assert!(e.stderr.is_empty(), "{args:?}: {}", e.stderr);
    }
}

/// Transport errors often repeat their cause in their own text; the message names it once.
#[tokio::test]
async fn an_unreachable_service_is_named_once_with_its_cause() {
    // Nothing listens on port 1 (tcpmux) here: the connection is refused.
    let e = run_to_exit("ssectl", &["--ingest", "127.0.0.1:1", "streams"])
        .await
        .unwrap();
    assert_eq!(e.code, Some(1), "{}", e.told());
    assert!(
        e.stderr.contains("127.0.0.1:1: cannot connect"),
        "{}",
        e.told()
    );
    assert_eq!(
        e.stderr.matches("Connection refused").count(),
        1,
        "{}",
        e.told()
    );
}

/// A running `ssectl tail` whose output is read as it comes.
struct Tail {
    _child: tokio::process::Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

impl Tail {
    fn start(p: &Pipeline, asset: &str, extra: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(bin_dir().join("ssectl"))
            .args([
                "--publisher",
                &p.publisher.addr.to_string(),
                "--ingest",
                &p.ingest.addr.to_string(),
                "tail",
                "--asset",
                asset,
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (out, err) = Default::default();
        read_into(child.stdout.take().unwrap(), &out);
        read_into(child.stderr.take().unwrap(), &err);
        Self {
            _child: child,
            out,
            err,
        }
    }

    fn text(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn errors(&self) -> String {
        self.err.lock().unwrap().clone()
    }
}
