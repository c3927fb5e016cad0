//! Authentication and TLS end to end: real TLS SSE servers on loopback with certificates made in
//! the test (rcgen), the three real binaries and a real Mosquitto. Anonymous (trust list),
//! HTTP Basic (trust bundle) and mutual TLS reach the broker while seven broken endpoints each
//! show their own error in `ListStreams` (grpcurl); and a run at debug level with a password and a
//! client key never writes either to its output.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::openssl::{OpensslCa, OpensslSource};
use sse_e2e::pki::{KeyForm, Leaf, Pki};
use sse_e2e::procs::{Service, bin_dir};
use sse_e2e::resources::{device_with_asset, username_password};
use sse_e2e::source::{Feed, Reply, SseSource, basic_auth, block, blocks_then_hold};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::{eventually, grpcurl};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const USER: &str = "weather-user";
const PASSWORD: &str = "Pw-7f3c9e1d-never-logged";

/// One event per connection, then the stream stays open.
fn feed(name: &'static str) -> Feed {
    Arc::new(move |_req| {
        Reply::Sse(blocks_then_hold(vec![block(
            Some("1"),
            None,
            &format!(r#"{{"endpoint":"{name}"}}"#),
        )]))
    })
}

async fn tls_source(pki: &Pki, leaf: &Leaf, require_client_cert: bool, feed: Feed) -> SseSource {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SseSource::start_tls(
        listener,
        feed,
        pki.server_config(leaf, require_client_cert).unwrap(),
    )
    .unwrap()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A device with one endpoint and an asset whose dataset goes to `auth/<name>`.
fn resources(name: &str, address: &str, authentication: &str, trust_list: Option<&str>) -> String {
    let mut endpoint = vec![format!("authentication: {authentication}")];
    endpoint.extend(trust_list.map(|t| format!("trustSettings: {{ trustList: {t} }}")));
    let endpoint: Vec<&str> = endpoint.iter().map(String::as_str).collect();
    device_with_asset(name, address, &endpoint, "auth")
}

fn cert_auth(cert: &str, key: &str, chain: Option<&str>) -> String {
    let chain = chain
        .map(|c| format!(", intermediateCertificatesSecretName: {c}"))
        .unwrap_or_default();
    format!(
        "{{ method: Certificate, x509Credentials: {{ certificateSecretName: {cert}, keySecretName: {key}{chain} }} }}"
    )
}

const ANONYMOUS: &str = "{ method: Anonymous }";

/// `ListStreams`, by the asset each stream feeds (`asset-<name>`).
async fn streams(ingest: &Service) -> Option<Vec<serde_json::Value>> {
    let l = grpcurl::call_json(
        &ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/ListStreams"],
    )
    .await
    .ok()?;
    l["streams"].as_array().cloned()
}

fn stream_of<'a>(streams: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    let route = format!("asset-{name}/all");
    streams.iter().find(|s| {
        s["routes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == route.as_str()))
    })
}

/// Waits until stream `name` reports an error (`what` names the wait); returns every stream
/// and that error.
async fn last_error(ingest: &Service, name: &str, what: &str) -> (Vec<serde_json::Value>, String) {
    let all = eventually(what, || async move {
        let all = streams(ingest).await?;
        stream_of(&all, name)
            .is_some_and(|s| !s["lastError"].as_str().unwrap_or("").is_empty())
            .then_some(all)
    })
    .await
    .unwrap();
    let error = stream_of(&all, name).unwrap()["lastError"]
        .as_str()
        .unwrap()
        .to_string();
    (all, error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_method_reaches_the_broker_and_each_failure_shows_its_own_status() {
    let pki = Pki::new().unwrap();
    let stranger = Pki::new().unwrap();
    let server_leaf = pki.server(&["127.0.0.1"]).unwrap();
    let anon = tls_source(&pki, &server_leaf, false, feed("anonymous")).await;
    let basic_src = tls_source(
        &pki,
        &server_leaf,
        false,
        basic_auth(USER, PASSWORD, feed("basic")),
    )
    .await;
    let mtls = tls_source(&pki, &server_leaf, true, feed("mtls")).await;
    let expired = tls_source(
        &pki,
        &pki.expired_server(&["127.0.0.1"]).unwrap(),
        false,
        feed("x"),
    )
    .await;
    let untrusted = tls_source(
        &stranger,
        &stranger.server(&["127.0.0.1"]).unwrap(),
        false,
        feed("x"),
    )
    .await;
    let misnamed = tls_source(
        &pki,
        &pki.server(&["sse.other.example"]).unwrap(),
        false,
        feed("x"),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let client = pki
        .client_with_key("device-client", KeyForm::RsaPkcs1)
        .unwrap();
    let stranger_client = stranger.client("stranger").unwrap();
    // The anonymous endpoint is trusted through its trust list; the others through the bundle.
    write(d, "trust/anon-ca/ca.pem", &pki.ca_pem);
    write(d, "bundle/ca.pem", &pki.ca_pem);
    write(d, "secrets/creds/user", USER);
    write(d, "secrets/creds/password", PASSWORD);
    write(d, "secrets/creds/wrong-password", "not-the-password");
    write(d, "secrets/client/cert", &client.cert_pem);
    write(d, "secrets/client/key", &client.key_pem);
    write(d, "secrets/client/chain", &client.chain_pem);
    write(
        d,
        "secrets/other/key",
        &pki.client("other").unwrap().key_pem,
    );
    write(d, "secrets/stranger/cert", &stranger_client.cert_pem);
    write(d, "secrets/stranger/key", &stranger_client.key_pem);

    let with_chain = cert_auth("client/cert", "client/key", Some("client/chain"));
    let docs = [
        resources("anonymous", &anon.https_url(), ANONYMOUS, Some("anon-ca")),
        resources(
            "basic",
            &basic_src.https_url(),
            &username_password("creds/user", "creds/password"),
            None,
        ),
        resources("mtls", &mtls.https_url(), &with_chain, None),
        resources(
            "missing-secret",
            &mtls.https_url(),
            &cert_auth("client/cert", "client/no-such-key", None),
            None,
        ),
        resources(
            "key-mismatch",
            &mtls.https_url(),
            &cert_auth("client/cert", "other/key", None),
            None,
        ),
        resources(
            "client-rejected",
            &mtls.https_url(),
            &cert_auth("stranger/cert", "stranger/key", None),
            None,
        ),
        resources("expired", &expired.https_url(), ANONYMOUS, None),
        resources("untrusted", &untrusted.https_url(), ANONYMOUS, None),
        resources("wrong-name", &misnamed.https_url(), ANONYMOUS, None),
        resources(
            "unauthorized",
            &basic_src.https_url(),
            &username_password("creds/user", "creds/wrong-password"),
            None,
        ),
    ];
    // Streams are keyed by device endpoint and URL: several devices on one server are
    // separate streams.
    write(d, "resources/auth.yaml", &docs.concat());

    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "auth/#").await.unwrap();
    let s = |x: &str| x.to_string();
    let publisher = Service::start("sse-publisher", &[s("--mqtt-url"), broker.url()], &[])
        .await
        .unwrap();
    let schema = Service::start(
        "sse-schema",
        &[
            s("--publisher"),
            publisher.url(),
            s("--data-dir"),
            d.join("schemas").display().to_string(),
        ],
        &[],
    )
    .await
    .unwrap();
    let path = |rel: &str| d.join(rel).display().to_string();
    let ingest = Service::start(
        "sse-ingest",
        &[
            s("--schema"),
            schema.url(),
            s("--resources"),
            path("resources"),
            s("--secrets-dir"),
            path("secrets"),
            s("--trust-dir"),
            path("trust"),
            s("--trust-bundle"),
            path("bundle"),
            s("--no-system-roots"),
        ],
        &[],
    )
    .await
    .unwrap();

    // Every method reaches the broker while the broken endpoints fail.
    let msgs = sub
        .wait_until("an event from each working endpoint", |m| {
            ["auth/anonymous", "auth/basic", "auth/mtls"]
                .iter()
                .all(|t| m.iter().any(|x| x.topic == *t))
        })
        .await
        .unwrap();
    for name in ["anonymous", "basic", "mtls"] {
        let m = msgs
            .iter()
            .find(|x| x.topic == format!("auth/{name}"))
            .unwrap();
        assert_eq!(m.text(), format!(r#"{{"endpoint":"{name}"}}"#));
    }
    assert!(
        msgs.iter()
            .all(|m| ["auth/anonymous", "auth/basic", "auth/mtls"].contains(&m.topic.as_str())),
        "nothing from a failing endpoint"
    );
    let seen_mtls = mtls.seen();
    assert!(
        seen_mtls
            .iter()
            .any(|r| r.client_cert.as_deref() == Some(client.cert_der())),
        "the mTLS server saw the client certificate"
    );

    let expected: [(&str, &str); 7] = [
        ("missing-secret", "secret client/no-such-key is missing"),
        (
            "key-mismatch",
            "client key other/key does not match client certificate client/cert",
        ),
        (
            "client-rejected",
            "client certificate rejected by the server",
        ),
        ("expired", "server certificate expired"),
        ("untrusted", "server certificate untrusted"),
        (
            "wrong-name",
            "server certificate is not valid for host name 127.0.0.1",
        ),
        ("unauthorized", "unauthorized (HTTP 401)"),
    ];
    let all = eventually("every failing stream reporting its error", || {
        let ingest = &ingest;
        async move {
            let all = streams(ingest).await?;
            expected
                .iter()
                .all(|(name, _)| {
                    stream_of(&all, name)
                        .is_some_and(|s| !s["lastError"].as_str().unwrap_or("").is_empty())
                })
                .then_some(all)
        }
    })
    .await
    .unwrap();
    for (name, want) in expected {
        let st = stream_of(&all, name).unwrap();
        let error = st["lastError"].as_str().unwrap();
        assert!(
            error.starts_with(want),
            "{name}: {error:?}, expected {want:?}"
        );
        assert_eq!(st["state"], "Disconnected", "{name}: {st}");
        assert!(!error.contains(PASSWORD) && !error.contains("not-the-password"));
    }
    for name in ["anonymous", "basic", "mtls"] {
        let st = stream_of(&all, name).unwrap();
        assert_eq!(st["state"], "Connected", "{name}: {st}");
        assert_eq!(st["lastError"].as_str().unwrap_or(""), "", "{name}: {st}");
    }
    let text = ingest.log_text();
    assert!(!text.contains(PASSWORD), "password in the logs");
}

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

/// A client certificate as `openssl x509 -req` makes it without an extension file (X.509 v1),
/// against an OpenSSL server (Python's `ssl`) that accepts it: the events reach the broker, and a
/// key that is not the certificate's is still reported as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x509_v1_client_certificate_made_by_openssl_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = OpensslCa::new(&d.join("openssl"), "device-client-ca").unwrap();
    let (v1_cert, v1_key) = ca.v1_client("v1-client").unwrap();
    let (_, other_key) = ca.v1_client("someone-else").unwrap();
    let pki = Pki::new().unwrap();
    let server_leaf = pki.server(&["127.0.0.1"]).unwrap();
    write(
        d,
        "server/chain.pem",
        &format!("{}{}", server_leaf.cert_pem, server_leaf.chain_pem),
    );
    write(d, "server/key.pem", &server_leaf.key_pem);
    let source = OpensslSource::start(
        &d.join("server/chain.pem"),
        &d.join("server/key.pem"),
        &ca.ca_file(),
    )
    .await
    .unwrap();
    write(d, "bundle/ca.pem", &pki.ca_pem);
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    write(d, "secrets/v1/cert", &read(&v1_cert));
    write(d, "secrets/v1/key", &read(&v1_key));
    write(d, "secrets/other/key", &read(&other_key));
    let docs = [
        resources(
            "v1",
            &source.https_url(),
            &cert_auth("v1/cert", "v1/key", None),
            None,
        ),
        resources(
            "v1-mismatch",
            &source.https_url(),
            &cert_auth("v1/cert", "other/key", None),
            None,
        ),
    ];
    write(d, "resources/auth.yaml", &docs.concat());

    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "auth/#").await.unwrap();
    let path = |rel: &str| d.join(rel).display().to_string();
    let s = |x: &str| x.to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: path("schemas"),
        resources: path("resources"),
        publisher: vec![],
        ingest: vec![
            s("--secrets-dir"),
            path("secrets"),
            s("--trust-bundle"),
            path("bundle"),
            s("--no-system-roots"),
        ],
        env: None,
    })
    .await
    .unwrap();

    let msgs = sub
        .wait_until("the v1 endpoint's event on the broker", |m| {
            m.iter().any(|x| x.topic == "auth/v1")
        })
        .await
        .unwrap();
    let m = msgs.iter().find(|x| x.topic == "auth/v1").unwrap();
    assert_eq!(m.text(), r#"{"cn":"v1-client"}"#);
    assert!(
        source.clients().iter().all(|cn| cn == "v1-client"),
        "{:?}",
        source.lines()
    );
    let (all, error) = last_error(
        &pipeline.ingest,
        "v1-mismatch",
        "the mismatched key reported",
    )
    .await;
    assert_eq!(
        error,
        "client key other/key does not match client certificate v1/cert"
    );
    assert_eq!(stream_of(&all, "v1").unwrap()["state"], "Connected");
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

/// Starts `sse-ingest` alone on `resources` of the test dir `d` (secrets and trust bundle
/// there): no schema service, the streams are read regardless, and these tests are about
/// reading them.
async fn ingest_alone(d: &Path, docs: &[String]) -> Service {
    write(d, "resources/auth.yaml", &docs.concat());
    let path = |rel: &str| d.join(rel).display().to_string();
    let args: Vec<String> = [
        "--schema",
        "http://127.0.0.1:9",
        "--resources",
        &path("resources"),
        "--secrets-dir",
        &path("secrets"),
        "--trust-bundle",
        &path("bundle"),
        "--no-system-roots",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    Service::start("sse-ingest", &args, &[]).await.unwrap()
}

/// A client identity and the CA that issued it, under `secrets/client/` and `bundle/`.
fn write_client_identity(d: &Path, pki: &Pki) -> String {
    let client = pki.client("device-client").unwrap();
    write(d, "bundle/ca.pem", &pki.ca_pem);
    write(d, "secrets/client/cert", &client.cert_pem);
    write(d, "secrets/client/key", &client.key_pem);
    write(d, "secrets/client/chain", &client.chain_pem);
    cert_auth("client/cert", "client/key", Some("client/chain"))
}

/// An https server requiring client certificates that redirects every request to `target`.
async fn redirector(pki: &Pki, target: String) -> SseSource {
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    let feed = Arc::new(move |_req: &sse_e2e::source::SeenRequest| {
        Reply::Status(
            307,
            vec![("location".into(), target.clone())],
            String::new(),
        )
    });
    tls_source(pki, &leaf, true, feed).await
}

/// A redirect from `https` to plain `http` is refused, named in the stream's `lastError`, and
/// the plain URL is never asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_https_to_http_is_refused() {
    let pki = Pki::new().unwrap();
    let plain = SseSource::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        feed("plain"),
    )
    .unwrap();
    let from = redirector(&pki, format!("{}/downgraded", plain.base_url())).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auth = write_client_identity(d, &pki);
    let ingest = ingest_alone(d, &[resources("downgrade", &from.https_url(), &auth, None)]).await;
    let (_, error) = last_error(&ingest, "downgrade", "the downgrade reported").await;
    assert!(
        error.starts_with("redirect from https to plain http refused"),
        "{error}"
    );
    assert!(plain.seen().is_empty(), "the plain target was asked");
}

/// After a redirect to another origin, the client certificate is not offered: the endpoint's
/// own server (which requires one) gets it, the other origin (which asks for one, and serves
/// without) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_is_not_offered_to_another_origin() {
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    let elsewhere = SseSource::start_tls(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        feed("elsewhere"),
        pki.server_config_asking_client_cert(&leaf).unwrap(),
    )
    .unwrap();
    let from = redirector(&pki, format!("{}/moved", elsewhere.https_url())).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let auth = write_client_identity(d, &pki);
    let ingest = ingest_alone(d, &[resources("away", &from.https_url(), &auth, None)]).await;
    eventually("the redirected stream connected", || {
        let ingest = &ingest;
        async move {
            let all = streams(ingest).await?;
            stream_of(&all, "away")
                .is_some_and(|s| s["state"] == "Connected")
                .then_some(())
        }
    })
    .await
    .unwrap();
    assert!(from.seen().iter().any(|r| r.client_cert.is_some()));
    let moved = elsewhere.seen();
    assert!(moved.iter().any(|r| r.path == "/moved"), "{moved:?}");
    assert!(
        moved.iter().all(|r| r.client_cert.is_none()),
        "client certificate sent to another origin"
    );
}

/// HTTP Basic to a plain `http` address is a configuration error of that endpoint, named in
/// `GetStatus`, unless its `additionalConfiguration` allows it; the allowed one sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_over_plain_http_are_refused_unless_allowed() {
    let plain = SseSource::start(
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        basic_auth(USER, PASSWORD, feed("plain")),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bundle/ca.pem", &Pki::new().unwrap().ca_pem);
    write(d, "secrets/creds/user", USER);
    write(d, "secrets/creds/password", PASSWORD);
    let creds = username_password("creds/user", "creds/password");
    let allowed = format!(
        "{creds}\n        additionalConfiguration: '{{\"allowInsecureCredentials\": true}}'"
    );
    let ingest = ingest_alone(
        d,
        &[
            resources("basic-http", &plain.base_url(), &creds, None),
            resources("basic-http-allowed", &plain.base_url(), &allowed, None),
        ],
    )
    .await;
    let all = eventually("the allowed endpoint connected", || {
        let ingest = &ingest;
        async move {
            let all = streams(ingest).await?;
            stream_of(&all, "basic-http-allowed")
                .is_some_and(|s| s["state"] == "Connected")
                .then_some(all)
        }
    })
    .await
    .unwrap();
    assert!(stream_of(&all, "basic-http").is_none(), "{all:?}");
    let status = grpcurl::call(
        &ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/GetStatus"],
    )
    .await
    .unwrap();
    assert!(
        status.contains("UsernamePassword credentials over plain http:// refused"),
        "{status}"
    );
    assert!(
        plain
            .seen()
            .iter()
            .any(|r| r.header("authorization").is_some()),
        "the allowed endpoint sent its credentials"
    );
    assert!(!ingest.log_text().contains(PASSWORD));
}
