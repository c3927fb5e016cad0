//! The file checkpoint store at start, where what is on disk is whatever an earlier run, a crash
//! or a person left: a damaged file is kept aside rather than replaced a second later, temp
//! files of a save cut short by `kill -9` are removed, a directory others may write in is made
//! private, and a path that cannot work (a directory, under a regular file, a device) is a
//! configuration error instead of a retry for ever.

#![allow(clippy::unwrap_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sse_ingest::checkpoint::{Checkpoints, StoreConfig, lock};
use tokio_util::sync::CancellationToken;

async fn open(path: &Path) -> Result<Checkpoints, sse_ingest::checkpoint::CheckpointError> {
    Checkpoints::open(
        &StoreConfig::File(path.to_path_buf()),
        CancellationToken::new(),
    )
    .await
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The entries of `dir` whose names start with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

/// Saves checkpoint `id` of stream `key`.
async fn save(c: &Checkpoints, key: &str, id: &str) {
    let (p, _) = c.resume(key);
    lock(&p).sent(&[], id);
    c.save().await.unwrap();
}

/// A damaged file is not replaced by the first save: it is kept next to it, private, under a
/// name that says what it is, and the store starts without checkpoints.
#[tokio::test]
async fn a_damaged_file_is_kept_aside_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.json");
    std::fs::write(&path, b"[{\"stream\": \"s1\", \"lastEv").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = open(&path).await.unwrap();
    assert_eq!(c.resume("s1").1, "", "nothing loaded from a damaged file");
    save(&c, "s1", "7").await;
    let kept = named(dir.path(), "ck.json.damaged-");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(
        std::fs::read(&kept[0]).unwrap(),
        b"[{\"stream\": \"s1\", \"lastEv"
    );
    assert_eq!(mode(&kept[0]), 0o600);
    // The new file is whole, and a second damaged file does not overwrite the first one kept.
    assert_eq!(open(&path).await.unwrap().resume("s1").1, "7");
    std::fs::write(&path, b"{oops").unwrap();
    open(&path).await.unwrap();
    assert_eq!(named(dir.path(), "ck.json.damaged-").len(), 2);
}

/// A file over the limit is not read (a sparse 300 MB file costs no memory here), and is kept
/// aside as a damaged one.
#[tokio::test]
async fn a_file_over_the_limit_is_kept_aside_unread() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(300 << 20).unwrap();
    drop(f);
    let c = open(&path).await.unwrap();
    assert_eq!(c.resume("s1").1, "");
    assert!(!path.exists());
    assert_eq!(named(dir.path(), "ck.json.damaged-").len(), 1);
}

/// `kill -9` during a save leaves its temp file; the next start removes it (and nothing of
/// another name).
#[tokio::test]
async fn temp_files_of_a_save_cut_short_are_removed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.json");
    let c = open(&path).await.unwrap();
    save(&c, "s1", "41").await;
    drop(c);
    let leftover = dir.path().join(".ck.json.00c0ffee00c0ffee.tmp");
    std::fs::write(&leftover, b"[]").unwrap();
    let other = dir.path().join(".notes.0000000000000000.tmp");
    std::fs::write(&other, b"mine").unwrap();
    let c = open(&path).await.unwrap();
    assert_eq!(c.resume("s1").1, "41");
    assert!(!leftover.exists(), "the leftover temp file is still there");
    assert!(other.exists(), "a file of another name was removed");
}

/// A checkpoint directory anyone may write in (so anyone could replace the file) is made `0700`
/// at start, and an existing file others may read is made `0600`.
#[tokio::test]
async fn an_open_directory_and_file_are_made_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ck");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.join("ck.json");
    std::fs::write(&path, b"[]").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    open(&path).await.unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&path), 0o600);
}

/// What cannot work until the operator changes the path is a configuration error naming it; a
/// missing file in a missing directory is simply empty.
#[tokio::test]
async fn a_path_that_cannot_work_is_a_configuration_error() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let link = root.path().join("zero.json");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let cases = [
        (root.path().to_path_buf(), "a directory"),
        (file.join("ck.json"), "Not a directory"),
        (PathBuf::from("/dev/null"), "a device"),
        (link, "a symbolic link"),
    ];
    for (path, says) in cases {
        let e = open(&path).await.unwrap_err();
        assert!(e.is_config(), "{}: {e}", path.display());
        let shown = e.to_string();
        assert!(shown.contains(&path.display().to_string()), "{shown}");
        assert!(shown.contains(says), "{shown}");
    }
    let fresh = root.path().join("new/dir/ck.json");
    assert_eq!(open(&fresh).await.unwrap().resume("s").1, "");
    assert_eq!(mode(&root.path().join("new/dir")), 0o700);
}
