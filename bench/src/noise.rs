//! `BENCH_NOISE=1`: a reproducible busy machine for the latency scenario. Debian's `stress-ng`
//! runs a CPU hog and a worker writing small files with an fsync after every write, both pinned
//! with `taskset` to one core, from before the scenario's first measured window until after its
//! last; the whole process group is killed when the noise is dropped, on error or panic too.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde::Serialize;

/// The program that makes the noise.
pub const STRESS_NG: &str = "stress-ng";

/// The program that pins it to one core.
pub const TASKSET: &str = "taskset";

/// Workers `stress-ng` forks under its own process: one CPU hog and one disk writer.
pub const WORKERS: usize = 2;

/// Size of the file the disk writer writes, fsyncs and removes, over and over: small, so the
/// noise is the fsyncs and the page cache churn, not a full disk.
pub const HDD_BYTES: &str = "4M";

/// Size of each of its writes (each followed by an fsync).
pub const HDD_WRITE_SIZE: &str = "64K";

/// How long stress-ng gets to stop its workers after SIGTERM before the group gets SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// How long the group may take to be gone after it was killed.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// Why the noise could not run.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// A program it needs is not installed.
    #[error(
        "BENCH_NOISE=1 needs `{0}`, which is not on PATH: run `just setup` (it installs the Debian package stress-ng)"
    )]
    Missing(&'static str),
    /// The core asked for does not exist.
    #[error("BENCH_NOISE_CORE={core}: this machine has cores 0 to {}", .cores.saturating_sub(1))]
    NoSuchCore {
        /// The core asked for.
        core: usize,
        /// Cores the machine has.
        cores: usize,
    },
    /// Starting or watching it failed.
    #[error("noise: {0}")]
    Io(#[from] std::io::Error),
    /// It exited while it should have been running.
    #[error("noise: stress-ng exited early ({status}); its log:\n{log}")]
    Exited {
        /// Its exit status.
        status: String,
        /// The end of its output.
        log: String,
    },
    /// It did not fork its workers in time.
    #[error("noise: stress-ng did not start its {WORKERS} workers within {0:?}")]
    NotStarted(Duration),
    /// Part of its process group outlived the kill.
    #[error("noise: processes {0:?} of stress-ng's group still ran after SIGKILL")]
    Leftovers(Vec<u32>),
}

impl NoiseError {
    /// Whether a setting is at fault (the harness then exits 64, as for any bad setting).
    pub fn is_config(&self) -> bool {
        matches!(self, NoiseError::NoSuchCore { .. })
    }
}

/// What the noise ran, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    /// The core the hog and the disk writer were pinned to.
    pub core: usize,
    /// The exact command line.
    pub argv: Vec<String>,
    /// Set when the noise did not run for the whole scenario.
    pub error: Option<String>,
}

/// The noise of one latency scenario, checked before anything starts.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The core it is pinned to.
    pub core: usize,
    /// Its own timeout: a safety net in case the harness is killed without unwinding.
    pub timeout: Duration,
}

impl Plan {
    /// Checks that `stress-ng` and `taskset` are installed and that `core` (default: the last
    /// of the machine's `cores`) exists.
    pub fn new(core: Option<usize>, cores: usize, timeout: Duration) -> Result<Self, NoiseError> {
        for program in [STRESS_NG, TASKSET] {
            if find_in_path(program).is_none() {
                return Err(NoiseError::Missing(program));
            }
        }
        Ok(Self {
            core: choose_core(core, cores)?,
            timeout,
        })
    }

    /// Starts the noise and returns once its workers run.
    pub async fn start(&self) -> Result<Noise, NoiseError> {
        let dir = tempfile::Builder::new()
            .prefix("sse-bench-noise")
            .tempdir()?;
        let argv = argv(self.core, dir.path(), self.timeout);
        let log_path = dir.path().join("stress-ng.log");
        let log = File::create(&log_path)?;
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut noise = Noise {
            pgid: child.id(),
            child,
            log_path,
            record: Record {
                core: self.core,
                argv,
                error: None,
            },
            killed: false,
            _dir: dir,
        };
        noise.wait_for_workers().await?;
        Ok(noise)
    }
}

/// The core to pin the noise to: `core` when the machine has it, else the last of its `cores`.
fn choose_core(core: Option<usize>, cores: usize) -> Result<usize, NoiseError> {
    let core = core.unwrap_or(cores.saturating_sub(1));
    if core >= cores.max(1) {
        return Err(NoiseError::NoSuchCore { core, cores });
    }
    Ok(core)
}

/// The command line: `taskset -c <core> stress-ng` with a CPU hog and a disk writer (fsync after
/// each write) in `dir`, ending by itself after `timeout`.
pub fn argv(core: usize, dir: &Path, timeout: Duration) -> Vec<String> {
    let mut v: Vec<String> = [TASKSET, "-c"].map(String::from).to_vec();
    v.push(core.to_string());
    v.extend(
        [
            STRESS_NG,
            "--cpu",
            "1",
            "--hdd",
            "1",
            "--hdd-bytes",
            HDD_BYTES,
            "--hdd-write-size",
            HDD_WRITE_SIZE,
            "--hdd-opts",
            "wr-seq,fsync",
            "--temp-path",
        ]
        .map(String::from),
    );
    v.push(dir.display().to_string());
    v.push("--timeout".into());
    v.push(format!("{}s", timeout.as_secs().max(1)));
    v
}

/// The running noise; dropping it kills its whole process group and waits until it is gone.
pub struct Noise {
    child: Child,
    pgid: u32,
    log_path: PathBuf,
    record: Record,
    killed: bool,
    _dir: tempfile::TempDir,
}

impl Noise {
    /// Its process group (the id of `stress-ng`'s main process).
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Stops the noise and says what ran; the record carries an error when `stress-ng` had
    /// exited before it was stopped, or when part of it outlived the kill.
    pub fn stop(mut self) -> Record {
        let mut record = self.record.clone();
        if let Err(e) = self.check_running() {
            record.error = Some(e.to_string());
        }
        if let Err(e) = self.kill() {
            record.error.get_or_insert(e.to_string());
        }
        record
    }

    /// Fails when `stress-ng` is no longer running.
    fn check_running(&mut self) -> Result<(), NoiseError> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(NoiseError::Exited {
                status: status.to_string(),
                log: log_tail(&self.log_path),
            }),
        }
    }

    async fn wait_for_workers(&mut self) -> Result<(), NoiseError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while group_members(self.pgid).len() < 1 + WORKERS {
            self.check_running()?;
            if tokio::time::Instant::now() > deadline {
                return Err(NoiseError::NotStarted(Duration::from_secs(10)));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops the whole group, once (afterwards its id is free for the system to reuse): SIGTERM
    /// first, so stress-ng stops and reaps its own workers (no zombies left to a PID 1 that may
    /// not reap them) and removes its files, then SIGKILL for whatever is left after
    /// [`TERM_GRACE`]; returns once no member is left.
    fn kill(&mut self) -> Result<(), NoiseError> {
        if std::mem::replace(&mut self.killed, true) {
            return Ok(());
        }
        self.signal_group("-TERM");
        let graceful = wait_until(TERM_GRACE, || {
            matches!(self.child.try_wait(), Ok(Some(_)) | Err(_))
                && group_members(self.pgid).is_empty()
        });
        if !graceful {
            self.signal_group("-KILL");
            // Should `kill` itself be missing, the main process at least.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let mut left = vec![];
        if wait_until(GONE_WITHIN, || {
            left = group_members(self.pgid);
            left.is_empty()
        }) {
            Ok(())
        } else {
            Err(NoiseError::Leftovers(left))
        }
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.pgid)])
            .stderr(Stdio::null())
            .status();
    }
}

/// Polls `done` every 10 ms until it holds (true) or `within` has passed (false).
fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Noise {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("bench: {e}");
        }
    }
}

/// The live (not zombie) processes of process group `pgid`, from /proc.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| parse_stat(&s))
                .is_some_and(|(state, group)| group == pgid && state != 'Z' && state != 'X')
        })
        .collect()
}

/// The state and process group of a `/proc/<pid>/stat` line (the name in parentheses may hold
/// spaces and parentheses itself, so the fields are read after the last `)`).
fn parse_stat(stat: &str) -> Option<(char, u32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    Some((state, fields.next()?.parse().ok()?))
}

/// Where `program` is on PATH, if anywhere.
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The last 2 KiB of the log at `path`.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(2048);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_pins_a_cpu_hog_and_an_fsyncing_writer_to_one_core() {
        let a = argv(1, Path::new("/tmp/n"), Duration::from_secs(544));
        assert_eq!(
            a.join(" "),
            "taskset -c 1 stress-ng --cpu 1 --hdd 1 --hdd-bytes 4M --hdd-write-size 64K \
             --hdd-opts wr-seq,fsync --temp-path /tmp/n --timeout 544s"
        );
        let short = argv(0, Path::new("/x"), Duration::from_millis(10));
        assert_eq!(&short[..3], ["taskset", "-c", "0"]);
        assert_eq!(short.last().map(String::as_str), Some("1s"), "at least 1 s");
    }

    #[test]
    fn the_noise_core_defaults_to_the_last_and_must_exist() {
        assert_eq!(choose_core(None, 2).ok(), Some(1));
        assert_eq!(choose_core(Some(0), 2).ok(), Some(0));
        assert_eq!(choose_core(None, 1).ok(), Some(0));
        assert_eq!(
            choose_core(None, 0).ok(),
            Some(0),
            "an unknown count: core 0"
        );
        let e = choose_core(Some(2), 2).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("BENCH_NOISE_CORE=2: this machine has cores 0 to 1")
        );
    }

    #[test]
    fn a_missing_program_names_just_setup() {
        let e = NoiseError::Missing(STRESS_NG).to_string();
        assert!(
            e.contains("`stress-ng`") && e.contains("`just setup`"),
            "{e}"
        );
    }

    #[test]
    fn stat_lines_give_state_and_group_even_with_odd_names() {
        let line = "4242 (stress-ng-hdd) R 4240 4240 100 0 -1 4194560 0 0";
        assert_eq!(parse_stat(line), Some(('R', 4240)));
        let odd = "7 (a) b (c)) Z 1 99 99 0";
        assert_eq!(parse_stat(odd), Some(('Z', 99)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
