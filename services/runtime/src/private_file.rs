//! State files only their owner can read, replaced atomically: the directory is created `0700`,
//! the file `0600`, written to a temp file created with `O_CREAT|O_EXCL` under a random name in
//! the same directory (so a symlink planted there is never followed: the create fails and another
//! name is tried), synced, renamed over the target, and the directory synced so the rename
//! survives a power cut.
//!
//! At start a store calls [`remove_leftovers`] (temp files of a write cut short by `kill -9`),
//! [`tighten_dir`] and [`tighten_file`] (state left readable or writable by others by an older
//! version or by hand) and [`check_writable`] (so a directory it may not write is found at start,
//! not at the first save).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
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
/// temp file in the same directory, fsynced before the rename, the directory after it.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dir_of(path);
    create_dir(dir)?;
    let name = target_name(path);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let tmp = dir.join(temp_name(&name));
        match write_via(&tmp, path, bytes) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temp file name")))
}

/// Writes `bytes` to the new file `tmp` (never an existing one, nor through a symlink), renames
/// it to `path` and syncs the directory (without that the rename may be lost in a power cut,
/// leaving the old content); removes `tmp` when anything fails before the rename.
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
    written?;
    sync_dir(dir_of(path))
}

/// Syncs directory `dir`'s entries (a rename or a removal in it) to disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The last component of `path`, as the temp names spell it.
fn target_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A fresh temp name for a write of the file called `name`: `.<name>.<16 hex digits>.tmp`.
fn temp_name(name: &str) -> String {
    format!(".{name}.{:016x}.tmp", rand::rng().random::<u64>())
}

/// Whether `file_name` is a temp name [`temp_name`] makes for `name`: only those are ours to
/// remove (anything else in the directory may be someone else's).
fn is_temp_of(file_name: &str, name: &str) -> bool {
    file_name
        .strip_prefix('.')
        .and_then(|r| r.strip_prefix(name))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".tmp"))
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the temp files that writes of `path` left when the process died between creating and
/// renaming them (`kill -9` mid-save): never renamed, they never held the file's content, and
/// nothing else removes them. Only regular files of [`write`]'s own naming are touched (a
/// symlink there is not ours). Returns how many were removed; a missing directory has none.
pub fn remove_leftovers(path: &Path) -> std::io::Result<usize> {
    let name = target_name(path);
    let entries = match std::fs::read_dir(dir_of(path)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let ours = is_temp_of(&entry.file_name().to_string_lossy(), &name)
            && entry.file_type().is_ok_and(|t| t.is_file());
        if ours {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Creates and removes a temp file next to `path`, as [`write`] would: a directory the service
/// may not write (permissions, a read-only file system) is then found when it starts, not at
/// its first save. Missing directories are created `0700` first.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let dir = dir_of(path);
    create_dir(dir).map_err(|e| match e.kind() {
        // `mkdir` of a name a file already holds: the directory is that file.
        std::io::ErrorKind::AlreadyExists => std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", dir.display()),
        ),
        _ => e,
    })?;
    let name = target_name(path);
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let tmp = dir.join(temp_name(&name));
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp);
        match created {
            Ok(_) => return std::fs::remove_file(&tmp),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temp file name")))
}

/// What [`tighten_dir`] or [`tighten_file`] found, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Nothing to do.
    Private,
    /// Its mode was `was` (octal bits) and is now the private one.
    Tightened {
        /// The mode before.
        was: u32,
    },
    /// Left as it is (mode `mode`) because changing it is not ours to do: `why`.
    Left {
        /// The mode found.
        mode: u32,
        /// Why it was not changed.
        why: &'static str,
    },
}

/// The effective user of this process: the owner of `/proc/self` (Linux). `None` where that
/// cannot be read; nothing is then taken to be ours.
fn own_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Makes the state directory `dir` `0700` when others may write in it (they could replace or
/// remove the state file): only when this process's user owns it, and not a shared directory
/// with the sticky bit (`/tmp`), which it must not take from the others. A directory others can
/// only read or search is left alone: the files in it are `0600`, and the parent of a state file
/// may be a shared one (`/var/lib`, a home directory) that others must still search.
pub fn tighten_dir(dir: &Path) -> std::io::Result<Access> {
    let meta = std::fs::metadata(dir)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 == 0 {
        return Ok(Access::Private);
    }
    if mode & 0o1000 != 0 {
        let why = "a shared directory (sticky bit): others may create files in it";
        return Ok(Access::Left { mode, why });
    }
    tighten(dir, &meta, DIR_MODE)
}

/// Makes the state file `path` `0600` when others may read or write it (an older version's file,
/// or one copied in by hand), if this process's user owns it; a missing file needs nothing.
pub fn tighten_file(path: &Path) -> std::io::Result<Access> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Access::Private),
        Err(e) => return Err(e),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o077 == 0 {
        return Ok(Access::Private);
    }
    tighten(path, &meta, FILE_MODE)
}

/// Sets `mode` on `path` if this process's user owns it (root may change anyone's, which is not
/// ours to do); else says why not.
fn tighten(path: &Path, meta: &std::fs::Metadata, mode: u32) -> std::io::Result<Access> {
    let was = meta.permissions().mode() & 0o7777;
    if own_uid() != Some(meta.uid()) {
        let why = "owned by another user";
        return Ok(Access::Left { mode: was, why });
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(Access::Tightened { was })
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

    /// A `kill -9` between creating a temp file and renaming it leaves the temp file: the next
    /// start removes it, and only files of exactly that naming (nothing of anyone else's).
    #[test]
    fn leftover_temp_files_of_our_naming_are_removed_and_nothing_else() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("ck.json");
        let at = |n: &str| root.path().join(n);
        let ours = ".ck.json.0123456789abcdef.tmp";
        let kept = [
            ".ck.json.tmp",
            ".ck.json.0123456789abcdeg.tmp",
            ".ck.json.0123456789abcdef.tmp.keep",
            ".other.json.0123456789abcdef.tmp",
            "ck.json.0123456789abcdef.tmp",
        ];
        for n in std::iter::once(ours).chain(kept) {
            std::fs::write(at(n), b"x").unwrap();
        }
        let victim = at("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = ".ck.json.fedcba9876543210.tmp";
        std::os::unix::fs::symlink(&victim, at(link)).unwrap();
        assert_eq!(remove_leftovers(&path).unwrap(), 1);
        assert!(!at(ours).exists());
        for n in kept.iter().chain([&link]) {
            assert!(at(n).symlink_metadata().is_ok(), "{n} was removed");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            remove_leftovers(&root.path().join("no/ck.json")).unwrap(),
            0
        );
    }

    /// A state directory others may write in is made `0700` when it is ours; one they may only
    /// read, and a shared sticky one, are left as they are. A state file others may read is
    /// made `0600`.
    #[test]
    fn state_others_could_touch_is_tightened_when_ours() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        let set = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        set(&dir, 0o777);
        assert_eq!(tighten_dir(&dir).unwrap(), Access::Tightened { was: 0o777 });
        assert_eq!(mode(&dir), 0o700);
        set(&dir, 0o755);
        assert_eq!(tighten_dir(&dir).unwrap(), Access::Private);
        assert_eq!(mode(&dir), 0o755);
        set(&dir, 0o1777);
        assert!(matches!(
            tighten_dir(&dir).unwrap(),
            Access::Left { mode: 0o1777, .. }
        ));
        let file = dir.join("ck.json");
        assert_eq!(tighten_file(&file).unwrap(), Access::Private);
        std::fs::write(&file, b"{}").unwrap();
        set(&file, 0o644);
        assert_eq!(
            tighten_file(&file).unwrap(),
            Access::Tightened { was: 0o644 }
        );
        assert_eq!(mode(&file), 0o600);
        set(&dir, 0o700);
    }

    /// The start-up check creates the directory and leaves nothing behind; a path under a
    /// regular file fails as the first save would.
    #[test]
    fn the_writable_check_leaves_nothing_and_fails_where_a_save_would() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("new/ck.json");
        check_writable(&path).unwrap();
        assert_eq!(mode(&root.path().join("new")), 0o700);
        assert_eq!(
            std::fs::read_dir(root.path().join("new")).unwrap().count(),
            0
        );
        let file = root.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = check_writable(&file.join("ck.json")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotADirectory);
    }
}
