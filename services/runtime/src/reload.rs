//! A value built from files and rebuilt when one of them changes, so that a rotated
//! certificate (cert-manager renewing a Secret) takes effect at its next use without a restart.
//! The services' mTLS identity and the console's HTTPS certificate both follow their files so.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// What identifies one version of a file: kubelet swaps a Secret's files by renaming a
/// symlink, so the inode changes even where the size and time would not.
type FileStamp = Option<(SystemTime, u64, u64)>;

/// The stamp of `path` now (`None` when it cannot be read).
fn file_stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// A value built from `N` files, current with them.
pub struct Reloaded<T, const N: usize> {
    files: [PathBuf; N],
    /// What the files hold, for the log ("gRPC TLS certificates").
    what: &'static str,
    state: Mutex<State<T, N>>,
}

/// The value, the files' stamps it was built from, and the last stamps a build was tried at.
struct State<T, const N: usize> {
    value: T,
    built: [FileStamp; N],
    tried: [FileStamp; N],
}

impl<T, const N: usize> std::fmt::Debug for Reloaded<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value: it may hold a private key.
        f.debug_struct("Reloaded")
            .field("files", &self.files)
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl<T: Clone, const N: usize> Reloaded<T, N> {
    /// Builds the value from `files` now: an error here is a configuration error (exit 64).
    pub fn load<E>(
        files: [PathBuf; N],
        what: &'static str,
        build: impl FnOnce(&[PathBuf; N]) -> Result<T, E>,
    ) -> Result<Self, E> {
        let built = files.each_ref().map(|p| file_stamp(p));
        let value = build(&files)?;
        Ok(Self {
            files,
            what,
            state: Mutex::new(State {
                value,
                built,
                tried: built,
            }),
        })
    }

    /// The value of the files as they are now, rebuilt with `build` when one changed. A version
    /// that does not build (a rotation caught half-written, a key that is not the
    /// certificate's) keeps the last good value, with one warning per version.
    pub fn current<E: Display>(&self, build: impl FnOnce(&[PathBuf; N]) -> Result<T, E>) -> T {
        let now = self.files.each_ref().map(|p| file_stamp(p));
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now == s.built || now == s.tried {
            return s.value.clone();
        }
        s.tried = now;
        match build(&self.files) {
            Ok(v) => {
                tracing::info!(files = ?self.files, "{} reloaded", self.what);
                s.value = v;
                s.built = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "{} changed but do not load; keeping the previous ones", self.what);
            }
        }
        s.value.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    /// The two files' contents, when they hold the same text (a "matching pair").
    fn pair(files: &[PathBuf; 2]) -> Result<String, String> {
        let [a, b] = files
            .each_ref()
            .map(|p| std::fs::read_to_string(p).unwrap());
        if a == b {
            Ok(a)
        } else {
            Err(format!("{a} is not {b}"))
        }
    }

    #[test]
    fn a_change_is_built_and_a_broken_version_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let files = [dir.path().join("a"), dir.path().join("b")];
        put(&files[0], "1");
        put(&files[1], "1");
        let r = Reloaded::load(files.clone(), "test files", pair).unwrap();
        let mut builds = 0;
        let mut counted = |f: &[PathBuf; 2]| {
            builds += 1;
            pair(f)
        };
        assert_eq!(r.current(&mut counted), "1");
        put(&files[0], "2");
        assert_eq!(
            r.current(&mut counted),
            "1",
            "half-way: the last good value"
        );
        assert_eq!(r.current(&mut counted), "1");
        put(&files[1], "2");
        assert_eq!(r.current(&mut counted), "2", "the completed change");
        assert_eq!(r.current(&mut counted), "2");
        assert_eq!(
            builds, 2,
            "built once per version of the files, not per call"
        );
        // At start, a broken version is an error.
        put(&files[0], "3");
        assert!(Reloaded::load(files, "test files", pair).is_err());
    }
}
