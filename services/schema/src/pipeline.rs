//! Per-subject inference state: merge each JSON payload into its subject's schema, register a new
//! version when the merged schema changed, and hand back the `dataschema` reference.
//!
//! A subject's state is loaded from the registry the first time the subject is seen (its highest
//! version), so a restart resumes both the schema and the version numbering. Events of one
//! subject are processed one at a time (a per-subject lock), events of different subjects not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::canonical::{name_of, to_canonical};
use crate::error::Error;
use crate::infer::Shape;
use crate::registry::{NewSchema, Registry};

/// The inferred schema of one payload, as `InferSchema` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inferred {
    /// Canonical JSON of the schema.
    pub content: String,
    /// The name it would be registered under.
    pub name: String,
}

/// Infers the schema of one JSON payload, without registering it.
pub fn infer_payload(payload: &[u8]) -> Result<Inferred, Error> {
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| Error::NotJson(e.to_string()))?;
    let content = to_canonical(&Shape::of(&value).to_schema());
    Ok(Inferred {
        name: name_of(&content),
        content,
    })
}

/// The `dataschema` reference of a registered schema version.
pub fn dataschema(namespace: &str, name: &str, version: &str) -> String {
    format!("aio-sr://{namespace}/{name}:{version}")
}

#[derive(Debug, Default)]
struct SubjectState {
    loaded: bool,
    shape: Shape,
    version: u64,
    dataschema: Option<String>,
}

/// Schema inference for every subject, backed by a registry.
#[derive(Debug)]
pub struct Pipeline<R> {
    registry: Arc<R>,
    namespace: String,
    max_payload_bytes: usize,
    subjects: Mutex<HashMap<String, Arc<tokio::sync::Mutex<SubjectState>>>>,
}

impl<R: Registry> Pipeline<R> {
    /// A pipeline registering in `registry` under `namespace`; larger payloads get no schema.
    pub fn new(registry: Arc<R>, namespace: &str, max_payload_bytes: usize) -> Self {
        Self {
            registry,
            namespace: namespace.to_string(),
            max_payload_bytes,
            subjects: Mutex::new(HashMap::new()),
        }
    }

    /// The registry behind the pipeline.
    pub fn registry(&self) -> &Arc<R> {
        &self.registry
    }

    /// The registry namespace used in references.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The `dataschema` for an event of `subject` with `data`: `None` when the data is not JSON
    /// or larger than the limit. Registers a new version when the subject's shape changed.
    pub async fn process(&self, subject: &str, data: &[u8]) -> Result<Option<String>, Error> {
        if data.len() > self.max_payload_bytes {
            tracing::debug!(
                subject,
                bytes = data.len(),
                "payload over the size limit: no schema"
            );
            return Ok(None);
        }
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            return Ok(None);
        };
        let entry = {
            let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
            subjects.entry(subject.to_string()).or_default().clone()
        };
        let mut state = entry.lock().await;
        if !state.loaded {
            self.load(subject, &mut state).await?;
        }
        if state.dataschema.is_some() && state.shape.covers(&value) {
            return Ok(state.dataschema.clone());
        }
        let merged = state.shape.merged(&value);
        let version = state.version + 1;
        let record = self
            .registry
            .put(NewSchema::new(
                &merged.to_schema(),
                version.to_string(),
                subject,
            ))
            .await?;
        tracing::info!(subject, name = %record.name, version = %record.version, "registered schema version");
        let reference = dataschema(&self.namespace, &record.name, &record.version);
        state.shape = merged;
        state.version = version;
        state.dataschema = Some(reference.clone());
        Ok(Some(reference))
    }

    async fn load(&self, subject: &str, state: &mut SubjectState) -> Result<(), Error> {
        if let Some(record) = self.registry.current(subject).await? {
            let shape = serde_json::from_str::<Value>(&record.content)
                .map_err(|e| Error::InvalidSchema(e.to_string()))
                .and_then(|v| Shape::from_schema(&v));
            state.version = record.version.parse().unwrap_or(0);
            match shape {
                Ok(shape) => {
                    state.shape = shape;
                    state.dataschema =
                        Some(dataschema(&self.namespace, &record.name, &record.version));
                }
                Err(e) => {
                    tracing::warn!(subject, error = %e, "cannot resume the stored schema; inferring afresh");
                }
            }
        }
        state.loaded = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FileRegistry;

    fn pipeline(dir: &std::path::Path) -> Pipeline<FileRegistry> {
        let reg = FileRegistry::open(dir, "ns").unwrap();
        Pipeline::new(Arc::new(reg), "ns", 1024)
    }

    fn version(reference: &str) -> &str {
        reference.rsplit(':').next().unwrap()
    }

    #[tokio::test]
    async fn versions_bump_only_when_shape_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path());
        let r1 = p
            .process("a/d", br#"{"x":1.5,"y":"s"}"#)
            .await
            .unwrap()
            .unwrap();
        assert!(r1.starts_with("aio-sr://ns/"), "{r1}");
        assert_eq!(version(&r1), "1");
        // Same shape, other key order and values; an integer where a number was seen.
        let r = p
            .process("a/d", br#"{"y":"t","x":2}"#)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r, r1);
        let r2 = p
            .process("a/d", br#"{"x":1,"y":null}"#)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(version(&r2), "2");
        // Another subject numbers its own versions.
        let o = p
            .process("a/g/e", br#"{"x":1.5,"y":"s"}"#)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(o, r1, "same shape, same name and version");
        assert_eq!(p.registry().list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn non_json_and_oversized_get_no_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path());
        assert_eq!(p.process("a/d", b"plain text").await.unwrap(), None);
        assert_eq!(p.process("a/d", b"").await.unwrap(), None);
        let big = format!("[{}]", vec!["1"; 600].join(","));
        assert_eq!(p.process("a/d", big.as_bytes()).await.unwrap(), None);
        assert!(p.registry().list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn restart_resumes_schema_and_numbering() {
        let dir = tempfile::tempdir().unwrap();
        let (r1, r2) = {
            let p = pipeline(dir.path());
            let r1 = p.process("a/d", br#"{"x":1}"#).await.unwrap().unwrap();
            let r2 = p
                .process("a/d", br#"{"x":1,"z":true}"#)
                .await
                .unwrap()
                .unwrap();
            (r1, r2)
        };
        let p = pipeline(dir.path());
        // Known shapes are not registered again.
        assert_eq!(p.process("a/d", br#"{"x":5}"#).await.unwrap().unwrap(), r2);
        assert_ne!(r1, r2);
        let r3 = p.process("a/d", br#"{"x":"s"}"#).await.unwrap().unwrap();
        assert_eq!(version(&r3), "3");
        assert_eq!(p.registry().list().await.unwrap().len(), 3);
    }

    #[test]
    fn infer_payload_names_canonical_content() {
        let a = infer_payload(br#"{"a": 1, "b": ["x"]}"#).unwrap();
        let b = infer_payload(br#"{"b": ["y"], "a": 2}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.name, name_of(&a.content));
        assert!(
            a.content.contains(r#""items":{"type":"string"}"#),
            "{}",
            a.content
        );
        assert!(matches!(infer_payload(b"nope"), Err(Error::NotJson(_))));
    }
}
