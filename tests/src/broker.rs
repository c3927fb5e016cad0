//! A real Mosquitto broker on a free loopback port, stopped when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::process::{Child, Command};

/// A running `mosquitto` process.
pub struct Mosquitto {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts Mosquitto with anonymous access on a free port and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let conf: PathBuf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 0\nmax_queued_messages 100000\n"
            ),
        )?;
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start mosquitto: install it with `just setup` (apt mosquitto)")?;
        let start = Instant::now();
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(20),
                "mosquitto did not accept connections on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            port,
            child,
            _dir: dir,
        })
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker now.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn mosquitto_path() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
