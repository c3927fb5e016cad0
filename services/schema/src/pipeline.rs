//! Per-subject inference state: merge each JSON payload into its subject's schema, register a new
//! version when the merged schema changed, and hand back the schema reference.
//!
//! A subject's state is loaded from the registry the first time the subject is seen (its highest
//! version), so a restart resumes both the schema and the version numbering. Events of one
//! subject are processed one at a time (a per-subject lock), events of different subjects not.
//!
//! A payload that is not JSON, or is over one of the [`Limits`], goes on without a schema; the
//! [`Outcome`] says why, each subject counts the events per reason ([`SubjectStatus`]), and the
//! first such event of each reason is logged at debug level per subject.
//!
//! Growth is capped ([`Caps`]): a subject whose next version would pass a cap stops evolving
//! for good (until a restart re-derives it): no new version is registered, its events are
//! tagged with its last version ([`Outcome::Frozen`]), its status says which cap, and the moment
//! is logged once at warn level.
//!
//! Fast path: for a payload whose shape is already known, the cost is one parse that checks the
//! shape and the limits as it goes ([`Shape::covers_json`]) and builds nothing; anything else
//! (new shape, over a limit, not JSON) takes the slow path: parse into a `Value`, check the
//! limits, merge, register.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::canonical::{name_of, to_canonical};
use crate::caps::{Cap, Caps};
use crate::error::Error;
use crate::infer::Shape;
use crate::registry::{NewSchema, Registry, SchemaRecord};

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

/// Bounds on the payloads whose schema is inferred; larger or deeper ones pass without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest payload, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects (a scalar is depth 0, `{"a":1}` depth 1).
    pub max_depth: usize,
    /// Most object members in one payload, counted over every level.
    pub max_properties: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_depth: 32,
            max_properties: 1000,
        }
    }
}

/// Why an event went on without a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoSchema {
    /// The payload is not JSON.
    NotJson,
    /// The payload is over [`Limits::max_bytes`].
    TooLarge,
    /// The payload nests deeper than [`Limits::max_depth`].
    TooDeep,
    /// The payload has more members than [`Limits::max_properties`].
    TooManyProperties,
    /// The registry could not register the schema.
    RegistryError,
    /// The subject's schema stopped evolving at a cap before its first version.
    Frozen,
}

impl NoSchema {
    /// Every reason, in a fixed order (the index of the per-subject counters).
    pub const ALL: [NoSchema; 6] = [
        NoSchema::NotJson,
        NoSchema::TooLarge,
        NoSchema::TooDeep,
        NoSchema::TooManyProperties,
        NoSchema::RegistryError,
        NoSchema::Frozen,
    ];

    /// A short name for logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            NoSchema::NotJson => "not JSON",
            NoSchema::TooLarge => "over the size limit",
            NoSchema::TooDeep => "over the depth limit",
            NoSchema::TooManyProperties => "over the property limit",
            NoSchema::RegistryError => "registry error",
            NoSchema::Frozen => "schema stopped evolving",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A registered schema version an event is tagged with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRef {
    /// Schema name.
    pub name: String,
    /// Registry namespace.
    pub namespace: String,
    /// Version.
    pub version: String,
    /// `aio-sr://<namespace>/<name>:<version>`.
    pub dataschema: String,
}

impl SchemaRef {
    fn new(name: &str, namespace: &str, version: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            version: version.to_string(),
            dataschema: dataschema(namespace, name, version),
        }
    }
}

/// What inference made of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event follows this schema version.
    Schema(Arc<SchemaRef>),
    /// The subject's schema stopped evolving at `cap`: the event is tagged with its last
    /// version, whatever its shape (none when the subject had none yet).
    Frozen {
        /// The subject's last version.
        schema: Option<Arc<SchemaRef>>,
        /// The cap it reached.
        cap: Cap,
    },
    /// The event goes without a schema, for this reason.
    NoSchema(NoSchema),
}

impl Outcome {
    /// The `dataschema` reference, if any.
    pub fn dataschema(&self) -> Option<&str> {
        match self {
            Outcome::Schema(r) => Some(&r.dataschema),
            Outcome::Frozen { schema, .. } => schema.as_deref().map(|r| r.dataschema.as_str()),
            Outcome::NoSchema(_) => None,
        }
    }

    /// Why the event goes without a schema, if it does.
    fn no_schema(&self) -> Option<NoSchema> {
        match self {
            Outcome::Schema(_)
            | Outcome::Frozen {
                schema: Some(_), ..
            } => None,
            Outcome::Frozen { schema: None, .. } => Some(NoSchema::Frozen),
            Outcome::NoSchema(r) => Some(*r),
        }
    }
}

/// What the status of one subject shows: its current schema and its events without one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectStatus {
    /// `<asset>/<dataset>` or `<asset>/<group>/<event>`.
    pub subject: String,
    /// The schema version events of the subject are tagged with now.
    pub schema: Option<SchemaRef>,
    /// Events tagged with a schema.
    pub with_schema: u64,
    /// Events without a schema, per reason (in [`NoSchema::ALL`] order), only non-zero ones.
    pub without_schema: Vec<(NoSchema, u64)>,
    /// The reason of the latest event without a schema.
    pub last_reason: Option<NoSchema>,
    /// The cap at which the subject's schema stopped evolving, and that in words.
    pub frozen: Option<(Cap, String)>,
}

#[derive(Debug, Default)]
struct SubjectState {
    loaded: bool,
    shape: Shape,
    version: u64,
    current: Option<Arc<SchemaRef>>,
    with_schema: u64,
    without: [u64; NoSchema::ALL.len()],
    last_reason: Option<NoSchema>,
    /// Set once a cap stopped the schema's evolution.
    frozen: Option<Cap>,
}

impl SubjectState {
    /// What an event of this subject whose shape needs no new version is tagged with.
    fn known(&self, current: Arc<SchemaRef>) -> Outcome {
        match self.frozen {
            Some(cap) => Outcome::Frozen {
                schema: Some(current),
                cap,
            },
            None => Outcome::Schema(current),
        }
    }
}

/// Schema inference for every subject, backed by a registry.
#[derive(Debug)]
pub struct Pipeline<R> {
    registry: Arc<R>,
    namespace: String,
    limits: Limits,
    caps: Caps,
    subjects: Mutex<HashMap<String, Arc<tokio::sync::Mutex<SubjectState>>>>,
}

impl<R: Registry> Pipeline<R> {
    /// A pipeline registering in `registry`; `namespace` is used in references when the registry
    /// does not name its own; payloads over `limits` get no schema.
    pub fn new(registry: Arc<R>, namespace: &str, limits: Limits) -> Self {
        Self {
            registry,
            namespace: namespace.to_string(),
            limits,
            caps: Caps::default(),
            subjects: Mutex::new(HashMap::new()),
        }
    }

    /// The pipeline with growth capped at `caps` instead of [`Caps::default`].
    pub fn with_caps(mut self, caps: Caps) -> Self {
        self.caps = caps;
        self
    }

    /// The caps on schema growth.
    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// The registry behind the pipeline.
    pub fn registry(&self) -> &Arc<R> {
        &self.registry
    }

    /// The registry namespace used in references.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The limits applied to payloads.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Infers the schema of one payload without registering it, refusing what is over the
    /// limits, so `InferSchema` answers what an event with that payload would get.
    pub fn infer_checked(&self, payload: &[u8]) -> Result<Inferred, Error> {
        let over = |reason, flag, value| Error::OverLimit {
            reason,
            flag,
            value,
        };
        let value = self.check(payload).map_err(|r| match r {
            NoSchema::TooLarge => over(r.as_str(), "--max-payload-bytes", self.limits.max_bytes),
            NoSchema::TooDeep => over(r.as_str(), "--max-depth", self.limits.max_depth),
            NoSchema::TooManyProperties => {
                over(r.as_str(), "--max-properties", self.limits.max_properties)
            }
            _ => Error::NotJson(
                serde_json::from_slice::<serde::de::IgnoredAny>(payload)
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            ),
        })?;
        let content = to_canonical(&Shape::of(&value).to_schema());
        Ok(Inferred {
            name: name_of(&content),
            content,
        })
    }

    /// The `dataschema` for an event of `subject` with `data`: `None` when the event goes without
    /// a schema (see [`Pipeline::tag`] for why). Registers a new version when the shape changed.
    pub async fn process(&self, subject: &str, data: &[u8]) -> Result<Option<String>, Error> {
        Ok(self
            .tag(subject, data)
            .await
            .dataschema()
            .map(str::to_string))
    }

    /// Infers the schema of an event of `subject` with `data`, registering a new version when the
    /// subject's shape changed, and says which schema the event follows or why it has none.
    pub async fn tag(&self, subject: &str, data: &[u8]) -> Outcome {
        let entry = self.entry(subject);
        let mut state = entry.lock().await;
        // Fast path: a known shape, checked while parsing, with no `Value` built.
        if data.len() <= self.limits.max_bytes
            && let Some(current) = &state.current
            && state
                .shape
                .covers_json(data, self.limits.max_depth, self.limits.max_properties)
        {
            let outcome = state.known(current.clone());
            state.with_schema += 1;
            return outcome;
        }
        let parsed = self.check(data);
        let outcome = match parsed {
            Ok(value) => self.infer(subject, &mut state, &value).await,
            Err(reason) => Outcome::NoSchema(reason),
        };
        match outcome.no_schema() {
            None => state.with_schema += 1,
            Some(reason) => {
                let n = &mut state.without[reason.index()];
                if *n == 0 {
                    tracing::debug!(
                        subject,
                        reason = reason.as_str(),
                        bytes = data.len(),
                        "event forwarded without a schema (logged once per subject and reason)"
                    );
                }
                *n += 1;
                state.last_reason = Some(reason);
            }
        }
        outcome
    }

    /// The status of every subject seen since start, ordered by subject.
    pub async fn subjects(&self) -> Vec<SubjectStatus> {
        let entries: Vec<(String, Arc<tokio::sync::Mutex<SubjectState>>)> = {
            let subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
            subjects
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut out = Vec::with_capacity(entries.len());
        for (subject, entry) in entries {
            let state = entry.lock().await;
            out.push(SubjectStatus {
                subject,
                schema: state.current.as_deref().cloned(),
                with_schema: state.with_schema,
                without_schema: NoSchema::ALL
                    .iter()
                    .map(|r| (*r, state.without[r.index()]))
                    .filter(|(_, n)| *n > 0)
                    .collect(),
                last_reason: state.last_reason,
                frozen: state.frozen.map(|cap| (cap, cap.message(&self.caps))),
            });
        }
        out.sort_by(|a, b| a.subject.cmp(&b.subject));
        out
    }

    fn entry(&self, subject: &str) -> Arc<tokio::sync::Mutex<SubjectState>> {
        let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = subjects.get(subject) {
            return e.clone();
        }
        subjects.entry(subject.to_string()).or_default().clone()
    }

    /// Parses `data` and checks it against the limits.
    fn check(&self, data: &[u8]) -> Result<Value, NoSchema> {
        if data.len() > self.limits.max_bytes {
            return Err(NoSchema::TooLarge);
        }
        let value = serde_json::from_slice::<Value>(data).map_err(|e| {
            // serde_json refuses nesting beyond 128 levels before building anything.
            if e.to_string().starts_with("recursion limit exceeded") {
                NoSchema::TooDeep
            } else {
                NoSchema::NotJson
            }
        })?;
        let mut members = 0;
        within(&value, 0, &self.limits, &mut members)?;
        Ok(value)
    }

    async fn infer(&self, subject: &str, state: &mut SubjectState, value: &Value) -> Outcome {
        if !state.loaded
            && let Err(e) = self.load(subject, state).await
        {
            tracing::warn!(subject, error = %e, "cannot read the subject's schema from the registry; forwarding without a schema");
            return Outcome::NoSchema(NoSchema::RegistryError);
        }
        if let Some(current) = &state.current
            && (state.frozen.is_some() || state.shape.covers(value))
        {
            return state.known(current.clone());
        }
        if let Some(cap) = state.frozen {
            return Outcome::Frozen { schema: None, cap };
        }
        if state.version >= self.caps.max_versions {
            return self.freeze(subject, state, Cap::Versions);
        }
        let merged = state.shape.merged(value);
        if merged.property_count() > self.caps.max_schema_properties {
            return self.freeze(subject, state, Cap::SchemaProperties);
        }
        let version = state.version + 1;
        let put = self
            .registry
            .put(NewSchema::new(
                &merged.to_schema(),
                version.to_string(),
                subject,
            ))
            .await;
        let record = match put {
            Ok(r) => r,
            Err(Error::RegistryFull { .. }) => {
                return self.freeze(subject, state, Cap::RegistryBytes);
            }
            Err(e) => {
                tracing::warn!(subject, error = %e, "schema not registered; forwarding without it");
                return Outcome::NoSchema(NoSchema::RegistryError);
            }
        };
        tracing::info!(subject, name = %record.name, version = %record.version, "registered schema version");
        let reference = Arc::new(self.reference(&record));
        state.shape = merged;
        state.version = record.version.parse().unwrap_or(version);
        state.current = Some(reference.clone());
        Outcome::Schema(reference)
    }

    /// Stops the subject's evolution at `cap`, for good: logged once, here.
    fn freeze(&self, subject: &str, state: &mut SubjectState, cap: Cap) -> Outcome {
        tracing::warn!(
            subject,
            cap = cap.flag(),
            version = state.current.as_ref().map(|c| c.version.as_str()),
            "{}",
            cap.message(&self.caps)
        );
        state.frozen = Some(cap);
        Outcome::Frozen {
            schema: state.current.clone(),
            cap,
        }
    }

    fn reference(&self, record: &SchemaRecord) -> SchemaRef {
        let namespace = if record.namespace.is_empty() {
            &self.namespace
        } else {
            &record.namespace
        };
        SchemaRef::new(&record.name, namespace, &record.version)
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
                    state.current = Some(Arc::new(self.reference(&record)));
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

/// Checks depth and member count of `v` (at nesting `depth`) against `limits`, without allocating.
fn within(v: &Value, depth: usize, limits: &Limits, members: &mut usize) -> Result<(), NoSchema> {
    match v {
        Value::Array(a) => {
            if depth + 1 > limits.max_depth {
                return Err(NoSchema::TooDeep);
            }
            a.iter()
                .try_for_each(|e| within(e, depth + 1, limits, members))
        }
        Value::Object(m) => {
            if depth + 1 > limits.max_depth {
                return Err(NoSchema::TooDeep);
            }
            *members += m.len();
            if *members > limits.max_properties {
                return Err(NoSchema::TooManyProperties);
            }
            m.values()
                .try_for_each(|e| within(e, depth + 1, limits, members))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::FileRegistry;

    fn pipeline(dir: &std::path::Path) -> Pipeline<FileRegistry> {
        let reg = FileRegistry::open(dir, "ns").unwrap();
        Pipeline::new(
            Arc::new(reg),
            "ns",
            Limits {
                max_bytes: 1024,
                max_depth: 4,
                max_properties: 8,
            },
        )
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

    #[tokio::test]
    async fn limits_and_non_json_say_why_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path());
        let deep = br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#;
        let wide = br#"{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}"#;
        let nested_wide = br#"{"a":{"b":1,"c":2,"d":3},"e":[{"f":1,"g":2,"h":3,"i":4}]}"#;
        let big = format!("[{}]", vec!["1"; 600].join(","));
        let too_deep_for_serde = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (data, reason) in [
            (&b"plain"[..], NoSchema::NotJson),
            (b"", NoSchema::NotJson),
            (big.as_bytes(), NoSchema::TooLarge),
            (deep, NoSchema::TooDeep),
            (too_deep_for_serde.as_bytes(), NoSchema::TooDeep),
            (wide, NoSchema::TooManyProperties),
            (nested_wide, NoSchema::TooManyProperties),
        ] {
            assert_eq!(
                p.tag("a/d", data).await,
                Outcome::NoSchema(reason),
                "{}",
                String::from_utf8_lossy(data)
            );
        }
        // Right at the limits: a schema.
        let ok = br#"{"a":{"b":{"c":[1]}},"d":1,"e":2,"f":3,"g":4,"h":5}"#;
        let Outcome::Schema(r) = p.tag("a/d", ok).await else {
            panic!("no schema at the limits");
        };
        assert_eq!(r.version, "1");
        assert_eq!(r.namespace, "ns");
        let status = p.subjects().await;
        assert_eq!(status.len(), 1);
        let s = &status[0];
        assert_eq!(s.subject, "a/d");
        assert_eq!(s.schema.as_ref(), Some(&*r));
        assert_eq!(s.with_schema, 1);
        assert_eq!(
            s.without_schema,
            vec![
                (NoSchema::NotJson, 2),
                (NoSchema::TooLarge, 1),
                (NoSchema::TooDeep, 2),
                (NoSchema::TooManyProperties, 2)
            ]
        );
        assert_eq!(s.last_reason, Some(NoSchema::TooManyProperties));
        assert_eq!(p.registry().list().await.unwrap().len(), 1);
    }

    /// A pipeline with `caps` over a registry of at most `max_bytes` in `dir`.
    fn capped(dir: &std::path::Path, caps: Caps) -> Pipeline<FileRegistry> {
        let reg = FileRegistry::open(dir, "ns")
            .unwrap()
            .with_max_bytes(caps.max_registry_bytes);
        Pipeline::new(Arc::new(reg), "ns", Limits::default()).with_caps(caps)
    }

    /// A payload with one key of its own: a new version each time, while the subject evolves.
    fn new_key(i: usize) -> Vec<u8> {
        format!(r#"{{"k{i}":{i}}}"#).into_bytes()
    }

    fn frozen_at(outcome: &Outcome) -> (Option<&str>, Cap) {
        match outcome {
            Outcome::Frozen { schema, cap } => {
                (schema.as_deref().map(|s| s.version.as_str()), *cap)
            }
            other => panic!("not frozen: {other:?}"),
        }
    }

    #[tokio::test]
    async fn versions_cap_stops_the_subject_at_its_last_version_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let caps = Caps {
            max_versions: 3,
            ..Caps::default()
        };
        {
            let p = capped(dir.path(), caps);
            for i in 1..=3 {
                let Outcome::Schema(r) = p.tag("a/d", &new_key(i)).await else {
                    panic!("version {i}");
                };
                assert_eq!(r.version, i.to_string());
            }
            for i in 4..=20 {
                assert_eq!(
                    frozen_at(&p.tag("a/d", &new_key(i)).await),
                    (Some("3"), Cap::Versions)
                );
            }
            // A shape the last version knows: frozen too, so every ack says so.
            assert_eq!(
                frozen_at(&p.tag("a/d", &new_key(1)).await),
                (Some("3"), Cap::Versions)
            );
            // Not JSON still says so.
            assert_eq!(
                p.tag("a/d", b"x").await,
                Outcome::NoSchema(NoSchema::NotJson)
            );
            // Another subject evolves on.
            assert!(matches!(
                p.tag("b/d", br#"{"other":1}"#).await,
                Outcome::Schema(_)
            ));
            let status = p.subjects().await;
            let (cap, message) = status[0].frozen.clone().unwrap();
            assert_eq!(cap, Cap::Versions);
            assert!(
                message.contains("--max-versions") && message.contains('3'),
                "{message}"
            );
            assert_eq!(status[0].with_schema, 21);
            assert_eq!(status[1].frozen, None);
        }
        // After a restart the subject resumes at its last version, frozen at the first change.
        let p = capped(dir.path(), caps);
        assert_eq!(
            frozen_at(&p.tag("a/d", &new_key(99)).await),
            (Some("3"), Cap::Versions)
        );
        assert_eq!(p.registry().list().await.unwrap().len(), 4);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }

    #[tokio::test]
    async fn schema_properties_cap_counts_the_merged_schema() {
        let dir = tempfile::tempdir().unwrap();
        let p = capped(
            dir.path(),
            Caps {
                max_schema_properties: 5,
                ..Caps::default()
            },
        );
        // Each payload has 2 members, within the per-payload limit; merged, they grow.
        let two = |a: &str, b: &str| format!(r#"{{"{a}":1,"{b}":{{}}}}"#).into_bytes();
        let Outcome::Schema(v1) = p.tag("a/d", &two("a", "b")).await else {
            panic!("v1")
        };
        let Outcome::Schema(v2) = p.tag("a/d", &two("c", "d")).await else {
            panic!("v2")
        };
        assert_eq!((v1.version.as_str(), v2.version.as_str()), ("1", "2"));
        assert_eq!(
            frozen_at(&p.tag("a/d", &two("e", "f")).await),
            (Some("2"), Cap::SchemaProperties)
        );
        // A subject whose first payload is over the cap has no version to keep.
        let six = br#"{"a":1,"b":1,"c":1,"d":1,"e":1,"f":1}"#;
        let first = p.tag("b/d", six).await;
        assert_eq!(frozen_at(&first), (None, Cap::SchemaProperties));
        assert_eq!(first.dataschema(), None);
        let status = p.subjects().await;
        assert_eq!(status[1].without_schema, vec![(NoSchema::Frozen, 1)]);
        assert_eq!(status[1].frozen.as_ref().unwrap().0, Cap::SchemaProperties);
        assert_eq!(p.registry().list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn registry_bytes_cap_freezes_the_subject_that_would_pass_it() {
        let dir = tempfile::tempdir().unwrap();
        let size_of_v1 = {
            let scratch = tempfile::tempdir().unwrap();
            let p = capped(scratch.path(), Caps::default());
            p.tag("a/d", &new_key(1)).await;
            p.registry().bytes()
        };
        // Room for the first version and a bit, not for a second one.
        let max = size_of_v1 + 10;
        let p = capped(
            dir.path(),
            Caps {
                max_registry_bytes: max,
                ..Caps::default()
            },
        );
        assert!(matches!(
            p.tag("a/d", &new_key(1)).await,
            Outcome::Schema(_)
        ));
        assert_eq!(
            frozen_at(&p.tag("a/d", &new_key(2)).await),
            (Some("1"), Cap::RegistryBytes)
        );
        assert_eq!(
            frozen_at(&p.tag("b/d", br#"{"other":1}"#).await),
            (None, Cap::RegistryBytes)
        );
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, p.registry().bytes());
        assert!(on_disk <= max);
        let message = &p.subjects().await[0].frozen.clone().unwrap().1;
        assert!(message.contains("--max-registry-bytes"), "{message}");
    }

    #[tokio::test]
    async fn infer_checked_names_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path());
        let err = p
            .infer_checked(br#"{"a":{"b":{"c":{"d":{"e":1}}}}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "payload is over the depth limit (--max-depth 4)"
        );
        let err = p.infer_checked(&[b' '; 2000]).unwrap_err();
        assert!(
            err.to_string().contains("--max-payload-bytes 1024"),
            "{err}"
        );
        assert!(matches!(p.infer_checked(b"nope"), Err(Error::NotJson(_))));
        assert_eq!(
            p.infer_checked(br#"{"a":1}"#).unwrap(),
            infer_payload(br#"{"a":1}"#).unwrap()
        );
    }

    #[tokio::test]
    async fn serde_recursion_limit_is_too_deep() {
        let dir = tempfile::tempdir().unwrap();
        let reg = FileRegistry::open(dir.path(), "ns").unwrap();
        let p = Pipeline::new(Arc::new(reg), "ns", Limits::default());
        let nested = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            p.tag("a/d", nested.as_bytes()).await,
            Outcome::NoSchema(NoSchema::TooDeep)
        );
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
