//! The service's typed configuration: flags with environment fallbacks (and Azure IoT Operations
//! aliases for the secrets and trust directories).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sse_contract::limits::{EVENT_BYTES_DEFAULT, EVENT_BYTES_MAX};
use sse_contract::resources::RESOURCE_FILE_BYTES_DEFAULT;
use sse_runtime::duration_flag::Bounds;

use crate::akri::contract::ClientIdStyle;
use crate::error::Error;
use crate::shard::Shard;
use crate::source::{AdrSource, ResourceSource};

/// Azure IoT Operations name of the secrets directory variable, read when neither the flag nor
/// `SECRETS_DIR` is set.
pub const SECRETS_DIR_ALIAS: &str = "DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH";
/// Azure IoT Operations name of the trust bundle directory variable, read when neither the flag
/// nor `TRUST_DIR` is set.
pub const TRUST_DIR_ALIAS: &str = "DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH";

/// `--read-timeout`: shorter than a second, no connection could be opened.
pub const READ_TIMEOUT: Bounds = Bounds::within(Duration::from_secs(1), Duration::from_secs(3600));
/// `--min-reconnect-delay`: the floor that keeps a server's `retry: 0` from looping hot.
pub const MIN_RECONNECT_DELAY: Bounds =
    Bounds::within(Duration::from_millis(100), Duration::from_secs(3600));
/// `--reload-debounce`: 0 reloads at the first change.
pub const RELOAD_DEBOUNCE: Bounds = Bounds::within(Duration::ZERO, Duration::from_secs(60));
/// `--rescan-interval`: 0 is never; more often than every second re-reads the whole directory
/// for nothing.
pub const RESCAN_INTERVAL: Bounds =
    Bounds::off_or(Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// `--status-interval`: unchanged status re-published; each is a retained message per resource.
pub const STATUS_INTERVAL: Bounds =
    Bounds::within(Duration::from_secs(1), Duration::from_secs(24 * 3600));
/// `--checkpoint-interval`: each save may write a file or a retained message per stream.
pub const CHECKPOINT_INTERVAL: Bounds =
    Bounds::within(Duration::from_millis(100), Duration::from_secs(3600));
/// `--checkpoint-retention`: 0 drops a removed stream's checkpoint at the next save; ten years
/// (as humantime counts them, 365.25 days each) is for ever in practice.
pub const CHECKPOINT_RETENTION: Bounds =
    Bounds::within(Duration::ZERO, Duration::from_secs(10 * 31_557_600));
/// `--adr-health-interval`: its minimum (the SDK's 60 s) is checked with the health cache.
pub const ADR_HEALTH_INTERVAL: Bounds =
    Bounds::within(Duration::ZERO, Duration::from_secs(24 * 3600));

/// Ingest's configuration, validated once at start, with what is derived from the flags
/// computed once, so no later step re-derives (or silently re-fails on) it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flags and environment as parsed (and checked).
    pub flags: Config,
    /// This replica's share of the streams.
    pub shard: Shard,
    /// The topic prefix this replica's status reports go under (with several replicas, its
    /// ordinal appended); `None`: reports off (`--status-topic ""`).
    pub status_prefix: Option<String>,
    /// mTLS and the access table, loaded.
    pub security: sse_runtime::mtls::Security,
    /// The ADR resource source; `None`: the resource files.
    pub adr: Option<AdrSource>,
}

/// Everything `sse-ingest` is configured with.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sse-ingest",
    version,
    about = "Reads SSE streams of devices, routes each event to its asset dataset or event, streams it to the schema service."
)]
pub struct Config {
    /// Address the gRPC server (IngestService, health, reflection) listens on; port 0 picks one.
    #[arg(long, env = "INGEST_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// The schema service (`SchemaService.Process` is called on it; `https://` with mTLS).
    #[arg(long, env = "SCHEMA_ADDR", default_value = "http://127.0.0.1:50052")]
    pub schema: tonic::transport::Uri,
    /// Directory of Device and Asset YAML resources (the `files` resource source).
    #[arg(long, env = "RESOURCES_DIR", default_value = "deploy/local/resources")]
    pub resources: PathBuf,
    /// Where Devices and Assets come from: `files` (`--resources`), `adr` (Azure Device
    /// Registry, for what the Akri operator allocated: needs ADR_RESOURCES_NAME_MOUNT_PATH and
    /// CONNECTOR_ID) or `auto` (adr when ADR_RESOURCES_NAME_MOUNT_PATH is set, else files).
    #[arg(long, env = "RESOURCE_SOURCE", value_enum, default_value_t = ResourceSource::Auto)]
    pub resource_source: ResourceSource,
    /// The ADR client's MQTT client id from CONNECTOR_ID: `as-is` (the .NET SDK) or
    /// `append-zero` (the Rust SDK's `BaseConnector`); ADR authorises calls by it.
    #[arg(long, env = "ADR_CLIENT_ID_STYLE", value_enum, default_value_t = ClientIdStyle::AsIs)]
    pub adr_client_id_style: ClientIdStyle,
    /// The broker ADR is reached on with the adr resource source (`mqtt://` / `mqtts://`, with
    /// the broker credential flags); required for `sse-ingest`, the publisher's broker by
    /// default in `sse-connector`.
    #[arg(long, env = "ADR_BROKER")]
    pub adr_broker: Option<String>,
    /// The Akri contract in the environment, read by [`Config::with_aliases`].
    #[arg(skip)]
    pub akri_contract: crate::source::ContractLookup,
    /// Directory of secrets: `<dir>/<secret>/<key>` files (alias env DEVICE_ENDPOINT_CREDENTIALS_MOUNT_PATH).
    #[arg(long = "secrets-dir", env = "SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// YAML file of which devices may use which secrets (`<secret>: [<device>, ...]`, `"*"` for
    /// any device), outside the resources directory; re-read when it changes. Unset: every
    /// device may use every secret.
    #[arg(long = "secret-access", env = "SECRET_ACCESS_FILE")]
    pub secret_access: Option<PathBuf>,
    /// Directory of trust lists: `<dir>/<trustList>/*.pem` (alias env DEVICE_ENDPOINT_TLS_TRUST_BUNDLE_CA_CERT_MOUNT_PATH).
    #[arg(long = "trust-dir", env = "TRUST_DIR")]
    pub trust_dir: Option<PathBuf>,
    /// Silence on an SSE connection longer than this means the connection is dead.
    #[arg(long, env = "INGEST_READ_TIMEOUT", default_value = "60s", value_parser = READ_TIMEOUT.parser())]
    pub read_timeout: Duration,
    /// No SSE reconnect comes sooner than this after a disconnect; a server's `retry:` is clamped
    /// to [this, 1 h] (the default is the backoff floor, so `retry: 0` cannot loop hot).
    #[arg(long, env = "INGEST_MIN_RECONNECT_DELAY", default_value = "500ms", value_parser = MIN_RECONNECT_DELAY.parser())]
    pub min_reconnect_delay: Duration,
    /// Events with more data than this many bytes are dropped and counted (`event_too_large`).
    /// At most 4 MiB (`EVENT_BYTES_MAX`), so every decoder after ingest accepts the event.
    #[arg(long, env = "INGEST_MAX_EVENT_BYTES", default_value_t = EVENT_BYTES_DEFAULT)]
    pub max_event_bytes: usize,
    /// Distinct SSE event types no asset routes kept per device endpoint (`ListDiscovered`);
    /// past it, events of further types are counted together as `other`.
    #[arg(long, env = "INGEST_DISCOVERY_MAX_TYPES", default_value_t = crate::discovery::MAX_TYPES_DEFAULT, value_parser = max_types)]
    pub discovery_max_types: usize,
    /// Bytes of the first payload of a discovered type kept as its sample; a longer payload is
    /// kept cut, marked truncated, and no schema is inferred from it.
    #[arg(long, env = "INGEST_DISCOVERY_SAMPLE_BYTES", default_value_t = crate::discovery::SAMPLE_BYTES_DEFAULT, value_parser = sample_bytes)]
    pub discovery_sample_bytes: usize,
    /// Publish each endpoint's discovered event types as retained JSON under this topic root
    /// (`<root>/<device>/<endpoint>`, e.g. `sse-connector/discovery`); empty: do not publish.
    #[arg(long, env = "INGEST_DISCOVERY_TOPIC", default_value = "")]
    pub discovery_topic: String,
    /// Largest resource file read, in bytes; a larger one is refused with an error naming it
    /// (its resources are not served) and the other files load.
    #[arg(long, env = "INGEST_MAX_RESOURCE_FILE_BYTES", default_value_t = RESOURCE_FILE_BYTES_DEFAULT as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_resource_file_bytes: u64,
    /// `PutResource` and `DeleteResource` calls allowed per second (shared).
    #[arg(long, env = "INGEST_RESOURCE_WRITES_PER_SECOND", default_value_t = crate::resource_write::grpc::WRITES_PER_SECOND_DEFAULT, value_parser = rate)]
    pub resource_writes_per_second: f64,
    /// Resource writes allowed at once before the rate applies; 0 turns resource writes off.
    #[arg(long, env = "INGEST_RESOURCE_WRITE_BURST", default_value_t = crate::resource_write::grpc::WRITE_BURST_DEFAULT)]
    pub resource_write_burst: u32,
    /// After a change in the resources directory, reload once it has been quiet this long.
    #[arg(long, env = "INGEST_RELOAD_DEBOUNCE", default_value = "300ms", value_parser = RELOAD_DEBOUNCE.parser())]
    pub reload_debounce: Duration,
    /// Re-read the resources directory this often even without a change notification (0: never).
    #[arg(long, env = "INGEST_RESCAN_INTERVAL", default_value = "60s", value_parser = RESCAN_INTERVAL.parser())]
    pub rescan_interval: Duration,
    /// Publish each device's and asset's status as retained JSON under this topic prefix
    /// (`<prefix>/device/<name>`, `<prefix>/asset/<name>`); empty: do not publish.
    #[arg(
        long,
        env = "INGEST_STATUS_TOPIC",
        default_value = sse_contract::topics::STATUS_PREFIX
    )]
    pub status_topic: String,
    /// Re-publish unchanged status this often (changes are published within a second).
    #[arg(long, env = "INGEST_STATUS_INTERVAL", default_value = "60s", value_parser = STATUS_INTERVAL.parser())]
    pub status_interval: Duration,
    /// Where each stream's acknowledged resume point (last event ID) is kept: `file:///path`
    /// (or a plain path) for a JSON file, `mqtt://host:port` / `mqtts://host:port` for retained
    /// messages on a broker (survives the pod moving), `none` for nowhere. Unset: nowhere for
    /// `sse-ingest`; the publisher's broker for `sse-connector`.
    #[arg(long, env = "CHECKPOINT_STORE")]
    pub checkpoint_store: Option<String>,
    /// The broker of the publisher in the same process (URL, TLS, credentials), set by
    /// `sse-connector`: an unset `--checkpoint-store` (so one process resumes by default) and an
    /// unset `--adr-broker` stand for it.
    #[arg(skip)]
    pub publisher_broker: Option<sse_runtime::mqtt::Broker>,
    /// Topic prefix of the retained checkpoint messages.
    #[arg(
        long,
        env = "CHECKPOINT_TOPIC",
        default_value = sse_contract::topics::CHECKPOINT_PREFIX
    )]
    pub checkpoint_topic: String,
    /// How often changed checkpoints are written.
    #[arg(long, env = "CHECKPOINT_INTERVAL", default_value = "1s", value_parser = CHECKPOINT_INTERVAL.parser())]
    pub checkpoint_interval: Duration,
    /// How long the checkpoint of a stream no longer in the resources is kept (a resource
    /// removed and restored by an edit within it resumes from its checkpoint); then it is
    /// dropped from the store. 0: dropped at the next save after the removal.
    #[arg(long, env = "CHECKPOINT_RETENTION", default_value = "7d", value_parser = CHECKPOINT_RETENTION.parser())]
    pub checkpoint_retention: Duration,
    /// Most checkpoints kept of streams no longer in the resources, however recent: past it the
    /// ones gone longest are dropped first, so a storm of renames cannot grow the store.
    #[arg(long, env = "CHECKPOINT_ABSENT_MAX", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub checkpoint_absent_max: u64,
    /// Credentials and CA files of an `mqtt://` / `mqtts://` checkpoint store's broker.
    #[command(flatten)]
    pub broker: sse_runtime::mqtt::BrokerAuthFlags,
    /// Events sent to the schema service and not yet acknowledged; reading pauses at this many.
    #[arg(long, env = "INGEST_MAX_IN_FLIGHT", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,
    /// Bytes held for events read and not yet acknowledged (data, ids, stream key, route, trace
    /// context; queued or sent to the schema service); reading pauses beyond it.
    #[arg(long, env = "INGEST_MAX_IN_FLIGHT_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=crate::budget::MAX_BYTES))]
    pub max_in_flight_bytes: u64,
    /// SSE events of one stream read and not yet acknowledged (queued or sent to the schema
    /// service); that stream's reading pauses at this many, so one stream cannot take the
    /// whole window and hold every other stream's events behind its own. Another stream's event
    /// waits behind about this many of a flood's, almost all of them already downstream.
    #[arg(long, env = "INGEST_MAX_IN_FLIGHT_PER_STREAM", default_value_t = 250, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight_per_stream: u64,
    /// Ingest replicas splitting the SSE streams by rendezvous hashing of the stream key (1: read every stream).
    #[arg(long, env = "INGEST_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas: u32,
    /// This replica's ordinal in 0..replicas (default: from the pod name).
    #[arg(long, env = "INGEST_ORDINAL")]
    pub ordinal: Option<u32>,
    /// StatefulSet pod name `<name>-<ordinal>`: gives the ordinal when `--ordinal` is not set.
    #[arg(long = "pod-name", env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// Directory of PEM CA certificates trusted for every SSE endpoint (beside each endpoint's trust list).
    #[arg(long = "trust-bundle", env = "TRUST_BUNDLE_DIR")]
    pub trust_bundle: Option<PathBuf>,
    /// Do not trust the system's root CAs for SSE endpoints (only the trust bundle and trust lists).
    #[arg(long = "no-system-roots", env = "NO_SYSTEM_ROOTS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_system_roots: bool,
    /// mTLS between the services, caller identities and the health-only listener.
    #[command(flatten)]
    pub grpc: sse_runtime::mtls::GrpcSecurityArgs,
    /// The admin port and the metric label cap (shared by every service of a process).
    #[command(flatten)]
    pub observability: sse_runtime::Observability,
    /// With the ADR resource source, runtime health that did not change is sent to ADR again
    /// this often (at least 60 s, the SDK's minimum); a change is sent at once.
    #[arg(long, env = "ADR_HEALTH_INTERVAL", default_value = "600s", value_parser = ADR_HEALTH_INTERVAL.parser())]
    pub adr_health_interval: Duration,
    /// Most ADR calls in flight at once (reads of definitions, notification preferences) when
    /// the ADR resource source catches up with a change; at most 64.
    #[arg(long, env = "ADR_CONCURRENCY", default_value_t = crate::adr_source::ADR_CONCURRENCY_DEFAULT, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub adr_concurrency: u64,
}

impl Config {
    /// Fills the secrets and trust directories from the Azure IoT Operations variables when
    /// neither the flag nor the primary variable set them, and reads the Akri contract (`env`
    /// looks a variable up).
    pub fn with_aliases(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        self.akri_contract = crate::source::lookup(&env);
        let alias = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if self.secrets_dir.is_none() {
            self.secrets_dir = alias(SECRETS_DIR_ALIAS);
        }
        if self.trust_dir.is_none() {
            self.trust_dir = alias(TRUST_DIR_ALIAS);
        }
        self
    }

    /// Validates the flags into [`Settings`], deriving the shard and reading each file the
    /// flags name once.
    pub fn settings(self) -> Result<Settings, Error> {
        let adr = crate::source::resolve(&self)?;
        self.check(adr.is_none())?;
        let shard = self.shard()?;
        let security = self.security()?;
        self.check_peers()?;
        let status_prefix = (!self.status_topic.is_empty()).then(|| {
            let prefix = self.status_topic.trim_end_matches('/');
            // Several replicas each report the part they read, under their own ordinal.
            if shard.replicas() > 1 {
                format!("{prefix}/{}", shard.ordinal())
            } else {
                prefix.to_string()
            }
        });
        Ok(Settings {
            flags: self,
            shard,
            status_prefix,
            security,
            adr,
        })
    }

    /// This replica's share of the streams, from `--replicas`, `--ordinal` and `--pod-name`.
    pub fn shard(&self) -> Result<Shard, Error> {
        Shard::from_flags(self.replicas, self.ordinal, self.pod_name.as_deref())
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Checks what can be checked before starting: the event size limit is one every decoder
    /// after ingest accepts, the resources directory exists, the secret access file (if any) is
    /// valid and the checkpoint store and topic prefixes are usable.
    fn check(&self, files: bool) -> Result<(), Error> {
        if self.max_event_bytes > EVENT_BYTES_MAX {
            return Err(Error::Config(format!(
                "--max-event-bytes {} is over the largest event the services accept ({EVENT_BYTES_MAX} bytes)",
                self.max_event_bytes
            )));
        }
        if files && !self.resources.is_dir() {
            return Err(Error::ResourcesDirMissing(self.resources.clone()));
        }
        if let Some(path) = &self.secret_access {
            let max = usize::try_from(self.max_resource_file_bytes).unwrap_or(usize::MAX);
            crate::secret_access::check_file(path, &self.resources, max).map_err(Error::Config)?;
        }
        self.checkpoint_store()?;
        self.check_topic_prefixes()?;
        Ok(())
    }

    /// Each schema address is a URL whose scheme agrees with the gRPC security (`https` with
    /// mTLS), checked once the security flags themselves are known to be whole.
    fn check_peers(&self) -> Result<(), Error> {
        for t in sse_runtime::peers::parse_targets(&self.schema.to_string())
            .map_err(|e| Error::Config(format!("--schema (SCHEMA_ADDR): {e}")))?
        {
            self.grpc
                .check_peer(&t.uri)
                .map_err(|e| Error::Config(format!("--schema (SCHEMA_ADDR): {e}")))?;
        }
        Ok(())
    }

    /// The gRPC security (mTLS files loaded), or the configuration error naming the flag.
    pub fn security(&self) -> Result<sse_runtime::mtls::Security, Error> {
        self.grpc.load().map_err(|e| Error::Config(e.to_string()))
    }

    /// The status and checkpoint prefixes are valid topics under no other owned rule (e.g. not
    /// the status prefix for checkpoints, not a `$`-topic), so the connector's own topics cannot
    /// collide and the publisher does not refuse the status reports.
    fn check_topic_prefixes(&self) -> Result<(), Error> {
        use sse_contract::topics::{OwnedTopic, check_own_prefix};
        let status = self.status_topic.trim_end_matches('/');
        let prefixes = [
            ("--status-topic", status, OwnedTopic::Status),
            (
                "--checkpoint-topic",
                &self.checkpoint_topic,
                OwnedTopic::Checkpoint,
            ),
            (
                "--discovery-topic",
                self.discovery_topic.trim_end_matches('/'),
                OwnedTopic::Discovery,
            ),
        ];
        for (flag, prefix, rule) in prefixes {
            // An empty status or discovery topic turns its messages off.
            let off = match flag {
                "--status-topic" => self.status_topic.is_empty(),
                "--discovery-topic" => self.discovery_topic.is_empty(),
                _ => false,
            };
            if off {
                continue;
            }
            check_own_prefix(prefix, rule)
                .map_err(|r| Error::Config(format!("{flag} {prefix:?}: {r}")))?;
        }
        Ok(())
    }

    /// Gives a broker ingest reaches on its own (the checkpoint store's, `--adr-broker`) the
    /// broker credential and CA flags, whose files are read once now: one that cannot be read
    /// is a configuration error, not a connect retried forever.
    pub(crate) fn own_broker_flags(
        &self,
        broker: &mut sse_runtime::mqtt::Broker,
    ) -> Result<(), Error> {
        broker.credentials = self.broker.credentials(self.broker.mqtt_sat_file.clone());
        if let Some(tls) = &mut broker.tls {
            tls.ca_files = self.broker.mqtt_ca_file.iter().cloned().collect();
        }
        broker.credentials.check().map_err(Error::Config)
    }

    /// The checkpoint store as configured.
    pub fn checkpoint_store(&self) -> Result<crate::checkpoint::StoreConfig, Error> {
        use crate::checkpoint::StoreConfig;
        let mut store = StoreConfig::parse(self.checkpoint_store.as_deref().unwrap_or_default())
            .map_err(|e| Error::Config(e.to_string()))?;
        // Under the Akri operator every connection of the pod is named after CONNECTOR_ID.
        let akri_id = match &self.akri_contract {
            Some(Ok(Some(c))) => Some(sse_contract::akri::client_id(&c.connector_id, "checkpoint")),
            _ => None,
        };
        if let StoreConfig::Mqtt {
            broker,
            prefix,
            client_id,
        } = &mut store
        {
            prefix.clone_from(&self.checkpoint_topic);
            self.own_broker_flags(broker)?;
            client_id.clone_from(&akri_id);
        }
        if let (StoreConfig::None, Some(broker)) = (&store, &self.publisher_broker)
            && self.checkpoint_store.is_none()
        {
            store = StoreConfig::Mqtt {
                broker: broker.clone(),
                prefix: self.checkpoint_topic.clone(),
                client_id: akri_id,
            };
        }
        Ok(store)
    }

    /// The schema service endpoint for the gRPC client.
    pub fn schema_endpoint(&self) -> tonic::transport::Endpoint {
        tonic::transport::Endpoint::from(self.schema.clone())
    }
}

/// Parses `--discovery-max-types`: 1 to [`crate::discovery::MAX_TYPES_LIMIT`].
fn max_types(s: &str) -> Result<usize, String> {
    bounded(s, 1, crate::discovery::MAX_TYPES_LIMIT)
}

/// Parses `--discovery-sample-bytes`: 1 to [`crate::discovery::SAMPLE_BYTES_LIMIT`].
fn sample_bytes(s: &str) -> Result<usize, String> {
    bounded(s, 1, crate::discovery::SAMPLE_BYTES_LIMIT)
}

/// Parses a rate: a finite number of calls per second, 0 or more.
fn rate(s: &str) -> Result<f64, String> {
    let r: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if r.is_finite() && r >= 0.0 {
        Ok(r)
    } else {
        Err(format!("{s} is not a rate of 0 or more calls per second"))
    }
}

/// A whole number in `[min, max]`.
fn bounded(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{e}"))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is not in {min}..={max}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Config {
        let mut all = vec!["sse-ingest"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    #[test]
    fn shard_settings_are_checked_at_start() {
        assert!(Config::try_parse_from(["sse-ingest", "--replicas", "0"]).is_err());
        // a bad combination is a configuration error at start (exit code 64)
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        let e = parse(&["--resources", dir, "--replicas", "3"])
            .settings()
            .unwrap_err();
        assert!(
            e.is_config() && e.to_string().contains("INGEST_REPLICAS"),
            "{e}"
        );
        assert!(
            parse(&["--resources", dir, "--replicas", "3", "--ordinal", "2"])
                .settings()
                .is_ok()
        );
        let two = parse(&["--resources", dir, "--replicas", "2", "--pod-name", "in-1"]);
        let settings = two.settings().unwrap();
        assert_eq!(settings.shard, Shard::new(1, 2).unwrap());
        let status = sse_contract::topics::STATUS_PREFIX.trim_end_matches('/');
        assert_eq!(settings.status_prefix, Some(format!("{status}/1")));
        let off = parse(&["--resources", dir, "--status-topic", ""]);
        assert_eq!(off.settings().unwrap().status_prefix, None);
    }

    #[test]
    fn defaults() {
        let c = parse(&[]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.schema, "http://127.0.0.1:50052");
        assert_eq!(c.read_timeout, Duration::from_secs(60));
        assert_eq!(c.max_event_bytes, EVENT_BYTES_DEFAULT);
        assert_eq!(c.max_in_flight, 10_000);
        assert_eq!(c.max_in_flight_per_stream, 250);
        assert_eq!(
            c.min_reconnect_delay,
            crate::sse::client::DEFAULT_MIN_RECONNECT_DELAY
        );
        assert_eq!(c.max_resource_file_bytes, 16 * 1024 * 1024);
        // What checkpoints keep before the flags are applied is what the flags default to.
        let policy = crate::checkpoint::Policy::default();
        assert_eq!(c.checkpoint_retention, policy.retention);
        assert_eq!(
            usize::try_from(c.checkpoint_absent_max),
            Ok(policy.absent_max)
        );
    }

    #[test]
    fn flags_parse_durations_and_paths() {
        let c = parse(&[
            "--read-timeout",
            "1m 30s",
            "--secrets-dir",
            "/s",
            "--max-in-flight",
            "5",
        ]);
        assert_eq!(c.read_timeout, Duration::from_secs(90));
        assert_eq!(c.secrets_dir, Some(PathBuf::from("/s")));
        assert_eq!(c.max_in_flight, 5);
        // The windows name a range one can read, not clap's 1..18446744073709551615.
        for flag in ["--max-in-flight", "--max-in-flight-per-stream"] {
            for bad in ["0", "1000001"] {
                let e = Config::try_parse_from(["sse-ingest", flag, bad]).unwrap_err();
                assert!(e.to_string().contains("1..=1000000"), "{flag} {bad}: {e}");
            }
        }
        // The byte budget takes at most 4 GiB - 1: more was used as that without a word.
        for bad in ["0", "4294967296", "10000000000"] {
            let e = Config::try_parse_from(["sse-ingest", "--max-in-flight-bytes", bad]);
            let e = e.unwrap_err().to_string();
            assert!(e.contains("1..=4294967295"), "{bad}: {e}");
        }
        let c = parse(&["--max-in-flight-bytes", "4294967295"]);
        assert_eq!(c.max_in_flight_bytes, crate::budget::MAX_BYTES);
    }

    #[test]
    fn aliases_apply_only_when_unset() {
        let env = |k: &str| match k {
            SECRETS_DIR_ALIAS => Some("/aio/secrets".to_string()),
            TRUST_DIR_ALIAS => Some("/aio/trust".to_string()),
            _ => None,
        };
        let c = parse(&[]).with_aliases(env);
        assert_eq!(c.secrets_dir, Some(PathBuf::from("/aio/secrets")));
        assert_eq!(c.trust_dir, Some(PathBuf::from("/aio/trust")));
        let c = parse(&["--secrets-dir", "/mine"]).with_aliases(env);
        assert_eq!(c.secrets_dir, Some(PathBuf::from("/mine")));
    }

    #[test]
    fn max_event_bytes_over_the_contract_limit_is_a_config_error_naming_the_flag() {
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        let at = EVENT_BYTES_MAX.to_string();
        assert!(
            parse(&["--resources", dir, "--max-event-bytes", &at])
                .settings()
                .is_ok()
        );
        let over = (EVENT_BYTES_MAX + 1).to_string();
        let e = parse(&["--resources", dir, "--max-event-bytes", &over])
            .settings()
            .unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("--max-event-bytes"), "{e}");
    }

    #[test]
    fn discovery_flags_default_bounded_and_the_topic_checked() {
        let dir = std::env::temp_dir();
        let dir = dir.to_str().unwrap();
        let c = parse(&["--resources", dir]);
        assert_eq!(
            (c.discovery_max_types, c.discovery_sample_bytes),
            (64, 4096)
        );
        assert!(c.discovery_topic.is_empty(), "off by default");
        for bad in [
            ["--discovery-max-types", "0"],
            ["--discovery-max-types", "4097"],
            ["--discovery-sample-bytes", "65537"],
        ] {
            assert!(
                Config::try_parse_from(["sse-ingest", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
        let on = parse(&[
            "--resources",
            dir,
            "--discovery-topic",
            "sse-connector/discovery",
        ]);
        assert!(on.settings().is_ok());
        let e = parse(&[
            "--resources",
            dir,
            "--discovery-topic",
            "sse-connector/status/x",
        ])
        .settings()
        .unwrap_err();
        assert!(e.to_string().contains("--discovery-topic"), "{e}");
    }

    #[test]
    fn missing_resources_dir_is_a_config_error_naming_it() {
        let c = parse(&["--resources", "/no/such/resources-dir"]);
        let e = c.settings().unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("/no/such/resources-dir"), "{e}");
    }
}
