//! State files only their owner can read, replaced atomically: the directory is created `0700`,
//! the file `0600`, written to a temp file created with `O_CREAT|O_EXCL` under a random name in
//! the same directory (so a symlink planted there is never followed: the create fails and another
//! name is tried), synced, then renamed over the target.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use rand::Rng;

/// Mode of a state file: owner read and write.
pub const FILE_MODE: u32 = 0o600;
/// Mode of a directory created for state files: owner only.
pub const DIR_MODE: u32 = 0o700;
/// Random temp names tried before giving up (each taken name means something else is there).
const ATTEMPTS: usize = 8;

/// Creates the missing directories of `dir` with mode `0700`.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Replaces `path` with `bytes`: parent directories created `0700`, file `0600`, through a fresh
/// temp file in the same directory, fsynced before the rename.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let tmp = dir.join(format!(".{name}.{:016x}.tmp", rand::rng().random::<u64>()));
        match write_via(&tmp, path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temp file name")))
}

/// Writes `bytes` to the new file `tmp` (never an existing one, nor through a symlink) and
/// renames it to `path`; removes `tmp` when anything fails after it was created.
pub fn write_via(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(tmp)?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_0600_in_a_0700_directory() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("state/sub/file.json");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&root.path().join("state")), 0o700);
        assert_eq!(mode(&root.path().join("state/sub")), 0o700);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

    #[test]
    fn a_symlink_planted_at_the_temp_path_is_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let path = root.path().join("file.json");
        let tmp = root.path().join(".file.json.planted.tmp");
        std::os::unix::fs::symlink(&victim, &tmp).unwrap();
        let e = write_via(&tmp, &path, b"secret").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!path.exists());
        // A dangling symlink is not followed either.
        std::fs::remove_file(&victim).unwrap();
        assert!(write_via(&tmp, &path, b"secret").is_err());
        assert!(!victim.exists());
    }
}
