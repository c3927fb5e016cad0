//! The subject lists of stored versions: a new subject of a version already stored is added in
//! memory at once (its bytes reserved against the cap) and the version's file is rewritten by
//! [`FileRegistry::flush`], once per version however many subjects arrived; see the module
//! documentation of [`super`] for why.

use super::{Error, FileRegistry, SchemaRecord, VersionId, serialize, version_key, write_record};

impl FileRegistry {
    /// Adds `subject` to the stored version `id`, in memory, the file to be written by the next
    /// [`FileRegistry::flush`]: the version returned (with the whole subject list only for a
    /// put without a subject, [`head`] otherwise, so that adding the n-th subject costs O(log n),
    /// not a copy of the n before it). `None` when `id` is not stored.
    pub fn add_subject_if_stored(
        &self,
        id: &VersionId,
        subject: &str,
    ) -> Result<Option<SchemaRecord>, Error> {
        let mut index = self.lock_index();
        let Some(r) = index.by_key.get(id) else {
            return Ok(None);
        };
        let grows = subject_growth(r, subject);
        if grows > 0 {
            let size = index.sizes.get(id).copied().unwrap_or(0) + grows;
            index.reserve(id, size, self.max_bytes)?;
            index.dirty.insert(id.clone());
        }
        let Some(r) = index.by_key.get_mut(id) else {
            return Ok(None);
        };
        if grows > 0 {
            insert_subject(r, subject);
        }
        let out = if subject.is_empty() {
            r.clone()
        } else {
            head(r)
        };
        drop(index);
        if grows > 0 {
            self.note_subjects(std::iter::once(subject), id);
        }
        Ok(Some(out))
    }

    /// Records `id` as the version of each of `subjects` that has no higher one.
    pub(super) fn note_subjects<'a>(
        &self,
        subjects: impl Iterator<Item = &'a str>,
        id: &VersionId,
    ) {
        let mut known = self.lock_subjects();
        for s in subjects {
            let newer = match known.get(s) {
                Some(k) => version_key(&id.version) > version_key(&k.version),
                None => true,
            };
            if newer {
                known.insert(s.to_string(), id.clone());
            }
        }
    }

    /// Writes the files of the versions whose subjects changed since they were written; one that
    /// fails stays due for the next call (and is logged). Returns how many were written.
    pub async fn flush(&self) -> usize {
        if self.lock_index().dirty.is_empty() {
            return 0;
        }
        let due: Vec<SchemaRecord> = {
            let mut index = self.lock_index();
            let ids = std::mem::take(&mut index.dirty);
            ids.iter()
                .filter_map(|id| index.by_key.get(id).cloned())
                .collect()
        };
        let mut written = 0;
        for record in due {
            let id = VersionId::of(&record);
            match self.write_now(record).await {
                Ok(size) => {
                    written += 1;
                    let mut index = self.lock_index();
                    // The exact size replaces the estimate, unless it grew again meanwhile.
                    if !index.dirty.contains(&id) {
                        let _ = index.reserve(&id, size, u64::MAX);
                    }
                }
                Err(e) => {
                    tracing::warn!(name = %id.name, version = %id.version, error = %e, "cannot write a schema version's subjects; retrying");
                    self.lock_index().dirty.insert(id);
                }
            }
        }
        written
    }

    /// Serializes and writes `record`'s file, with no reservation; its size. Not after a delete
    /// took the version out of the index.
    async fn write_now(&self, record: SchemaRecord) -> Result<u64, Error> {
        let _files = self.files.lock().await;
        if !self
            .lock_index()
            .by_key
            .contains_key(&VersionId::of(&record))
        {
            return Ok(0);
        }
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = serialize(&record)?;
            write_record(&dir, &record, &bytes).map(|()| bytes.len() as u64)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }
}

/// `r` without its list of subjects (`subject` is kept): what callers that need a version's
/// name, number and content get, at a cost that does not grow with its subjects.
pub(super) fn head(r: &SchemaRecord) -> SchemaRecord {
    SchemaRecord {
        name: r.name.clone(),
        version: r.version.clone(),
        namespace: r.namespace.clone(),
        format: r.format.clone(),
        content: r.content.clone(),
        subject: r.subject.clone(),
        subjects: Vec::new(),
    }
}

/// Bytes that adding `subject` adds to `r`'s file at most (0: `r` has it, or no subject): the
/// JSON string, its indent, comma and newline, and the `subjects` key when it starts.
pub(super) fn subject_growth(r: &SchemaRecord, subject: &str) -> u64 {
    if subject.is_empty()
        || r.subject == subject
        || r.subjects
            .binary_search_by(|s| s.as_str().cmp(subject))
            .is_ok()
    {
        return 0;
    }
    let json = |s: &str| serde_json::to_string(s).map_or(s.len() * 6 + 2, |j| j.len()) as u64;
    let mut grows = json(subject) + 8;
    if r.subjects.is_empty() && !r.subject.is_empty() {
        grows += json(&r.subject) + 8 + 32;
    }
    grows
}

/// Adds `subject` to `r` (which does not have it), keeping `subjects` sorted and listing the
/// first subject there too.
pub(super) fn insert_subject(r: &mut SchemaRecord, subject: &str) {
    if r.subjects.is_empty() && !r.subject.is_empty() {
        r.subjects.push(r.subject.clone());
    }
    if r.subject.is_empty() {
        r.subject = subject.to_string();
    }
    if let Err(at) = r.subjects.binary_search_by(|s| s.as_str().cmp(subject)) {
        r.subjects.insert(at, subject.to_string());
    }
}
