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

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::canonical::{name_of, to_canonical};
use crate::caps::{Cap, Caps};
use crate::error::Error;
use crate::infer::Shape;
use crate::metrics::Metrics;
use crate::paging::SUBJECT_BYTES_MAX;
use crate::registry::{NewSchema, Registry, SchemaRecord};
use crate::subjects::{self, Subjects};

mod retry;

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
    sse_contract::dataschema::format(namespace, name, version)
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

    /// The metric label (`sse.reason`, `error.type`): the wire's `NoSchemaReason` name in
    /// snake case, a fixed set.
    pub fn label(self) -> &'static str {
        match self {
            NoSchema::NotJson => "not_json",
            NoSchema::TooLarge => "too_large",
            NoSchema::TooDeep => "too_deep",
            NoSchema::TooManyProperties => "too_many_properties",
            NoSchema::RegistryError => "registry_error",
            NoSchema::Frozen => "schema_frozen",
        }
    }

    /// Whether the payload itself is what the schema stage cannot accept (not JSON, or over a
    /// size, depth or property limit), as opposed to the registry or a cap: such an event goes
    /// to its route's dead-letter destination when it has one.
    pub fn rejects_payload(self) -> bool {
        matches!(
            self,
            NoSchema::NotJson
                | NoSchema::TooLarge
                | NoSchema::TooDeep
                | NoSchema::TooManyProperties
        )
    }

    /// Its place in [`NoSchema::ALL`], for per-reason tables.
    pub(crate) fn index(self) -> usize {
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
    pub fn no_schema(&self) -> Option<NoSchema> {
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
    /// When the registry may be called again after failing.
    retry: retry::RegistryRetry,
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
    subjects: Mutex<Subjects<tokio::sync::Mutex<SubjectState>>>,
    /// Where versions and failures are counted (`None`: metrics are off).
    metrics: Option<Arc<Metrics>>,
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
            subjects: Mutex::new(Subjects::new(subjects::HELD_MAX_DEFAULT)),
            metrics: None,
        }
    }

    /// The pipeline holding the state of at most `max` subjects (`--max-subjects`).
    pub fn with_max_subjects(self, max: usize) -> Self {
        *self.subjects.lock().unwrap_or_else(|p| p.into_inner()) = Subjects::new(max);
        self
    }

    /// The pipeline counting schema versions and inference failures with `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The instruments events are recorded with, when metrics are on.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
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
            // The reason of the parse `check` made: one that only skips values would accept
            // a number out of range (`1e400`) or a lone surrogate and give no reason.
            _ => Error::NotJson(
                serde_json::from_slice::<Value>(payload)
                    .err()
                    .map_or_else(|| "not a JSON value".to_string(), |e| e.to_string()),
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
        if let Some(outcome) = self.tag_known(&mut state, data) {
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
                if let Some(m) = &self.metrics {
                    m.inference_failed(reason);
                }
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

    /// [`Pipeline::tag`] without waiting: the outcome when the subject's current schema covers
    /// `data` and no other event of the subject holds it, else `None` (then `tag` decides). Most
    /// events end here, so the relay prepares them without a future of their own.
    pub fn try_tag(&self, subject: &str, data: &[u8]) -> Option<Outcome> {
        let entry = self.entry(subject);
        let mut state = entry.try_lock().ok()?;
        self.tag_known(&mut state, data)
    }

    /// The fast path of both: a known shape, checked while parsing, with no `Value` built.
    fn tag_known(&self, state: &mut SubjectState, data: &[u8]) -> Option<Outcome> {
        if data.len() <= self.limits.max_bytes
            && let Some(current) = &state.current
            && state
                .shape
                .covers_json(data, self.limits.max_depth, self.limits.max_properties)
        {
            let outcome = state.known(current.clone());
            state.with_schema += 1;
            return Some(outcome);
        }
        None
    }

    /// The status of every subject held (seen since start, at most `--max-subjects` of the
    /// most recently seen), ordered by subject.
    pub async fn subjects(&self) -> Vec<SubjectStatus> {
        self.subjects_after(None, usize::MAX).await
    }

    /// The status of at most `limit` subjects after `after` (from the first when `None`),
    /// ordered by subject (by UTF-8 bytes). A subject longer than [`SUBJECT_BYTES_MAX`] is
    /// left out: no page token could name it.
    pub async fn subjects_after(&self, after: Option<&str>, limit: usize) -> Vec<SubjectStatus> {
        let entries = {
            let subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
            subjects.after(after, limit, SUBJECT_BYTES_MAX)
        };
        let mut out = Vec::with_capacity(entries.len());
        for (subject, entry) in entries {
            let state = entry.lock().await;
            out.push(self.status_of(subject, &state));
        }
        out
    }

    /// What the status of `subject` shows from its state.
    fn status_of(&self, subject: String, state: &SubjectState) -> SubjectStatus {
        SubjectStatus {
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
        }
    }

    fn entry(&self, subject: &str) -> Arc<tokio::sync::Mutex<SubjectState>> {
        let (entry, forgotten, held) = {
            let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
            let (entry, forgotten) = subjects.entry(subject);
            (entry, forgotten, subjects.len())
        };
        if forgotten > 0 {
            tracing::info!(
                forgotten,
                held,
                "more subjects than --max-subjects: forgot the least recently seen (their schemas stay in the registry)"
            );
        }
        entry
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
        if !state.loaded {
            if !state.retry.due() {
                return Outcome::NoSchema(NoSchema::RegistryError);
            }
            if let Err(e) = self.load(subject, state).await {
                return registry_failed(subject, state, &e, "cannot read the subject's schema");
            }
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
        if !state.retry.due() {
            return Outcome::NoSchema(NoSchema::RegistryError);
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
            Err(e) => return registry_failed(subject, state, &e, "schema not registered"),
        };
        state.retry.succeeded();
        tracing::info!(subject, name = %record.name, version = %record.version, "registered schema version");
        if let Some(m) = &self.metrics {
            m.version_created();
        }
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

/// Records a registry failure of `subject` (`what` failed): the subject waits before the next
/// call; the first failure of a run is a warning, the rest debug lines.
fn registry_failed(subject: &str, state: &mut SubjectState, e: &Error, what: &str) -> Outcome {
    let (wait, first) = state.retry.failed();
    let retry_in_s = wait.as_secs();
    if first {
        tracing::warn!(subject, error = %e, retry_in_s, "{what}; the subject's events go without a schema until the registry is tried again (later failures at debug level)");
    } else {
        tracing::debug!(subject, error = %e, retry_in_s, "{what}");
    }
    Outcome::NoSchema(NoSchema::RegistryError)
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
mod tests;
