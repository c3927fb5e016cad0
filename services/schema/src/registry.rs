//! The schema registry: the [`Registry`] trait the service depends on, and [`FileRegistry`], the
//! embedded implementation, durable in a directory.
//!
//! `FileRegistry` keeps one JSON file per (name, version), `<NAME>@<version>.json`, written to a
//! temporary file, fsynced and renamed (then the directory fsynced), so a crash leaves either the
//! old state or the new, never a torn file. At start it loads every file; leftover temporary files
//! (names starting with `.`) are removed and unreadable files skipped with a warning.
//!
//! The files are private: the directory is created (or tightened to) `0700`, each file is written
//! `0600` through a temporary file opened with `O_CREAT | O_EXCL`, so a symlink planted at the
//! temporary path makes the write fail instead of being followed; at start only regular files
//! are read (a symlink is skipped). The files' total size is capped (`--max-registry-bytes`): a
//! write that would pass it is refused with [`Error::RegistryFull`], before anything is written.
//!
//! The same shape seen by two subjects gets the same name; when it also gets the same version,
//! the one file lists both subjects (`subjects`), so each subject resumes its numbering. A
//! subject added to a version already stored is added in memory at once and written behind
//! ([`FileRegistry::flush`], every second): thousands of new subjects of one shape used to
//! rewrite and fsync that one growing file once each, holding every stream's events behind them.
//! A crash before the write loses only the association, which the subject's next event makes
//! again: the version it names is durable.

use std::cmp::Ordering as KeyOrdering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{is_name, name_of, to_canonical};
use crate::draft07::check_version_spelling;
use crate::error::Error;
use sse_runtime::private_file;
use subject_lists::head;

/// The format of every schema this registry holds.
pub const FORMAT: &str = "JsonSchema/draft-07";

/// One registered schema version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    /// SHA-256 (uppercase hex) of `content`.
    pub name: String,
    /// Version ("1", "2", ...).
    pub version: String,
    /// Registry namespace.
    pub namespace: String,
    /// Always [`FORMAT`].
    pub format: String,
    /// The schema, canonical JSON.
    pub content: String,
    /// The first subject this version was registered for; empty for manual puts.
    pub subject: String,
    /// Every subject this version was registered for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
}

/// A schema to register: canonical content and its name, a version and the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchema {
    /// Content-addressed name.
    pub name: String,
    /// Canonical JSON.
    pub content: String,
    /// Version to register.
    pub version: String,
    /// Subject, empty for manual puts.
    pub subject: String,
}

impl NewSchema {
    /// A schema from its JSON document: canonicalizes it and names it.
    pub fn new(schema: &Value, version: impl Into<String>, subject: impl Into<String>) -> Self {
        let content = to_canonical(schema);
        Self {
            name: name_of(&content),
            content,
            version: version.into(),
            subject: subject.into(),
        }
    }
}

/// A schema version's identity, ordered as the registry lists versions: by name, then by
/// version ([`version_key`]: numeric versions by value, above any other).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionId {
    /// Schema name.
    pub name: String,
    /// Version.
    pub version: String,
}

impl VersionId {
    /// The identity of `name` at `version`.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
        }
    }

    /// The identity of a stored version.
    pub fn of(r: &SchemaRecord) -> Self {
        Self::new(r.name.as_str(), r.version.as_str())
    }
}

impl Ord for VersionId {
    fn cmp(&self, other: &Self) -> KeyOrdering {
        (self.name.as_str(), version_key(&self.version))
            .cmp(&(other.name.as_str(), version_key(&other.version)))
    }
}

impl PartialOrd for VersionId {
    fn partial_cmp(&self, other: &Self) -> Option<KeyOrdering> {
        Some(self.cmp(other))
    }
}

/// Where schemas are stored: the embedded [`FileRegistry`], or an external registry
/// (the Azure IoT Operations one); [`crate::any_registry::AnyRegistry`] picks one at run time.
pub trait Registry: Send + Sync + 'static {
    /// Stores a schema version; storing an existing (name, version) again returns it unchanged.
    fn put(&self, schema: NewSchema) -> impl Future<Output = Result<SchemaRecord, Error>> + Send;
    /// One version of a schema; the highest version when `version` is `None`.
    fn get(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> impl Future<Output = Result<SchemaRecord, Error>> + Send;
    /// Hands `take` the registered versions after `after` (from the first when `None`) in the
    /// order of [`VersionId`], until it returns `false` or none is left: a page of the list
    /// costs what the page holds, not the whole registry. `take` runs under the registry's lock
    /// and must not call it.
    fn list_from(
        &self,
        after: Option<&VersionId>,
        take: impl FnMut(&SchemaRecord) -> bool + Send,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Every registered version, ordered by name then version (all of them: for tests and
    /// small registries; the gRPC list pages through [`Registry::list_from`]).
    fn list(&self) -> impl Future<Output = Result<Vec<SchemaRecord>, Error>> + Send {
        async move {
            let mut all = Vec::new();
            self.list_from(None, |r| {
                all.push(r.clone());
                true
            })
            .await?;
            Ok(all)
        }
    }
    /// Deletes one version that no subject uses (one put by hand); the version as it was.
    fn delete(
        &self,
        name: &str,
        version: &str,
    ) -> impl Future<Output = Result<SchemaRecord, Error>> + Send;
    /// Writes what was registered in memory only (subjects added to stored versions); the
    /// service calls it every second and at shutdown.
    fn flush(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// The highest version registered for `subject`, to resume inference after a restart
    /// (without its list of subjects).
    fn current(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<Option<SchemaRecord>, Error>> + Send;
}

/// Orders versions: numeric ones (all digits) by value, however many digits, above any
/// non-numeric; others by text. Equal values (`01`, `1`) are ordered by text.
pub fn version_key(v: &str) -> (bool, usize, &str, &str) {
    let numeric = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    // Without leading zeros, a longer number is a larger one; of one length, text order is
    // value order.
    let value = if numeric {
        v.trim_start_matches('0')
    } else {
        ""
    };
    (numeric, value.len(), value, v)
}

/// Checks a version string: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn validate_version(v: &str) -> Result<(), Error> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidVersion(v.chars().take(80).collect()))
    }
}

/// Checks the version of a schema being stored ([`Registry::put`]): [`validate_version`], and
/// one spelling per version ([`check_version_spelling`]). Versions already stored, read back
/// from files or named by an external registry, are checked with [`validate_version`] only.
pub fn validate_new_version(v: &str) -> Result<(), Error> {
    validate_version(v)?;
    check_version_spelling(v)
}

#[derive(Debug, Default)]
struct Index {
    /// Every version, in list order.
    by_key: BTreeMap<VersionId, SchemaRecord>,
    /// Size of each record's file.
    sizes: HashMap<VersionId, u64>,
    /// Sum of `sizes`, plus the writes under way.
    bytes: u64,
    /// Versions whose subjects changed in memory since their file was written.
    dirty: BTreeSet<VersionId>,
}

impl Index {
    fn insert(&mut self, r: SchemaRecord) {
        self.by_key.insert(VersionId::of(&r), r);
    }

    /// Sets the size of `key`'s file to `size` if the total stays within `max`; the old size.
    fn reserve(&mut self, key: &VersionId, size: u64, max: u64) -> Result<u64, Error> {
        let old = self.sizes.get(key).copied().unwrap_or(0);
        let total = self.bytes - old + size;
        if total > max {
            return Err(Error::RegistryFull { max_bytes: max });
        }
        self.bytes = total;
        self.sizes.insert(key.clone(), size);
        Ok(old)
    }

    fn highest(&self, mut pred: impl FnMut(&SchemaRecord) -> bool) -> Option<&SchemaRecord> {
        self.by_key
            .values()
            .filter(|r| pred(r))
            .max_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)))
    }
}

/// The embedded registry: an in-memory index over one durable file per schema version.
#[derive(Debug)]
pub struct FileRegistry {
    dir: PathBuf,
    namespace: String,
    index: Mutex<Index>,
    /// Latest version per subject, kept beside the index for O(1) lookups.
    subjects: Mutex<HashMap<String, VersionId>>,
    /// Most bytes the files may take (`--max-registry-bytes`).
    max_bytes: u64,
    /// Held while a file is written or removed and the index follows, so a delete and a write
    /// of one version cannot leave the index and the directory disagreeing.
    files: tokio::sync::Mutex<()>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileRegistry {
    /// Opens (creating it if needed) the registry in `dir` and loads every schema file.
    pub fn open(dir: &Path, namespace: &str) -> Result<Self, Error> {
        Self::open_with(dir, namespace, true)
    }

    /// Opens a local mirror of an external registry in `dir`: the same files, but names are the
    /// external registry's, so they are not checked against the content.
    pub fn open_mirror(dir: &Path, namespace: &str) -> Result<Self, Error> {
        Self::open_with(dir, namespace, false)
    }

    fn open_with(dir: &Path, namespace: &str, verify_names: bool) -> Result<Self, Error> {
        let dir_err = |source| Error::DataDir {
            path: dir.to_path_buf(),
            source,
        };
        private_file::create_dir(dir).map_err(dir_err)?;
        make_private(dir, 0o700);
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().into_owned();
            // Not followed: a symlink here was not written by this registry.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if file_name.starts_with('.') && file_name.ends_with(".tmp") {
                // A write interrupted by a crash: never renamed, so never part of the registry.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if file_name.starts_with('.') || !file_name.ends_with(".json") {
                continue;
            }
            match load_file(&path, verify_names) {
                Ok((mut r, size)) => {
                    // Kept sorted, so a subject is found by binary search.
                    r.subjects.sort();
                    r.subjects.dedup();
                    make_private(&path, 0o600);
                    index.bytes += size;
                    index.sizes.insert(VersionId::of(&r), size);
                    index.insert(r);
                }
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "skipping unreadable schema file")
                }
            }
        }
        let mut subjects: HashMap<String, VersionId> = HashMap::new();
        for r in index.by_key.values() {
            for s in record_subjects(r) {
                let newer = match subjects.get(s) {
                    Some(id) => version_key(&r.version) > version_key(&id.version),
                    None => true,
                };
                if newer {
                    subjects.insert(s.to_string(), VersionId::of(r));
                }
            }
        }
        tracing::info!(dir = %dir.display(), schemas = index.by_key.len(), bytes = index.bytes, "schema registry loaded");
        Ok(Self {
            dir: dir.to_path_buf(),
            namespace: namespace.to_string(),
            index: Mutex::new(index),
            subjects: Mutex::new(subjects),
            max_bytes: u64::MAX,
            files: tokio::sync::Mutex::new(()),
        })
    }

    /// The registry with its files capped at `max_bytes` in total (files already there count;
    /// a write that would pass the cap is refused with [`Error::RegistryFull`]).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// How many bytes the registry's files take.
    pub fn bytes(&self) -> u64 {
        self.lock_index().bytes
    }

    fn lock_index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_subjects(&self) -> std::sync::MutexGuard<'_, HashMap<String, VersionId>> {
        self.subjects.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn store(&self, record: SchemaRecord) -> Result<SchemaRecord, Error> {
        let key = VersionId::of(&record);
        let _files = self.files.lock().await;
        // Stored while this put waited for the lock (the subjects of a new version, put at once,
        // wait here behind the first): only the subject is new, and the file is written behind.
        if let Some(r) = self.add_subject_if_stored(&key, &record.subject)? {
            return Ok(r);
        }
        let bytes = serialize(&record)?;
        let size = bytes.len() as u64;
        let old = self.lock_index().reserve(&key, size, self.max_bytes)?;
        let dir = self.dir.clone();
        let r = record.clone();
        let written = tokio::task::spawn_blocking(move || write_record(&dir, &r, &bytes))
            .await
            .map_err(|e| Error::Task(e.to_string()))
            .and_then(|w| w);
        if let Err(e) = written {
            // Give the reservation back: the file kept its old size (or does not exist).
            let mut index = self.lock_index();
            index.bytes = index.bytes - size + old;
            if old == 0 {
                index.sizes.remove(&key);
            } else {
                index.sizes.insert(key, old);
            }
            return Err(e);
        }
        self.note_subjects(record_subjects(&record), &key);
        // Not stored meanwhile: versions enter the index only here, under `files`.
        self.lock_index().insert(record.clone());
        Ok(record)
    }

    /// Stores a record named elsewhere (by an external registry) for `subject` (empty for none),
    /// adding the subject to an existing record of the same name and version.
    pub async fn remember(
        &self,
        record: SchemaRecord,
        subject: &str,
    ) -> Result<SchemaRecord, Error> {
        validate_version(&record.version)?;
        if !is_safe_name(&record.name) {
            return Err(Error::InvalidSchema(format!(
                "unusable schema name {:?}",
                record.name.chars().take(80).collect::<String>()
            )));
        }
        if let Some(r) = self.add_subject_if_stored(&VersionId::of(&record), subject)? {
            return Ok(r);
        }
        let mut record = record;
        record.subject = subject.to_string();
        record.subjects.clear();
        self.store(record).await
    }
}

/// A record as its file holds it.
fn serialize(record: &SchemaRecord) -> Result<Vec<u8>, Error> {
    serde_json::to_vec_pretty(record).map_err(|e| Error::Write {
        name: record.name.clone(),
        version: record.version.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Whether an external registry's schema name can be a file name here (every name the
/// registry holds is one: content names are 64 hex digits).
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl Registry for FileRegistry {
    async fn put(&self, schema: NewSchema) -> Result<SchemaRecord, Error> {
        validate_new_version(&schema.version)?;
        let id = VersionId::new(schema.name.as_str(), schema.version.as_str());
        if let Some(r) = self.add_subject_if_stored(&id, &schema.subject)? {
            return Ok(r);
        }
        self.store(SchemaRecord {
            name: schema.name,
            version: schema.version,
            namespace: self.namespace.clone(),
            format: FORMAT.to_string(),
            content: schema.content,
            subject: schema.subject,
            subjects: Vec::new(),
        })
        .await
    }

    async fn get(&self, name: &str, version: Option<&str>) -> Result<SchemaRecord, Error> {
        let index = self.lock_index();
        let found = match version {
            Some(v) => index.by_key.get(&VersionId::new(name, v)),
            None => index.highest(|r| r.name == name),
        };
        found.cloned().ok_or_else(|| {
            Error::NotFound(match version {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            })
        })
    }

    async fn list_from(
        &self,
        after: Option<&VersionId>,
        mut take: impl FnMut(&SchemaRecord) -> bool + Send,
    ) -> Result<(), Error> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let index = self.lock_index();
        for r in index
            .by_key
            .range((start, Bound::Unbounded))
            .map(|(_, r)| r)
        {
            if !take(r) {
                break;
            }
        }
        Ok(())
    }

    async fn flush(&self) {
        FileRegistry::flush(self).await;
    }

    async fn delete(&self, name: &str, version: &str) -> Result<SchemaRecord, Error> {
        let id = VersionId::new(name, version);
        let _files = self.files.lock().await;
        let record = {
            let mut index = self.lock_index();
            let Some(r) = index.by_key.get(&id) else {
                return Err(Error::NotFound(format!("{name}:{version}")));
            };
            if let Some(first) = record_subjects(r).next() {
                let n = record_subjects(r).count();
                return Err(Error::NotDeletable {
                    name: name.to_string(),
                    version: version.to_string(),
                    reason: format!(
                        "{n} dataset(s) or event(s) use it, {first:?} first; only a version put by hand, which none uses, can be deleted"
                    ),
                });
            }
            match index.by_key.remove(&id) {
                Some(r) => r,
                None => return Err(Error::NotFound(format!("{name}:{version}"))),
            }
        };
        let path = self.dir.join(file_name(&record));
        let dir = self.dir.clone();
        let removed = tokio::task::spawn_blocking(move || {
            std::fs::remove_file(&path)?;
            private_file::sync_dir(&dir)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        let mut index = self.lock_index();
        if let Err(source) = removed {
            index.insert(record.clone());
            return Err(Error::Write {
                name: record.name,
                version: record.version,
                source,
            });
        }
        let size = index.sizes.remove(&id).unwrap_or(0);
        index.bytes -= size;
        index.dirty.remove(&id);
        Ok(record)
    }

    async fn current(&self, subject: &str) -> Result<Option<SchemaRecord>, Error> {
        let key = self.lock_subjects().get(subject).cloned();
        Ok(key.and_then(|k| self.lock_index().by_key.get(&k).map(head)))
    }
}

/// Every subject of `r`, its first one first (older files list it only in `subject`).
pub fn record_subjects(r: &SchemaRecord) -> impl Iterator<Item = &str> {
    std::iter::once(r.subject.as_str())
        .chain(r.subjects.iter().map(String::as_str))
        .filter(|s| !s.is_empty())
}

fn file_name(r: &SchemaRecord) -> String {
    format!("{}@{}.json", r.name, r.version)
}

/// Tightens the mode of a file or directory of the registry to `mode` (written by an older
/// version, or a directory made by someone else); where that is not allowed (a volume's mount
/// point owned by root), says so and goes on.
fn make_private(path: &Path, mode: u32) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), error = %e, mode = format!("{:o}", meta.permissions().mode() & 0o777), "cannot make the schema registry's file private");
    }
}

fn load_file(path: &Path, verify_names: bool) -> Result<(SchemaRecord, u64), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let r: SchemaRecord = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    if verify_names && (!is_name(&r.name) || name_of(&r.content) != r.name) {
        return Err("name does not match content".into());
    }
    if !verify_names && !is_safe_name(&r.name) {
        return Err("unusable name".into());
    }
    validate_version(&r.version).map_err(|e| e.to_string())?;
    if !serde_json::from_str::<Value>(&r.content).is_ok_and(|v| v.is_object()) {
        return Err("content is not a JSON object".into());
    }
    Ok((r, bytes.len() as u64))
}

fn write_record(dir: &Path, r: &SchemaRecord, bytes: &[u8]) -> Result<(), Error> {
    let final_name = file_name(r);
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{final_name}.{}.{n}.tmp", std::process::id());
    // Created `0600` and exclusively, so whatever is at `tmp` already (a planted symlink above
    // all) fails the write rather than being followed; fsynced, renamed, the directory fsynced.
    private_file::write_via(&dir.join(tmp), &dir.join(final_name), bytes).map_err(|source| {
        Error::Write {
            name: r.name.clone(),
            version: r.version.clone(),
            source,
        }
    })
}

mod subject_lists;

#[cfg(test)]
mod tests;
