//! A subject's schema history: its versions out of `ListSchemas`' answer, and what changed
//! between two of them, field by field. `ssectl schemas diff` and the console's schema pages
//! both use this, so a change reads the same in a terminal and in a browser.
//!
//! The diff walks the schemas [`crate::infer`] renders: `type` as a string or a sorted list,
//! objects with `properties` and `required`, arrays with `items`, nested to any depth. A field
//! is named by its path: `a.b` for a member of an object, `a[]` for the items of an array.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use sse_proto::v1::Schema;

use crate::registry::version_key;

/// What happened to one field between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ChangeKind {
    /// The field is new; `types` is its type (`number`, `null|string`).
    Added {
        /// Its type in the new version.
        types: String,
    },
    /// The field is gone.
    Removed,
    /// The field was required and no longer is.
    MadeOptional,
    /// The field was optional and now is required.
    MadeRequired,
    /// The field accepts more than before (`integer -> number`, a type added to a list).
    Widened {
        /// Its type before.
        from: String,
        /// Its type now.
        to: String,
    },
    /// The field accepts less than before.
    Narrowed {
        /// Its type before.
        from: String,
        /// Its type now.
        to: String,
    },
    /// The field's type changed in a way that is neither wider nor narrower.
    Other {
        /// Its type before.
        from: String,
        /// Its type now.
        to: String,
    },
}

/// One change: a field path and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `a.b`, `a[]`; empty for the document itself.
    pub path: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: ChangeKind,
}

impl Change {
    /// The kind's name, as JSON names it: `added`, `made-optional`, `widened`, ...
    pub fn label(&self) -> &'static str {
        match self.kind {
            ChangeKind::Added { .. } => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::MadeOptional => "made-optional",
            ChangeKind::MadeRequired => "made-required",
            ChangeKind::Widened { .. } => "widened",
            ChangeKind::Narrowed { .. } => "narrowed",
            ChangeKind::Other { .. } => "other",
        }
    }

    /// The types involved, for a table column: `number`, `integer -> number`, or empty.
    pub fn detail(&self) -> String {
        match &self.kind {
            ChangeKind::Added { types } => types.clone(),
            ChangeKind::Widened { from, to }
            | ChangeKind::Narrowed { from, to }
            | ChangeKind::Other { from, to } => format!("{from} -> {to}"),
            ChangeKind::Removed | ChangeKind::MadeOptional | ChangeKind::MadeRequired => {
                String::new()
            }
        }
    }

    /// The path as a person reads it: the root is `(root)`.
    pub fn shown_path(&self) -> &str {
        if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.shown_path();
        match &self.kind {
            ChangeKind::Added { types } => write!(f, "added {p} ({types})"),
            ChangeKind::Removed => write!(f, "removed {p}"),
            ChangeKind::MadeOptional => write!(f, "made optional {p}"),
            ChangeKind::MadeRequired => write!(f, "made required {p}"),
            ChangeKind::Widened { from, to } => write!(f, "widened {p}: {from} -> {to}"),
            ChangeKind::Narrowed { from, to } => write!(f, "narrowed {p}: {from} -> {to}"),
            ChangeKind::Other { from, to } => write!(f, "changed {p}: {from} -> {to}"),
        }
    }
}

/// Why two versions of a subject cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HistoryError {
    /// No registered schema has the subject (a typo, or nothing of it seen yet).
    #[error("no schema has subject {subject:?}")]
    UnknownSubject {
        /// The subject asked for.
        subject: String,
    },
    /// The subject has one version.
    #[error("{subject} has {count} version(s): nothing to compare")]
    TooFewVersions {
        /// The subject asked for.
        subject: String,
        /// How many versions it has.
        count: usize,
    },
    /// A version asked for is not one of the subject's.
    #[error("{subject} has no version {version}")]
    NoSuchVersion {
        /// The subject asked for.
        subject: String,
        /// The version asked for.
        version: String,
    },
    /// A version's content is not JSON.
    #[error("version {version} is not JSON: {reason}")]
    NotJson {
        /// The version whose content did not parse.
        version: String,
        /// The parser's message.
        reason: String,
    },
}

/// The changes from `old` to `new`, parents before their members, members in name order.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    node(String::new(), old, new, &mut out);
    out
}

/// Every subject that uses schema `s`: its `subjects`, or its one `subject` from an older
/// server; none for a manual put.
pub fn subjects_of(s: &Schema) -> impl Iterator<Item = &str> {
    let older = s.subjects.is_empty().then_some(s.subject.as_str());
    s.subjects
        .iter()
        .map(String::as_str)
        .chain(older)
        .filter(|k| !k.is_empty())
}

/// The versions of `subject` among `schemas` (the answers of every replica, duplicates
/// allowed), one per version, oldest first by [`version_key`].
pub fn subject_versions(schemas: &[Schema], subject: &str) -> Vec<Schema> {
    let mut out: Vec<Schema> = schemas
        .iter()
        .filter(|s| subjects_of(s).any(|k| k == subject))
        .cloned()
        .collect();
    out.sort_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)));
    out.dedup_by(|a, b| a.version == b.version);
    out
}

/// Whether version `a` comes after `b` by [`version_key`] (any version comes after none).
pub fn newer(a: &str, b: &str) -> bool {
    version_key(a) > version_key(b)
}

/// The pair of versions to compare: `from` and `to` when given, else the latest two.
pub fn pick<'a>(
    versions: &'a [Schema],
    subject: &str,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(&'a Schema, &'a Schema), HistoryError> {
    let find = |v: &str| {
        versions
            .iter()
            .find(|s| s.version == v)
            .ok_or_else(|| HistoryError::NoSuchVersion {
                subject: subject.to_owned(),
                version: v.to_owned(),
            })
    };
    let n = versions.len();
    let too_few = || HistoryError::TooFewVersions {
        subject: subject.to_owned(),
        count: n,
    };
    let latest = versions
        .last()
        .ok_or_else(|| HistoryError::UnknownSubject {
            subject: subject.to_owned(),
        })?;
    let to = match to {
        Some(v) => find(v)?,
        None => latest,
    };
    let from = match from {
        Some(v) => find(v)?,
        None => {
            // The version just before `to`.
            let i = versions.iter().position(|s| s.version == to.version);
            match i.and_then(|i| i.checked_sub(1)) {
                Some(i) => &versions[i],
                None => return Err(too_few()),
            }
        }
    };
    Ok((from, to))
}

/// The changes between two registered versions, their contents parsed.
pub fn diff_schemas(from: &Schema, to: &Schema) -> Result<Vec<Change>, HistoryError> {
    let parse = |s: &Schema| {
        serde_json::from_str::<Value>(&s.content).map_err(|e| HistoryError::NotJson {
            version: s.version.clone(),
            reason: e.to_string(),
        })
    };
    Ok(diff(&parse(from)?, &parse(to)?))
}

/// Compares one node (the schema of the field at `path`) and its members.
fn node(path: String, old: &Value, new: &Value, out: &mut Vec<Change>) {
    let (ot, nt) = (types(old), types(new));
    if ot != nt {
        let (from, to) = (show(&ot), show(&nt));
        let kind = if covers(&nt, &ot) {
            ChangeKind::Widened { from, to }
        } else if covers(&ot, &nt) {
            ChangeKind::Narrowed { from, to }
        } else {
            ChangeKind::Other { from, to }
        };
        out.push(Change {
            path: path.clone(),
            kind,
        });
    }
    members(&path, old, new, out);
    match (old.get("items"), new.get("items")) {
        (Some(o), Some(n)) => node(format!("{path}[]"), o, n, out),
        (None, Some(n)) => out.push(added(format!("{path}[]"), n)),
        (Some(_), None) => out.push(Change {
            path: format!("{path}[]"),
            kind: ChangeKind::Removed,
        }),
        (None, None) => {}
    }
}

/// Compares the `properties` and `required` of two object schemas.
fn members(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    let (op, np) = (props(old), props(new));
    let (or, nr) = (required(old), required(new));
    let keys: BTreeSet<&String> = op.keys().chain(np.keys()).collect();
    for k in keys {
        let child = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match (op.get(k), np.get(k)) {
            (None, Some(n)) => out.push(added(child, n)),
            (Some(_), None) => out.push(Change {
                path: child,
                kind: ChangeKind::Removed,
            }),
            (Some(o), Some(n)) => {
                match (or.contains(k.as_str()), nr.contains(k.as_str())) {
                    (true, false) => out.push(Change {
                        path: child.clone(),
                        kind: ChangeKind::MadeOptional,
                    }),
                    (false, true) => out.push(Change {
                        path: child.clone(),
                        kind: ChangeKind::MadeRequired,
                    }),
                    _ => {}
                }
                node(child, o, n, out);
            }
            (None, None) => {}
        }
    }
}

/// A field that is new, with its type.
fn added(path: String, schema: &Value) -> Change {
    Change {
        path,
        kind: ChangeKind::Added {
            types: show(&types(schema)),
        },
    }
}

/// The `properties` of a schema (empty when it has none).
fn props(v: &Value) -> serde_json::Map<String, Value> {
    v.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The `required` names of a schema.
fn required(v: &Value) -> BTreeSet<&str> {
    v.get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The `type` of a schema as a set (a string or a list; none when absent).
fn types(v: &Value) -> BTreeSet<&str> {
    match v.get("type") {
        Some(Value::String(s)) => BTreeSet::from([s.as_str()]),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => BTreeSet::new(),
    }
}

/// Whether every value of the types `small` is also of the types `big`: a type is covered by
/// itself, and `integer` by `number` too. No `type` at all accepts anything.
fn covers(big: &BTreeSet<&str>, small: &BTreeSet<&str>) -> bool {
    if big.is_empty() {
        return true;
    }
    if small.is_empty() {
        return false;
    }
    small
        .iter()
        .all(|t| big.contains(t) || (*t == "integer" && big.contains("number")))
}

/// Types as a person reads them: `number`, `null|string`; `any` when unconstrained.
fn show(t: &BTreeSet<&str>) -> String {
    if t.is_empty() {
        "any".to_owned()
    } else {
        t.iter().copied().collect::<Vec<_>>().join("|")
    }
}

#[cfg(test)]
#[path = "history/tests.rs"]
mod tests;
