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
    let trust = trust_list
        .map(|t| format!("\n        trustSettings: {{ trustList: {t} }}"))
        .unwrap_or_default();
    format!(
        r#"---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev-{name} }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: "{address}"
        authentication: {authentication}{trust}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: asset-{name} }}
spec:
  deviceRef: {{ deviceName: dev-{name}, endpointName: sse-0 }}
  datasets:
    - {{ name: all, dataSource: /events, destinations: [ {{ target: Mqtt, configuration: {{ topic: auth/{name}, qos: Qos1 }} }} ] }}
"#
    )
}

fn cert_auth(cert: &str, key: &str, chain: Option<&str>) -> String {
    let chain = chain
        .map(|c| format!(", intermediateCertificatesSecretName: {c}"))
        .unwrap_or_default();
    format!(
        "{{ method: Certificate, x509Credentials: {{ certificateSecretName: {cert}, keySecretName: {key}{chain} }} }}"
    )
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "{{ method: UsernamePassword, usernamePasswordCredentials: {{ usernameSecretName: {user}, passwordSecretName: {pass} }} }}"
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
            &basic("creds/user", "creds/password"),
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
            &basic("creds/user", "creds/wrong-password"),
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
            &basic("creds/user", "creds/password"),
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
            &basic("creds/password", "creds/user"),
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
    let all = eventually("the mismatched key reported", || {
        let ingest = &pipeline.ingest;
        async move {
            let all = streams(ingest).await?;
            stream_of(&all, "v1-mismatch")
                .is_some_and(|s| !s["lastError"].as_str().unwrap_or("").is_empty())
                .then_some(all)
        }
    })
    .await
    .unwrap();
    let error = stream_of(&all, "v1-mismatch").unwrap()["lastError"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        error,
        "client key other/key does not match client certificate v1/cert"
    );
    assert_eq!(stream_of(&all, "v1").unwrap()["state"], "Connected");
}
