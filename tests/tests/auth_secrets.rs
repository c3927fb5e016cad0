//! No secret reaches the output: a run at debug level with a password and a client key never
//! writes either, and what a device URL hides (user info, query tokens) is never shown or
//! stored.

#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use sse_e2e::auth::{PASSWORD, USER, cert_auth, feed, resources, streams, tls_source};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::pki::{KeyForm, Pki};
use sse_e2e::procs::bin_dir;
use sse_e2e::resources::username_password;
use sse_e2e::source::{Feed, Reply, SseSource, basic_auth, block, blocks_then_hold};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::write_file as write;
use sse_e2e::{eventually, grpcurl};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// The secret material the run must never print: the password, the Basic credential, the key's
/// base64 body lines.
fn secret_fragments(key_pem: &str) -> Vec<String> {
    let mut v = vec![
        PASSWORD.to_string(),
        b64(format!("{USER}:{PASSWORD}").as_bytes()),
    ];
    v.extend(
        key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_string),
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_output_of_a_debug_run_with_credentials() {
    let pki = Pki::new().unwrap();
    let server_leaf = pki.server(&["127.0.0.1"]).unwrap();
    let basic_src = tls_source(
        &pki,
        &server_leaf,
        false,
        basic_auth(USER, PASSWORD, feed("basic")),
    )
    .await;
    let mtls = tls_source(&pki, &server_leaf, true, feed("mtls")).await;
    let client = pki
        .client_with_key("device-client", KeyForm::EcdsaSec1)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bundle/ca.pem", &pki.ca_pem);
    write(d, "secrets/creds/user", USER);
    write(d, "secrets/creds/password", PASSWORD);
    write(d, "secrets/client/cert", &client.cert_pem);
    write(d, "secrets/client/key", &client.key_pem);
    write(d, "secrets/client/chain", &client.chain_pem);
    let docs = [
        resources(
            "basic",
            &basic_src.https_url(),
            &username_password("creds/user", "creds/password"),
            None,
        ),
        resources(
            "mtls",
            &mtls.https_url(),
            &cert_auth("client/cert", "client/key", Some("client/chain")),
            None,
        ),
        // The password as a user name, against a server that refuses it: the failure path
        // must not print it either.
        resources(
            "refused",
            &basic_src.https_url(),
            &username_password("creds/password", "creds/user"),
            None,
        ),
    ];
    write(d, "resources/auth.yaml", &docs.concat());

    // The real binary, every line of stdout and stderr kept. No schema service: ingest reads
    // its streams regardless and retries the schema connection (more log lines to check).
    let mut child = tokio::process::Command::new(bin_dir().join("sse-ingest"))
        .args(["--listen", "127.0.0.1:0", "--schema", "http://127.0.0.1:9"])
        .arg("--resources")
        .arg(d.join("resources"))
        .arg("--secrets-dir")
        .arg(d.join("secrets"))
        .arg("--trust-bundle")
        .arg(d.join("bundle"))
        .arg("--no-system-roots")
        .env("RUST_LOG", "debug")
        .env("RUST_BACKTRACE", "1")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_task = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b).await;
        b
    });
    let err_task = tokio::spawn(async move {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b).await;
        b
    });

    // Both credentials were used: the servers saw the Basic header and the client certificate,
    // and the refused stream got its 401.
    eventually("both servers reached with credentials", || {
        let (b, m) = (basic_src.seen(), mtls.seen());
        let ok = b.iter().any(|r| {
            r.header("authorization")
                .is_some_and(|h| h.contains(&b64(format!("{USER}:{PASSWORD}").as_bytes())))
        }) && b.iter().any(|r| {
            r.header("authorization")
                .is_some_and(|h| h.contains(&b64(format!("{PASSWORD}:{USER}").as_bytes())))
        }) && m
            .iter()
            .any(|r| r.client_cert.as_deref() == Some(client.cert_der()));
        async move { ok.then_some(()) }
    })
    .await
    .unwrap();

    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out_task.await.unwrap()).into_owned();
    let err = String::from_utf8_lossy(&err_task.await.unwrap()).into_owned();
    let all = format!("{out}\n{err}");
    assert!(all.contains("DEBUG"), "the run logged at debug level");
    assert!(
        all.contains("unauthorized (HTTP 401)"),
        "the refused stream was logged"
    );
    for fragment in secret_fragments(&client.key_pem) {
        assert!(
            !all.contains(&fragment),
            "secret material {}… in the output",
            &fragment[..4]
        );
    }
}

/// Standard base64 (RFC 4648, padded), as HTTP Basic uses it.
fn b64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// What a device URL may hide: a user name and password, and tokens in the query.
const URL_USER: &str = "url-user-5b1e";
const URL_PASSWORD: &str = "url-pw-9d2c7a";
const TOKEN_A: &str = "token-a-3f8e41";
const TOKEN_B: &str = "token-b-77c0d2";

/// Each request resumes after its `Last-Event-ID` with two events whose data names the query's
/// token (`a` or `b`), then holds the stream open.
fn token_feed() -> Feed {
    Arc::new(|req: &sse_e2e::source::SeenRequest| {
        let after: u64 = req
            .header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let which = if req.path.contains(TOKEN_A) { "a" } else { "b" };
        let blocks = (after + 1..=after + 2)
            .map(|n| {
                block(
                    Some(&n.to_string()),
                    None,
                    &format!(r#"{{"token":"{which}","n":{n}}}"#),
                )
            })
            .collect();
        Reply::Sse(blocks_then_hold(blocks))
    })
}

/// A device URL with user info and a token in the query: the password and the tokens reach
/// none of ingest's log, `ListStreams`, `GetStatus`, the retained status messages or the
/// checkpoint file; two URLs differing only in the token are two streams; and a checkpoint
/// saved under the old key (the raw URL) is still resumed from, then rewritten without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_of_a_device_url_is_shown_or_stored() {
    let source = SseSource::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        token_feed(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let address = format!("http://{URL_USER}:{URL_PASSWORD}@{}", source.addr);
    let doc = format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev-url }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{address}" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: asset-url }}
spec:
  deviceRef: {{ deviceName: dev-url, endpointName: sse-0 }}
  datasets:
    - {{ name: a, dataSource: "/events?token={TOKEN_A}", destinations: [ {{ target: Mqtt, configuration: {{ topic: url/a }} }} ] }}
    - {{ name: b, dataSource: "/events?token={TOKEN_B}", destinations: [ {{ target: Mqtt, configuration: {{ topic: url/b }} }} ] }}
"#
    );
    write(d, "resources/url.yaml", &doc);
    // A checkpoint of stream a as an older version saved it: keyed by the raw URL.
    let legacy_key = format!("dev-url/sse-0|{address}/events?token={TOKEN_A}");
    let checkpoints = d.join("state/checkpoints.json");
    write(
        d,
        "state/checkpoints.json",
        &serde_json::json!([{ "stream": legacy_key, "lastEventId": "3" }]).to_string(),
    );

    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "url/#").await.unwrap();
    let status_sub = Subscriber::connect(broker.port, "sse-connector/status/#")
        .await
        .unwrap();
    let path = |rel: &str| d.join(rel).display().to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: path("schemas"),
        resources: path("resources"),
        publisher: vec![],
        ingest: vec![
            "--checkpoint-store".to_string(),
            format!("file://{}", checkpoints.display()),
            "--status-interval".to_string(),
            "1s".to_string(),
        ],
        env: None,
    })
    .await
    .unwrap();

    let msgs = sub
        .wait_until("events of both streams", |m| {
            ["url/a", "url/b"]
                .iter()
                .all(|t| m.iter().any(|x| x.topic == *t))
        })
        .await
        .unwrap();
    // Stream a resumed from the legacy checkpoint: its first event is 4.
    let first_a = msgs.iter().find(|x| x.topic == "url/a").unwrap();
    assert_eq!(first_a.text(), r#"{"token":"a","n":4}"#);
    let seen = source.seen();
    let a = seen.iter().find(|r| r.path.contains(TOKEN_A)).unwrap();
    assert_eq!(a.header("last-event-id"), Some("3"));
    assert!(seen.iter().all(|r| r.header("authorization").is_none()));

    let listed = eventually("both streams listed", || {
        let ingest = &pipeline.ingest;
        async move {
            let all = streams(ingest).await?;
            let ours: Vec<_> = all
                .iter()
                .filter(|s| s["key"].as_str().unwrap_or("").starts_with("dev-url/"))
                .cloned()
                .collect();
            (ours.len() == 2).then_some(ours)
        }
    })
    .await
    .unwrap();
    assert_ne!(listed[0]["key"], listed[1]["key"], "{listed:?}");
    let status = grpcurl::call(
        &pipeline.ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/GetStatus"],
    )
    .await
    .unwrap();
    assert!(status.contains("dev-url"), "{status}");
    let reports = status_sub
        .wait_until("the device's status message", |m| {
            m.iter().any(|x| x.topic.ends_with("/device/dev-url"))
        })
        .await
        .unwrap();
    let stored = eventually("both checkpoints saved under today's keys", || {
        let text = std::fs::read_to_string(&checkpoints).unwrap_or_default();
        let records: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
        let ours = records
            .iter()
            .filter(|r| r["stream"].as_str().unwrap_or("").starts_with("dev-url/"))
            .count();
        async move { (ours == 2).then_some(text) }
    })
    .await
    .unwrap();

    let places = [
        ("ingest's log", pipeline.ingest.log_text()),
        ("ListStreams", serde_json::to_string(&listed).unwrap()),
        ("GetStatus", status),
        (
            "the status messages",
            reports
                .iter()
                .map(|m| m.text())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("the checkpoint file", stored),
    ];
    for (place, text) in places {
        for secret in [URL_USER, URL_PASSWORD, TOKEN_A, TOKEN_B] {
            assert!(!text.contains(secret), "{secret} in {place}: {text}");
        }
    }
}
