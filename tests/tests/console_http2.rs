//! The console over HTTP/2, with the real `sse-console` serving HTTPS with a generated
//! certificate on loopback (its services at a closed port: the streams table still refreshes
//! every second, showing that ingest cannot be reached).
//!
//! A browser opens at most six HTTP/1.1 connections per host and each live page holds one, so a
//! seventh live tab never loaded. Here headless Chromium opens more than six live pages, each
//! over `h2`, and every one receives its live updates. Over one HTTP/2 connection (no `Host`
//! header, only `:authority`, as browsers send it) a same-origin login POST passes and
//! cross-site POSTs are refused; the pre-login body cap holds per request. At SIGTERM, live
//! views read by curl over HTTP/2 and HTTP/1.1 end cleanly and the console exits.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine as _;
use bytes::Bytes;
use fantoccini::Locator;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::PublicKeyData as _;
use rustls_pki_types::pem::PemObject;
use sha2::Digest as _;
use sse_e2e::browser::Browser;
use sse_e2e::pki::Pki;
use sse_e2e::procs::Service;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::oneshot;

const TOKEN: &str = "console-token-0c1f7e3a-http2-never-shown";
/// Live pages open at once in one browser: more than its six HTTP/1.1 connections to a host.
const TABS: usize = 8;

/// `sse-console` serving HTTPS on loopback, with its certificate's files.
struct Https {
    console: Service,
    /// Holds the certificate files while the console runs.
    _dir: tempfile::TempDir,
    /// The CA that signed the console's certificate, PEM file.
    ca: PathBuf,
    /// base64 of the SHA-256 of the certificate's public key: what Chromium's
    /// `--ignore-certificate-errors-spki-list` trusts (that key only).
    spki: String,
}

impl Https {
    /// Starts the console for `localhost` with `extra` flags.
    async fn start(extra: &[String]) -> Https {
        let pki = Pki::new().unwrap();
        let leaf = pki.server(&["localhost"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let cert = write("tls.crt", &format!("{}{}", leaf.cert_pem, leaf.chain_pem));
        let key = write("tls.key", &leaf.key_pem);
        let ca = write("ca.crt", &pki.ca_pem);
        let public = rcgen::KeyPair::from_pem(&leaf.key_pem)
            .unwrap()
            .subject_public_key_info();
        let spki = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(public));
        let mut args: Vec<String> = [
            "--ingest",
            "http://127.0.0.1:9",
            "--schema",
            "http://127.0.0.1:9",
            "--publisher",
            "http://127.0.0.1:9",
        ]
        .map(String::from)
        .to_vec();
        args.extend([
            "--console-tls-cert".to_string(),
            cert.display().to_string(),
            "--console-tls-key".to_string(),
            key.display().to_string(),
        ]);
        args.extend_from_slice(extra);
        let console = Service::start_flagged("sse-console", "--console-listen", &args, &[])
            .await
            .unwrap();
        Https {
            console,
            _dir: dir,
            ca,
            spki,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.console.addr.port())
    }

    /// What a page of the console sends as its `Origin`.
    fn origin(&self) -> String {
        self.url("")
    }

    /// curl with the console's CA and `localhost` pinned to its address, then `args`.
    fn curl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("curl");
        let resolve = format!("localhost:{}:127.0.0.1", self.console.addr.port());
        cmd.args(["-sS", "--cacert"])
            .arg(&self.ca)
            .args(["--resolve", &resolve])
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_six_live_pages_in_one_browser_all_get_their_live_updates() {
    let c = Https::start(&[]).await;
    let trust = format!("--ignore-certificate-errors-spki-list={}", c.spki);
    let Some(browser) = Browser::start_with(&[trust]).await.unwrap() else {
        return;
    };
    let result = live_tabs(&browser, &c).await;
    if let Err(e) = result {
        let shot = browser.screenshot("failed-http2-tabs").await;
        panic!(
            "{e:#}\n(screenshot {shot:?})\nconsole log:\n{}",
            c.console.log_text()
        );
    }
    browser.close().await.unwrap();
}

/// Opens [`TABS`] tabs on `/streams`, each following the live table, then checks that every one
/// of them has had its table replaced by a live update.
async fn live_tabs(b: &Browser, c: &Https) -> anyhow::Result<()> {
    // A page that cannot load fails the test within the deadline (the driver's default is 5 min).
    let timeouts = fantoccini::wd::TimeoutConfiguration::new(None, Some(sse_e2e::DEADLINE), None);
    b.client.update_timeouts(timeouts).await?;
    let mut tabs = vec![b.client.window().await?];
    for i in 0..TABS {
        if i > 0 {
            let tab = b.client.new_window(true).await?.handle;
            b.client.switch_to_window(tab.clone()).await?;
            tabs.push(tab);
        }
        // Over HTTP/1.1 the seventh page would wait here for a connection until the page-load
        // timeout: six are held by the live tables of the tabs before it.
        b.client
            .goto(&c.url("/streams"))
            .await
            .with_context(|| format!("open /streams in tab {}", i + 1))?;
        b.wait_for("table#streams").await?;
        let protocol = b
            .client
            .execute(
                "return performance.getEntriesByType('navigation')[0].nextHopProtocol",
                vec![],
            )
            .await?;
        anyhow::ensure!(protocol == "h2", "tab {} loaded over {protocol}", i + 1);
        // Marks the table shown now; a live update replaces it with one unmarked.
        b.client
            .execute(
                "document.querySelector('table#streams').dataset.seen = '1'",
                vec![],
            )
            .await?;
    }
    for (i, tab) in tabs.into_iter().enumerate() {
        b.client.switch_to_window(tab).await?;
        b.wait_for("table#streams:not([data-seen])")
            .await
            .with_context(|| format!("no live update in tab {}", i + 1))?;
        let problem = b
            .client
            .find(Locator::Css("p.problem"))
            .await?
            .text()
            .await?;
        anyhow::ensure!(
            problem.contains("127.0.0.1:9"),
            "tab {}: the update is not the live table: {problem}",
            i + 1
        );
    }
    Ok(())
}

/// An HTTP/2 connection to the console, as a browser opens it: TLS offering `h2` by ALPN.
async fn h2_connection(c: &Https) -> SendRequest<Full<Bytes>> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(&c.ca).unwrap();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(c.console.addr)
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake offering only h2");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let io = TokioIo::new(tls);
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// A request on `send`'s connection: its status, `Set-Cookie` values and body. hyper's
/// HTTP/2 client sends the authority as `:authority` and no `Host` header, as browsers do.
async fn exchange(
    send: &mut SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> (u16, Vec<String>, String) {
    assert!(!req.headers().contains_key(http::header::HOST));
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let cookies = resp
        .headers()
        .get_all(http::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, cookies, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_same_origin_login_passes_and_cross_site_posts_are_refused() {
    let token = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token.path(), TOKEN).unwrap();
    let token_file = token.path().display().to_string();
    let c = Https::start(&["--console-token-file".into(), token_file]).await;
    let mut send = h2_connection(&c).await;
    let get = http::Request::get(c.url("/login"))
        .body(Full::default())
        .unwrap();
    let (status, cookies, html) = exchange(&mut send, get).await;
    assert_eq!(status, 200, "GET /login over h2: {html}");
    let pre = cookies.first().expect("a pre-session cookie").clone();
    let at = html.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    let csrf = html[at..].split('"').next().unwrap().to_owned();
    let post = |path: &str, cookie: &str, origin: &str, site: &str, body: String| {
        http::Request::post(c.url(path))
            .header("cookie", cookie)
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let (ours, evil) = (c.origin(), "https://evil.example");
    let form = format!("csrf={csrf}&token={TOKEN}");

    // Each request's body cap holds on a shared connection as on a connection of its own.
    let big = format!("{form}&pad={}", "x".repeat(5000));
    let req = post("/login", &pre, &ours, "same-origin", big);
    assert_eq!(exchange(&mut send, req).await.0, 413);
    let req = post("/login", &pre, evil, "same-origin", form.clone());
    assert_eq!(exchange(&mut send, req).await.0, 403, "another Origin");
    let req = post("/login", &pre, &ours, "cross-site", form.clone());
    assert_eq!(exchange(&mut send, req).await.0, 403, "Sec-Fetch-Site");
    let req = post("/login", &pre, &ours, "same-origin", form.clone());
    let (status, cookies, page) = exchange(&mut send, req).await;
    assert_eq!(status, 303, "a same-origin login over h2: {page}");
    let session = cookies
        .iter()
        .find(|c| c.starts_with("sse_console_session="))
        .expect("a session cookie")
        .clone();
    let get = http::Request::get(c.url("/streams"))
        .header("cookie", &session)
        .body(Full::default())
        .unwrap();
    assert_eq!(exchange(&mut send, get).await.0, 200);
    let req = post("/logout", &session, evil, "cross-site", "csrf=x".into());
    assert_eq!(exchange(&mut send, req).await.0, 403);
    assert!(
        !c.console.log_text().contains(TOKEN),
        "the token reached the log"
    );
}

/// A live `/streams/live` read by curl over `http` (`--http2` or `--http1.1`): resolves once
/// the first update arrived; the task then reads to the end and returns curl's exit status and
/// the HTTP version it spoke.
fn follow(
    c: &Https,
    http: &str,
) -> (
    oneshot::Receiver<()>,
    tokio::task::JoinHandle<(ExitStatus, String)>,
) {
    let mut child = c
        .curl(&[
            "-N",
            http,
            "-w",
            "\nversion %{http_version}\n",
            &c.url("/streams/live"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("curl is installed");
    let (first, got_first) = oneshot::channel();
    let out = child.stdout.take().unwrap();
    let task = tokio::spawn(async move {
        let mut lines = BufReader::new(out).lines();
        let mut first = Some(first);
        let mut version = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            if l == "event: streams"
                && let Some(f) = first.take()
            {
                let _ = f.send(());
            }
            if let Some(v) = l.strip_prefix("version ") {
                version = v.to_owned();
            }
        }
        (child.wait().await.unwrap(), version)
    });
    (got_first, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_sigterm_live_views_end_cleanly_and_the_console_exits() {
    let mut c = Https::start(&[]).await;
    let (h2_first, h2) = follow(&c, "--http2");
    let (h1_first, h1) = follow(&c, "--http1.1");
    for first in [h2_first, h1_first] {
        tokio::time::timeout(sse_e2e::DEADLINE, first)
            .await
            .expect("a live update")
            .expect("curl reads the stream");
    }
    // Before, an open live view held the shutdown until its client went away.
    let exited = c.console.terminate(Duration::from_secs(30)).await.unwrap();
    assert!(exited.success(), "{exited}: {}", c.console.log_text());
    for (want, task) in [("2", h2), ("1.1", h1)] {
        let (status, version) = tokio::time::timeout(sse_e2e::DEADLINE, task)
            .await
            .expect("curl ends with the console")
            .unwrap();
        assert_eq!(version, want);
        // A stream cut rather than ended makes curl fail (18, 92).
        assert!(status.success(), "curl over HTTP/{want}: {status}");
    }
}
