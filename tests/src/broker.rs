//! A real Mosquitto broker on a free loopback port, stopped when dropped. It can take extra
//! configuration lines (ACLs, password files, TLS), keep its state on disk, and be stopped and
//! started again on the same port, for fault tests.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::{Child, Command};

use crate::listener::{self, PORT_ATTEMPTS, Started};

/// A running `mosquitto` process.
pub struct Mosquitto {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    child: Option<Child>,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

/// Settings of the default configuration; a line of the extra configuration that starts with
/// one of these keys replaces the default line.
const DEFAULTS: &[(&str, &str)] = &[
    ("allow_anonymous", "allow_anonymous true"),
    ("persistence", "persistence false"),
    ("max_inflight_messages", "max_inflight_messages 0"),
    ("max_queued_messages", "max_queued_messages 100000"),
    // Mosquitto leaves Nagle's algorithm on: after its 2-byte PINGRESP to a subscriber, the
    // messages that follow wait for that subscriber's delayed ACK (17 ms at 1,000 events/s in
    // the bench, once per keep-alive), which is the broker's, not the measured client's.
    ("set_tcp_nodelay", "set_tcp_nodelay true"),
];

impl Mosquitto {
    /// The broker's process id while it runs, to read what it costs (`/proc/<pid>/stat`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Starts Mosquitto with anonymous access on a free port and waits until it accepts connections.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Starts Mosquitto on a free port with `extra` configuration lines after the listener line
    /// (e.g. `acl_file /path`, `password_file /path`, `require_certificate true`). `{dir}` in a
    /// line is replaced by the broker's own directory (for `persistence_location {dir}/`).
    pub async fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_trying(None, extra).await
    }

    /// Starts Mosquitto on `first` (when given), else on a free port; a port another process
    /// took meanwhile (it was only free a moment ago) is given up for another one.
    async fn start_trying(mut first: Option<u16>, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Started as root, mosquitto drops to its own user: let it write its database here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let mut m = Self {
            port: 0,
            child: None,
            conf: dir.path().join("mosquitto.conf"),
            _dir: dir,
        };
        for _ in 0..PORT_ATTEMPTS {
            m.port = match first.take() {
                Some(p) => p,
                None => free_port()?,
            };
            std::fs::write(&m.conf, config(m.port, m.dir(), extra))?;
            match m.spawn().await? {
                Started::Ours => return Ok(m),
                Started::PortTaken => m.kill().await,
            }
        }
        anyhow::bail!("mosquitto found every one of {PORT_ATTEMPTS} free ports taken")
    }

    /// Starts Mosquitto that keeps sessions and queued messages on disk, so a stop with
    /// [`Mosquitto::terminate`] and a [`Mosquitto::restart`] lose nothing.
    pub async fn start_persistent() -> anyhow::Result<Self> {
        Self::start_with(&["persistence true", "persistence_location {dir}/"]).await
    }

    /// Starts the process and waits until the port accepts connections; whose listener that
    /// is decides between [`Started::Ours`] and [`Started::PortTaken`].
    async fn spawn(&mut self) -> anyhow::Result<Started> {
        let child = Command::new(mosquitto_path())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start mosquitto: install it with `just setup` (apt mosquitto)")?;
        let child = self.child.insert(child);
        listener::wait_accepting(child, self.port, "mosquitto")
            .await
            .with_context(|| format!("config:\n{}", self.config_text()))
    }

    /// The configuration file's text (for failure messages).
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(&self.conf).unwrap_or_default()
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's own directory (`{dir}` in its configuration lines): where a test has it
    /// write a log file or its state, to read them back.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Stops the broker now.
    pub async fn stop(mut self) {
        self.kill().await;
    }

    /// Kills the broker (SIGKILL) and waits for it to exit; [`Mosquitto::restart`] starts it again.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Stops the broker with SIGTERM (it saves its state when persistent) and waits for it to
    /// exit; [`Mosquitto::restart`] starts it again on the same port.
    pub async fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut c) = self.child.take() else {
            return Ok(());
        };
        let pid = c.id().context("mosquitto already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(20), c.wait())
            .await
            .context("mosquitto did not exit after SIGTERM")??;
        Ok(())
    }

    /// Starts the broker again on the same port with the same configuration (and, when
    /// persistent, the state it saved).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "mosquitto is still running");
        match self.spawn().await? {
            Started::Ours => Ok(()),
            Started::PortTaken => {
                self.kill().await;
                anyhow::bail!("port {} was taken while mosquitto was down", self.port)
            }
        }
    }
}

fn config(port: u16, dir: &Path, extra: &[&str]) -> String {
    let mut out = format!("listener {port} 127.0.0.1\n");
    for (key, line) in DEFAULTS {
        let replaced = extra
            .iter()
            .any(|l| l.split_whitespace().next() == Some(*key));
        if !replaced {
            out.push_str(line);
            out.push('\n');
        }
    }
    for line in extra {
        out.push_str(&line.replace("{dir}", &dir.display().to_string()));
        out.push('\n');
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_another_process_listens_on_is_given_up_for_a_free_one() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let m = Mosquitto::start_trying(Some(port), &[]).await.unwrap();
        assert_ne!(m.port, port, "the broker took the port a listener holds");
        let pid = m.pid().unwrap();
        assert_ne!(listener::held_by(pid, m.port), Some(false));
    }

    #[test]
    fn extra_lines_replace_defaults() {
        let c = config(
            1883,
            Path::new("/d"),
            &["persistence true", "persistence_location {dir}/"],
        );
        assert!(c.starts_with("listener 1883 127.0.0.1\n"));
        assert!(!c.contains("persistence false"));
        assert!(c.contains("persistence true\npersistence_location /d/\n"));
        assert!(c.contains("allow_anonymous true"));
    }
}
