//! A real HTTP proxy (Debian's `tinyproxy`) on a free loopback port, stopped when dropped: for
//! the tests of streams read through a proxy (absolute-form requests for `http`, `CONNECT`
//! tunnels for `https`). Its log records every request, so a test can check the stream went
//! through it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::broker::free_port;

/// A running `tinyproxy`.
pub struct Tinyproxy {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    log: PathBuf,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    /// Starts tinyproxy for loopback clients, asking for `Proxy-Authorization: Basic` with
    /// `basic_auth` (user, password) when given; returns once it accepts connections.
    pub async fn start(basic_auth: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        // No `ConnectPort` line: CONNECT to any port (the test servers use free ports).
        let mut text = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 600\nLogFile \"{}\"\nLogLevel Info\nMaxClients 100\nAllow 127.0.0.1\n",
            log.display()
        );
        if let Some((user, password)) = basic_auth {
            text.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        std::fs::write(&conf, text)?;
        // Started as root, tinyproxy drops to nobody: let it write its log here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let mut child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start tinyproxy: install it with `just setup` (apt tinyproxy)")?;
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                anyhow::bail!("tinyproxy exited at start ({status})");
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(20),
                "tinyproxy did not accept connections on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            port,
            log,
            _child: child,
            _dir: dir,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
