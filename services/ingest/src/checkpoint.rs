//! Per SSE stream, the last event ID up to which every routed event is acknowledged (delivered to
//! the broker), kept durably so a restarted ingest resumes each stream with `Last-Event-ID`
//! instead of losing or re-reading it: in a file (local use, or a StatefulSet volume) or as
//! retained MQTT messages on the broker (survives a pod moving to another node or replica).
//!
//! A stored record never keeps ingest from starting: one that is too large, malformed or stored
//! under another stream's topic is skipped with a warning, and its stream starts without it.

mod broker;
pub mod file;
pub mod record;
pub mod retention;
mod save;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sse_contract::limits::MQTT_CONTROL_PACKET_BYTES_MAX;
use sse_runtime::mqtt::{Broker, BrokerAddress, ClientSettings};
use sse_runtime::shown_url::shown;
use tokio_util::sync::CancellationToken;

use retention::Entry;
pub use retention::Policy;

/// Why checkpoints cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store setting is not understood (held as `shown_url` shows it: without credentials).
    #[error(
        "checkpoint store {0:?}: expected none, file:///<path>, mqtt://host:port or mqtts://host:port"
    )]
    BadStore(String),
    /// The store is a broker URL that cannot be used.
    #[error("checkpoint store: {0}")]
    BadBroker(String),
    /// File I/O failed.
    #[error("checkpoint file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The broker could not be used.
    #[error("checkpoint broker: {0}")]
    Mqtt(String),
    /// Something other than a regular file is at the file store's path.
    #[error("checkpoint file {path} is {what}, not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What is there ("a directory").
        what: &'static str,
    },
    /// A save would write a file larger than the next start reads.
    #[error(
        "checkpoint file {path}: {bytes} bytes to write, over the limit of {} (too many streams with long keys or ids)",
        file::FILE_BYTES_MAX
    )]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// What the save would have written.
        bytes: u64,
    },
}

impl CheckpointError {
    /// Whether the error is the operator's to fix and waiting cannot: a file store whose path
    /// is not a regular file, lies under one, or may not be read or written (permissions, a
    /// read-only file system). Ingest then exits 64 at start instead of retrying for ever; an
    /// unreachable broker, or a file system error that may pass, is retried.
    pub fn is_config(&self) -> bool {
        use std::io::ErrorKind as K;
        match self {
            Self::NotAFile { .. } => true,
            Self::Io { source, .. } => matches!(
                source.kind(),
                K::PermissionDenied
                    | K::NotADirectory
                    | K::IsADirectory
                    | K::ReadOnlyFilesystem
                    | K::InvalidFilename
            ),
            _ => false,
        }
    }
}

/// Acknowledgement progress of one stream: which routed events are still out, and the last event
/// ID whose routed events (and all before them) are all acknowledged.
#[derive(Debug, Default)]
pub struct Progress {
    /// Sent and not yet acknowledged seqs.
    unacked: BTreeSet<u64>,
    /// SSE events in order: the highest seq of their routed events and their last event ID.
    events: VecDeque<(u64, String)>,
    /// The last event ID up to which everything is acknowledged.
    committed: Option<String>,
    /// Whether `committed` changed since it was last saved.
    dirty: bool,
    /// Highest seq registered.
    high: u64,
}

impl Progress {
    /// Records one SSE event about to be handed on as the routed events `seqs` (empty when it
    /// matched no route).
    pub fn sent(&mut self, seqs: &[u64], last_event_id: &str) {
        self.unacked.extend(seqs.iter().copied());
        self.high = seqs
            .iter()
            .copied()
            .max()
            .unwrap_or(self.high)
            .max(self.high);
        // An event that matched no route commits together with the event before it: it takes
        // that event's place instead of queueing a copy of its id (a busy stream of unrouted
        // events would otherwise queue one per event while an earlier one waits for its ack).
        match self.events.back_mut() {
            Some((high, id)) if seqs.is_empty() && *high == self.high => {
                if id != last_event_id {
                    id.clear();
                    id.push_str(last_event_id);
                }
            }
            _ => self
                .events
                .push_back((self.high, last_event_id.to_string())),
        }
        self.advance();
    }

    /// Records the acknowledgement (or permanent failure) of routed event `seq`.
    pub fn acked(&mut self, seq: u64) {
        if self.unacked.remove(&seq) {
            self.advance();
        }
    }

    fn advance(&mut self) {
        let floor = self.unacked.first().copied();
        while let Some((last_seq, _)) = self.events.front() {
            if floor.is_some_and(|f| f <= *last_seq) {
                break;
            }
            if let Some((_, id)) = self.events.pop_front()
                && self.committed.as_deref() != Some(id.as_str())
            {
                self.committed = Some(id);
                self.dirty = true;
            }
        }
    }

    /// The committed last event ID, if any event was committed.
    pub fn committed(&self) -> Option<&str> {
        self.committed.as_deref()
    }
}

/// A stream's progress, shared by its reader (which registers events) and the forwarder (which
/// applies acks).
pub type SharedProgress = Arc<Mutex<Progress>>;

/// Locks a progress (a panic elsewhere leaves plain data: still usable).
pub fn lock(p: &SharedProgress) -> MutexGuard<'_, Progress> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where checkpoints are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// Not kept: a restart reads each stream from its live end.
    None,
    /// A JSON file, replaced atomically.
    File(PathBuf),
    /// Retained messages under a topic prefix on a broker.
    Mqtt {
        /// The broker: address, TLS files and credentials (files read at each connect).
        broker: Broker,
        /// Topic prefix.
        prefix: String,
        /// The MQTT client id; `None` picks a random `sse-ingest-checkpoint-…` one.
        client_id: Option<String>,
    },
}

/// Topic prefix of the retained checkpoints unless `--checkpoint-topic` says otherwise.
pub const DEFAULT_PREFIX: &str = sse_contract::topics::CHECKPOINT_PREFIX;

impl StoreConfig {
    /// Parses `--checkpoint-store`: empty or `none`, `file:///path`, a plain path, or an MQTT
    /// URL (`mqtt://`, `mqtts://`, `tcp://`, `ssl://`).
    pub fn parse(s: &str) -> Result<Self, CheckpointError> {
        if s.is_empty() || s == "none" {
            return Ok(Self::None);
        }
        let bad = || CheckpointError::BadStore(shown(s));
        if s.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("file:")) {
            // `file:///p`, `file://localhost/p` and `file:/p`; a host or a relative path is
            // refused, where `file://var/x.json` used to become the relative `var/x.json`.
            if !s[5..].starts_with('/') {
                return Err(bad()); // `file:x.json` would be read as `/x.json`
            }
            let url = url::Url::parse(s).map_err(|_| bad())?;
            return url.to_file_path().map(Self::File).map_err(|()| bad());
        }
        if BrokerAddress::is_broker_url(s) {
            let address =
                BrokerAddress::parse(s).map_err(|e| CheckpointError::BadBroker(e.to_string()))?;
            return Ok(Self::Mqtt {
                broker: Broker::new(address),
                prefix: DEFAULT_PREFIX.to_string(),
                client_id: None,
            });
        }
        if s.contains("://") {
            return Err(bad());
        }
        Ok(Self::File(PathBuf::from(s)))
    }
}

enum Backend {
    None,
    File(PathBuf),
    Mqtt(broker::BrokerStore),
}

/// Every stream's progress and the store behind them.
pub struct Checkpoints {
    streams: Mutex<foldhash::HashMap<String, SharedProgress>>,
    backend: Backend,
    /// Every stored record as last loaded or written (the file store writes them all), with
    /// when its stream was last planned.
    saved: Mutex<BTreeMap<String, Entry>>,
    /// The keys of every planned stream, this replica's and the others'.
    planned: Mutex<save::Planned>,
    /// How long, and how many, records of streams no plan has are kept.
    policy: Policy,
    /// Other pods, with plans of their own, may keep records in this store: only records of
    /// streams this process read are dropped.
    shared: bool,
    /// How the last saves went (the checkpoint age).
    health: Mutex<SaveHealth>,
}

/// When the store last took everything there was to write, and whether the last write failed.
#[derive(Debug)]
struct SaveHealth {
    /// The end of the last save that left nothing unwritten (or the opening of the store).
    last_ok: Instant,
    /// The last save failed: its changes are still to write.
    failing: bool,
}

impl SaveHealth {
    fn new() -> Self {
        Self {
            last_ok: Instant::now(),
            failing: false,
        }
    }
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner()).len();
        f.debug_struct("Checkpoints")
            .field("saved", &saved)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Now as unix seconds (0 before 1970: a clock that wrong keeps every record).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Checkpoints {
    /// Checkpoints kept nowhere (tests, or a deliberate choice).
    pub fn in_memory() -> Self {
        Self::with_backend(Backend::None, BTreeMap::new())
    }

    fn with_backend(backend: Backend, saved: BTreeMap<String, Entry>) -> Self {
        Self {
            streams: Mutex::default(),
            backend,
            saved: Mutex::new(saved),
            planned: Mutex::default(),
            policy: Policy::default(),
            shared: false,
            health: Mutex::new(SaveHealth::new()),
        }
    }

    /// Keeps records of streams no plan has for `policy`; `shared`: other pods with plans of
    /// their own (the ADR source's allocations) may keep records in the same broker store, so
    /// only records of streams this process read are dropped there.
    pub fn with_retention(mut self, policy: Policy, shared: bool) -> Self {
        self.policy = policy;
        self.shared = shared && matches!(self.backend, Backend::Mqtt(_));
        self
    }

    /// Opens the store and loads what it holds. The MQTT store keeps a client connected (its
    /// event loop runs until `token` is cancelled).
    pub async fn open(
        cfg: &StoreConfig,
        token: CancellationToken,
    ) -> Result<Self, CheckpointError> {
        let (backend, loaded) = match cfg {
            StoreConfig::None => (Backend::None, BTreeMap::new()),
            StoreConfig::File(path) => (Backend::File(path.clone()), file::open(path)?),
            StoreConfig::Mqtt {
                broker,
                prefix,
                client_id,
            } => {
                let client_id = client_id.clone().unwrap_or_else(|| {
                    format!("sse-ingest-checkpoint-{:016x}", rand::random::<u64>())
                });
                let settings =
                    ClientSettings::new(broker.clone(), client_id, MQTT_CONTROL_PACKET_BYTES_MAX);
                let (store, loaded) = broker::BrokerStore::open(settings, prefix, token).await?;
                (Backend::Mqtt(store), loaded)
            }
        };
        // Keys of older versions held the raw URL: today's form, so no stream is re-read.
        let legacy: Vec<String> = loaded
            .keys()
            .filter(|k| crate::stream_key::migrate(k) != **k)
            .cloned()
            .collect();
        let now = unix_now();
        let loaded: BTreeMap<String, Entry> = crate::stream_key::migrate_all(loaded)
            .into_iter()
            .map(|(k, r)| (k, Entry::loaded(r.last_event_id, r.seen, now)))
            .collect();
        if let (Backend::Mqtt(store), false) = (&backend, legacy.is_empty()) {
            rewrite_legacy(store, &legacy, &loaded).await?;
        }
        tracing::info!(streams = loaded.len(), "checkpoints loaded");
        Ok(Self::with_backend(backend, loaded))
    }

    /// Takes the keys of every planned stream (every replica's: a stream another replica reads
    /// keeps its record); records of the others are dropped once absent for the retention.
    /// Called before the streams of a plan start, so none starts with a record being dropped.
    pub fn planned(&self, keys: HashSet<String>) {
        let mut planned = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        planned.keys = Some(keys);
        planned.fresh = true;
    }

    /// The progress of stream `key` (created on first use) and the last event ID to resume it
    /// from: the one in memory when the stream was read before, else the stored one.
    pub fn resume(&self, key: &str) -> (SharedProgress, String) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let p = streams.entry(key.to_string()).or_default().clone();
        let from = lock(&p)
            .committed()
            .map(str::to_string)
            .or_else(|| {
                let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
                saved.get(key).map(|e| e.id.clone())
            })
            .unwrap_or_default();
        (p, from)
    }

    /// Applies an acknowledgement of routed event `seq` of stream `key`.
    pub fn acked(&self, key: &str, seq: u64) {
        let p = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        if let Some(p) = p {
            lock(&p).acked(seq);
        }
    }

    /// How long changes have waited to be written: the time since the last save that left
    /// nothing unwritten, while a checkpoint has changed since or the last save failed; zero
    /// when everything is written. A store that is stuck or failing makes it grow.
    pub fn age(&self) -> Duration {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if health.failing || self.any_dirty() {
            health.last_ok.elapsed()
        } else {
            Duration::ZERO
        }
    }

    /// Whether a stream's checkpoint changed since it was last taken for a save.
    fn any_dirty(&self) -> bool {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.values().any(|p| lock(p).dirty)
    }

    /// Writes every checkpoint that changed since the last save, and drops the records of
    /// streams gone for the retention; after a failure the changes are written again by the
    /// next one.
    pub async fn save(&self) -> Result<usize, CheckpointError> {
        self.save_at(unix_now()).await
    }

    /// [`Checkpoints::save`] at `now` (unix seconds).
    async fn save_at(&self, now: u64) -> Result<usize, CheckpointError> {
        let result = self.write_changed(now).await;
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.failing = result.is_err();
        if !health.failing {
            health.last_ok = Instant::now();
        }
        result
    }

    /// Saves every `every` until `token` is cancelled, then once more.
    pub async fn run(self: Arc<Self>, every: Duration, token: CancellationToken) {
        loop {
            let stop = tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = token.cancelled() => true,
            };
            if let Err(e) = self.save().await {
                tracing::warn!(error = %e, "cannot save checkpoints; retrying");
            }
            if stop {
                return;
            }
        }
    }
}

/// Moves the broker records stored under `legacy` keys (which held the raw URL, with any
/// credentials in it) to today's keys, and clears the old retained messages, so the secret does
/// not stay on the broker after an upgrade.
async fn rewrite_legacy(
    store: &broker::BrokerStore,
    legacy: &[String],
    migrated: &BTreeMap<String, Entry>,
) -> Result<(), CheckpointError> {
    for old in legacy {
        let now = crate::stream_key::migrate(old);
        if let Some(e) = migrated.get(&now) {
            store.save(&now, &e.id, e.seen).await?;
        }
        store.clear(old).await?;
    }
    tracing::info!(
        streams = legacy.len(),
        "checkpoints of an older key form moved to today's keys"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
