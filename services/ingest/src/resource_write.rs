//! The write path for resources (`PutResource`, `DeleteResource`, `GetResource`): a Device or
//! Asset document is checked by the loader itself, against the directory as it would be after
//! the write, then written atomically as `<kind>-<name>.yaml` (private, fsynced, renamed). The
//! directory watcher applies it as it applies any edit: there is no second way in.
//!
//! A resource defined in a file of another name (a hand-written `devices.yaml`) is refused, not
//! rewritten: that file may hold other resources and comments this API would lose, and writing
//! a second definition would make two. Resources that are not ours to write are refused too: a
//! read-only directory (a ConfigMap mount) and ADR mode.

pub mod fields;
pub mod grpc;
pub mod name;
pub mod secrets;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use fields::Violation;

use crate::resources;

/// Largest resource document `PutResource` takes (and, with room for the other fields, its
/// gRPC request): a device or asset of hundreds of events is tens of KiB.
pub const RESOURCE_WRITE_BYTES_MAX: usize = 1024 * 1024;
/// Most asset names a refused device delete lists (then "and N more"): the message stays short
/// whatever the directory holds.
pub const IN_USE_NAMES_MAX: usize = 3;

/// Largest request to `IngestService`: a [`RESOURCE_WRITE_BYTES_MAX`] document and its other
/// fields. A larger one is refused from its gRPC frame header, before it is decoded.
pub const REQUEST_BYTES_MAX: usize = RESOURCE_WRITE_BYTES_MAX + 1024;

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The document is not a valid resource: each problem with its field.
    #[error("{}", summary(.0))]
    Invalid(Vec<Violation>),
    /// The resources are not ours to write here (read-only directory, ADR, another file).
    #[error("{0}")]
    NotOurs(String),
    /// No such resource (in a file this API writes).
    #[error("{0} does not exist")]
    NotFound(String),
    /// `only_if_absent` and the resource exists.
    #[error("{0} already exists")]
    Exists(String),
    /// A Device that assets still name: deleting it would leave them pointing at nothing.
    #[error("{0}")]
    InUse(String),
    /// Writing or reading the directory failed.
    #[error("{0}")]
    Io(String),
}

/// The violations in one line (`field: message; ...`): grpcurl shows a status message's
/// first line next to `Message:`, and log lines stay whole.
fn summary(v: &[Violation]) -> String {
    let lines: Vec<String> = v
        .iter()
        .map(|v| match v.field.as_str() {
            "" => v.message.clone(),
            f => format!("{f}: {}", v.message),
        })
        .collect();
    format!("invalid resource: {}", lines.join("; "))
}

/// One violation of the whole request (no field of the document).
fn invalid(field: &str, message: impl Into<String>) -> WriteError {
    WriteError::Invalid(vec![Violation {
        field: field.to_owned(),
        message: message.into(),
    }])
}

/// What a put wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `Device` or `Asset`.
    pub kind: String,
    /// The resource's name.
    pub name: String,
    /// The file written.
    pub file: PathBuf,
    /// Whether it did not exist before.
    pub created: bool,
}

/// A resource as read back: its file's text, and why it may not be written (if so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The text of the file defining it.
    pub text: String,
    /// That file.
    pub file: PathBuf,
    /// Why puts and deletes refuse it; `None` when they may write it.
    pub read_only: Option<String>,
    /// The secrets it references, with their files' presence.
    pub secrets: Vec<secrets::SecretStatus>,
}

/// The resources directory as the write API sees it.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// The loader's file limit (`--max-resource-file-bytes`): other files are read within it.
    file_bytes: usize,
    /// Largest document taken.
    max_bytes: usize,
    adr: bool,
    /// Where the secrets it reports on live; `None`: none reported.
    secrets: Option<secrets::Secrets>,
    /// One write at a time: each validates against the directory the previous one left.
    lock: Mutex<()>,
}

impl Store {
    /// Writes into `dir`, whose files the loader reads up to `file_bytes` each, documents of at
    /// most that and [`RESOURCE_WRITE_BYTES_MAX`]; `adr`: resources come from ADR, every write
    /// is refused.
    pub fn new(dir: PathBuf, file_bytes: usize, adr: bool) -> Self {
        Self {
            dir,
            file_bytes,
            max_bytes: file_bytes.min(RESOURCE_WRITE_BYTES_MAX),
            adr,
            secrets: None,
            lock: Mutex::new(()),
        }
    }

    /// Also reports, on a get, which secrets a device references and whether their files exist.
    pub fn with_secrets(mut self, secrets: secrets::Secrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Why resources here are not ours to write; `None` when they are.
    pub fn read_only_reason(&self) -> Option<String> {
        if self.adr {
            return Some("resources come from Azure Device Registry (--resource-source adr): change them there".into());
        }
        let dir = self.dir.display();
        if self.dir.join("..data").exists() {
            return Some(format!(
                "the resources directory {dir} is a Kubernetes ConfigMap mount: change resources with kubectl or GitOps"
            ));
        }
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.permissions().mode() & 0o222 == 0 => Some(format!(
                "the resources directory {dir} is read-only: resources there are not written through this API"
            )),
            Ok(_) => None,
            Err(e) => Some(format!("the resources directory {dir} cannot be read: {e}")),
        }
    }

    /// Creates or replaces the one resource of `text`, once the loader finds no problem with it.
    pub fn put(&self, text: &str, only_if_absent: bool) -> Result<Written, WriteError> {
        if let Some(r) = self.read_only_reason() {
            return Err(WriteError::NotOurs(r));
        }
        if text.len() > self.max_bytes {
            let m = format!(
                "the document is {} bytes, more than {}",
                text.len(),
                self.max_bytes
            );
            return Err(invalid("yaml", m));
        }
        let (kind, name) = resources::identify(text).map_err(|m| invalid("", m))?;
        name::check(&name).map_err(|m| invalid("metadata.name", m))?;
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.dir.join(file_name(&kind, &name));
        let mut texts = self.texts()?;
        self.refuse_elsewhere(&texts, &kind, &name, &target)?;
        let created = !target.exists();
        if only_if_absent && !created {
            return Err(WriteError::Exists(format!("{kind}/{name}")));
        }
        texts.retain(|(p, _)| *p != target);
        texts.push((target.clone(), text.to_owned()));
        let shown: Vec<(String, &str)> = texts
            .iter()
            .map(|(p, t)| (p.display().to_string(), t.as_str()))
            .collect();
        let res = resources::load_texts(shown.iter().map(|(f, t)| (f.as_str(), *t)));
        let mut problems = fields::violations(&res, &kind, &name, &target.display().to_string());
        if kind == "Device" {
            problems.extend(fields::inline_secrets(&res, &name));
        }
        if !problems.is_empty() {
            return Err(WriteError::Invalid(problems));
        }
        sse_runtime::private_file::write(&target, text.as_bytes()).map_err(|e| self.io(e))?;
        tracing::info!(resource = %format!("{kind}/{name}"), file = %target.display(), created, "resource written");
        Ok(Written {
            kind,
            name,
            file: target,
            created,
        })
    }

    /// Removes the file of `kind`/`name`.
    pub fn delete(&self, kind: &str, name: &str) -> Result<PathBuf, WriteError> {
        if let Some(r) = self.read_only_reason() {
            return Err(WriteError::NotOurs(r));
        }
        check_kind(kind)?;
        name::check(name).map_err(|m| invalid("name", m))?;
        let _one = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.dir.join(file_name(kind, name));
        let texts = self.texts()?;
        self.refuse_elsewhere(&texts, kind, name, &target)?;
        if kind == "Device" && target.exists() {
            refuse_in_use(&texts, name)?;
        }
        match std::fs::remove_file(&target) {
            Ok(()) => {
                tracing::info!(resource = %format!("{kind}/{name}"), file = %target.display(), "resource deleted");
                Ok(target)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(WriteError::NotFound(format!("{kind}/{name}")))
            }
            Err(e) => Err(self.io(e)),
        }
    }

    /// The text of the file defining `kind`/`name`, and whether this API may write it.
    pub fn get(&self, kind: &str, name: &str) -> Result<Read, WriteError> {
        if self.adr {
            return Err(WriteError::NotOurs(
                self.read_only_reason().unwrap_or_default(),
            ));
        }
        check_kind(kind)?;
        name::check(name).map_err(|m| invalid("name", m))?;
        let target = self.dir.join(file_name(kind, name));
        let texts = self.texts()?;
        let defines = |t: &str| {
            resources::defined(t)
                .iter()
                .any(|(k, n)| k == kind && n == name)
        };
        // The file this API writes first, so a duplicate elsewhere does not hide it.
        let found = texts.iter().find(|(p, t)| *p == target && defines(t));
        let Some((file, text)) = found.or_else(|| texts.iter().find(|(_, t)| defines(t))) else {
            return Err(WriteError::NotFound(format!("{kind}/{name}")));
        };
        let read_only = self
            .read_only_reason()
            .or_else(|| (*file != target).then(|| elsewhere_message(kind, name, file, &target)));
        let secrets = self
            .secrets
            .as_ref()
            .filter(|_| kind == "Device")
            .map(|s| s.statuses(text))
            .unwrap_or_default();
        Ok(Read {
            text: text.clone(),
            file: file.clone(),
            read_only,
            secrets,
        })
    }

    /// Refuses a resource also defined in a file other than `target` (see the module doc).
    fn refuse_elsewhere(
        &self,
        texts: &[(PathBuf, String)],
        kind: &str,
        name: &str,
        target: &Path,
    ) -> Result<(), WriteError> {
        let other = texts.iter().find(|(p, t)| {
            p != target
                && resources::defined(t)
                    .iter()
                    .any(|(k, n)| k == kind && n == name)
        });
        match other {
            Some((file, _)) => Err(WriteError::NotOurs(elsewhere_message(
                kind, name, file, target,
            ))),
            None => Ok(()),
        }
    }

    /// Every resource file of the directory with its text, as the loader picks them (files it
    /// cannot read are left out: the loader reports them on its own).
    fn texts(&self) -> Result<Vec<(PathBuf, String)>, WriteError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| self.io(e))?;
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| self.io(e))?.path();
            let yaml = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e == "yaml" || e == "yml");
            if yaml
                && path.is_file()
                && let Ok(t) = resources::read_limited(&path, self.file_bytes)
            {
                out.push((path, t));
            }
        }
        out.sort();
        Ok(out)
    }

    /// An I/O error: a read-only file system or a denied write means not ours to write.
    fn io(&self, e: std::io::Error) -> WriteError {
        use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
        let dir = self.dir.display();
        match e.kind() {
            ReadOnlyFilesystem | PermissionDenied => WriteError::NotOurs(format!(
                "the resources directory {dir} is read-only ({e}): resources there are not written through this API"
            )),
            _ => WriteError::Io(format!("the resources directory {dir}: {e}")),
        }
    }
}

/// Refuses deleting device `name` while assets of the directory name it (they would point at
/// nothing, and their streams stop with a status error): names at most [`IN_USE_NAMES_MAX`] of
/// them. A name that is not a Kubernetes name (a hand-written file may hold anything) is quoted
/// escaped and cut, so no control character or megabyte name reaches the caller's terminal.
fn refuse_in_use(texts: &[(PathBuf, String)], name: &str) -> Result<(), WriteError> {
    let mut users: Vec<String> = texts
        .iter()
        .flat_map(|(_, t)| resources::assets_using(t, name))
        .collect();
    users.sort();
    users.dedup();
    if users.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = users
        .iter()
        .take(IN_USE_NAMES_MAX)
        .map(|n| match name::check(n) {
            Ok(()) => n.clone(),
            Err(_) => sse_runtime::echo::quoted(n),
        })
        .collect();
    let more = match users.len().saturating_sub(IN_USE_NAMES_MAX) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let (count, them) = match users.len() {
        1 => ("1 asset".to_owned(), "it"),
        n => (format!("{n} assets"), "them"),
    };
    Err(WriteError::InUse(format!(
        "Device/{name} is still used by {count} ({}{more}): delete {them} or point {them} at another device first",
        shown.join(", ")
    )))
}

/// The file this API keeps `kind`/`name` in: `device-<name>.yaml` or `asset-<name>.yaml`.
pub fn file_name(kind: &str, name: &str) -> String {
    format!("{}-{name}.yaml", kind.to_ascii_lowercase())
}

fn check_kind(kind: &str) -> Result<(), WriteError> {
    match kind {
        "Device" | "Asset" => Ok(()),
        other => Err(invalid(
            "kind",
            format!(
                "kind {} is not Device or Asset",
                sse_runtime::echo::quoted(other)
            ),
        )),
    }
}

fn elsewhere_message(kind: &str, name: &str, file: &Path, target: &Path) -> String {
    format!(
        "{kind}/{name} is defined in {}, which this API does not rewrite: edit that file, or move the resource to {} to manage it here",
        file.display(),
        target.display()
    )
}

#[cfg(test)]
mod tests;
