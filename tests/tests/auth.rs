//! Authentication and TLS end to end: real TLS SSE servers on loopback with certificates made in
//! the test (rcgen, and openssl for an X.509 v1 client certificate), the three real binaries and a
//! real Mosquitto. Anonymous (trust list), HTTP Basic (trust bundle) and mutual TLS reach the
//! broker while seven broken endpoints each show their own error in `ListStreams` (grpcurl).

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use sse_e2e::auth::{
    ANONYMOUS, PASSWORD, USER, cert_auth, feed, last_error, resources, stream_of, streams,
    tls_source,
};
use sse_e2e::broker::Mosquitto;
use sse_e2e::eventually;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::openssl::{OpensslCa, OpensslSource};
use sse_e2e::pki::{KeyForm, Pki};
use sse_e2e::procs::Service;
use sse_e2e::resources::username_password;
use sse_e2e::source::basic_auth;
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::write_file as write;

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
