//! Notices changes of the resources directory (a file edited, added, removed, or a Kubernetes
//! ConfigMap's atomic symlink swap) and asks for a reload once the directory has been quiet for a
//! moment; a periodic rescan covers file systems that send no notifications.

use std::path::Path;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How the directory is watched.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// Quiet time after the last change before reloading (editors write in several steps).
    pub debounce: Duration,
    /// Reload this often even without a notification (zero: never).
    pub rescan: Duration,
}

/// Keeps the OS watch alive; dropping it stops notifications.
pub struct DirWatch {
    _watcher: Option<notify::RecommendedWatcher>,
    changes: mpsc::Receiver<()>,
    settings: WatchSettings,
}

impl DirWatch {
    /// Watches `dir` recursively. If the OS watch cannot be set up (no inotify instances left,
    /// say), it says so and relies on the periodic rescan.
    pub fn new(dir: &Path, settings: WatchSettings) -> Self {
        Self::with_mode(dir, RecursiveMode::Recursive, settings)
    }

    /// Watches the directory holding `file` (not below it): an edit of the file, or the atomic
    /// swap of a Kubernetes ConfigMap mount, which replaces the file's symlink target.
    pub fn file(file: &Path, settings: WatchSettings) -> Self {
        let dir = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Self::flat(dir, settings)
    }

    /// Watches the entries of `dir`, not below them (a projected volume's files and its
    /// `..data` swap).
    pub fn flat(dir: &Path, settings: WatchSettings) -> Self {
        Self::with_mode(dir, RecursiveMode::NonRecursive, settings)
    }

    fn with_mode(dir: &Path, mode: RecursiveMode, settings: WatchSettings) -> Self {
        let (tx, changes) = mpsc::channel(1);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            match res {
                // Access events (reads, including our own) are not changes.
                Ok(ev) if ev.kind.is_access() => {}
                // A full channel already holds a pending reload request: nothing is lost.
                _ => {
                    let _ = tx.try_send(());
                }
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
            settings,
        }
    }

    /// Waits for the next reload: a change followed by the debounce quiet time, or the rescan
    /// period. `None` once `token` is cancelled.
    pub async fn next(&mut self, token: &CancellationToken) -> Option<()> {
        let rescan = async {
            if self.settings.rescan.is_zero() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(self.settings.rescan).await;
        };
        tokio::select! {
            _ = token.cancelled() => return None,
            _ = rescan => return Some(()),
            r = self.changes.recv() => r?,
        }
        loop {
            tokio::select! {
                _ = token.cancelled() => return None,
                _ = tokio::time::sleep(self.settings.debounce) => return Some(()),
                r = self.changes.recv() => r?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_written_file_asks_for_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(
            dir.path(),
            WatchSettings {
                debounce: Duration::from_millis(50),
                rescan: Duration::ZERO,
            },
        );
        let token = CancellationToken::new();
        std::fs::write(dir.path().join("a.yaml"), "x").unwrap();
        // No rescan is configured: only the notification can end this wait.
        assert_eq!(w.next(&token).await, Some(()));
        token.cancel();
        assert_eq!(w.next(&token).await, None);
    }

    #[tokio::test]
    async fn the_rescan_fires_without_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatch::new(
            dir.path(),
            WatchSettings {
                debounce: Duration::from_millis(50),
                rescan: Duration::from_millis(10),
            },
        );
        assert_eq!(w.next(&CancellationToken::new()).await, Some(()));
    }
}
