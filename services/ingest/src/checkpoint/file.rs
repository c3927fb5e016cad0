//! The file store: every stream's record in one JSON array, private to its owner (`0600` in a
//! `0700` directory) and replaced atomically through a temp file that cannot be a planted
//! symlink (`sse_runtime::private_file`).

use std::collections::BTreeMap;
use std::path::Path;

use super::CheckpointError;
use super::record::Record;

/// Loads the file's checkpoints; a missing file is empty, a damaged file or an over-large record
/// costs duplicates (a warning and no checkpoint), never the service.
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let records = match serde_json::from_slice::<Vec<Record>>(&bytes) {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "checkpoint file unreadable; starting without checkpoints");
            return Ok(BTreeMap::new());
        }
    };
    let mut loaded = BTreeMap::new();
    for r in records {
        match r.check_size() {
            Ok(()) => {
                loaded.insert(r.stream, r.last_event_id);
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "checkpoint skipped; its stream starts without it")
            }
        }
    }
    Ok(loaded)
}

/// Replaces the file with `all`.
pub async fn write(path: &Path, all: &BTreeMap<String, String>) -> Result<(), CheckpointError> {
    let records: Vec<Record> = all
        .iter()
        .map(|(k, v)| Record {
            stream: k.clone(),
            last_event_id: v.clone(),
        })
        .collect();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&records).map_err(|e| io(e.into()))?;
        sse_runtime::private_file::write(&path, &bytes).map_err(io)
    })
    .await
    .map_err(|e| CheckpointError::Mqtt(format!("checkpoint writer failed: {e}")))?
}
