//! The Python baseline: `bench/python/bridge.py` (httpx-sse + paho-mqtt v5, QoS 1, one reader per
//! stream), installed with `pip --user` when missing and run as a child process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Un-acknowledged publishes the bridge allows (its bound on paho's queue).
pub const IN_FLIGHT: u32 = 1000;

const IMPORTS: &str =
    "import httpx, httpx_sse, paho.mqtt.client as m; assert hasattr(m, 'CallbackAPIVersion')";

/// The bridge script shipped in this crate.
pub fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/bridge.py")
}

fn importable() -> bool {
    std::process::Command::new("python3")
        .args(["-c", IMPORTS])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure python3 can import httpx-sse and paho-mqtt 2, installing them with
/// `pip install --user` when missing. `Err` says why the Python rows must be skipped.
pub fn ensure_installed() -> Result<(), String> {
    if importable() {
        return Ok(());
    }
    eprintln!("bench: installing httpx-sse and paho-mqtt with pip --user for the Python baseline");
    let pkgs = ["httpx-sse>=0.4", "httpx>=0.25", "paho-mqtt>=2,<3"];
    let attempt = |extra: &[&str]| {
        std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--user",
            ])
            .args(extra)
            .args(pkgs)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
    };
    let mut why = String::new();
    for extra in [&[][..], &["--break-system-packages"][..]] {
        match attempt(extra) {
            Ok(o) if o.status.success() && importable() => return Ok(()),
            Ok(o) => {
                why = String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("pip failed")
                    .to_string()
            }
            Err(e) => why = format!("cannot run python3 -m pip: {e}"),
        }
    }
    Err(format!(
        "pip could not install httpx-sse and paho-mqtt: {why}"
    ))
}

/// A running bridge; killed when dropped.
pub struct Bridge {
    child: Child,
}

impl Bridge {
    /// Starts the bridge for `streams` streams of the source at `url`, publishing to
    /// `<prefix>/s<i>` on the broker at `port`; returns once it connected to the broker.
    pub async fn start(url: &str, streams: u32, port: u16, prefix: &str) -> anyhow::Result<Self> {
        let mut child = Command::new("python3")
            .arg(script())
            .args(["--url", url, "--streams", &streams.to_string()])
            .args(["--mqtt-port", &port.to_string(), "--topic-prefix", prefix])
            .args(["--max-inflight", &IN_FLIGHT.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawn python3 bridge.py")?;
        let out = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await? {
                if l.starts_with("bridge ready") {
                    return Ok(());
                }
            }
            anyhow::bail!("bridge.py exited before it was ready")
        })
        .await
        .context("bridge.py did not get ready")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child })
    }

    /// The process id, for its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
