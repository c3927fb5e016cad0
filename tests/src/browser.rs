//! A headless Chromium driven over WebDriver, for the console's browser test: `chromedriver` (Debian's
//! `chromium-driver`, installed by `just setup`) on a free loopback port, one session with a
//! throwaway profile, screenshots saved under `target/console-screenshots/`. The driver runs in a
//! process group of its own, so dropping the [`Browser`] kills it and every Chromium process it
//! started. fantoccini talks plain HTTP to the local driver: no TLS stack of its own.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::process::{Child, Command};

/// The browser window's size: the screenshots' size.
pub const WINDOW: (u32, u32) = (1280, 900);

/// How often a condition on the page is checked again while waiting.
pub const POLL: Duration = Duration::from_millis(250);

/// How many free ports are tried when another process takes the driver's port first.
const DRIVER_ATTEMPTS: usize = 3;

/// A headless Chromium session and the `chromedriver` that runs it; both killed on drop.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    group: Option<u32>,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium session. `Ok(None)`, with the reason printed,
    /// when `chromedriver` is not installed and `CI` is unset; under CI that is an error.
    pub async fn start() -> anyhow::Result<Option<Self>> {
        Self::start_with(&[]).await
    }

    /// As [`Browser::start`], with Chromium's command line extended by `args` (e.g. the one
    /// certificate a test's HTTPS server may use).
    pub async fn start_with(args: &[String]) -> anyhow::Result<Option<Self>> {
        let Some(driver_path) = find_driver() else {
            anyhow::ensure!(
                !in_ci(),
                "chromedriver is not installed (`just setup` installs Debian's chromium-driver)"
            );
            // Straight to stderr: the test harness would swallow eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the browser test: chromedriver is not installed \
                 (`just setup` installs Debian's chromium and chromium-driver)"
            );
            return Ok(None);
        };
        let (driver, port) = spawn_driver(&driver_path).await?;
        let group = driver.id();
        let profile = tempfile::tempdir()?;
        // Until the browser is built, a failure kills the driver's group with it.
        let mut guard = GroupGuard(group);
        let client = session(port, profile.path(), args).await?;
        guard.0 = None;
        let shots = screenshots_dir();
        std::fs::create_dir_all(&shots).with_context(|| format!("create {}", shots.display()))?;
        Ok(Some(Self {
            client,
            driver,
            group,
            shots,
            _profile: profile,
        }))
    }

    /// Saves a PNG of the visible page as `<name>.png` in [`screenshots_dir`] and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let png = self
            .client
            .screenshot()
            .await
            .context("take a screenshot")?;
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    }

    /// Waits (at most [`crate::DEADLINE`]) for an element matching `css` on the current page.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(crate::DEADLINE)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("no {css} within {:?}", crate::DEADLINE))
    }

    /// Waits until at least `n` elements match `css` on the current page (at most
    /// [`crate::DEADLINE`]), e.g. rows a live view adds.
    pub async fn wait_for_count(&self, css: &str, n: usize) -> anyhow::Result<Vec<Element>> {
        let start = Instant::now();
        loop {
            let found = self.client.find_all(Locator::Css(css)).await?;
            if found.len() >= n {
                return Ok(found);
            }
            anyhow::ensure!(
                start.elapsed() < crate::DEADLINE,
                "{} of {n} {css} within {:?}",
                found.len(),
                crate::DEADLINE
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the browser's URL has the path `path` (e.g. after a redirect), at most
    /// [`crate::DEADLINE`].
    pub async fn wait_for_path(&self, path: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            let at = self.client.current_url().await?;
            if at.path() == path {
                return Ok(());
            }
            anyhow::ensure!(
                start.elapsed() < crate::DEADLINE,
                "at {at}, not {path}, after {:?}",
                crate::DEADLINE
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Reloads the page until an element matches `css` (at most [`crate::DEADLINE`]), for what a
    /// page shows only when rendered after the fact (a new schema version).
    pub async fn reload_until(&self, css: &str) -> anyhow::Result<Element> {
        let start = Instant::now();
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return Ok(e);
            }
            anyhow::ensure!(
                start.elapsed() < crate::DEADLINE,
                "no {css} after reloading for {:?}",
                crate::DEADLINE
            );
            tokio::time::sleep(POLL).await;
            self.client.refresh().await.context("reload")?;
        }
    }

    /// Ends the session (Chromium quits), then stops the driver.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.client
            .clone()
            .close()
            .await
            .context("end the session")?;
        kill_group(self.group.take());
        let _ = self.driver.wait().await;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(self.group.take());
    }
}

/// Kills the driver's process group if the browser is not built after all.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0.take());
    }
}

/// Where screenshots go: `console-screenshots/` in the target directory (`CARGO_TARGET_DIR`, else
/// the workspace's `target/`).
pub fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
            tests.parent().unwrap_or(tests).join("target")
        });
    target.join("console-screenshots")
}

/// Whether this run is CI's (`CI` set and not `false`/`0`): there a missing driver fails.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `chromedriver` on `PATH`, or where Debian's package puts it.
fn find_driver() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .map(|d| d.join("chromedriver"))
        .chain([PathBuf::from("/usr/lib/chromium/chromedriver")])
        .find(|p| p.is_file())
}

/// Starts the driver on a free port in a process group of its own and waits until its `/status`
/// says ready; another free port is tried if the driver exits (its port was taken meanwhile).
async fn spawn_driver(path: &Path) -> anyhow::Result<(Child, u16)> {
    let mut last = None;
    for _ in 0..DRIVER_ATTEMPTS {
        let port = crate::broker::free_port()?;
        let mut child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn {}", path.display()))?;
        match wait_ready(port, &mut child).await {
            Ok(()) => return Ok((child, port)),
            Err(e) => {
                kill_group(child.id());
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("chromedriver did not start")))
}

/// Polls the driver's `/status` until it reports `ready` (at most [`crate::DEADLINE`]).
async fn wait_ready(port: u16, child: &mut Child) -> anyhow::Result<()> {
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let url: hyper::Uri = format!("http://127.0.0.1:{port}/status").parse()?;
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait()? {
            anyhow::bail!("chromedriver exited ({st}) before it was ready on port {port}");
        }
        if let Ok(resp) = http.get(url.clone()).await {
            let body = resp.into_body().collect().await?.to_bytes();
            let status: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            if status["value"]["ready"] == true {
                return Ok(());
            }
        }
        anyhow::ensure!(
            start.elapsed() < crate::DEADLINE,
            "chromedriver not ready on port {port} within {:?}",
            crate::DEADLINE
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens a headless Chromium session with a throwaway profile in `profile`, and `extra` on its
/// command line.
async fn session(port: u16, profile: &Path, extra: &[String]) -> anyhow::Result<Client> {
    let (w, h) = WINDOW;
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--disable-gpu".to_string(),
        format!("--window-size={w},{h}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    args.extend_from_slice(extra);
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "args": args },
    });
    let serde_json::Value::Object(caps) = caps else {
        anyhow::bail!("capabilities are not an object");
    };
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .context("open a Chromium session through chromedriver")
}

/// SIGKILL to the whole process group `group` (the driver and the Chromium it started).
fn kill_group(group: Option<u32>) {
    if let Some(g) = group {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{g}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
