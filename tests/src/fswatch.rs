//! Signals from the file system: when a service opens one of its input files (inotify `OPEN`),
//! for tests that must act while the service is reading, e.g. during a resources reload.

use std::path::{Path, PathBuf};

use anyhow::Context;
use notify::event::{AccessKind, EventKind};
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Reports each opening of one file; dropping it stops the watch.
pub struct OpenWatch {
    _watcher: notify::RecommendedWatcher,
    opened: mpsc::UnboundedReceiver<()>,
}

impl OpenWatch {
    /// Watches `file` (which must exist) for openings from now on.
    pub fn new(file: &Path) -> anyhow::Result<Self> {
        let (tx, opened) = mpsc::unbounded_channel();
        let want: PathBuf = file.to_path_buf();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && matches!(ev.kind, EventKind::Access(AccessKind::Open(_)))
                && ev.paths.contains(&want)
            {
                let _ = tx.send(());
            }
        })
        .context("inotify")?;
        watcher
            .watch(file, RecursiveMode::NonRecursive)
            .with_context(|| format!("watch {}", file.display()))?;
        Ok(Self {
            _watcher: watcher,
            opened,
        })
    }

    /// Waits (at most [`crate::DEADLINE`]) until the file is opened.
    pub async fn opened(&mut self) -> anyhow::Result<()> {
        tokio::time::timeout(crate::DEADLINE, self.opened.recv())
            .await
            .context("timed out waiting for the file to be opened")?
            .context("the watch stopped")
    }
}
