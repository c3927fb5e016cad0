//! Per SSE stream, the last event ID up to which every routed event is acknowledged (delivered to
//! the broker), kept durably so a restarted ingest resumes each stream with `Last-Event-ID`
//! instead of losing or re-reading it: in a file (local use, or a StatefulSet volume) or as
//! retained MQTT messages on the broker (survives a pod moving to another node or replica).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Why checkpoints cannot be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The store setting is not understood.
    #[error(
        "checkpoint store {0:?}: expected file:///<path>, mqtt://host:port or mqtts://host:port"
    )]
    BadStore(String),
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
        /// `mqtt://` or `mqtts://` URL.
        url: url::Url,
        /// Topic prefix.
        prefix: String,
        /// User name.
        username: Option<String>,
        /// File holding the password (read at connect).
        password_file: Option<PathBuf>,
        /// Extra CA certificates (PEM).
        ca_file: Option<PathBuf>,
        /// Kubernetes service account token file for the `K8S-SAT` method (read at connect).
        sat_file: Option<PathBuf>,
    },
}

impl StoreConfig {
    /// Parses `--checkpoint-store`: empty, `file:///path`, a plain path, or an MQTT URL.
    pub fn parse(s: &str) -> Result<Self, CheckpointError> {
        if s.is_empty() {
            return Ok(Self::None);
        }
        if let Some(path) = s.strip_prefix("file://") {
            return Ok(Self::File(PathBuf::from(path)));
        }
        if s.starts_with("mqtt://") || s.starts_with("mqtts://") {
            let url = url::Url::parse(s).map_err(|_| CheckpointError::BadStore(s.to_string()))?;
            if url.host_str().is_none() {
                return Err(CheckpointError::BadStore(s.to_string()));
            }
            return Ok(Self::Mqtt {
                url,
                prefix: "sse-connector/checkpoint".to_string(),
                username: None,
                password_file: None,
                ca_file: None,
                sat_file: None,
            });
        }
        if s.contains("://") {
            return Err(CheckpointError::BadStore(s.to_string()));
        }
        Ok(Self::File(PathBuf::from(s)))
    }
}

/// One saved checkpoint, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    stream: String,
    last_event_id: String,
}

enum Backend {
    None,
    File(PathBuf),
    Mqtt { client: AsyncClient, prefix: String },
}

/// Every stream's progress and the store behind them.
pub struct Checkpoints {
    streams: Mutex<HashMap<String, SharedProgress>>,
    loaded: BTreeMap<String, String>,
    backend: Backend,
    /// What was last written, per stream (the file store writes the union).
    saved: Mutex<BTreeMap<String, String>>,
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
            StoreConfig::File(path) => (Backend::File(path.clone()), load_file(path)?),
            StoreConfig::Mqtt { prefix, .. } => {
                let (client, loaded) = mqtt_open(cfg, token).await?;
                (
                    Backend::Mqtt {
                        client,
                        prefix: prefix.clone(),
                    },
                    loaded,
                )
            }
        };
        // Keys of older versions held the raw URL: today's form, so no stream is re-read.
        let loaded = crate::stream_key::migrate_all(loaded);
        tracing::info!(streams = loaded.len(), "checkpoints loaded");
        Ok(Self {
            streams: Mutex::default(),
            saved: Mutex::new(loaded.clone()),
            loaded,
            backend,
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

    /// Writes every checkpoint that changed since the last save.
    pub async fn save(&self) -> Result<usize, CheckpointError> {
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
        match &self.backend {
            Backend::None => {}
            Backend::File(path) => {
                let all = {
                    let mut saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
                    saved.extend(changed.iter().cloned());
                    saved.clone()
                };
                write_file(path, &all).await?;
            }
            Backend::Mqtt { client, prefix } => {
                for (stream, id) in &changed {
                    let payload = serde_json::to_vec(&Record {
                        stream: stream.clone(),
                        last_event_id: id.clone(),
                    })
                    .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
                    client
                        .publish(topic(prefix, stream), QoS::AtLeastOnce, true, payload)
                        .await
                        .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
                }
            }
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

/// The retained topic of a stream's checkpoint: the key hashed (keys hold `/`, `:` and more).
fn topic(prefix: &str, stream: &str) -> String {
    let digest = Sha256::digest(stream.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}/{hex}")
}

fn load_file(path: &Path) -> Result<BTreeMap<String, String>, CheckpointError> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Vec<Record>>(&bytes) {
            Ok(records) => Ok(records
                .into_iter()
                .map(|r| (r.stream, r.last_event_id))
                .collect()),
            Err(e) => {
                // A damaged file costs duplicates, never the service.
                tracing::warn!(file = %path.display(), error = %e, "checkpoint file unreadable; starting without checkpoints");
                Ok(BTreeMap::new())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(source) => Err(CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Replaces the file atomically: temp file, fsync, rename.
async fn write_file(path: &Path, all: &BTreeMap<String, String>) -> Result<(), CheckpointError> {
    let records: Vec<Record> = all
        .iter()
        .map(|(k, v)| Record {
            stream: k.clone(),
            last_event_id: v.clone(),
        })
        .collect();
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(&records).map_err(|e| io(e.into()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    })
    .await
    .map_err(|e| CheckpointError::Mqtt(format!("checkpoint writer failed: {e}")))?
}

/// Connects, reads every retained checkpoint under the prefix, and keeps the client for saving.
/// A sentinel published after the subscription marks the end of the retained messages (the broker
/// delivers a subscription's retained messages before it handles the client's next packet).
async fn mqtt_open(
    cfg: &StoreConfig,
    token: CancellationToken,
) -> Result<(AsyncClient, BTreeMap<String, String>), CheckpointError> {
    let StoreConfig::Mqtt {
        url,
        prefix,
        username,
        password_file,
        ca_file,
        sat_file,
    } = cfg
    else {
        return Err(CheckpointError::BadStore(String::new()));
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let tls = url.scheme() == "mqtts";
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = format!("sse-ingest-checkpoint-{:016x}", rand::random::<u64>());
    let mut opts = MqttOptions::new(client_id.clone(), host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_start(true);
    let credentials = sse_runtime::mqtt::BrokerCredentials {
        username: username.clone(),
        password_file: password_file.clone(),
        sat_file: sat_file.clone(),
    };
    credentials
        .apply(&mut opts)
        .await
        .map_err(CheckpointError::Mqtt)?;
    if tls {
        let extra = match ca_file {
            Some(f) => {
                sse_runtime::tls::load_certs(f).map_err(|e| CheckpointError::Mqtt(e.to_string()))?
            }
            None => Vec::new(),
        };
        let tls = sse_runtime::tls::client_config(extra)
            .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
        ));
    }
    let (client, mut events) = AsyncClient::new(opts, 64);
    let filter = format!("{prefix}/#");
    let sentinel = format!("{prefix}/sync/{client_id}");
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
    let mut loaded = BTreeMap::new();
    let load = async {
        let mut subscribed = false;
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) if !subscribed => {
                    subscribed = true;
                    client
                        .publish(sentinel.clone(), QoS::AtLeastOnce, false, Vec::new())
                        .await
                        .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.topic == sentinel.as_bytes() {
                        return Ok(());
                    }
                    if let Ok(r) = serde_json::from_slice::<Record>(&p.payload) {
                        loaded.insert(r.stream, r.last_event_id);
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(CheckpointError::Mqtt(e.to_string())),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), load)
        .await
        .map_err(|_| {
            CheckpointError::Mqtt("no answer from the broker within 30 s".to_string())
        })??;
    client
        .unsubscribe(format!("{prefix}/#"))
        .await
        .map_err(|e| CheckpointError::Mqtt(e.to_string()))?;
    tokio::spawn(drive(events, credentials, token));
    Ok((client, loaded))
}

/// Runs the checkpoint client's event loop until cancelled; after an error it reconnects with
/// the credentials read again (a rotated password or token).
async fn drive(
    mut events: EventLoop,
    credentials: sse_runtime::mqtt::BrokerCredentials,
    token: CancellationToken,
) {
    let mut backoff = sse_runtime::Backoff::standard();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            r = events.poll() => match r {
                Ok(Event::Incoming(Packet::ConnAck(_))) => backoff.connected(),
                Ok(_) => {}
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "checkpoint broker connection lost");
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    if let Err(e) = credentials.apply(&mut events.options).await {
                        tracing::warn!(error = %e, "checkpoint broker credentials");
                    }
                }
            }
        }
    }
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
        assert!(StoreConfig::parse("http://x").is_err());
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
}
