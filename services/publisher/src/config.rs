//! Configuration: flags with environment fallbacks, merged with Azure IoT Operations'
//! `MQTT_CONNECTION_CONFIGURATION` (explicit flags win), and validated into the settings the MQTT
//! connection needs before anything starts (bad values exit with code 64 in `main`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use clap::builder::RangedU64ValueParser;
use rand::Rng;
use serde::Deserialize;
use sse_contract::limits::MQTT_CONTROL_PACKET_BYTES_MAX;
use sse_runtime::duration_flag::Bounds;
use sse_runtime::mqtt::{Broker, BrokerAddress, ClientSettings, TlsFiles};

use crate::error::Error;
use crate::tail::{self, TailLimits};

/// `--puback-timeout`: under a second, a loaded broker's PUBACKs would recycle the connection.
const PUBACK_TIMEOUT: Bounds = Bounds::within(Duration::from_secs(1), Duration::from_secs(3600));
/// `--ack-delay`: 0 sends each ack at once.
const ACK_DELAY: Bounds = Bounds::within(Duration::ZERO, Duration::from_secs(3600));
/// `--state-store-timeout`: each attempt waits this long for the state store's answer.
const STATE_STORE_TIMEOUT: Bounds =
    Bounds::within(Duration::from_millis(100), Duration::from_secs(3600));

/// Keep-alive when neither a flag nor the Azure configuration sets one.
const DEFAULT_KEEP_ALIVE_SECS: u64 = 30;
/// Session expiry when neither a flag nor the Azure configuration sets one.
const DEFAULT_SESSION_EXPIRY_SECS: u32 = 3600;
/// In-flight limit when neither a flag nor the Azure configuration sets one.
const DEFAULT_MAX_INFLIGHT: u16 = 1000;
/// The file name of the connection configuration in Azure's connector configuration mount.
const AIO_CONNECTION_FILE: &str = "MQTT_CONNECTION_CONFIGURATION";

/// Flags of `sse-publisher`, each also read from the environment variable named in brackets.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sse-publisher",
    version,
    about = "Publishes events to an MQTT 5 broker and acknowledges them upstream once the broker has them."
)]
pub struct Config {
    /// Address the gRPC server listens on (port 0 picks a free port).
    #[arg(long, env = "PUBLISHER_LISTEN", default_value = "127.0.0.1:50053")]
    pub listen: SocketAddr,
    /// Broker URL: `mqtt://host:port`, or `mqtts://host:port` for TLS
    /// [default: from MQTT_CONNECTION_CONFIGURATION, else mqtt://127.0.0.1:1883].
    #[arg(long, env = "MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// MQTT client id (default: CONNECTOR_ID, else POD_NAME, else `sse-publisher-<random>`).
    #[arg(
        long = "client-id",
        visible_alias = "mqtt-client-id",
        env = "MQTT_CLIENT_ID"
    )]
    pub client_id: Option<String>,
    /// Connector id, the client id when `--client-id` is not given (Azure IoT Operations).
    #[arg(long = "connector-id", env = "CONNECTOR_ID", hide = true)]
    pub connector_id: Option<String>,
    /// Pod name, the client id when neither `--client-id` nor CONNECTOR_ID is given.
    #[arg(long = "pod-name", env = "POD_NAME", hide = true)]
    pub pod_name: Option<String>,
    /// The broker's credentials and CA files (shared with ingest's checkpoint store).
    #[command(flatten)]
    pub broker: sse_runtime::mqtt::BrokerAuthFlags,
    /// Client certificate chain (PEM) for mutual TLS; needs `--mqtt-key-file`.
    #[arg(long, env = "MQTT_CERT_FILE", requires = "mqtt_key_file")]
    pub mqtt_cert_file: Option<PathBuf>,
    /// Private key (PEM) of `--mqtt-cert-file`.
    #[arg(long, env = "MQTT_KEY_FILE", requires = "mqtt_cert_file")]
    pub mqtt_key_file: Option<PathBuf>,
    /// MQTT keep-alive in seconds, at least 5 [default: 30].
    #[arg(long, env = "MQTT_KEEP_ALIVE")]
    pub mqtt_keep_alive: Option<u64>,
    /// Session expiry interval in seconds: how long the broker keeps the session (and the
    /// unacknowledged publishes) after a disconnect [default: 3600].
    #[arg(long, env = "MQTT_SESSION_EXPIRY")]
    pub mqtt_session_expiry: Option<u32>,
    /// Start with a clean session (discards what the broker kept of the last one).
    #[arg(long, env = "MQTT_CLEAN_START")]
    pub mqtt_clean_start: bool,
    /// Most QoS 1 publishes awaiting the broker's PUBACK at once; the broker's receive maximum
    /// caps it [default: 1000, the window that keeps a local broker busy, see docs/performance.md].
    #[arg(long, env = "MQTT_MAX_INFLIGHT")]
    pub max_inflight: Option<u16>,
    /// A QoS 1 publish without PUBACK for this long recycles the connection (and is re-sent).
    #[arg(long, env = "MQTT_PUBACK_TIMEOUT", default_value = "30s", value_parser = PUBACK_TIMEOUT.parser())]
    pub puback_timeout: Duration,
    /// How long acks are held to go upstream together (at most 512 at once); 0 sends each at
    /// once. Holding them spares the schema service and ingest a wake-up per event at low rates;
    /// only their in-flight windows and checkpoints see the delay, never the broker.
    #[arg(long, env = "ACK_DELAY", default_value = "200ms", value_parser = ACK_DELAY.parser())]
    pub ack_delay: Duration,
    /// How long to wait for the state store's response to a SET before trying again.
    #[arg(long, env = "STATE_STORE_TIMEOUT", default_value = "10s", value_parser = STATE_STORE_TIMEOUT.parser())]
    pub state_store_timeout: Duration,
    /// Attempts of a state store SET before the event is acknowledged with an error.
    #[arg(long, env = "STATE_STORE_ATTEMPTS", default_value_t = 3)]
    pub state_store_attempts: u32,
    /// Most `PublisherService/Tail` streams open at once (1 to 256); one more is refused with
    /// RESOURCE_EXHAUSTED. Each console live view holds one: raise this with
    /// `--console-live-views-max`.
    #[arg(long, env = "TAIL_READERS_MAX", default_value_t = tail::TAILS_MAX,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=tail::TAILS_CEILING as u64))]
    pub tail_readers_max: usize,
    /// Messages queued towards one tail reader (1 to 4096); a reader this far behind loses
    /// further messages and is told how many. Each holds up to 16 KiB of payload.
    #[arg(long, env = "TAIL_QUEUE", default_value_t = tail::TAIL_QUEUE,
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=tail::TAIL_QUEUE_CEILING as u64))]
    pub tail_queue: usize,
    /// Azure IoT Operations broker connection configuration: a JSON file path, or the JSON text
    /// itself (host, keepAliveSeconds, maxInflightMessages, sessionExpirySeconds, tls,
    /// authentication). Flags win over it.
    #[arg(long, env = "MQTT_CONNECTION_CONFIGURATION")]
    pub mqtt_connection_configuration: Option<String>,
    /// Azure's connector configuration mount; its `MQTT_CONNECTION_CONFIGURATION` file is used
    /// when `--mqtt-connection-configuration` is not given.
    #[arg(long, env = "CONNECTOR_CONFIGURATION_MOUNT_PATH", hide = true)]
    pub connector_configuration_dir: Option<PathBuf>,
    /// Azure's broker CA bundle mount (a directory of PEM files), trusted when the Azure
    /// configuration enables TLS and `--mqtt-ca-file` is not given.
    #[arg(long, env = "BROKER_TLS_TRUST_BUNDLE_CACERT_MOUNT_PATH", hide = true)]
    pub broker_trust_dir: Option<PathBuf>,
    /// Azure's broker service account token file, used when the Azure configuration asks for
    /// `ServiceAccountToken` authentication and `--mqtt-sat-file` is not given.
    #[arg(long, env = "BROKER_SAT_MOUNT_PATH", hide = true)]
    pub broker_sat_file: Option<PathBuf>,
    /// mTLS between the services, caller identities and the health-only listener.
    #[command(flatten)]
    pub grpc: sse_runtime::mtls::GrpcSecurityArgs,
    /// The admin port and the metric label cap (shared by every service of a process).
    #[command(flatten)]
    pub observability: sse_runtime::Observability,
}

/// The publisher's configuration, validated once, with what it derives from the flags: the
/// broker connection and the gRPC security, each file they name read once.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flags and environment as parsed (and checked).
    pub flags: Config,
    /// The broker connection.
    pub mqtt: MqttSettings,
    /// mTLS and the access table, loaded.
    pub security: sse_runtime::mtls::Security,
    /// What `PublisherService/Tail` allows: `--tail-readers-max` and `--tail-queue`.
    pub tail: TailLimits,
}

/// Validated MQTT connection settings.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// The broker and the client's session: the shared MQTT stack's settings. Incoming packets
    /// are limited to `MQTT_CONTROL_PACKET_BYTES_MAX`: the publisher reads only its state store
    /// response topic.
    pub client: ClientSettings,
    /// Most QoS 1 publishes in flight.
    pub max_inflight: u16,
    /// How long a QoS 1 publish may wait for its PUBACK before the connection is recycled.
    pub puback_timeout: Duration,
    /// How long to wait for a state store response.
    pub store_timeout: Duration,
    /// Attempts of a state store request.
    pub store_attempts: u32,
}

/// The fields of Azure IoT Operations' `MQTT_CONNECTION_CONFIGURATION` the publisher uses.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AioConnection {
    host: Option<String>,
    port: Option<u16>,
    keep_alive_seconds: Option<u64>,
    max_inflight_messages: Option<u16>,
    protocol: Option<String>,
    session_expiry_seconds: Option<u32>,
    tls: Option<AioTls>,
    authentication: Option<AioAuthentication>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AioTls {
    mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AioAuthentication {
    method: Option<String>,
}

impl AioConnection {
    /// Reads `raw`: JSON text when it starts with `{`, else the path of a JSON file.
    fn load(raw: &str) -> Result<Self, Error> {
        let (text, what) = if raw.trim_start().starts_with('{') {
            (raw.to_string(), "MQTT_CONNECTION_CONFIGURATION".to_string())
        } else {
            let text = std::fs::read_to_string(raw).map_err(|e| {
                Error::Config(format!("MQTT_CONNECTION_CONFIGURATION file {raw}: {e}"))
            })?;
            (text, format!("MQTT_CONNECTION_CONFIGURATION file {raw}"))
        };
        serde_json::from_str(&text).map_err(|e| Error::Config(format!("{what}: {e}")))
    }

    fn tls_enabled(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|t| t.mode.as_deref())
            .is_some_and(|m| m.eq_ignore_ascii_case("enabled"))
    }

    /// `mqtt(s)://host:port` from `host` (which may carry the port) and `port`.
    fn url(&self) -> Result<Option<String>, Error> {
        if let Some(p) = self.protocol.as_deref()
            && !p.eq_ignore_ascii_case("mqtt")
        {
            return Err(Error::Config(format!(
                "MQTT_CONNECTION_CONFIGURATION protocol {p:?}: only mqtt is supported"
            )));
        }
        let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let scheme = if self.tls_enabled() { "mqtts" } else { "mqtt" };
        let has_port = match host.rsplit_once(':') {
            Some((h, p)) => {
                !p.is_empty()
                    && p.bytes().all(|b| b.is_ascii_digit())
                    && (!h.contains(':') || h.ends_with(']'))
            }
            None => false,
        };
        Ok(Some(match (has_port, self.port) {
            (true, _) | (false, None) => format!("{scheme}://{host}"),
            (false, Some(port)) => format!("{scheme}://{host}:{port}"),
        }))
    }

    /// Whether the configuration asks for service account token authentication.
    fn wants_sat(&self) -> Result<bool, Error> {
        match self
            .authentication
            .as_ref()
            .and_then(|a| a.method.as_deref())
        {
            None => Ok(false),
            Some(m) => match m.to_ascii_lowercase().as_str() {
                "sat" | "serviceaccounttoken" | "kubernetes" | "k8s-sat" => Ok(true),
                "none" | "anonymous" => Ok(false),
                _ => Err(Error::Config(format!(
                    "MQTT_CONNECTION_CONFIGURATION authentication.method {m:?}: use ServiceAccountToken"
                ))),
            },
        }
    }
}

impl Config {
    /// Validates the flags into [`Settings`].
    pub fn settings(self) -> Result<Settings, Error> {
        let mqtt = self.mqtt_settings()?;
        let security = self.grpc.load().map_err(|e| Error::Config(e.to_string()))?;
        let tail = self.tail_limits();
        Ok(Settings {
            flags: self,
            mqtt,
            security,
            tail,
        })
    }

    /// The tail limits of the flags (clap has checked their ranges).
    pub fn tail_limits(&self) -> TailLimits {
        TailLimits {
            readers_max: self.tail_readers_max,
            queue: self.tail_queue,
        }
    }

    /// The Azure connection configuration: the flag (path or JSON), else the file in the
    /// connector configuration mount, else none.
    fn aio_connection(&self) -> Result<AioConnection, Error> {
        if let Some(raw) = self
            .mqtt_connection_configuration
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            return AioConnection::load(raw);
        }
        if let Some(dir) = &self.connector_configuration_dir {
            let file = dir.join(AIO_CONNECTION_FILE);
            if file.is_file() {
                return AioConnection::load(&file.display().to_string());
            }
        }
        Ok(AioConnection::default())
    }

    /// Validates the flags (and the Azure configuration) into connection settings; reads the
    /// TLS files once so that a bad one stops the start.
    pub fn mqtt_settings(&self) -> Result<MqttSettings, Error> {
        let aio = self.aio_connection()?;
        let url = match (&self.mqtt_url, aio.url()?) {
            (Some(u), _) => u.clone(),
            (None, Some(u)) => u,
            (None, None) => "mqtt://127.0.0.1:1883".to_string(),
        };
        let address = BrokerAddress::parse(&url).map_err(|e| Error::Config(e.to_string()))?;
        let tls = self.broker_tls(address.tls, &url, &aio)?;
        let sat_file = self.sat_file(&aio)?;
        let keep_alive = self
            .mqtt_keep_alive
            .or(aio.keep_alive_seconds)
            .unwrap_or(DEFAULT_KEEP_ALIVE_SECS);
        if keep_alive < 5 {
            return Err(Error::Config(format!(
                "--mqtt-keep-alive must be at least 5 seconds, got {keep_alive}"
            )));
        }
        let max_inflight = self
            .max_inflight
            .or(aio.max_inflight_messages)
            .unwrap_or(DEFAULT_MAX_INFLIGHT);
        if max_inflight == 0 {
            return Err(Error::Config("--max-inflight must be at least 1".into()));
        }
        if self.state_store_attempts == 0 {
            return Err(Error::Config(
                "--state-store-attempts must be at least 1".into(),
            ));
        }
        let broker = Broker {
            address,
            tls,
            credentials: self.broker.credentials(sat_file),
        };
        // Read once now: a missing or unreadable file is a configuration error, not a connect
        // retried forever (they are read again at every connect, for rotation).
        broker.credentials.check().map_err(Error::Config)?;
        let client_id = client_id(
            self.client_id.as_deref(),
            self.connector_id.as_deref(),
            self.pod_name.as_deref(),
        );
        let mut client = ClientSettings::new(broker, client_id, MQTT_CONTROL_PACKET_BYTES_MAX);
        client.keep_alive = Duration::from_secs(keep_alive);
        client.session_expiry = Some(
            self.mqtt_session_expiry
                .or(aio.session_expiry_seconds)
                .unwrap_or(DEFAULT_SESSION_EXPIRY_SECS),
        );
        client.clean_start = self.mqtt_clean_start;
        client.max_inflight = Some(max_inflight);
        Ok(MqttSettings {
            client,
            max_inflight,
            puback_timeout: self.puback_timeout,
            store_timeout: self.state_store_timeout,
            store_attempts: self.state_store_attempts,
        })
    }

    /// The broker's TLS files (`None` for a plaintext URL, where TLS flags are a mistake); read
    /// once here so that a bad file stops the start.
    fn broker_tls(
        &self,
        tls: bool,
        url: &str,
        aio: &AioConnection,
    ) -> Result<Option<TlsFiles>, Error> {
        if !tls {
            if self.mqtt_cert_file.is_some() || self.broker.mqtt_ca_file.is_some() {
                return Err(Error::Config(format!(
                    "--mqtt-ca-file / --mqtt-cert-file need a TLS broker URL (mqtts://), got {url:?}"
                )));
            }
            return Ok(None);
        }
        let ca_files = match (&self.broker.mqtt_ca_file, &self.broker_trust_dir) {
            (Some(f), _) => vec![f.clone()],
            (None, Some(dir)) if aio.tls_enabled() => pem_files(dir)?,
            (None, _) => Vec::new(),
        };
        let files = TlsFiles {
            ca_files,
            client: self.mqtt_cert_file.clone().zip(self.mqtt_key_file.clone()),
        };
        files
            .client_config()
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Some(files))
    }

    /// The service account token file for `K8S-SAT`, from the flag or Azure's configuration.
    fn sat_file(&self, aio: &AioConnection) -> Result<Option<PathBuf>, Error> {
        let sat_file = match (&self.broker.mqtt_sat_file, aio.wants_sat()?) {
            (Some(f), _) => Some(f.clone()),
            (None, true) => Some(self.broker_sat_file.clone().ok_or_else(|| {
                Error::Config(
                    "MQTT_CONNECTION_CONFIGURATION asks for ServiceAccountToken authentication: \
                     set --mqtt-sat-file or BROKER_SAT_MOUNT_PATH"
                        .into(),
                )
            })?),
            (None, false) => None,
        };
        Ok(sat_file.map(|f| if f.is_dir() { f.join("token") } else { f }))
    }
}

/// Every regular file of `dir` (sorted), each expected to hold PEM certificates.
fn pem_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let bad =
        |e: std::io::Error| Error::Config(format!("broker CA directory {}: {e}", dir.display()));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(bad)? {
        let path = entry.map_err(bad)?.path();
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if path.is_file() && !hidden {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The client id: the flag, else the connector id, else the pod name, else a random one.
fn client_id(flag: Option<&str>, connector: Option<&str>, pod: Option<&str>) -> String {
    for id in [flag, connector, pod].into_iter().flatten() {
        if !id.is_empty() {
            return id.to_string();
        }
    }
    let n: u64 = rand::rng().random();
    format!("sse-publisher-{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut all = vec!["sse-publisher"];
        all.extend_from_slice(args);
        Config::try_parse_from(all).unwrap()
    }

    #[test]
    fn broker_urls_go_through_the_shared_stack() {
        let s = config(&["--mqtt-url", "ssl://broker.local"])
            .mqtt_settings()
            .unwrap();
        let a = &s.client.broker.address;
        assert_eq!(
            (a.host.as_str(), a.port, a.tls),
            ("broker.local", 8883, true)
        );
        assert!(s.client.broker.tls.is_some());
        for u in ["not a url", "http://x:1", "mqtt://x:1/path", "mqtt:///"] {
            assert!(config(&["--mqtt-url", u]).mqtt_settings().is_err(), "{u}");
        }
    }

    #[test]
    fn the_client_announces_the_control_packet_limit() {
        let s = config(&["--mqtt-url", "mqtt://h"]).mqtt_settings().unwrap();
        assert_eq!(
            s.client.options().max_packet_size(),
            Some(MQTT_CONTROL_PACKET_BYTES_MAX as u32)
        );
    }

    #[test]
    fn client_id_precedence() {
        assert_eq!(client_id(Some("a"), Some("b"), Some("c")), "a");
        assert_eq!(client_id(None, Some("b"), Some("c")), "b");
        assert_eq!(client_id(Some(""), Some("b"), None), "b");
        assert_eq!(client_id(None, None, Some("pod-7")), "pod-7");
        assert!(client_id(None, None, None).starts_with("sse-publisher-"));
        let s = config(&["--pod-name", "pod-1", "--mqtt-url", "mqtt://h"])
            .mqtt_settings()
            .unwrap();
        assert_eq!(s.client.client_id, "pod-1");
    }

    #[test]
    fn acks_are_held_200ms_by_default() {
        let c = config(&["--mqtt-url", "mqtt://h"]);
        assert_eq!(c.ack_delay, Duration::from_millis(200));
        let c = config(&["--mqtt-url", "mqtt://h", "--ack-delay", "0"]);
        assert_eq!(c.ack_delay, Duration::ZERO);
    }

    #[test]
    fn validates_numbers() {
        let args = ["--mqtt-url", "mqtt://127.0.0.1:1883"];
        let with = |extra: &[&str]| {
            let mut a = args.to_vec();
            a.extend_from_slice(extra);
            config(&a).mqtt_settings()
        };
        assert!(with(&["--mqtt-keep-alive", "2"]).is_err());
        assert!(with(&["--max-inflight", "0"]).is_err());
        assert!(with(&["--state-store-attempts", "0"]).is_err());
        let s = with(&["--mqtt-client-id", "pub-1"]).unwrap();
        assert_eq!(s.client.client_id, "pub-1");
        assert_eq!(s.client.keep_alive, Duration::from_secs(30));
        assert_eq!(s.max_inflight, 1000);
        assert_eq!(s.client.session_expiry, Some(3600));
        assert!(!s.client.clean_start);
        assert_eq!(s.puback_timeout, Duration::from_secs(30));
        assert!(s.client.broker.tls.is_none());
        let s = with(&[
            "--client-id",
            "pub-2",
            "--mqtt-clean-start",
            "--mqtt-session-expiry",
            "0",
        ])
        .unwrap();
        assert_eq!(s.client.client_id, "pub-2");
        assert!(s.client.clean_start);
        assert_eq!(s.client.session_expiry, Some(0));
    }

    #[test]
    fn tail_limits_default_and_are_carried_in_the_settings() {
        let c = config(&["--mqtt-url", "mqtt://h"]);
        assert_eq!(c.tail_limits(), TailLimits::default());
        assert_eq!(
            (c.tail_readers_max, c.tail_queue),
            (tail::TAILS_MAX, tail::TAIL_QUEUE)
        );
        let c = config(&["--tail-readers-max", "256", "--tail-queue", "4096"]);
        assert_eq!(
            c.tail_limits(),
            TailLimits {
                readers_max: 256,
                queue: 4096
            }
        );
    }

    #[test]
    fn out_of_range_tail_limits_are_refused_by_clap() {
        for (flag, value) in [
            ("--tail-readers-max", "0"),
            ("--tail-readers-max", "257"),
            ("--tail-queue", "0"),
            ("--tail-queue", "4097"),
            ("--tail-queue", "many"),
        ] {
            let e = Config::try_parse_from(["sse-publisher", flag, value]).unwrap_err();
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag} {value}"
            );
            assert!(e.to_string().contains(flag), "{e}");
        }
    }

    const AIO: &str = r#"{"host":"aio-broker:18883","keepAliveSeconds":60,"maxInflightMessages":7,
        "protocol":"mqtt","sessionExpirySeconds":600,"tls":{"mode":"Enabled"},
        "authentication":{"method":"ServiceAccountToken","serviceAccountTokenSettings":{"audience":"aio-internal"}}}"#;

    #[test]
    fn azure_connection_configuration_as_json_text() {
        // The token file is read at start, so it must exist, as the kubelet mounts it.
        let dir = tempfile::tempdir().unwrap();
        let sat = dir.path().join("broker-sat");
        std::fs::write(&sat, "token").unwrap();
        let s = config(&[
            "--mqtt-connection-configuration",
            AIO,
            "--broker-sat-file",
            &sat.display().to_string(),
        ])
        .mqtt_settings()
        .unwrap();
        assert_eq!(
            (
                s.client.broker.address.host.as_str(),
                s.client.broker.address.port
            ),
            ("aio-broker", 18883)
        );
        assert!(s.client.broker.tls.is_some());
        assert_eq!(s.client.keep_alive, Duration::from_secs(60));
        assert_eq!(s.max_inflight, 7);
        assert_eq!(s.client.session_expiry, Some(600));
        assert_eq!(
            s.client.broker.credentials.sat_file.as_deref(),
            Some(sat.as_path())
        );
    }

    #[test]
    fn flags_win_over_the_azure_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(AIO_CONNECTION_FILE);
        std::fs::write(&file, AIO).unwrap();
        let sat = dir.path().join("sat");
        std::fs::write(&sat, "token").unwrap();
        let sat = sat.display().to_string();
        let s = config(&[
            "--connector-configuration-dir",
            &dir.path().display().to_string(),
            "--mqtt-url",
            "mqtt://127.0.0.1:1999",
            "--mqtt-keep-alive",
            "9",
            "--max-inflight",
            "3",
            "--mqtt-sat-file",
            &sat,
        ])
        .mqtt_settings()
        .unwrap();
        assert_eq!(
            (
                s.client.broker.address.host.as_str(),
                s.client.broker.address.port
            ),
            ("127.0.0.1", 1999)
        );
        assert!(s.client.broker.tls.is_none());
        assert_eq!(s.client.keep_alive, Duration::from_secs(9));
        assert_eq!(s.max_inflight, 3);
        assert_eq!(s.client.session_expiry, Some(600));
        assert_eq!(
            s.client.broker.credentials.sat_file.as_deref(),
            Some(Path::new(&sat))
        );
        // the same file named by path
        let s = config(&[
            "--mqtt-connection-configuration",
            &file.display().to_string(),
            "--mqtt-sat-file",
            &sat,
        ])
        .mqtt_settings()
        .unwrap();
        assert_eq!(s.client.broker.address.port, 18883);
    }

    #[test]
    fn azure_configuration_errors_name_the_field() {
        let e = config(&["--mqtt-connection-configuration", AIO])
            .mqtt_settings()
            .unwrap_err();
        assert!(e.to_string().contains("BROKER_SAT_MOUNT_PATH"), "{e}");
        let e = config(&[
            "--mqtt-connection-configuration",
            r#"{"host":"h","protocol":"amqp"}"#,
        ])
        .mqtt_settings()
        .unwrap_err();
        assert!(e.to_string().contains("protocol"), "{e}");
        let e = config(&["--mqtt-connection-configuration", "/nonexistent/conf.json"])
            .mqtt_settings()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/conf.json"), "{e}");
        let e = config(&["--mqtt-connection-configuration", "{not json"])
            .mqtt_settings()
            .unwrap_err();
        assert!(
            e.to_string().contains("MQTT_CONNECTION_CONFIGURATION"),
            "{e}"
        );
    }

    #[test]
    fn host_forms() {
        let url = |j: &str| AioConnection::load(j).unwrap().url().unwrap();
        assert_eq!(url(r#"{"host":"b"}"#).as_deref(), Some("mqtt://b"));
        assert_eq!(
            url(r#"{"host":"b","port":1884}"#).as_deref(),
            Some("mqtt://b:1884")
        );
        assert_eq!(
            url(r#"{"host":"[::1]:1884","tls":{"mode":"Enabled"}}"#).as_deref(),
            Some("mqtts://[::1]:1884")
        );
        assert_eq!(url(r#"{"tls":{"mode":"Disabled"}}"#), None);
    }

    #[test]
    fn tls_files_are_checked_at_start() {
        let e = config(&[
            "--mqtt-url",
            "mqtts://h",
            "--mqtt-ca-file",
            "/nonexistent/ca.pem",
        ])
        .mqtt_settings()
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let e = config(&["--mqtt-url", "mqtt://h", "--mqtt-ca-file", "/x"])
            .mqtt_settings()
            .unwrap_err();
        assert!(e.to_string().contains("mqtts"), "{e}");
    }
}
