//! The console's access rules end to end, with the real `sse-console` binary and raw HTTP/1.1
//! (so the test controls every header): on loopback the pages work without login but a foreign
//! `Host` is refused; off loopback pages redirect to `/login`, a wrong token is refused, the
//! right one sets an HttpOnly, SameSite cookie and the pages work; POSTs without the CSRF token
//! or from another site get 403; login attempts are limited per client; every response has the
//! CSP; bad flags exit 64; HTTPS works with a generated certificate and its cookie is `Secure`,
//! and a rotated certificate is served without a restart.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use sse_e2e::pki::Pki;
use sse_e2e::procs::{bin_dir, run_to_exit};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const TOKEN: &str = "console-token-5b1e0c7a-never-shown";

/// A running `sse-console`; killed when dropped.
struct Console {
    addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl Console {
    /// Starts the console on `listen` with `args`; its services point at a closed port.
    async fn start(listen: SocketAddr, args: &[&str]) -> Console {
        let mut child = Command::new(bin_dir().join("sse-console"))
            .arg("--console-listen")
            .arg(listen.to_string())
            .args([
                "--ingest",
                "http://127.0.0.1:9",
                "--schema",
                "http://127.0.0.1:9",
            ])
            .args(["--publisher", "http://127.0.0.1:9"])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sse-console is built: cargo build --workspace --bins");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let err = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                sink.lock().unwrap().push(l);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = tokio::time::timeout(sse_e2e::DEADLINE, async {
            while let Some(l) = out.next_line().await.unwrap() {
                if let Some(a) = l.strip_prefix("sse-console listening on ") {
                    return a.trim().parse::<SocketAddr>().unwrap();
                }
            }
            panic!("sse-console exited: {:?}", logs.lock().unwrap());
        })
        .await
        .expect("sse-console prints its address");
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        Console { addr, logs, child }
    }

    /// Starts the console on loopback with [`TOKEN`] in a token file in `dir` (the login on).
    async fn with_token(dir: &std::path::Path) -> Console {
        let token_file = dir.join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let tf = token_file.display().to_string();
        Console::start(
            "127.0.0.1:0".parse().unwrap(),
            &["--console-token-file", &tf],
        )
        .await
    }

    fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// The descriptors the process holds open.
    fn fds(&self) -> usize {
        let pid = self.child.id().expect("running");
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    /// Waits until a log line contains `text`.
    async fn logged(&self, text: &str) {
        let waited = tokio::time::timeout(sse_e2e::DEADLINE, async {
            while !self.log_text().contains(text) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        waited
            .await
            .unwrap_or_else(|_| panic!("no {text:?} in {}", self.log_text()));
    }
}

/// One HTTP response, as read off the wire.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    /// The value of the page's hidden CSRF field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a CSRF field")
            + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }

    fn assert_csp(&self) {
        let csp = self.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "no CSP on {self:?}"
        );
    }
}

/// `name=value` of a `Set-Cookie` line, for the next request's `Cookie`.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Sends `head` (request line and headers, without the final blank line) and `body`, and
/// reads the whole response (the request asks the server to close).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, head: &str, body: &str) -> Resp {
    let req = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify: what was read is the response.
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A plain HTTP request to `c`; `host` is the `Host` header, `extra` more header lines.
async fn http(
    c: &Console,
    method: &str,
    path: &str,
    host: &str,
    extra: &[&str],
    body: &str,
) -> Resp {
    let tcp = TcpStream::connect(c.addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}");
    for h in extra {
        head.push_str("\r\n");
        head.push_str(h);
    }
    if method == "POST" {
        head.push_str("\r\nContent-Type: application/x-www-form-urlencoded");
    }
    let r = exchange(tcp, &head, body).await;
    r.assert_csp();
    r
}

/// The machine's first non-loopback IPv4 address, if it has one.
fn own_ip() -> Option<IpAddr> {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_loopback_pages_need_no_login_but_a_foreign_host_is_refused() {
    let c = Console::start("127.0.0.1:0".parse().unwrap(), &[]).await;
    let host = c.addr.to_string();
    let page = http(&c, "GET", "/streams", &host, &[], "").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains(r#"id="streams""#), "{page:?}");
    let localhost = format!("localhost:{}", c.addr.port());
    assert_eq!(
        http(&c, "GET", "/streams", &localhost, &[], "")
            .await
            .status,
        200
    );

    // DNS rebinding: the browser names the attacker's host, whatever it resolved to.
    let evil = format!("evil.example:{}", c.addr.port());
    let refused = http(&c, "GET", "/streams", &evil, &[], "").await;
    assert_eq!(refused.status, 421, "{refused:?}");
    assert!(refused.body.contains("loopback"), "{refused:?}");
    let wrong_port = http(&c, "GET", "/streams", "127.0.0.1:1", &[], "").await;
    assert_eq!(wrong_port.status, 421);

    // A POST without the CSRF field, or from another site, is refused even on loopback.
    let cookie = format!(
        "Cookie: {}",
        pair(page.set_cookie("sse_console_pre").unwrap())
    );
    let no_csrf = http(&c, "POST", "/logout", &host, &[cookie.as_str()], "x=1").await;
    assert_eq!(no_csrf.status, 403);
    assert!(no_csrf.body.contains("CSRF check failed"), "{no_csrf:?}");
    let cross = ["Sec-Fetch-Site: cross-site", cookie.as_str()];
    let cross = http(&c, "POST", "/logout", &host, &cross, "x=1").await;
    assert_eq!(cross.status, 403);
    assert!(cross.body.contains("cross-site"), "{cross:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_a_login_with_the_token_opens_the_pages() {
    let Some(ip) = own_ip() else {
        println!("skipped: this machine has no non-loopback IPv4 address (hostname -I)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let tf = token_file.display().to_string();
    let c = Console::start(
        SocketAddr::new(ip, 0),
        &["--console-token-file", &tf, "--console-allow-http"],
    )
    .await;
    let host = c.addr.to_string();

    // Without a session: page loads go to the login, live streams and POSTs get 401.
    let page = http(&c, "GET", "/streams", &host, &[], "").await;
    assert_eq!(page.status, 303, "{page:?}");
    assert_eq!(page.header("location"), Some("/login"));
    assert_eq!(
        http(&c, "GET", "/streams/live", &host, &[], "")
            .await
            .status,
        401
    );
    assert_eq!(
        http(&c, "POST", "/logout", &host, &[], "").await.status,
        401
    );
    assert_eq!(
        http(&c, "GET", "/static/console.css", &host, &[], "")
            .await
            .status,
        200
    );

    let pre = format!(
        "Cookie: {}",
        pair(page.set_cookie("sse_console_pre").unwrap())
    );
    let form = http(&c, "GET", "/login", &host, &[pre.as_str()], "").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains(r#"id="login""#) && form.body.contains(r#"name="token""#));
    let csrf = form.csrf();

    // The CSRF token is required, and must be this caller's.
    let right = format!("token={TOKEN}");
    let r = http(&c, "POST", "/login", &host, &[pre.as_str()], &right).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = http(
        &c,
        "POST",
        "/login",
        &host,
        &[pre.as_str()],
        &format!("csrf=00{}&{right}", &csrf[2..]),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let other = "Cookie: sse_console_pre=".to_owned() + &"a".repeat(64);
    let r = http(
        &c,
        "POST",
        "/login",
        &host,
        &[other.as_str()],
        &format!("csrf={csrf}&{right}"),
    )
    .await;
    assert_eq!(r.status, 403, "a token bound to another cookie: {r:?}");
    let origin = [pre.as_str(), "Origin: http://evil.example"];
    let r = http(
        &c,
        "POST",
        "/login",
        &host,
        &origin,
        &format!("csrf={csrf}&{right}"),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");

    let wrong = http(
        &c,
        "POST",
        "/login",
        &host,
        &[pre.as_str()],
        &format!("csrf={csrf}&token=guess"),
    )
    .await;
    assert_eq!(wrong.status, 401, "{wrong:?}");
    assert!(wrong.body.contains("Wrong token."), "{wrong:?}");
    assert!(wrong.set_cookie("sse_console_session").is_none());

    let ok = http(
        &c,
        "POST",
        "/login",
        &host,
        &[pre.as_str()],
        &format!("csrf={csrf}&{right}"),
    )
    .await;
    assert_eq!(ok.status, 303, "{ok:?}");
    let session = ok
        .set_cookie("sse_console_session")
        .expect("a session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(session.contains(part), "{session}");
    }
    assert!(!session.contains("Secure"), "plain HTTP: {session}");
    let id = pair(session);
    assert_eq!(
        id.len(),
        "sse_console_session=".len() + 64,
        "256 random bits: {id}"
    );

    let cookies = format!("Cookie: {}; {id}", &pre["Cookie: ".len()..]);
    let page = http(&c, "GET", "/streams", &host, &[cookies.as_str()], "").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains(r#"id="streams""#));

    // The session's own CSRF token ends it; then the pages ask for the login again.
    let logged_in = http(&c, "GET", "/login", &host, &[cookies.as_str()], "").await;
    let csrf = logged_in.csrf();
    let out = http(
        &c,
        "POST",
        "/logout",
        &host,
        &[cookies.as_str()],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, 303, "{out:?}");
    assert_eq!(
        http(&c, "GET", "/streams", &host, &[cookies.as_str()], "")
            .await
            .status,
        303
    );

    let logs = c.log_text();
    assert!(
        logs.contains("console login refused: wrong token"),
        "{logs}"
    );
    assert!(!logs.contains(TOKEN) && !logs.contains("guess"), "{logs}");
}

/// A login form fetched and posted from the loopback address `from` (Linux accepts any of
/// 127/8 as a source): the POST's response.
async fn login_from(c: &Console, from: [u8; 4], token: &str) -> Resp {
    let host = c.addr.to_string();
    let send = async |method: &str, extra: &[&str], body: &str| {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let tcp = socket.connect(c.addr).await.unwrap();
        let mut head = format!("{method} /login HTTP/1.1\r\nHost: {host}");
        for h in extra {
            head.push_str("\r\n");
            head.push_str(h);
        }
        head.push_str("\r\nContent-Type: application/x-www-form-urlencoded");
        exchange(tcp, &head, body).await
    };
    let form = send("GET", &[], "").await;
    let pre = format!(
        "Cookie: {}",
        pair(form.set_cookie("sse_console_pre").unwrap())
    );
    let body = format!("csrf={}&token={token}", form.csrf());
    send("POST", &[pre.as_str()], &body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_spends_its_own_login_attempts_not_everyones() {
    let dir = tempfile::tempdir().unwrap();
    let c = Console::with_token(dir.path()).await;
    // The guesser's burst is spent, then it is refused as itself.
    let guesser = [127, 0, 0, 2];
    let mut refused = None;
    for _ in 0..20 {
        let r = login_from(&c, guesser, "guess").await;
        if r.status != 401 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the guesser is limited within 20 attempts");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(
        refused.body.contains("Too many login attempts from here"),
        "{refused:?}"
    );
    // Someone else, from another address, still logs in.
    let other = login_from(&c, [127, 0, 0, 3], TOKEN).await;
    assert_eq!(other.status, 303, "{other:?}");
    assert!(
        other.set_cookie("sse_console_session").is_some(),
        "{other:?}"
    );
}

/// Reads `s` until the server closes it; what it sent (a response, or nothing).
async fn until_closed(mut s: TcpStream) -> String {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(sse_e2e::DEADLINE, s.read_to_end(&mut raw));
    read.await.expect("the server closes the connection").ok();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_are_closed_and_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let c = Console::with_token(dir.path()).await;
    let host = c.addr.to_string();
    // Half a request's headers, then silence: closed (it was held for good).
    let mut slow = TcpStream::connect(c.addr).await.unwrap();
    let head = format!("GET /login HTTP/1.1\r\nHost: {host}\r\nX-a: ");
    slow.write_all(head.as_bytes()).await.unwrap();
    until_closed(slow).await;

    // An unauthenticated body is read up to 4 KiB only, and only while it keeps coming.
    let big = "t".repeat(1 << 20);
    let r = http(&c, "POST", "/login", &host, &[], &big).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.body.contains("4 KiB"), "{r:?}");
    let mut stalled = TcpStream::connect(c.addr).await.unwrap();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ncsrf="
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = until_closed(stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");

    // Connections past the cap are closed as they come: the descriptors stay bounded.
    let before = c.fds();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(c.addr).await.unwrap());
    }
    c.logged("too many connections").await;
    // The cap (256), and a few the process may open meanwhile (its backends' dials).
    let held = c.fds().saturating_sub(before);
    assert!(
        held <= 256 + 8,
        "{held} descriptors for 300 idle connections"
    );
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_flags_exit_64_naming_the_flag() {
    let no_token = run_to_exit("sse-console", &["--console-listen", "0.0.0.0:0"])
        .await
        .unwrap();
    assert_eq!(no_token.code, Some(64), "{}", no_token.stderr);
    assert!(
        no_token.stderr.contains("--console-token-file"),
        "{}",
        no_token.stderr
    );
    assert!(
        !no_token.stdout.contains("listening on"),
        "checked before binding"
    );

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let tf = token_file.display().to_string();
    let plain = run_to_exit(
        "sse-console",
        &["--console-listen", "0.0.0.0:0", "--console-token-file", &tf],
    )
    .await
    .unwrap();
    assert_eq!(plain.code, Some(64), "{}", plain.stderr);
    assert!(
        plain.stderr.contains("--console-allow-http"),
        "{}",
        plain.stderr
    );

    std::fs::write(&token_file, "\n").unwrap();
    let empty = run_to_exit(
        "sse-console",
        &[
            "--console-listen",
            "127.0.0.1:0",
            "--console-token-file",
            &tf,
        ],
    )
    .await
    .unwrap();
    assert_eq!(empty.code, Some(64), "{}", empty.stderr);
    assert!(
        empty.stderr.contains("--console-token-file") && empty.stderr.contains("empty"),
        "{}",
        empty.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_generated_certificate_sets_a_secure_cookie() {
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["localhost"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let cert = write("tls.crt", &format!("{}{}", leaf.cert_pem, leaf.chain_pem));
    let key = write("tls.key", &leaf.key_pem);
    let token = write("token", TOKEN);
    // A token file on loopback turns the login on there too.
    let args = [
        "--console-tls-cert",
        &cert,
        "--console-tls-key",
        &key,
        "--console-token-file",
        &token,
    ];
    let c = Console::start("127.0.0.1:0".parse().unwrap(), &args).await;

    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pki_types::CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(ca.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Without resumption every handshake shows the certificate served now.
    let mut fresh = config.clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    let fresh = tokio_rustls::TlsConnector::from(Arc::new(fresh));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let host = format!("localhost:{}", c.addr.port());
    let https = async |method: &str, path: &str, extra: &str, body: &str| {
        let tcp = TcpStream::connect(c.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(Duration::from_secs(30), connector.connect(name, tcp))
            .await
            .unwrap()
            .expect("TLS handshake with the console's certificate");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}{extra}\r\nContent-Type: application/x-www-form-urlencoded"
        );
        let r = exchange(tls, &head, body).await;
        r.assert_csp();
        r
    };
    let page = https("GET", "/login", "", "").await;
    assert_eq!(page.status, 200, "{page:?}");
    let pre = page.set_cookie("sse_console_pre").unwrap();
    assert!(pre.contains("Secure"), "{pre}");
    let cookie = format!("\r\nCookie: {}", pair(pre));
    let ok = https(
        "POST",
        "/login",
        &cookie,
        &format!("csrf={}&token={TOKEN}", page.csrf()),
    )
    .await;
    assert_eq!(ok.status, 303, "{ok:?}");
    let session = ok.set_cookie("sse_console_session").unwrap();
    assert!(
        session.contains("Secure") && session.contains("HttpOnly"),
        "{session}"
    );
    let cookie = format!("\r\nCookie: {}", pair(session));
    let page = https("GET", "/streams", &cookie, "").await;
    assert_eq!(page.status, 200, "{page:?}");

    // Plain HTTP to the HTTPS port gets no page.
    let mut tcp = TcpStream::connect(c.addr).await.unwrap();
    tcp.write_all(format!("GET /streams HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut raw)).await;
    assert!(!String::from_utf8_lossy(&raw).contains("200 OK"));

    // A rotated certificate (new files renamed over the old ones, as cert-manager and kubelet
    // do) is served from the next handshake, without a restart.
    let served = async || {
        let tcp = TcpStream::connect(c.addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = fresh.connect(name, tcp).await.unwrap();
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    assert_eq!(served().await, leaf.cert_der());
    let next = pki.server(&["localhost"]).unwrap();
    let rotated_cert = write(
        "tls.crt.new",
        &format!("{}{}", next.cert_pem, next.chain_pem),
    );
    let rotated_key = write("tls.key.new", &next.key_pem);
    std::fs::rename(&rotated_key, &key).unwrap();
    std::fs::rename(&rotated_cert, &cert).unwrap();
    assert_eq!(served().await, next.cert_der(), "the rotated certificate");
    let page = https("GET", "/streams", &cookie, "").await;
    assert_eq!(
        page.status, 200,
        "the session outlives the rotation: {page:?}"
    );
}
