//! What ingest refuses on the way to a device: a redirect from https to plain http, a client
//! certificate offered to another origin, and Basic credentials over plain http unless allowed.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use sse_e2e::auth::{
    PASSWORD, USER, cert_auth, feed, last_error, resources, stream_of, streams, tls_source,
};
use sse_e2e::pki::Pki;
use sse_e2e::procs::Service;
use sse_e2e::resources::username_password;
use sse_e2e::source::{Reply, SseSource, basic_auth};
use sse_e2e::write_file as write;
use sse_e2e::{eventually, grpcurl};
use tokio::net::TcpListener;

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
