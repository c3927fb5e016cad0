//! A real HTTP proxy (Debian's `tinyproxy`) on a free loopback port, stopped when dropped: for
//! the tests of streams read through a proxy (absolute-form requests for `http`, `CONNECT`
//! tunnels for `https`). Its log records every request, so a test can check the stream went
//! through it.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::broker::free_port;
use crate::listener::{self, PORT_ATTEMPTS, Started};

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
        // Started as root, tinyproxy drops to nobody: let it write its log here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let log = dir.path().join("tinyproxy.log");
        // The port was free a moment ago; another process may listen there by now.
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut child = spawn(dir.path(), port, &log, basic_auth)?;
            match listener::wait_accepting(&mut child, port, "tinyproxy").await? {
                Started::Ours => {
                    return Ok(Self {
                        port,
                        log,
                        _child: child,
                        _dir: dir,
                    });
                }
                Started::PortTaken => {
                    let _ = child.kill().await;
                }
            }
        }
        anyhow::bail!("tinyproxy found every one of {PORT_ATTEMPTS} free ports taken")
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

/// Writes the configuration for `port` into `dir` and starts tinyproxy in the foreground.
fn spawn(
    dir: &std::path::Path,
    port: u16,
    log: &std::path::Path,
    basic_auth: Option<(&str, &str)>,
) -> anyhow::Result<Child> {
    let conf = dir.join("tinyproxy.conf");
    // No `ConnectPort` line: CONNECT to any port (the test servers use free ports).
    let mut text = format!(
        "Port {port}\nListen 127.0.0.1\nTimeout 600\nLogFile \"{}\"\nLogLevel Info\nMaxClients 100\nAllow 127.0.0.1\n",
        log.display()
    );
    if let Some((user, password)) = basic_auth {
        text.push_str(&format!("BasicAuth {user} {password}\n"));
    }
    std::fs::write(&conf, text)?;
    Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start tinyproxy: install it with `just setup` (apt tinyproxy)")
}
