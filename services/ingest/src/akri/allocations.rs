//! The allocation files the Akri operator writes: one file per inbound endpoint allocated to this
//! connector, named `{device}_{endpoint}`, holding the endpoint's asset names one per line (an
//! empty file: no assets). A device name cannot contain `_`, an endpoint name can, so the name
//! is split at the first `_`. Entries starting with `..` are the Kubernetes atomic writer's
//! bookkeeping (`..data` and the timestamped directory) and are not allocations.
//!
//! The directory is written by the operator, not by us, but it is still input: every file is
//! bounded in size, the directory in entries, and a bad entry is skipped with its reason while
//! the others apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::resources::{ReadError, read_bounded};

/// One inbound endpoint of one device: the unit Akri allocates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EndpointRef {
    /// The device's name in ADR.
    pub device: String,
    /// The inbound endpoint's name within the device.
    pub endpoint: String,
}

impl EndpointRef {
    /// The endpoint an allocation file is about, from its name; `None` without a `_`, or with
    /// an empty device or endpoint name.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let (device, endpoint) = name.split_once('_')?;
        if device.is_empty() || endpoint.is_empty() {
            return None;
        }
        Some(Self {
            device: device.to_string(),
            endpoint: endpoint.to_string(),
        })
    }
}

/// What this connector is allocated: each endpoint with the names of its assets.
pub type Allocations = BTreeMap<EndpointRef, BTreeSet<String>>;

/// Bounds on what is read from the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most entries in the directory (files, and the atomic writer's own).
    pub max_entries: usize,
    /// Largest allocation file, in bytes.
    pub max_file_bytes: u64,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_file_bytes: 1024 * 1024,
        }
    }
}

/// Why one entry of the directory was skipped; the others still apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// The name is not `{device}_{endpoint}`.
    #[error("allocation file {0:?}: expected {{device}}_{{endpoint}}")]
    BadName(String),
    /// The file is over [`Bounds::max_file_bytes`].
    #[error("allocation file {name:?}: over the limit of {max} bytes")]
    TooLarge {
        /// The file name.
        name: String,
        /// The limit.
        max: u64,
    },
    /// The file is not UTF-8 text.
    #[error("allocation file {0:?}: not UTF-8 text")]
    NotText(String),
    /// The file could not be read.
    #[error("allocation file {name:?}: {why}")]
    Unreadable {
        /// The file name.
        name: String,
        /// The I/O error.
        why: String,
    },
}

/// Why the directory itself could not be read: nothing of it applies.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Listing the directory failed.
    #[error("ADR resources directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// It holds more entries than [`Bounds::max_entries`].
    #[error("ADR resources directory {path}: more than {max} entries")]
    TooManyEntries {
        /// The directory.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
}

/// The directory as read: the allocations, and the entries skipped with their reasons.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// Every readable allocation.
    pub allocations: Allocations,
    /// Entries that were skipped, for status and logs.
    pub skipped: Vec<EntryError>,
}

/// Reads the allocation directory (not recursively; blocking file I/O, so call it off the
/// runtime thread).
pub fn read(dir: &Path, bounds: Bounds) -> Result<Read, DirError> {
    let io = |source| DirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Read::default();
    for (n, entry) in std::fs::read_dir(dir).map_err(io)?.enumerate() {
        if n >= bounds.max_entries {
            return Err(DirError::TooManyEntries {
                path: dir.to_path_buf(),
                max: bounds.max_entries,
            });
        }
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            continue;
        }
        // Follows symlinks: a projected volume's files are links into `..data`.
        match std::fs::metadata(entry.path()) {
            Ok(m) if m.is_file() => {}
            Ok(_) => continue,
            Err(e) => {
                let why = e.to_string();
                out.skipped.push(EntryError::Unreadable { name, why });
                continue;
            }
        }
        let Some(at) = EndpointRef::from_file_name(&name) else {
            out.skipped.push(EntryError::BadName(name));
            continue;
        };
        match read_assets(&entry.path(), &name, bounds.max_file_bytes) {
            Ok(assets) => {
                out.allocations.insert(at, assets);
            }
            Err(e) => out.skipped.push(e),
        }
    }
    Ok(out)
}

/// The asset names of one file: one per line, surrounding whitespace and empty lines ignored.
fn read_assets(path: &Path, name: &str, max: u64) -> Result<BTreeSet<String>, EntryError> {
    let text = read_bounded(path, usize::try_from(max).unwrap_or(usize::MAX)).map_err(|e| {
        let name = name.to_string();
        match e {
            ReadError::TooLarge => EntryError::TooLarge { name, max },
            ReadError::NotUtf8(_) => EntryError::NotText(name),
            ReadError::Io(e) => EntryError::Unreadable {
                name,
                why: e.to_string(),
            },
        }
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn at(device: &str, endpoint: &str) -> EndpointRef {
        EndpointRef {
            device: device.into(),
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn names_split_at_the_first_underscore() {
        assert_eq!(
            EndpointRef::from_file_name("press_sse_main"),
            Some(at("press", "sse_main"))
        );
        assert_eq!(EndpointRef::from_file_name("press"), None);
        assert_eq!(EndpointRef::from_file_name("_e"), None);
        assert_eq!(EndpointRef::from_file_name("d_"), None);
    }

    #[test]
    fn reads_each_endpoint_with_its_assets_and_skips_the_writers_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("press_sse"), "a1\n  a2  \n\na1\n").unwrap();
        std::fs::write(p.join("oven_in_1"), "").unwrap();
        std::fs::create_dir(p.join("..2026_12_03")).unwrap();
        std::fs::write(p.join("..2026_12_03/ghost_e"), "x").unwrap();
        std::os::unix::fs::symlink("..2026_12_03", p.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/ghost_e", p.join("linked_e")).unwrap();
        std::fs::create_dir(p.join("sub_dir")).unwrap();
        let read = read(p, Bounds::default()).unwrap();
        let want: Allocations = [
            (at("press", "sse"), ["a1", "a2"].map(String::from).into()),
            (at("oven", "in_1"), BTreeSet::new()),
            (at("linked", "e"), ["x"].map(String::from).into()),
        ]
        .into();
        assert_eq!(read.allocations, want);
        assert!(read.skipped.is_empty(), "{:?}", read.skipped);
    }

    #[test]
    fn a_bad_entry_is_skipped_with_its_reason_and_the_rest_apply() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("good_e"), "a\n").unwrap();
        std::fs::write(p.join("nounderscore"), "a\n").unwrap();
        std::fs::write(p.join("big_e"), "a".repeat(65)).unwrap();
        std::fs::write(p.join("bin_e"), [0xff, 0xfe]).unwrap();
        let bounds = Bounds {
            max_file_bytes: 64,
            ..Bounds::default()
        };
        let read = read(p, bounds).unwrap();
        assert_eq!(read.allocations.len(), 1);
        assert!(read.allocations.contains_key(&at("good", "e")));
        let mut skipped: Vec<String> = read.skipped.iter().map(|e| e.to_string()).collect();
        skipped.sort();
        assert_eq!(
            skipped,
            [
                "allocation file \"big_e\": over the limit of 64 bytes",
                "allocation file \"bin_e\": not UTF-8 text",
                "allocation file \"nounderscore\": expected {device}_{endpoint}",
            ]
        );
    }

    #[test]
    fn a_directory_over_its_entry_limit_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..3 {
            std::fs::write(dir.path().join(format!("d{i}_e")), "").unwrap();
        }
        let bounds = Bounds {
            max_entries: 2,
            ..Bounds::default()
        };
        let err = read(dir.path(), bounds).unwrap_err();
        assert!(err.to_string().ends_with("more than 2 entries"), "{err}");
        let missing = read(&dir.path().join("none"), Bounds::default()).unwrap_err();
        assert!(matches!(missing, DirError::Io { .. }), "{missing}");
    }
}
