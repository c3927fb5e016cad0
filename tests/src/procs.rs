//! The real service binaries, started as child processes on port 0; the bound address is read
//! from the `<service> listening on <addr>` line they print.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Directory of the workspace's built binaries: `$SSE_BIN_DIR`, else the target dir of this test.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SSE_BIN_DIR") {
        return d.into();
    }
    // target/<profile>/deps/<test> -> target/<profile>
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

fn tracing_free_note(name: &str, e: &anyhow::Error) {
    if std::env::var_os("SSE_TEST_LOGS").is_some() {
        eprintln!("[{name}] restart attempt failed: {e:#}");
    }
}

/// A running service process; killed when dropped.
pub struct Service {
    /// Binary name.
    pub name: String,
    /// Address it listens on.
    pub addr: SocketAddr,
    child: Child,
    /// Every line it wrote to stderr (logs), for assertions and failure output.
    pub logs: Arc<Mutex<Vec<String>>>,
    /// Every line it wrote to stdout after its address (e.g. its health listener's address).
    pub stdout: Arc<Mutex<Vec<String>>>,
    path: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    isolated: bool,
    listen_flag: &'static str,
}

impl Service {
    /// Starts `name` (e.g. `sse-publisher`) with `args` plus `--listen 127.0.0.1:0`, and `envs`.
    pub async fn start(
        name: &str,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::start_on(name, SocketAddr::from(([127, 0, 0, 1], 0)), args, envs).await
    }

    /// Starts `name` listening on `listen` (port 0 picks a free port), with `args` and `envs`.
    pub async fn start_on(
        name: &str,
        listen: SocketAddr,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::start_at(&bin_dir().join(name), listen, args, envs).await
    }

    /// Starts the binary at `path` (another build of a service, e.g. a benchmark's baseline)
    /// listening on `listen`, with `args` and `envs`.
    pub async fn start_at(
        path: &std::path::Path,
        listen: SocketAddr,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::launch(path, listen, args, envs, false, "--listen").await
    }

    /// Starts `name` on a free loopback port given by `listen_flag` instead of `--listen` (e.g.
    /// `sse-console`'s `--console-listen`), with `args` and `envs`.
    pub async fn start_flagged(
        name: &str,
        listen_flag: &'static str,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::launch(
            &bin_dir().join(name),
            listen,
            args,
            envs,
            false,
            listen_flag,
        )
        .await
    }

    /// Starts `name` on a free port with `envs` as its whole environment (and `RUST_LOG`), not
    /// the test's: what a pod whose environment its platform sets (an Akri connector's) sees.
    pub async fn start_isolated(name: &str, envs: &[(String, String)]) -> anyhow::Result<Self> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::launch(&bin_dir().join(name), listen, &[], envs, true, "--listen").await
    }

    /// Starts `name` as a pod would run it: `envs` as its whole environment (and `RUST_LOG`),
    /// `args`, and `listen` given by `listen_flag` (a manifest's address with port 0).
    pub async fn start_as_pod(
        name: &str,
        listen_flag: &'static str,
        listen: SocketAddr,
        args: &[String],
        envs: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let path = bin_dir().join(name);
        Self::launch(&path, listen, args, envs, true, listen_flag).await
    }

    async fn launch(
        path: &std::path::Path,
        listen: SocketAddr,
        args: &[String],
        envs: &[(String, String)],
        isolated: bool,
        listen_flag: &'static str,
    ) -> anyhow::Result<Self> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("binary path has no file name")?;
        anyhow::ensure!(
            path.exists(),
            "{} is not built: run `cargo build --workspace --bins` (just test does)",
            path.display()
        );
        let mut cmd = Command::new(path);
        if isolated {
            cmd.env_clear();
        }
        cmd.arg(listen_flag)
            .arg(listen.to_string())
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut stderr_read = None;
        if let Some(err) = child.stderr.take() {
            let logs = logs.clone();
            let tag = name.to_string();
            stderr_read = Some(tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(l)) = lines.next_line().await {
                    if std::env::var_os("SSE_TEST_LOGS").is_some() {
                        eprintln!("[{tag}] {l}");
                    }
                    if let Ok(mut v) = logs.lock() {
                        v.push(l);
                    }
                }
            }));
        }
        let out = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let marker = format!("{name} listening on ");
        // Lines printed before the address (e.g. the admin port's) are kept too.
        let mut before = Vec::new();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = lines.next_line().await? {
                if let Some(a) = l.strip_prefix(&marker) {
                    return Ok::<_, anyhow::Error>(a.trim().parse::<SocketAddr>()?);
                }
                before.push(l);
            }
            anyhow::bail!("{name} exited before printing its address")
        })
        .await
        .with_context(|| format!("{name} did not print its address"));
        let addr = match addr {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) | Err(e) => {
                let why = exit_story(&mut child, stderr_read, &logs).await;
                return Err(e.context(why));
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        let stdout = Arc::new(Mutex::new(before));
        let printed = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Ok(mut v) = printed.lock() {
                    v.push(l);
                }
            }
        });
        Ok(Self {
            name: name.to_string(),
            addr,
            child,
            logs,
            stdout,
            path: path.to_path_buf(),
            args: args.to_vec(),
            envs: envs.to_vec(),
            isolated,
            listen_flag,
        })
    }

    /// Kills the process with SIGKILL (no drain, no goodbye) and waits for it to exit.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill -9")?;
        Ok(())
    }

    /// Starts the same binary again with the same arguments, on the same address it had (so
    /// its peers find it again); the logs keep accumulating.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let started = tokio::time::Instant::now();
        let next = loop {
            let (path, addr, isolated) = (&self.path, self.addr, self.isolated);
            match Self::launch(
                path,
                addr,
                &self.args,
                &self.envs,
                isolated,
                self.listen_flag,
            )
            .await
            {
                Ok(next) => break next,
                // The old socket may linger for a moment after a kill.
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    tracing_free_note(&self.name, &e);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let old_logs = std::mem::take(&mut *self.logs.lock().map_err(|_| anyhow::anyhow!("logs"))?);
        if let Ok(mut new) = next.logs.lock() {
            let mut all = old_logs;
            all.push(format!("---- {} restarted ----", self.name));
            all.append(&mut new);
            *new = all;
        }
        *self = next;
        Ok(())
    }

    /// Resident memory of the process in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory the process ever had, in KiB (`VmHWM` of `/proc/<pid>/status`):
    /// a peak no sampling can miss.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }

    /// `http://<addr>`, the form the services take for their peers.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the service printed after `prefix` on stdout (e.g. `sse-schema health
    /// listening on `), once it has.
    pub async fn printed_addr(&self, prefix: &str) -> anyhow::Result<SocketAddr> {
        let stdout = self.stdout.clone();
        let prefix = prefix.to_string();
        crate::eventually(&format!("{} printing {prefix:?}", self.name), || {
            let lines = stdout.lock().map(|v| v.clone()).unwrap_or_default();
            let found = lines
                .iter()
                .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok());
            async move { found }
        })
        .await
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status (at most `timeout`).
    pub async fn terminate(
        &mut self,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        Ok(tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| {
                format!("{} did not exit within {timeout:?} of SIGTERM", self.name)
            })??)
    }

    /// All log lines so far, joined.
    pub fn log_text(&self) -> String {
        self.logs.lock().map(|v| v.join("\n")).unwrap_or_default()
    }
}

/// What a binary that was expected to exit on its own did.
pub struct Exited {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Exited {
    /// How it ended and what it printed, for a failed assertion's message.
    pub fn told(&self) -> String {
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary `name` with `args` until it exits (at most [`crate::DEADLINE`]: one that
/// serves instead fails the test rather than hanging it), with no `RESOURCES_DIR` from the
/// environment.
pub async fn run_to_exit(name: &str, args: &[&str]) -> anyhow::Result<Exited> {
    run_to_exit_with(name, args, &[]).await
}

/// [`run_to_exit`] with these variables added to the environment.
pub async fn run_to_exit_with(
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
) -> anyhow::Result<Exited> {
    let mut cmd = to_exit(name, args);
    cmd.envs(envs.iter().copied());
    finish(name, args, &mut cmd).await
}

/// Runs `name` (from [`bin_dir`]) with its standard output a pipe whose reader is already gone,
/// as `name ... | head` leaves it once `head` has its lines, and waits for it to exit.
pub async fn run_into_closed_pipe(name: &str, args: &[&str]) -> anyhow::Result<Exited> {
    let (reader, writer) = std::io::pipe().context("pipe")?;
    drop(reader);
    let mut cmd = to_exit(name, args);
    cmd.stdout(writer);
    finish(name, args, &mut cmd).await
}

/// `name` with `args`, as the tests run a binary to its exit: no standard input, its output
/// captured, and none of the variables a developer's shell may hold that would change what it
/// does.
fn to_exit(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_dir().join(name));
    cmd.args(args)
        .env_remove("RESOURCES_DIR")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Waits (within [`crate::DEADLINE`]) for `cmd` to exit, with what it printed. Spawned, not
/// `output()`: that would capture stdout even where a caller set it to something else.
async fn finish(name: &str, args: &[&str], cmd: &mut Command) -> anyhow::Result<Exited> {
    let child = cmd.spawn().with_context(|| format!("spawn {name}"))?;
    let out = tokio::time::timeout(crate::DEADLINE, child.wait_with_output())
        .await
        .with_context(|| format!("{name} {args:?} did not exit"))?
        .with_context(|| format!("wait for {name}"))?;
    Ok(Exited {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// What `sse-connector` prints before the addresses its schema service and publisher bound
/// (read them with [`Service::printed_addr`]).
pub const CONNECTOR_SCHEMA_PRINTS: &str = "sse-connector schema listening on ";
/// See [`CONNECTOR_SCHEMA_PRINTS`].
pub const CONNECTOR_PUBLISHER_PRINTS: &str = "sse-connector publisher listening on ";

/// `sse-connector`'s usual test arguments: the schema service and the publisher on any free
/// loopback port (bound by the process itself, so no other test can take them in between; they
/// print their addresses), the broker at `mqtt_url`, resources read from `resources`, schemas
/// kept in `data`.
pub fn connector_args(
    mqtt_url: &str,
    resources: &std::path::Path,
    data: &std::path::Path,
) -> Vec<String> {
    [
        "--schema-listen",
        "127.0.0.1:0",
        "--publisher-listen",
        "127.0.0.1:0",
        "--mqtt-url",
        mqtt_url,
        "--resources",
        &resources.display().to_string(),
        "--data-dir",
        &data.display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

/// Why a child never printed its address: its exit status and its last log lines, so a failure
/// in CI says what the service said rather than only that it stopped.
async fn exit_story(
    child: &mut Child,
    stderr_read: Option<tokio::task::JoinHandle<()>>,
    logs: &Mutex<Vec<String>>,
) -> String {
    let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
        Ok(Ok(s)) => s.to_string(),
        _ => "still running".to_string(),
    };
    if let Some(read) = stderr_read {
        // Its stderr closes when it exits; the reader then holds every line.
        let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    }
    let lines = logs.lock().map(|v| v.clone()).unwrap_or_default();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("it {status}; its last log lines:\n{tail}")
}

/// A child's output as it comes, readable while the child runs: what `pipe` (its stdout or
/// stderr) writes is appended to a shared string until it closes. Several pipes may share one.
pub fn read_into(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    to: &Arc<Mutex<String>>,
) {
    use tokio::io::AsyncReadExt as _;
    let sink = to.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .expect("the output lock")
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}
