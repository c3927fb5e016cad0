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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sse_contract::limits::MQTT_CONTROL_PACKET_BYTES_MAX;
use sse_runtime::mqtt::{Broker, BrokerAddress, ClientSettings};
use sse_runtime::shown_url::shown;
use tokio_util::sync::CancellationToken;

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
    streams: Mutex<HashMap<String, SharedProgress>>,
    loaded: BTreeMap<String, String>,
    backend: Backend,
    /// What was last written, per stream (the file store writes the union).
    saved: Mutex<BTreeMap<String, String>>,
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
        f.debug_struct("Checkpoints")
            .field("loaded", &self.loaded.len())
            .finish_non_exhaustive()
    }
}

impl Checkpoints {
    /// Checkpoints kept nowhere (tests, or a deliberate choice).
    pub fn in_memory() -> Self {
        Self {
            streams: Mutex::default(),
            loaded: BTreeMap::new(),
            backend: Backend::None,
            saved: Mutex::default(),
            health: Mutex::new(SaveHealth::new()),
        }
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
        let loaded = crate::stream_key::migrate_all(loaded);
        if let (Backend::Mqtt(store), false) = (&backend, legacy.is_empty()) {
            rewrite_legacy(store, &legacy, &loaded).await?;
        }
        tracing::info!(streams = loaded.len(), "checkpoints loaded");
        Ok(Self {
            streams: Mutex::default(),
            saved: Mutex::new(loaded.clone()),
            loaded,
            backend,
            health: Mutex::new(SaveHealth::new()),
        })
    }

    /// The progress of stream `key` (created on first use) and the last event ID to resume it
    /// from: the one in memory when the stream was read before, else the stored one.
    pub fn resume(&self, key: &str) -> (SharedProgress, String) {
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let p = streams.entry(key.to_string()).or_default().clone();
        let from = lock(&p)
            .committed()
            .map(str::to_string)
            .or_else(|| self.loaded.get(key).cloned())
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

    /// Writes every checkpoint that changed since the last save; after a failure they are
    /// written again by the next one.
    pub async fn save(&self) -> Result<usize, CheckpointError> {
        let result = self.write_changed().await;
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.failing = result.is_err();
        if !health.failing {
            health.last_ok = Instant::now();
        }
        result
    }

    /// Marks streams `keys` as changed again (their write failed).
    fn redirty(&self, keys: &[(String, String)]) {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        for (k, _) in keys {
            if let Some(p) = streams.get(k) {
                lock(p).dirty = true;
            }
        }
    }

    /// Writes every checkpoint that changed since the last save.
    async fn write_changed(&self) -> Result<usize, CheckpointError> {
        let changed: Vec<(String, String)> = {
            let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
            streams
                .iter()
                .filter_map(|(k, p)| {
                    let mut p = lock(p);
                    if !p.dirty {
                        return None;
                    }
                    p.dirty = false;
                    p.committed().map(|id| (k.clone(), id.to_string()))
                })
                .collect()
        };
        if changed.is_empty() {
            return Ok(0);
        }
        let written = match &self.backend {
            Backend::None => Ok(()),
            Backend::File(path) => {
                let all = {
                    let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
                    saved.extend(changed.iter().cloned());
                    saved.clone()
                };
                file::write(path, &all).await
            }
            Backend::Mqtt(store) => {
                let mut r = Ok(());
                for (stream, id) in &changed {
                    r = store.save(stream, id).await;
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
        };
        if let Err(e) = written {
            self.redirty(&changed);
            return Err(e);
        }
        Ok(changed.len())
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
    migrated: &BTreeMap<String, String>,
) -> Result<(), CheckpointError> {
    for old in legacy {
        let now = crate::stream_key::migrate(old);
        if let Some(id) = migrated.get(&now) {
            store.save(&now, id).await?;
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
mod tests {
    use super::*;

    #[test]
    fn commits_only_when_every_earlier_routed_event_is_acknowledged() {
        let mut p = Progress::default();
        p.sent(&[1, 2], "a"); // one SSE event, two routes
        p.sent(&[3], "b");
        p.sent(&[], "c"); // matched nothing
        p.sent(&[4], "d");
        assert_eq!(p.committed(), None);
        p.acked(3);
        assert_eq!(p.committed(), None, "b waits for a");
        p.acked(1);
        assert_eq!(p.committed(), None, "a has a route still out");
        p.acked(2);
        assert_eq!(p.committed(), Some("c"), "a, b and the unrouted c are done");
        p.acked(4);
        assert_eq!(p.committed(), Some("d"));
        p.acked(4);
        assert_eq!(p.committed(), Some("d"));
    }

    #[test]
    fn unrouted_events_queue_no_copies_while_an_event_waits() {
        let mut p = Progress::default();
        p.sent(&[1], "a");
        for i in 0..1000 {
            p.sent(&[], &format!("u{i}"));
        }
        assert_eq!(p.events.len(), 1, "one entry, not one per unrouted event");
        assert_eq!(p.committed(), None);
        p.sent(&[2], "b");
        p.sent(&[], "c");
        assert_eq!(p.events.len(), 2);
        p.acked(1);
        assert_eq!(p.committed(), Some("u999"));
        p.acked(2);
        assert_eq!(p.committed(), Some("c"));
        assert!(p.events.is_empty());
    }

    #[test]
    fn an_unrouted_first_event_commits_at_once() {
        let mut p = Progress::default();
        p.sent(&[], "x");
        assert_eq!(p.committed(), Some("x"));
        assert!(p.dirty);
    }

    #[test]
    fn store_settings_parse() {
        assert_eq!(StoreConfig::parse("").unwrap(), StoreConfig::None);
        assert_eq!(
            StoreConfig::parse("file:///var/lib/x.json").unwrap(),
            StoreConfig::File("/var/lib/x.json".into())
        );
        assert_eq!(
            StoreConfig::parse("data/c.json").unwrap(),
            StoreConfig::File("data/c.json".into())
        );
        assert!(matches!(
            StoreConfig::parse("mqtts://broker:8883").unwrap(),
            StoreConfig::Mqtt { .. }
        ));
        // The scheme set is the shared MQTT stack's, in any case as URLs allow.
        assert!(matches!(
            StoreConfig::parse("MQTTS://broker:8883").unwrap(),
            StoreConfig::Mqtt { broker, .. } if broker.tls.is_some()
        ));
        assert!(matches!(
            StoreConfig::parse("ssl://broker").unwrap(),
            StoreConfig::Mqtt { broker, .. } if broker.tls.is_some() && broker.address.port == 8883
        ));
        assert_eq!(StoreConfig::parse("none").unwrap(), StoreConfig::None);
        assert!(StoreConfig::parse("http://x").is_err());
        // Every form of a local file URL is that file; one naming a host is refused.
        for local in [
            "file:/var/lib/x.json",
            "file://localhost/var/lib/x.json",
            "FILE:///var/lib/x.json",
        ] {
            assert_eq!(
                StoreConfig::parse(local).unwrap(),
                StoreConfig::File("/var/lib/x.json".into()),
                "{local}"
            );
        }
        assert_eq!(
            StoreConfig::parse("file:///var/lib/a%20b.json").unwrap(),
            StoreConfig::File("/var/lib/a b.json".into())
        );
        for bad in ["file://var/lib/x.json", "file:x.json"] {
            assert!(StoreConfig::parse(bad).is_err(), "{bad}");
        }
        // Neither an unknown scheme nor a bad broker URL shows the password, and the broker's
        // own reason is not dressed up as the setting.
        let e = StoreConfig::parse("http://u:hunter2@x")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let e = StoreConfig::parse("mqtt://u:hunter2@x:99999")
            .unwrap_err()
            .to_string();
        assert!(
            !e.contains("hunter2") && e.starts_with("checkpoint store: broker URL"),
            "{e}"
        );
        assert!(
            StoreConfig::parse("mqtt://u:hunter2@b")
                .is_err_and(|e| !e.to_string().contains("hunter2"))
        );
    }

    #[tokio::test]
    async fn the_file_store_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/checkpoints.json");
        let cfg = StoreConfig::File(path.clone());
        let c = Checkpoints::open(&cfg, CancellationToken::new())
            .await
            .unwrap();
        let (p, from) = c.resume("s1");
        assert_eq!(from, "");
        lock(&p).sent(&[1], "41");
        c.acked("s1", 1);
        assert_eq!(c.save().await.unwrap(), 1);
        assert_eq!(c.save().await.unwrap(), 0, "nothing changed since");
        let again = Checkpoints::open(&cfg, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(again.resume("s1").1, "41");
        assert_eq!(again.resume("other").1, "");
        // A damaged file is not fatal.
        std::fs::write(&path, b"{oops").unwrap();
        let damaged = Checkpoints::open(&cfg, CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(damaged.resume("s1").1, "");
    }

    /// #19 point 6: the file is `0600` in a `0700` directory, and a symlink planted where the
    /// old code put its temp file (`<name>.tmp`) is not followed.
    #[tokio::test]
    async fn the_file_store_is_private_and_follows_no_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let dir = root.path().join("state");
        let path = dir.join("checkpoints.json");
        let c = Checkpoints::open(&StoreConfig::File(path.clone()), CancellationToken::new())
            .await
            .unwrap();
        let (p, _) = c.resume("s1");
        lock(&p).sent(&[], "7");
        c.save().await.unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir), 0o700);
        std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
        lock(&p).sent(&[], "8");
        c.save().await.unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(mode(&path), 0o600);
        let again = Checkpoints::open(&StoreConfig::File(path), CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(again.resume("s1").1, "8");
    }

    /// The checkpoint age grows while a change cannot be written, the change is written by the
    /// next save that can, and the age is zero once everything is written.
    #[tokio::test]
    async fn a_failing_store_ages_and_keeps_its_changes_for_the_next_save() {
        let root = tempfile::tempdir().unwrap();
        let blocker = root.path().join("state");
        let c = Checkpoints::open(
            &StoreConfig::File(blocker.join("checkpoints.json")),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        // A file where the store's directory (made at open) should be: every write fails.
        std::fs::remove_dir(&blocker).unwrap();
        std::fs::write(&blocker, b"not a directory").unwrap();
        assert_eq!(c.age(), Duration::ZERO, "nothing to write yet");
        let (p, _) = c.resume("s1");
        lock(&p).sent(&[], "41");
        assert!(c.age() > Duration::ZERO, "a change not written yet");
        assert!(c.save().await.is_err());
        let failed = c.age();
        assert!(failed > Duration::ZERO, "a change waits");
        assert!(c.save().await.is_err());
        assert!(c.age() >= failed, "it keeps waiting");
        std::fs::remove_file(&blocker).unwrap();
        assert_eq!(c.save().await.unwrap(), 1, "the change was kept");
        assert_eq!(c.age(), Duration::ZERO);
    }
}
