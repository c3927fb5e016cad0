//! Authentication and TLS of the SSE client against real TLS servers on loopback, with
//! certificates generated in the test (rcgen): every client key form over mutual TLS, HTTP Basic
//! over TLS, rotation of the client certificate and of the trust bundle without a restart, and a
//! distinct error with a long back-off for each failure (missing secret, key not matching its
//! certificate, expired / untrusted / misnamed server certificate, client certificate rejected,
//! 401).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sse_e2e::pki::{KeyForm, Leaf, Pki};
use sse_e2e::source::{Feed, Reply, SseSource, basic_auth, block, blocks_then_hold};
use sse_ingest::auth::{Connector, TrustSources};
use sse_ingest::resources::{Auth, SecretRef};
use sse_ingest::sse::{self, ClientConfig, ClientEvent};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Generous: the machine is shared and loaded.
const DEADLINE: Duration = Duration::from_secs(30);

/// Secrets and trust files of one test.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["secrets", "trust", "bundle"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Self { dir }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file atomically (as a Kubernetes secret update does: a new file renamed in).
    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let tmp = p.with_extension("tmp-write");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(tmp, p).unwrap();
    }

    /// A client identity under `secrets/c/{cert,key}`.
    fn client(&self, leaf: &Leaf) {
        self.write("secrets/c/cert", &leaf.cert_pem);
        self.write("secrets/c/key", &leaf.key_pem);
        self.write("secrets/c/chain", &leaf.chain_pem);
    }

    fn trust(&self, with_bundle: bool) -> TrustSources {
        TrustSources {
            trust_dir: Some(self.path("trust")),
            trust_bundle: with_bundle.then(|| self.path("bundle")),
            // Only what the test trusts: a system CA cannot mask a failure.
            system_roots: false,
        }
    }

    fn connector(&self, url: &url::Url, auth: &Auth, trust_list: Option<&str>) -> Connector {
        Connector::new(
            url,
            auth,
            trust_list,
            Some(self.path("secrets")),
            self.trust(true),
        )
        .unwrap()
    }
}

fn secret(s: &str) -> SecretRef {
    SecretRef::parse(s).unwrap()
}

fn cert_auth(intermediates: bool) -> Auth {
    Auth::Certificate {
        certificate: secret("c/cert"),
        key: secret("c/key"),
        intermediates: intermediates.then(|| secret("c/chain")),
    }
}

fn basic_auth_ref() -> Auth {
    Auth::UsernamePassword {
        username: secret("b/user"),
        password: secret("b/pass"),
    }
}

/// One event, then the stream stays open.
fn hold_feed() -> Feed {
    Arc::new(|_req| Reply::Sse(blocks_then_hold(vec![block(Some("1"), None, "hello")])))
}

/// Each connection gets one event and is closed, with `retry: 50`: the client reconnects fast.
fn one_then_close_feed() -> Feed {
    let n = Arc::new(AtomicUsize::new(0));
    Arc::new(move |_req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let text = format!("retry: 50\n\n{}", block(Some(&i.to_string()), None, "tick"));
        Reply::Sse(Box::pin(futures::stream::iter([Bytes::from(text)])))
    })
}

async fn server(pki: &Pki, leaf: &Leaf, require_client_cert: bool, feed: Feed) -> SseSource {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SseSource::start_tls(
        listener,
        feed,
        pki.server_config(leaf, require_client_cert).unwrap(),
    )
    .unwrap()
}

/// A running SSE client and the events it reports.
struct Reader {
    rx: mpsc::Receiver<ClientEvent>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    fn start(url: &str, connector: &Connector) -> Self {
        let mut cfg = ClientConfig::new(
            url.parse().unwrap(),
            connector.header_source(),
            connector.tls_config(),
        );
        cfg.backoff =
            sse_runtime::Backoff::new(Duration::from_millis(10), Duration::from_millis(40));
        cfg.read_timeout = Duration::from_secs(20);
        cfg.min_reconnect_delay = Duration::from_millis(10);
        let (tx, rx) = mpsc::channel(64);
        let token = CancellationToken::new();
        let task = tokio::spawn(sse::run(cfg, String::new(), tx, token.clone()));
        Self { rx, token, task }
    }

    async fn next(&mut self) -> ClientEvent {
        tokio::time::timeout(DEADLINE, self.rx.recv())
            .await
            .expect("no client event in time")
            .expect("client gone")
    }

    /// Waits for the stream to be connected and its first event.
    async fn expect_event(&mut self) -> String {
        loop {
            match self.next().await {
                ClientEvent::Event(e) => return e.data,
                ClientEvent::Disconnected { error, .. } => panic!("disconnected: {error}"),
                ClientEvent::Stopped { reason } => panic!("stopped: {reason}"),
                _ => {}
            }
        }
    }

    /// Waits for the first disconnection; returns its error and asserts the long back-off.
    async fn expect_failure(&mut self) -> String {
        loop {
            match self.next().await {
                ClientEvent::Disconnected {
                    error, retry_in, ..
                } => {
                    let retry_in = retry_in.unwrap();
                    assert!(
                        retry_in >= Duration::from_secs(30),
                        "{error}: retry in {retry_in:?}, expected the long back-off"
                    );
                    return error;
                }
                ClientEvent::Connected => panic!("connected, expected a failure"),
                ClientEvent::Stopped { reason } => panic!("stopped: {reason}"),
                _ => {}
            }
        }
    }

    async fn stop(self) {
        self.token.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn write_bundle(files: &Files, pki: &Pki) {
    files.write("bundle/ca.pem", &pki.ca_pem);
}

#[tokio::test]
async fn mutual_tls_works_with_every_key_form() {
    let pki = Pki::new().unwrap();
    let src = server(
        &pki,
        &pki.server(&["127.0.0.1"]).unwrap(),
        true,
        hold_feed(),
    )
    .await;
    for form in KeyForm::ALL {
        let files = Files::new();
        write_bundle(&files, &pki);
        let leaf = pki.client_with_key("device-client", form).unwrap();
        files.client(&leaf);
        let url = src.https_url();
        let connector = files.connector(&url.parse().unwrap(), &cert_auth(true), None);
        let mut reader = Reader::start(&url, &connector);
        assert_eq!(reader.expect_event().await, "hello", "{form:?}");
        reader.stop().await;
        let seen = src.seen();
        let last = seen.last().unwrap();
        assert_eq!(
            last.client_cert.as_deref(),
            Some(leaf.cert_der()),
            "{form:?}: the server saw this client certificate"
        );
    }
}

#[tokio::test]
async fn intermediates_secret_completes_a_chain_the_server_needs() {
    // The certificate secret holds only the leaf; the server trusts only the root, so the
    // intermediate must come from intermediateCertificatesSecretName.
    let pki = Pki::new().unwrap();
    let src = server(
        &pki,
        &pki.server(&["127.0.0.1"]).unwrap(),
        true,
        hold_feed(),
    )
    .await;
    let files = Files::new();
    write_bundle(&files, &pki);
    files.client(&pki.client("device-client").unwrap());
    let url = src.https_url();
    let with = files.connector(&url.parse().unwrap(), &cert_auth(true), None);
    let mut reader = Reader::start(&url, &with);
    assert_eq!(reader.expect_event().await, "hello");
    reader.stop().await;
    let without = files.connector(&url.parse().unwrap(), &cert_auth(false), None);
    let mut reader = Reader::start(&url, &without);
    let error = reader.expect_failure().await;
    assert!(
        error.starts_with("client certificate rejected by the server"),
        "{error}"
    );
    reader.stop().await;
}

#[tokio::test]
async fn basic_auth_over_tls_with_a_trust_list() {
    let pki = Pki::new().unwrap();
    let src = server(
        &pki,
        &pki.server(&["127.0.0.1"]).unwrap(),
        false,
        basic_auth("weather", "pa:ss wörd", hold_feed()),
    )
    .await;
    let files = Files::new();
    // Trusted through the endpoint's trust list this time, not the bundle.
    files.write("trust/weather-ca/ca.crt", &pki.ca_pem);
    files.write("secrets/b/user", "weather\n");
    files.write("secrets/b/pass", "pa:ss wörd\n");
    let url = src.https_url();
    let connector = files.connector(&url.parse().unwrap(), &basic_auth_ref(), Some("weather-ca"));
    let mut reader = Reader::start(&url, &connector);
    assert_eq!(reader.expect_event().await, "hello");
    reader.stop().await;

    files.write("secrets/b/pass", "wrong");
    let mut reader = Reader::start(&url, &connector);
    assert_eq!(reader.expect_failure().await, "unauthorized (HTTP 401)");
    reader.stop().await;
}

#[tokio::test]
async fn client_certificate_and_trust_are_reread_at_each_connection() {
    let pki = Pki::new().unwrap();
    let src = server(
        &pki,
        &pki.server(&["127.0.0.1"]).unwrap(),
        true,
        one_then_close_feed(),
    )
    .await;
    let files = Files::new();
    write_bundle(&files, &pki);
    let first = pki.client("first").unwrap();
    files.client(&first);
    let url = src.https_url();
    let connector = files.connector(&url.parse().unwrap(), &cert_auth(true), None);
    let mut reader = Reader::start(&url, &connector);
    reader.expect_event().await;
    assert_eq!(src.seen()[0].client_cert.as_deref(), Some(first.cert_der()));

    // Rotate the client certificate and key: the next connection presents the new one.
    let second = pki.client_with_key("second", KeyForm::EcdsaSec1).unwrap();
    files.client(&second);
    loop {
        match reader.next().await {
            ClientEvent::Disconnected { error, .. } => {
                assert!(error.contains("closed"), "{error}")
            }
            ClientEvent::Event(_) => {
                let seen = src.seen();
                if seen.last().unwrap().client_cert.as_deref() == Some(second.cert_der()) {
                    break;
                }
            }
            _ => {}
        }
    }

    // Rotate the trust bundle to another CA: the next connection no longer trusts the server.
    let other = Pki::new().unwrap();
    write_bundle(&files, &other);
    let error = loop {
        if let ClientEvent::Disconnected {
            error, retry_in, ..
        } = reader.next().await
            && error.contains("untrusted")
        {
            assert!(retry_in.unwrap() >= Duration::from_secs(30));
            break error;
        }
    };
    assert!(error.starts_with("server certificate untrusted"), "{error}");
    reader.stop().await;
}

/// Starts a reader of `src` with `auth`, returns its first failure.
async fn failure(files: &Files, src: &SseSource, auth: &Auth) -> String {
    let url = src.https_url();
    let connector = files.connector(&url.parse().unwrap(), auth, None);
    let mut reader = Reader::start(&url, &connector);
    let error = reader.expect_failure().await;
    reader.stop().await;
    error
}

#[tokio::test]
async fn each_failure_has_its_own_error_and_a_long_backoff() {
    let pki = Pki::new().unwrap();
    let good = pki.server(&["127.0.0.1"]).unwrap();
    let files = Files::new();
    write_bundle(&files, &pki);
    let client = pki.client("device-client").unwrap();
    files.client(&client);
    let mut errors = Vec::new();

    // Missing secret.
    let mtls = server(&pki, &good, true, hold_feed()).await;
    let missing = Auth::Certificate {
        certificate: secret("c/cert"),
        key: secret("c/nokey"),
        intermediates: None,
    };
    errors.push(failure(&files, &mtls, &missing).await);
    assert_eq!(errors[0], "secret c/nokey is missing");

    // A key that is not the certificate's.
    files.write("secrets/c/otherkey", &pki.client("other").unwrap().key_pem);
    let mismatch = Auth::Certificate {
        certificate: secret("c/cert"),
        key: secret("c/otherkey"),
        intermediates: None,
    };
    errors.push(failure(&files, &mtls, &mismatch).await);
    assert_eq!(
        errors[1],
        "client key c/otherkey does not match client certificate c/cert"
    );

    // No client certificate where the server requires one.
    errors.push(failure(&files, &mtls, &Auth::Anonymous).await);
    assert!(
        errors[2].starts_with("client certificate rejected by the server"),
        "{}",
        errors[2]
    );

    // A client certificate from a CA the server does not trust.
    let stranger = Pki::new().unwrap();
    let stranger_leaf = stranger.client("stranger").unwrap();
    files.write("secrets/s/cert", &stranger_leaf.cert_pem);
    files.write("secrets/s/key", &stranger_leaf.key_pem);
    let stranger_auth = Auth::Certificate {
        certificate: secret("s/cert"),
        key: secret("s/key"),
        intermediates: None,
    };
    errors.push(failure(&files, &mtls, &stranger_auth).await);
    assert!(
        errors[3].starts_with("client certificate rejected by the server"),
        "{}",
        errors[3]
    );

    // Server certificates: expired, from an untrusted CA, for another name.
    let expired = server(
        &pki,
        &pki.expired_server(&["127.0.0.1"]).unwrap(),
        false,
        hold_feed(),
    )
    .await;
    errors.push(failure(&files, &expired, &Auth::Anonymous).await);
    assert_eq!(errors[4], "server certificate expired");
    let untrusted = server(
        &stranger,
        &stranger.server(&["127.0.0.1"]).unwrap(),
        false,
        hold_feed(),
    )
    .await;
    errors.push(failure(&files, &untrusted, &Auth::Anonymous).await);
    assert!(
        errors[5].starts_with("server certificate untrusted"),
        "{}",
        errors[5]
    );
    let misnamed = server(
        &pki,
        &pki.server(&["other.example"]).unwrap(),
        false,
        hold_feed(),
    )
    .await;
    errors.push(failure(&files, &misnamed, &Auth::Anonymous).await);
    assert_eq!(
        errors[6],
        "server certificate is not valid for host name 127.0.0.1"
    );

    // Wrong password.
    files.write("secrets/b/user", "u");
    files.write("secrets/b/pass", "wrong");
    let basic = server(&pki, &good, false, basic_auth("u", "right", hold_feed())).await;
    errors.push(failure(&files, &basic, &basic_auth_ref()).await);
    assert_eq!(errors[7], "unauthorized (HTTP 401)");

    // Each names its own problem and none carries secret material.
    let mut distinct = errors.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), errors.len(), "{errors:#?}");
    for e in &errors {
        for secret_text in [&client.key_pem, &stranger_leaf.key_pem] {
            let body = secret_text.lines().nth(1).unwrap();
            assert!(!e.contains(body), "{e}");
        }
        assert!(!e.contains("wrong"), "{e}");
    }
}

#[test]
fn trust_flags_parse() {
    use clap::Parser;
    let c = sse_ingest::Config::try_parse_from(["sse-ingest"]).unwrap();
    assert_eq!(c.trust_bundle, None);
    assert!(!c.no_system_roots, "system roots are on by default");
    let c = sse_ingest::Config::try_parse_from([
        "sse-ingest",
        "--trust-bundle",
        "/etc/sse/bundle",
        "--no-system-roots",
    ])
    .unwrap();
    assert_eq!(c.trust_bundle, Some("/etc/sse/bundle".into()));
    assert!(c.no_system_roots);
}
