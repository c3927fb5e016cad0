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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// Whether a change of `path` can matter, `root` being the watched directory. The root
    /// itself and a ConfigMap's `..data` swap always do; nothing outside the root does (the
    /// parent's watch also reports the directory's siblings).
    fn matters(&self, root: &Path, path: &Path) -> bool {
        let Some(name) = path.file_name() else {
            return true;
        };
        if path == root {
            return true;
        }
        if !path.starts_with(root) {
            return false;
        }
        if name == K8S_DATA {
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
    /// The OS watch; dropping it stops notifications.
    watcher: Option<notify::RecommendedWatcher>,
    target: Target,
    /// The directory's (device, inode) when it was watched; `None`: nothing was there.
    identity: Option<(u64, u64)>,
    /// Set by an event that created, removed or renamed the directory itself: the OS watch may
    /// follow a directory that is no longer the one at the path.
    replaced: Arc<AtomicBool>,
    /// Where the OS watch's callback asks for a reload (cloned into a watch set up again).
    tx: mpsc::Sender<()>,
    changes: mpsc::Receiver<()>,
    settings: WatchSettings,
    /// When the periodic rescan is due (`None`: never).
    rescan_at: Option<Instant>,
}

/// What a watch follows: a directory, how deep, and which names in it matter.
#[derive(Debug, Clone)]
struct Target {
    /// The directory as given, made absolute but not resolved: a symlink at the path swapped
    /// for another is a replacement too.
    dir: PathBuf,
    mode: RecursiveMode,
    relevant: Relevant,
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
        let target = Target {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            mode,
            relevant,
        };
        let replaced = Arc::new(AtomicBool::new(false));
        let watcher = arm(&target, &tx, &replaced, settings.rescan);
        Self {
            watcher,
            identity: identity(&target.dir),
            target,
            replaced,
            tx,
            changes,
            rescan_at: next_rescan(settings.rescan),
            settings,
        }
    }

    /// Sets the OS watch up again when the directory at the path is not the one watched: an
    /// operator or a sync tool replaced it as a whole (`mv res res.old && mv new res`, or
    /// removed and made it again), and an inotify watch follows the old directory, not the path.
    fn rearm_if_replaced(&mut self) {
        let flagged = self.replaced.swap(false, Ordering::Relaxed);
        let now = identity(&self.target.dir);
        if !flagged && now == self.identity {
            return;
        }
        tracing::info!(dir = %self.target.dir.display(), present = now.is_some(), "the watched directory was replaced: watching the one now at its path");
        // The old watch goes first: one inotify instance at a time per watch.
        self.watcher = None;
        self.watcher = arm(&self.target, &self.tx, &self.replaced, self.settings.rescan);
        self.identity = now;
    }

    /// Waits for the next reload: a change followed by the debounce quiet time (at most
    /// [`DEBOUNCE_MAX`], or `debounce` if longer, after the first change), or the rescan. `None`
    /// once `token` is cancelled.
    pub async fn next(&mut self, token: &CancellationToken) -> Option<()> {
        let reload = self.wait(token).await;
        // Before the reload reads it, so no change of a new directory goes unnoticed.
        self.rearm_if_replaced();
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

/// Sets up the OS watch of `target`: the directory itself, and its parent for the directory's own
/// name, so a directory removed or renamed away and another put at the path is noticed (the
/// parent's watch sees the new one appear; the directory's own watch only follows the old one).
/// Events naming the directory itself set `replaced`. `None` when nothing could be watched: the
/// periodic rescan (`rescan`) is then all there is, and the log says so.
fn arm(
    target: &Target,
    tx: &mpsc::Sender<()>,
    replaced: &Arc<AtomicBool>,
    rescan: Duration,
) -> Option<notify::RecommendedWatcher> {
    let dir = target.dir.clone();
    // Events name the paths the watch was given; a symlinked directory's also its real path.
    let root: PathBuf = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let (relevant, tx, flag) = (target.relevant.clone(), tx.clone(), replaced.clone());
    let given = dir.clone();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let wanted = match res {
            Ok(ev) => {
                if replaces(&ev, &[&root, &given]) {
                    flag.store(true, Ordering::Relaxed);
                }
                relevant.wants(&root, &ev) || relevant.wants(&given, &ev)
            }
            // An error from the OS watch: reloading is the safe answer.
            Err(_) => true,
        };
        if wanted {
            // A full channel already holds a pending reload request: nothing is lost.
            let _ = tx.try_send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, ?rescan, "cannot watch the directory; relying on the periodic rescan");
            return None;
        }
    };
    let parent = dir
        .parent()
        .map(|p| watcher.watch(p, RecursiveMode::NonRecursive));
    match (watcher.watch(&dir, target.mode), parent) {
        (Ok(()), Some(Ok(()))) => {}
        (Ok(()), _) => {
            tracing::debug!(dir = %dir.display(), "cannot watch the directory's parent; a replaced directory is noticed at the rescan");
        }
        (Err(e), Some(Ok(()))) => {
            tracing::warn!(dir = %dir.display(), error = %e, ?rescan, "cannot watch the directory; watching for it to appear again, and rescanning");
        }
        (Err(e), _) => {
            tracing::warn!(dir = %dir.display(), error = %e, ?rescan, "cannot watch the directory; relying on the periodic rescan");
            return None;
        }
    }
    Some(watcher)
}

/// Whether `event` made, removed or renamed the directory itself (named by one of `dir`'s
/// paths): its own watch may then follow a directory that is gone from the path.
fn replaces(event: &notify::Event, dir: &[&Path]) -> bool {
    use notify::EventKind as K;
    let kind = matches!(
        event.kind,
        K::Create(_) | K::Remove(_) | K::Modify(notify::event::ModifyKind::Name(_))
    );
    kind && event.paths.iter().any(|p| dir.contains(&p.as_path()))
}

/// The (device, inode) of the directory at `dir` (through a symlink), if any.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
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

    /// A directory replaced as a whole used to keep the watch on the old one: edits of the new
    /// one waited for the rescan (60 s by default). No rescan here: only the watch can answer.
    #[tokio::test]
    async fn a_directory_moved_over_is_watched_again() {
        let root = tempfile::tempdir().unwrap();
        let res = root.path().join("res");
        std::fs::create_dir(&res).unwrap();
        let mut w = watching(&res, Duration::from_millis(100), Duration::ZERO);
        // `mv res res.old && mv new res`, as git-sync or a config tool does.
        let new = root.path().join("new");
        std::fs::create_dir(&new).unwrap();
        std::fs::write(new.join("a.yaml"), "x").unwrap();
        std::fs::rename(&res, root.path().join("res.old")).unwrap();
        std::fs::rename(&new, &res).unwrap();
        assert_eq!(within_guard(&mut w).await, Some(()), "the swap itself");
        assert_eq!(w.identity, identity(&res), "the new directory is watched");
        std::fs::write(res.join("b.yaml"), "x").unwrap();
        assert_eq!(
            within_guard(&mut w).await,
            Some(()),
            "an edit of the new one"
        );
    }

    /// `rm -r res; mkdir res; cp ...`, slow enough that the reload finds no directory: the
    /// parent's watch sees it come back, and the new one is watched from then on.
    #[tokio::test]
    async fn a_directory_removed_and_made_again_is_watched_again() {
        let root = tempfile::tempdir().unwrap();
        let res = root.path().join("res");
        std::fs::create_dir(&res).unwrap();
        std::fs::write(res.join("a.yaml"), "x").unwrap();
        let mut w = watching(&res, Duration::from_millis(100), Duration::ZERO);
        std::fs::remove_dir_all(&res).unwrap();
        assert_eq!(within_guard(&mut w).await, Some(()), "the removal");
        assert_eq!(w.identity, None);
        std::fs::create_dir(&res).unwrap();
        assert_eq!(
            within_guard(&mut w).await,
            Some(()),
            "the directory made again"
        );
        assert_eq!(w.identity, identity(&res));
        std::fs::write(res.join("b.yaml"), "x").unwrap();
        assert_eq!(
            within_guard(&mut w).await,
            Some(()),
            "an edit of the new one"
        );
    }

    /// A Kubernetes ConfigMap mount swaps its `..data` symlink inside the directory: the
    /// directory stays, and the swap is one change.
    #[tokio::test]
    async fn a_configmap_data_swap_still_asks_for_a_reload() {
        use std::os::unix::fs::symlink;
        let res = tempfile::tempdir().unwrap();
        let dir = res.path();
        std::fs::create_dir(dir.join("..2026_01")).unwrap();
        std::fs::write(dir.join("..2026_01/a.yaml"), "x").unwrap();
        symlink("..2026_01", dir.join("..data")).unwrap();
        symlink("..data/a.yaml", dir.join("a.yaml")).unwrap();
        let mut w = watching(dir, Duration::from_millis(100), Duration::ZERO);
        std::fs::create_dir(dir.join("..2026_02")).unwrap();
        std::fs::write(dir.join("..2026_02/a.yaml"), "y").unwrap();
        symlink("..2026_02", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        assert_eq!(within_guard(&mut w).await, Some(()));
        assert_eq!(
            w.identity,
            identity(dir),
            "the same directory, not set up again"
        );
    }

    /// The parent's watch reports the directory's siblings: they do not matter.
    #[test]
    fn names_beside_the_directory_do_not_matter() {
        let root = Path::new("/etc/res");
        for r in [Relevant::Yaml, Relevant::Visible] {
            assert!(!r.matters(root, Path::new("/etc/other.yaml")));
            assert!(!r.matters(root, Path::new("/etc/resources.yaml")));
            assert!(r.matters(root, Path::new("/etc/res")));
        }
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
