//! The file store: every stream's record in one JSON array, private to its owner (`0600` in a
//! `0700` directory) and replaced atomically through a temp file that cannot be a planted
//! symlink (`sse_runtime::private_file`).
//!
//! The path is the operator's: at start a path that cannot work (a directory, a device, a
//! symlink, a directory the service may not write) is a configuration error, found before any
//! stream is read rather than at every save. What the file holds is input like any other: it is
//! read within [`FILE_BYTES_MAX`], and a file that is damaged or too large is kept aside for a
//! person to look at, never silently replaced.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sse_contract::limits::CHECKPOINT_RECORD_BYTES_MAX;
use sse_runtime::private_file::{self, Access};

use super::CheckpointError;
use super::record::{Record, Stored};
use super::retention::Entry;

/// Streams whose largest records ([`CHECKPOINT_RECORD_BYTES_MAX`], 8 KiB) fit in
/// [`FILE_BYTES_MAX`].
pub const FILE_STREAMS_AT_RECORD_MAX: u64 = 8192;

/// Most bytes of the checkpoint file read at start or written by a save: 64 MiB, 8,192 streams
/// whose records are at the 8 KiB limit, or about 400,000 streams of a 100-byte key and a short
/// id. Bounds what a damaged file (or a symlink to `/dev/zero`, were one followed) can cost.
pub const FILE_BYTES_MAX: u64 = CHECKPOINT_RECORD_BYTES_MAX as u64 * FILE_STREAMS_AT_RECORD_MAX;

/// Checks the path and its directory (created `0700` if missing), tidies what an earlier run
/// left, and loads the file's checkpoints. A missing file is empty; a damaged or over-large one
/// is kept aside and costs duplicates (a warning and no checkpoints), never the service.
pub fn open(path: &Path) -> Result<BTreeMap<String, Stored>, CheckpointError> {
    let found = match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            check_kind(path, meta.file_type())?;
            Some(meta)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(path, e)),
    };
    private_file::check_writable(path).map_err(|e| io(path, e))?;
    tidy(path);
    match found {
        Some(meta) => load(path, &meta),
        None => Ok(BTreeMap::new()),
    }
}

/// Replaces the file with `all`; refused when it would be larger than [`FILE_BYTES_MAX`] (the
/// next start would not read it).
pub async fn write(path: &Path, all: &BTreeMap<String, Entry>) -> Result<(), CheckpointError> {
    let records: Vec<Record> = all
        .iter()
        .map(|(k, e)| Record {
            stream: k.clone(),
            last_event_id: e.id.clone(),
            seen: Some(e.seen),
        })
        .collect();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let bytes = serde_json::to_vec_pretty(&records).map_err(|e| io(&path, e.into()))?;
        if bytes.len() as u64 > FILE_BYTES_MAX {
            return Err(CheckpointError::FileTooLarge {
                path,
                bytes: bytes.len() as u64,
            });
        }
        private_file::write(&path, &bytes).map_err(|e| io(&path, e))
    })
    .await
    .map_err(|e| CheckpointError::Mqtt(format!("checkpoint writer failed: {e}")))?
}

/// An I/O error of the checkpoint file, naming it.
fn io(path: &Path, source: std::io::Error) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses anything but a regular file at the path: a save renames a new file over it, so a
/// directory makes every save fail, and a symlink or device is nothing this store wrote (reading
/// one could read another file, or `/dev/zero` for ever).
fn check_kind(path: &Path, t: std::fs::FileType) -> Result<(), CheckpointError> {
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_socket() {
        "a socket"
    } else {
        "of an unknown kind"
    };
    Err(CheckpointError::NotAFile {
        path: path.to_path_buf(),
        what,
    })
}

/// Removes the temp files a save cut short left (`kill -9`), and makes the directory and the
/// file private where they are not; what cannot be done is logged, the store still opens.
fn tidy(path: &Path) {
    match private_file::remove_leftovers(path) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(file = %path.display(), removed = n, "removed temp files of checkpoint saves cut short")
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove temp files of checkpoint saves cut short");
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    log_access(dir, private_file::tighten_dir(dir), "directory");
    log_access(path, private_file::tighten_file(path), "file");
}

/// Says what making `path` private did: a change at info, what was left open at warn.
fn log_access(path: &Path, access: std::io::Result<Access>, what: &str) {
    match access {
        Ok(Access::Private) => {}
        Ok(Access::Tightened { was }) => {
            let was = format!("{was:o}");
            tracing::info!(path = %path.display(), was, "checkpoint {what} made private");
        }
        Ok(Access::Left { mode, why }) => {
            let mode = format!("{mode:o}");
            tracing::warn!(path = %path.display(), mode, why, "checkpoint {what} is open to other users and was left so; make it private (0700 for a directory)");
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot make the checkpoint {what} private");
        }
    }
}

/// Reads and decodes the regular file `path` (`meta`: what was found there). A file that cannot
/// be decoded or is too large is kept aside and starts the streams without checkpoints.
fn load(
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<BTreeMap<String, Stored>, CheckpointError> {
    let bytes = match read(path, meta)? {
        Ok(bytes) => bytes,
        Err(size) => {
            let why = format!("{size} bytes or more, over the limit of {FILE_BYTES_MAX}");
            set_aside(path, &why);
            return Ok(BTreeMap::new());
        }
    };
    let records = match serde_json::from_slice::<Vec<Record>>(&bytes) {
        Ok(records) => records,
        Err(e) => {
            set_aside(path, &e.to_string());
            return Ok(BTreeMap::new());
        }
    };
    let mut loaded = BTreeMap::new();
    for r in records {
        match r.check_size() {
            Ok(()) => {
                let (key, stored) = r.into_stored();
                loaded.insert(key, stored);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "checkpoint skipped; its stream starts without it")
            }
        }
    }
    Ok(loaded)
}

/// The file's bytes, or `Err(size)` when it holds more than [`FILE_BYTES_MAX`]: never more is
/// read, whatever it grows to meanwhile. The file opened must be the one inspected.
fn read(path: &Path, meta: &std::fs::Metadata) -> Result<Result<Vec<u8>, u64>, CheckpointError> {
    if meta.len() > FILE_BYTES_MAX {
        return Ok(Err(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let opened = file.metadata().map_err(|e| io(path, e))?;
    if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        // Replaced between the look and the open (by a symlink, say): not the file checked.
        check_kind(
            path,
            std::fs::symlink_metadata(path)
                .map_err(|e| io(path, e))?
                .file_type(),
        )?;
        return Err(io(
            path,
            std::io::Error::other("replaced while it was opened"),
        ));
    }
    let mut bytes = Vec::new();
    file.take(FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io(path, e))?;
    if bytes.len() as u64 > FILE_BYTES_MAX {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// Keeps a damaged checkpoint file as `<name>.damaged-<unix time>` (`0600`, next to it) for a
/// person to look at, rather than let the first save replace it; says where.
fn set_aside(path: &Path, why: &str) {
    let kept = aside_name(path);
    let moved = std::fs::rename(path, &kept).and_then(|()| {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(private_file::FILE_MODE);
        std::fs::set_permissions(&kept, private)
    });
    match moved {
        Ok(()) => tracing::warn!(
            file = %path.display(),
            kept = %kept.display(),
            error = why,
            "checkpoint file damaged; kept as {}; starting without checkpoints (streams may re-read events)",
            kept.display()
        ),
        Err(e) => tracing::warn!(
            file = %path.display(),
            error = why,
            rename_error = %e,
            "checkpoint file damaged and could not be kept aside; starting without checkpoints, the first save replaces it"
        ),
    }
}

/// `<path>.damaged-<unix seconds>`, with `-<n>` added while that name is taken (two damaged
/// files in one second must not overwrite each other).
fn aside_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("{}.damaged-{secs}", path.display());
    let mut kept = PathBuf::from(&base);
    let mut n = 1;
    while kept.symlink_metadata().is_ok() {
        kept = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    kept
}
