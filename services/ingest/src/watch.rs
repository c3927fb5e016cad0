//! Notices changes of the resources directory (a file edited, added, removed, or a Kubernetes
//! ConfigMap's atomic symlink swap) and asks for a reload once the directory has been quiet for a
//! moment; a periodic rescan covers file systems that send no notifications.
//!
//! Only changes to names that can matter wake it (each watch says which: YAML files, one file,
//! visible names), so a sync tool rewriting its hidden state file every 200 ms does not hold up
//! reloads; and a reload comes at most [`DEBOUNCE_MAX`] (or `debounce`, if longer) after the
//! first change even if relevant changes never stop. The rescan fires on its own schedule,
//! changes or not.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Longest a reload waits after the first change of a burst when changes keep coming (unless
/// `debounce` is longer): a file rewritten for ever must not hold every reload back.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(2);

/// The name of a Kubernetes atomic writer's current-data symlink; its swap is the whole update.
const K8S_DATA: &str = "..data";

/// How the directory is watched.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after the last change before reloading (editors write in several steps).
    pub debounce: Duration,
    /// Reload this often even without a notification (zero: never).
    pub rescan: Duration,
}

/// Which changed names can matter to what a watch's owner reads.
#[derive(Debug, Clone)]
enum Relevant {
    /// Resource files: `*.yaml` / `*.yml`, as the loader reads them.
    Yaml,
    /// This one file name.
    Named(OsString),
    /// Any name not hidden (an allocation file).
    Visible,
}

impl Relevant {
    /// Whether a change of `path` (under `root`, the watched directory) can matter. The root
    /// itself and a ConfigMap's `..data` swap always do.
    fn matters(&self, root: &Path, path: &Path) -> bool {
        let Some(name) = path.file_name() else {
            return true;
        };
        if path == root || name == K8S_DATA {
            return true;
        }
        match self {
            Self::Yaml => path.extension().is_some_and(|e| e == "yaml" || e == "yml"),
            Self::Named(file) => name == file,
            Self::Visible => !name.to_string_lossy().starts_with('.'),
        }
    }

    /// Whether `event` asks for a reload: a change (not a read) of a name that matters, or a
    /// notice that events were lost.
    fn wants(&self, root: &Path, event: &notify::Event) -> bool {
        if event.kind.is_access() {
            return false; // reads, including our own, are not changes
        }
        event.need_rescan()
            || event.paths.is_empty()
            || event.paths.iter().any(|p| self.matters(root, p))
    }
}

/// Keeps the OS watch alive; dropping it stops notifications.
pub struct DirWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    changes: mpsc::Receiver<()>,
    settings: WatchSettings,
    /// When the periodic rescan is due (`None`: never).
    rescan_at: Option<Instant>,
}

impl DirWatch {
    /// Watches `dir` recursively for changes of resource files (`*.yaml`, `*.yml`). If the OS
    /// watch cannot be set up (no inotify instances left, say), it says so and relies on the
    /// periodic rescan.
    pub fn new(dir: &Path, settings: WatchSettings) -> Self {
        Self::with_mode(dir, RecursiveMode::Recursive, Relevant::Yaml, settings)
    }

    /// Watches the directory holding `file` (not below it) for changes of that file: an edit of
    /// the file, or the atomic swap of a Kubernetes ConfigMap mount, which replaces the file's
    /// symlink target.
    pub fn file(file: &Path, settings: WatchSettings) -> Self {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let relevant = match file.file_name() {
            Some(name) => Relevant::Named(name.to_os_string()),
            None => Relevant::Visible,
        };
        Self::with_mode(dir, RecursiveMode::NonRecursive, relevant, settings)
    }

    /// Watches the entries of `dir`, not below them, for changes of names that are not hidden
    /// (a projected volume's files and its `..data` swap).
    pub fn flat(dir: &Path, settings: WatchSettings) -> Self {
        Self::with_mode(
            dir,
            RecursiveMode::NonRecursive,
            Relevant::Visible,
            settings,
        )
    }

    fn with_mode(
        dir: &Path,
        mode: RecursiveMode,
        relevant: Relevant,
        settings: WatchSettings,
    ) -> Self {
        let (tx, changes) = mpsc::channel(1);
        // Events name absolute paths when the watch was given one; compare like with like.
        let root: PathBuf = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let given = dir.to_path_buf();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let wanted = match res {
                Ok(ev) => relevant.wants(&root, &ev) || relevant.wants(&given, &ev),
                // An error from the OS watch: reloading is the safe answer.
                Err(_) => true,
            };
            if wanted {
                // A full channel already holds a pending reload request: nothing is lost.
                let _ = tx.try_send(());
            }
        })
        .and_then(|mut w| w.watch(dir, mode).map(|()| w));
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, rescan = ?settings.rescan, "cannot watch the directory; relying on the periodic rescan");
                None
            }
        };
        Self {
            _watcher: watcher,
            changes,
            rescan_at: next_rescan(settings.rescan),
            settings,
        }
    }

    /// Waits for the next reload: a change followed by the debounce quiet time (at most
    /// [`DEBOUNCE_MAX`], or `debounce` if longer, after the first change), or the rescan. `None`
    /// once `token` is cancelled.
    pub async fn next(&mut self, token: &CancellationToken) -> Option<()> {
        let reload = self.wait(token).await;
        // Measured from this reload: a reload just done needs no rescan soon after.
        self.rescan_at = next_rescan(self.settings.rescan);
        reload
    }

    async fn wait(&mut self, token: &CancellationToken) -> Option<()> {
        let rescan = rescan_due(self.rescan_at);
        tokio::pin!(rescan);
        tokio::select! {
            _ = token.cancelled() => return None,
            () = &mut rescan => return Some(()),
            r = self.changes.recv() => r?,
        }
        let latest = Instant::now() + DEBOUNCE_MAX.max(self.settings.debounce);
        loop {
            let quiet = (Instant::now() + self.settings.debounce).min(latest);
            tokio::select! {
                _ = token.cancelled() => return None,
                () = tokio::time::sleep_until(quiet) => return Some(()),
                () = &mut rescan => return Some(()),
                r = self.changes.recv() => r?,
            }
        }
    }
}

/// When the next rescan is due, `every` from now (zero: never).
fn next_rescan(every: Duration) -> Option<Instant> {
    (!every.is_zero()).then(|| Instant::now() + every)
}

/// Resolves when the rescan is due; never without one.
async fn rescan_due(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_written_file_asks_for_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watching(dir.path(), Duration::from_millis(50), Duration::ZERO);
        let token = CancellationToken::new();
        std::fs::write(dir.path().join("a.yaml"), "x").unwrap();
        // No rescan is configured: only the notification can end this wait.
        assert_eq!(w.next(&token).await, Some(()));
        token.cancel();
        assert_eq!(w.next(&token).await, None);
    }

    /// A recursive watch of `dir` with these settings (`Duration::ZERO`: no rescan).
    fn watching(dir: &Path, debounce: Duration, rescan: Duration) -> DirWatch {
        DirWatch::new(dir, WatchSettings { debounce, rescan })
    }

    /// Rewrites `name` in `dir` every 20 ms until the token is cancelled, as a sync tool's state
    /// file or an editor's autosave does.
    fn churn(dir: &Path, name: &str) -> CancellationToken {
        let stop = CancellationToken::new();
        let (path, until) = (dir.join(name), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !until.is_cancelled() {
                n += 1;
                let _ = std::fs::write(&path, n.to_string());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        stop
    }

    /// Bounds a wait that used to hang, so a regression fails instead of stalling the run.
    async fn within_guard(w: &mut DirWatch) -> Option<()> {
        let token = CancellationToken::new();
        tokio::time::timeout(Duration::from_secs(30), w.next(&token))
            .await
            .expect("no reload")
    }

    #[test]
    fn only_names_that_can_matter_ask_for_a_reload() {
        let root = Path::new("/res");
        let yaml = Relevant::Yaml;
        for hit in [
            "/res/a.yaml",
            "/res/b.yml",
            "/res/..data",
            "/res",
            "/res/..2026_x/a.yaml",
        ] {
            assert!(yaml.matters(root, Path::new(hit)), "{hit}");
        }
        for miss in [
            "/res/.sync-state.tmp",
            "/res/a.yaml.swp",
            "/res/.a.yaml.0123.tmp",
            "/res/4913",
        ] {
            assert!(!yaml.matters(root, Path::new(miss)), "{miss}");
        }
        let named = Relevant::Named("access.yaml".into());
        assert!(named.matters(root, Path::new("/res/access.yaml")));
        assert!(named.matters(root, Path::new("/res/..data")));
        assert!(!named.matters(root, Path::new("/res/other.yaml")));
        let visible = Relevant::Visible;
        assert!(visible.matters(root, Path::new("/res/dev_ep")));
        assert!(visible.matters(root, Path::new("/res/..data")));
        assert!(!visible.matters(root, Path::new("/res/..2026_x")));
        assert!(!visible.matters(root, Path::new("/res/.tmp")));
    }

    /// A hidden file rewritten every 20 ms (a sync tool's state) used to keep the debounce from
    /// ever seeing quiet, so no reload came at all.
    #[tokio::test]
    async fn a_busy_hidden_file_does_not_block_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watching(dir.path(), Duration::from_millis(300), Duration::ZERO);
        let stop = churn(dir.path(), ".sync-state.tmp");
        std::fs::write(dir.path().join("a.yaml"), "x").unwrap();
        assert_eq!(within_guard(&mut w).await, Some(()));
        stop.cancel();
    }

    /// A resource file that never stops changing still gets reloaded: the debounce is bounded.
    #[tokio::test]
    async fn changes_that_never_stop_still_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watching(dir.path(), Duration::from_millis(300), Duration::ZERO);
        let stop = churn(dir.path(), "a.yaml");
        assert_eq!(within_guard(&mut w).await, Some(()));
        assert_eq!(within_guard(&mut w).await, Some(()));
        stop.cancel();
    }

    /// The periodic rescan keeps its schedule while changes keep a long debounce waiting.
    #[tokio::test]
    async fn the_rescan_fires_while_changes_keep_coming() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watching(
            dir.path(),
            Duration::from_secs(60),
            Duration::from_millis(200),
        );
        let stop = churn(dir.path(), "a.yaml");
        assert_eq!(within_guard(&mut w).await, Some(()));
        stop.cancel();
    }

    #[tokio::test]
    async fn the_rescan_fires_without_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = watching(
            dir.path(),
            Duration::from_millis(50),
            Duration::from_millis(10),
        );
        assert_eq!(w.next(&CancellationToken::new()).await, Some(()));
    }
}
