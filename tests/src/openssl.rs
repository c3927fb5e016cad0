//! Certificates as people make them with the `openssl` command line (an X.509 v1 client
//! certificate from `openssl x509 -req` without an extension file, which rcgen cannot write), and
//! an SSE server on OpenSSL (Python's `ssl`) requiring client certificates, to check the
//! connector against what an OpenSSL-based device accepts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Runs `openssl` with `args` in `dir`, failing with its stderr.
pub fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run openssl (apt-get install openssl)")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A CA made with `openssl req -x509`, which issues client certificates as `openssl x509 -req`.
pub struct OpensslCa {
    dir: PathBuf,
}

impl OpensslCa {
    /// A fresh CA (ECDSA P-256) with common name `cn`, its files in `dir`.
    pub fn new(dir: &Path, cn: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-out",
                "ca.key",
            ],
        )?;
        let subject = format!("/CN={cn}");
        openssl(
            dir,
            &[
                "req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", &subject, "-out",
                "ca.pem",
            ],
        )?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate file (what a server verifying clients trusts).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// An X.509 v1 client certificate for `cn`: a SEC1 ECDSA P-256 key (`openssl ecparam
    /// -genkey`), a CSR, and `openssl x509 -req` without an extension file. Returns the
    /// certificate and key files (PEM).
    pub fn v1_client(&self, cn: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let key = format!("{cn}.key");
        let csr = format!("{cn}.csr");
        let cert = format!("{cn}.pem");
        openssl(
            &self.dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &key,
            ],
        )?;
        let subject = format!("/CN={cn}");
        openssl(
            &self.dir,
            &["req", "-new", "-key", &key, "-subj", &subject, "-out", &csr],
        )?;
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "1",
                "-days",
                "2",
                "-out",
                &cert,
            ],
        )?;
        let text = openssl(&self.dir, &["x509", "-in", &cert, "-noout", "-text"])?;
        anyhow::ensure!(
            text.contains("Version: 1 (0x0)"),
            "openssl made a certificate that is not v1:\n{text}"
        );
        Ok((self.dir.join(cert), self.dir.join(key)))
    }
}

/// The server: HTTP/1.1 over Python's `ssl` (OpenSSL), requiring a client certificate issued by
/// the CA it is given. Each GET gets `id: 1` with data `{"cn":"<client CN>"}`, then keep-alive
/// comments until the client leaves. Prints `port N`, then `client <CN>` per request and
/// `tls-error <reason>` per failed handshake.
const SERVER_PY: &str = r#"
import http.server, ssl, sys, time
cert, key, ca = sys.argv[1:4]
def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def handle(self):
        try:
            self.connection.do_handshake()
        except (ssl.SSLError, OSError) as e:
            say("tls-error %s" % e)
            return
        super().handle()
    def do_GET(self):
        subject = dict(x[0] for x in self.connection.getpeercert().get("subject", ()))
        cn = subject.get("commonName", "")
        say("client %s" % cn)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            self.wfile.write(('id: 1\ndata: {"cn":"%s"}\n\n' % cn).encode())
            self.wfile.flush()
            while True:
                time.sleep(2)
                self.wfile.write(b": keep-alive\n\n")
                self.wfile.flush()
        except OSError:
            pass
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def get_request(self):
        sock, addr = self.socket.accept()
        return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
context.load_verify_locations(ca)
context.verify_mode = ssl.CERT_REQUIRED
server = Server(("127.0.0.1", 0), Handler)
say("port %d" % server.server_address[1])
server.serve_forever()
"#;

/// A running OpenSSL SSE server (Python 3); killed when dropped.
pub struct OpensslSource {
    /// Where it listens.
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    _child: Child,
}

impl OpensslSource {
    /// Serves with the server certificate chain `cert` and key `key` (PEM files), requiring
    /// client certificates issued by the CA in `client_ca`.
    pub async fn start(cert: &Path, key: &Path, client_ca: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(SERVER_PY)
            .arg(cert)
            .arg(key)
            .arg(client_ca)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot run python3")?;
        let out = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let port: u16 = tokio::time::timeout(Duration::from_secs(30), async {
            let first = lines.next_line().await?.context("server exited")?;
            first
                .strip_prefix("port ")
                .context("no port line")?
                .parse::<u16>()
                .context("bad port")
        })
        .await
        .context("the OpenSSL server did not start")??;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Ok(mut v) = sink.lock() {
                    v.push(l);
                }
            }
        });
        Ok(Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            lines: seen,
            _child: child,
        })
    }

    /// `https://<addr>`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The common names of the client certificates of every request so far.
    pub fn clients(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("client ").map(str::to_string))
            .collect()
    }

    /// Every line the server printed after its port.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
