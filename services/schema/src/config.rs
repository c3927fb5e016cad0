//! The service's configuration: flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use sse_runtime::duration_flag::Bounds;
use tonic::transport::Uri;

use crate::azure::AzureSettings;
use crate::caps::{self, Caps};
use crate::error::Error;
use crate::pipeline::Limits;
use crate::subjects;
use sse_runtime::admin_rate;

/// `--registry-timeout`: one registry call's wait for its answer.
const REGISTRY_TIMEOUT: Bounds =
    Bounds::within(Duration::from_millis(100), Duration::from_secs(3600));

/// Which registry holds the schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegistryKind {
    /// The embedded registry, durable in the data dir.
    Embedded,
    /// The Azure IoT Operations Schema Registry (MQTT 5 RPC).
    Azure,
    /// `azure` when the Akri operator deployed this connector (its contract is in the
    /// environment: `ADR_RESOURCES_NAME_MOUNT_PATH`), as Microsoft's connector registers there;
    /// else `embedded`.
    Auto,
}

/// Configuration of `sse-schema`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sse-schema",
    version,
    about = "Infers JSON schemas of SSE events, registers them and forwards the events to the publisher."
)]
pub struct Config {
    /// Address to serve gRPC on (port 0 picks a free port).
    #[arg(long, env = "SCHEMA_LISTEN", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,
    /// The publisher service (`http://host:port`; `https://` with mTLS).
    #[arg(long, env = "PUBLISHER_ADDR", default_value = "http://127.0.0.1:50053")]
    pub publisher: Uri,
    /// Directory of the embedded schema registry (one JSON file per schema version).
    #[arg(long, env = "SCHEMA_DATA_DIR", default_value = "./data/schemas")]
    pub data_dir: PathBuf,
    /// Namespace in `dataschema` references (`aio-sr://<namespace>/<name>:<version>`).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_NAMESPACE",
        default_value = "sse-connector"
    )]
    pub registry_namespace: String,
    /// Payloads larger than this many bytes are forwarded without a schema.
    #[arg(long, env = "SCHEMA_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub max_payload_bytes: usize,
    /// Payloads nesting arrays/objects deeper than this are forwarded without a schema.
    #[arg(long, env = "SCHEMA_MAX_DEPTH", default_value_t = 32)]
    pub max_depth: usize,
    /// Payloads with more object members than this (all levels) are forwarded without a schema.
    #[arg(long, env = "SCHEMA_MAX_PROPERTIES", default_value_t = 1000)]
    pub max_properties: usize,
    /// Most properties in a subject's merged schema (all levels); a subject whose next version
    /// would pass it stops evolving, and its events keep its last version.
    #[arg(long, env = "SCHEMA_MAX_SCHEMA_PROPERTIES", default_value_t = caps::SCHEMA_PROPERTIES_DEFAULT)]
    pub max_schema_properties: usize,
    /// Most schema versions per subject; a subject that has them stops evolving, and its events
    /// keep its last version.
    #[arg(long, env = "SCHEMA_MAX_VERSIONS", default_value_t = caps::VERSIONS_DEFAULT)]
    pub max_versions: u64,
    /// Most bytes the registry's files in the data dir may take; a schema that would pass it is
    /// not stored (its subject stops evolving; PutSchema answers RESOURCE_EXHAUSTED).
    #[arg(long, env = "SCHEMA_MAX_REGISTRY_BYTES", default_value_t = caps::REGISTRY_BYTES_DEFAULT)]
    pub max_registry_bytes: u64,
    /// Most subjects whose state (schema, counters) is held in memory; past it the least
    /// recently seen tenth is forgotten (schemas stay in the registry; counters start over).
    #[arg(long, env = "SCHEMA_MAX_SUBJECTS", default_value_t = subjects::HELD_MAX_DEFAULT)]
    pub max_subjects: usize,
    /// Admin writes (`PutSchema` and `InferSchema` together) allowed per second, refilling the
    /// burst; over it a call is refused with RESOURCE_EXHAUSTED. 0: only the burst, once.
    #[arg(long, env = "SCHEMA_ADMIN_WRITES_PER_SECOND", default_value_t = admin_rate::WRITES_PER_SECOND_DEFAULT)]
    pub admin_writes_per_second: f64,
    /// Admin writes allowed at once before the rate applies; 0 turns admin writes off.
    #[arg(long, env = "SCHEMA_ADMIN_WRITE_BURST", default_value_t = admin_rate::WRITE_BURST_DEFAULT)]
    pub admin_write_burst: u32,
    /// Where schemas are registered (`auto`: the Azure registry under the Akri contract, else
    /// the embedded one).
    #[arg(long, env = "SCHEMA_REGISTRY", value_enum, default_value = "auto")]
    pub registry: RegistryKind,
    /// Broker of the Azure schema registry (`mqtt://host:port` or `mqtts://host:port`; in
    /// `sse-connector` the publisher's broker by default).
    #[arg(long, env = "SCHEMA_REGISTRY_MQTT_URL")]
    pub registry_mqtt_url: Option<Uri>,
    /// MQTT client id for the registry calls (default: `{CONNECTOR_ID}-schema` under the Akri
    /// contract, else `sse-schema-<random>`).
    #[arg(long, env = "SCHEMA_REGISTRY_MQTT_CLIENT_ID")]
    pub registry_mqtt_client_id: Option<String>,
    /// Extra CA certificates (PEM) trusted for `mqtts://`.
    #[arg(long, env = "SCHEMA_REGISTRY_MQTT_CA_FILE")]
    pub registry_mqtt_ca_file: Option<PathBuf>,
    /// MQTT user name for the registry's broker.
    #[arg(long, env = "SCHEMA_REGISTRY_MQTT_USERNAME")]
    pub registry_mqtt_username: Option<String>,
    /// File holding the MQTT password (read at each connect).
    #[arg(long, env = "SCHEMA_REGISTRY_MQTT_PASSWORD_FILE")]
    pub registry_mqtt_password_file: Option<PathBuf>,
    /// Service account token file for the registry broker's `K8S-SAT` authentication (read at
    /// each connect).
    #[arg(long, env = "SCHEMA_REGISTRY_MQTT_SAT_FILE")]
    pub registry_mqtt_sat_file: Option<PathBuf>,
    /// How long one registry call waits for its answer.
    #[arg(long, env = "SCHEMA_REGISTRY_TIMEOUT", default_value = "10s", value_parser = REGISTRY_TIMEOUT.parser())]
    pub registry_timeout: Duration,
    /// Attempts per registry call (network errors and 500 are retried with backoff).
    #[arg(long, env = "SCHEMA_REGISTRY_ATTEMPTS", default_value_t = 5)]
    pub registry_attempts: u32,
    /// mTLS between the services, caller identities and the health-only listener.
    #[command(flatten)]
    pub grpc: sse_runtime::mtls::GrpcSecurityArgs,
    /// The admin port and the metric label cap (shared by every service of a process).
    #[command(flatten)]
    pub observability: sse_runtime::Observability,
    /// Whether the Akri operator deployed this connector, read by [`Config::with_env`]:
    /// `--registry auto` then picks the Azure registry.
    #[arg(skip)]
    pub akri_deployed: bool,
    /// The Akri contract's `CONNECTOR_ID`, read by [`Config::with_env`]: the registry client's
    /// id is `{CONNECTOR_ID}-schema` by default, distinct from the connector's other MQTT
    /// connections (a broker disconnects a second client with one id).
    #[arg(skip)]
    pub akri_connector_id: Option<String>,
    /// The publisher's broker (URL, TLS, credentials), which `sse-connector` sets: the Azure
    /// registry's broker when `--registry-mqtt-url` is not given.
    #[arg(skip)]
    pub publisher_broker: Option<sse_runtime::mqtt::Broker>,
}

/// The schema service's configuration, validated once, with what it derives from the flags:
/// the gRPC security (its certificate files read once) and the Azure registry's client.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The flags and environment as parsed (and checked).
    pub flags: Config,
    /// mTLS and the access table, loaded.
    pub security: sse_runtime::mtls::Security,
    /// With the Azure registry (`--registry azure`, or `auto` under the Akri contract): how to
    /// reach it.
    pub azure: Option<AzureSettings>,
}

impl Config {
    /// Reads what the Akri operator's contract says from the environment (`env` looks a
    /// variable up): whether it deployed this connector, and its `CONNECTOR_ID`
    /// (sse-contract's rule, which ingest follows too).
    pub fn with_env(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        self.akri_deployed = sse_contract::akri::deployed(&env);
        self.akri_connector_id = sse_contract::akri::connector_id(&env);
        self
    }

    /// The registry used: `--registry`, with `auto` decided by the Akri contract.
    pub fn registry_kind(&self) -> RegistryKind {
        match self.registry {
            RegistryKind::Auto if self.akri_deployed => RegistryKind::Azure,
            RegistryKind::Auto => RegistryKind::Embedded,
            kind => kind,
        }
    }

    /// Validates the flags into [`Settings`], reading each file they name once.
    pub fn settings(self) -> Result<Settings, Error> {
        let security = self.security()?;
        self.check()?;
        let azure = match self.registry_kind() {
            RegistryKind::Azure => Some(self.azure()?),
            RegistryKind::Embedded | RegistryKind::Auto => {
                // Unused with the embedded registry, but a bad value (a password in the URL, a
                // missing password file) is still a mistake to say at start.
                if self.registry_mqtt_url.is_some() {
                    self.registry_broker()?;
                }
                None
            }
        };
        Ok(Settings {
            flags: self,
            security,
            azure,
        })
    }

    /// The gRPC security (mTLS files loaded), or the configuration error naming the flag.
    pub fn security(&self) -> Result<sse_runtime::mtls::Security, Error> {
        self.grpc.load().map_err(|e| Error::Config {
            field: "--grpc-tls-* (GRPC_TLS_*)",
            reason: e.to_string(),
        })
    }

    /// Checks what clap cannot and no file is needed for: the publisher URL, the namespace and
    /// the limits.
    fn check(&self) -> Result<(), Error> {
        const PUBLISHER: &str = "--publisher (PUBLISHER_ADDR)";
        let publisher = |reason: String| Error::Config {
            field: PUBLISHER,
            reason,
        };
        self.grpc
            .check_peer(&self.publisher)
            .map_err(|e| publisher(e.to_string()))?;
        if self.publisher.host().is_none() {
            return Err(publisher("expected http(s)://host:port".into()));
        }
        let ns = &self.registry_namespace;
        if ns.is_empty()
            || ns.len() > 128
            || !ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(Error::Config {
                field: "--registry-namespace (SCHEMA_REGISTRY_NAMESPACE)",
                reason: "expected 1 to 128 letters, digits, '-', '_' or '.'".into(),
            });
        }
        if self.max_payload_bytes == 0 {
            return Err(Error::Config {
                field: "--max-payload-bytes (SCHEMA_MAX_PAYLOAD_BYTES)",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_depth == 0 || self.max_properties == 0 {
            return Err(Error::Config {
                field: "--max-depth / --max-properties (SCHEMA_MAX_DEPTH / SCHEMA_MAX_PROPERTIES)",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_schema_properties == 0 || self.max_versions == 0 || self.max_registry_bytes == 0
        {
            return Err(Error::Config {
                field: "--max-schema-properties / --max-versions / --max-registry-bytes (SCHEMA_MAX_SCHEMA_PROPERTIES / SCHEMA_MAX_VERSIONS / SCHEMA_MAX_REGISTRY_BYTES)",
                reason: "must be at least 1".into(),
            });
        }
        if self.max_subjects == 0 {
            return Err(Error::Config {
                field: "--max-subjects (SCHEMA_MAX_SUBJECTS)",
                reason: "must be at least 1".into(),
            });
        }
        if !self.admin_writes_per_second.is_finite() || self.admin_writes_per_second < 0.0 {
            return Err(Error::Config {
                field: "--admin-writes-per-second (SCHEMA_ADMIN_WRITES_PER_SECOND)",
                reason: "must be a number of at least 0".into(),
            });
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config {
                field: "--data-dir (SCHEMA_DATA_DIR)",
                reason: "must not be empty".into(),
            });
        }
        Ok(())
    }

    /// The payload limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_payload_bytes,
            max_depth: self.max_depth,
            max_properties: self.max_properties,
        }
    }

    /// The caps on schema growth.
    pub fn caps(&self) -> Caps {
        Caps {
            max_schema_properties: self.max_schema_properties,
            max_versions: self.max_versions,
            max_registry_bytes: self.max_registry_bytes,
        }
    }

    /// The Azure registry settings (with `--registry azure`, or `auto` under the Akri
    /// contract).
    pub fn azure(&self) -> Result<AzureSettings, Error> {
        let broker = self.registry_broker()?;
        let client_id = match (&self.registry_mqtt_client_id, &self.akri_connector_id) {
            (Some(id), _) => id.clone(),
            (None, Some(connector)) => sse_contract::akri::client_id(connector, "schema"),
            (None, None) => format!("sse-schema-{:08x}", rand::random::<u32>()),
        };
        if client_id.is_empty() || client_id.len() > 128 || client_id.contains(['/', '+', '#']) {
            return Err(Error::Config {
                field: "--registry-mqtt-client-id (SCHEMA_REGISTRY_MQTT_CLIENT_ID)",
                reason: "expected 1 to 128 characters without '/', '+' or '#'".into(),
            });
        }
        if self.registry_attempts == 0 {
            return Err(Error::Config {
                field: "--registry-attempts (SCHEMA_REGISTRY_ATTEMPTS)",
                reason: "must be at least 1".into(),
            });
        }
        Ok(AzureSettings {
            client: crate::azure::client_settings(broker, client_id),
            timeout: self.registry_timeout,
            attempts: self.registry_attempts,
            retry_initial: Duration::from_millis(500),
        })
    }
    /// The Azure registry's broker: `--registry-mqtt-url` with the `--registry-mqtt-*`
    /// credentials, else the publisher's broker (`sse-connector`).
    fn registry_broker(&self) -> Result<sse_runtime::mqtt::Broker, Error> {
        const URL: &str = "--registry-mqtt-url (SCHEMA_REGISTRY_MQTT_URL)";
        let bad = |reason: &str| Error::Config {
            field: URL,
            reason: reason.into(),
        };
        let Some(url) = self.registry_mqtt_url.as_ref() else {
            return self.publisher_broker.clone().ok_or_else(|| {
                bad(if self.registry == RegistryKind::Auto {
                    "required with the Azure registry, which --registry auto picks under the \
                     Akri contract (ADR_RESOURCES_NAME_MOUNT_PATH is set)"
                } else {
                    "required with --registry azure"
                })
            });
        };
        let address =
            sse_runtime::mqtt::BrokerAddress::parse_for(&url.to_string(), "--registry-mqtt")
                .map_err(|e| bad(&e.to_string()))?;
        let tls = address.tls.then(|| sse_runtime::mqtt::TlsFiles {
            ca_files: self.registry_mqtt_ca_file.iter().cloned().collect(),
            client: None,
        });
        let credentials = sse_runtime::mqtt::BrokerCredentials {
            username: self.registry_mqtt_username.clone(),
            password_file: self.registry_mqtt_password_file.clone(),
            sat_file: self.registry_mqtt_sat_file.clone(),
        };
        credentials.check().map_err(|reason| Error::Config {
            field: "--registry-mqtt-password-file / --registry-mqtt-sat-file",
            reason,
        })?;
        Ok(sse_runtime::mqtt::Broker {
            address,
            tls,
            credentials,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("sse-schema").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:50052");
        assert_eq!(c.publisher.to_string(), "http://127.0.0.1:50053/");
        assert_eq!(c.data_dir, PathBuf::from("./data/schemas"));
        assert_eq!(c.registry_namespace, "sse-connector");
        assert_eq!(c.max_payload_bytes, 1 << 20);
        assert_eq!(c.limits().max_depth, 32);
        assert_eq!(c.limits().max_properties, 1000);
        assert_eq!(c.registry, RegistryKind::Auto);
        assert_eq!(c.registry_kind(), RegistryKind::Embedded);
        assert_eq!(c.caps(), Caps::default());
        assert_eq!(c.caps().max_registry_bytes, 64 << 20);
        assert_eq!(c.admin_writes_per_second, 5.0);
        assert_eq!(c.admin_write_burst, 20);
        c.settings().unwrap();
    }

    #[test]
    fn flags() {
        let c = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--publisher",
            "http://pub:1",
            "--data-dir",
            "/tmp/x",
            "--registry-namespace",
            "ns",
            "--max-payload-bytes",
            "10",
            "--max-schema-properties",
            "11",
            "--max-versions",
            "12",
            "--max-registry-bytes",
            "13",
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.max_payload_bytes, 10);
        assert_eq!(
            c.caps(),
            Caps {
                max_schema_properties: 11,
                max_versions: 12,
                max_registry_bytes: 13
            }
        );
        c.settings().unwrap();
    }

    #[test]
    fn azure_registry_settings() {
        let c = parse(&[
            "--registry",
            "azure",
            "--registry-mqtt-url",
            "mqtts://broker.local",
            "--registry-mqtt-client-id",
            "me",
            "--registry-timeout",
            "3s",
        ])
        .unwrap();
        c.clone().settings().unwrap();
        let a = c.azure().unwrap();
        let b = &a.client.broker;
        assert_eq!(
            (b.address.host.as_str(), b.address.port),
            ("broker.local", 8883)
        );
        assert_eq!(b.tls, Some(sse_runtime::mqtt::TlsFiles::default()));
        assert_eq!(a.client.client_id, "me");
        assert_eq!(
            a.client.max_incoming_packet,
            sse_contract::limits::MQTT_REGISTRY_PACKET_BYTES_MAX
        );
        assert_eq!(a.timeout, Duration::from_secs(3));
        assert_eq!(a.attempts, 5);
        let a = parse(&[
            "--registry",
            "azure",
            "--registry-mqtt-url",
            "mqtt://127.0.0.1:1884",
        ])
        .unwrap()
        .azure()
        .unwrap();
        let b = &a.client.broker;
        assert_eq!(
            (b.address.host.as_str(), b.address.port),
            ("127.0.0.1", 1884)
        );
        assert_eq!(b.tls, None);
        assert!(a.client.client_id.starts_with("sse-schema-"));
    }

    /// An environment holding the Akri contract (connector `sse-7f9c`) and nothing else.
    fn akri(k: &str) -> Option<String> {
        match k {
            "ADR_RESOURCES_NAME_MOUNT_PATH" => Some("/etc/akri/config/adr_resources_names".into()),
            "CONNECTOR_ID" => Some("sse-7f9c".into()),
            _ => None,
        }
    }

    #[test]
    fn auto_picks_the_azure_registry_under_the_akri_contract() {
        let c = parse(&[]).unwrap().with_env(|_| None);
        assert_eq!(c.registry_kind(), RegistryKind::Embedded);
        assert!(c.settings().unwrap().azure.is_none());
        let c = parse(&[]).unwrap().with_env(akri);
        assert_eq!(c.registry_kind(), RegistryKind::Azure);
        // sse-schema alone has no broker to default to: the error says why it needs one.
        let err = c.clone().settings().unwrap_err().to_string();
        assert!(
            err.contains("--registry-mqtt-url") && err.contains("--registry auto"),
            "{err}"
        );
        // sse-connector hands it the publisher's broker.
        let mut c = c;
        let address = sse_runtime::mqtt::BrokerAddress::parse("mqtts://aio-broker:18883").unwrap();
        c.publisher_broker = Some(sse_runtime::mqtt::Broker::new(address));
        let a = c.settings().unwrap().azure.unwrap();
        assert_eq!(a.client.broker.address.host, "aio-broker");
        assert_eq!(a.client.client_id, "sse-7f9c-schema");
        // Asked for by name, either registry is used whatever the environment.
        let c = parse(&["--registry", "embedded"]).unwrap().with_env(akri);
        assert_eq!(c.registry_kind(), RegistryKind::Embedded);
        let c = parse(&[
            "--registry",
            "azure",
            "--registry-mqtt-url",
            "mqtt://b:1",
            "--registry-mqtt-client-id",
            "mine",
        ])
        .unwrap()
        .with_env(akri);
        assert_eq!(c.azure().unwrap().client.client_id, "mine");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--max-payload-bytes", "-1"]).is_err());
        for args in [
            &["--publisher", "pub:1"][..],
            &["--publisher", "https://pub:1"],
            &["--registry-namespace", "a/b"],
            &["--registry-namespace", ""],
            &["--max-payload-bytes", "0"],
            &["--max-depth", "0"],
            &["--max-schema-properties", "0"],
            &["--max-versions", "0"],
            &["--max-registry-bytes", "0"],
            &["--max-subjects", "0"],
            &["--admin-writes-per-second=-1"],
            &["--admin-writes-per-second", "NaN"],
            &["--admin-writes-per-second", "inf"],
            &["--registry", "azure"],
            &["--registry", "azure", "--registry-mqtt-url", "http://b:1"],
            &[
                "--registry",
                "azure",
                "--registry-mqtt-url",
                "mqtt://b:1",
                "--registry-mqtt-client-id",
                "a/b",
            ],
        ] {
            let c = parse(args).unwrap();
            assert!(c.settings().unwrap_err().is_config(), "{args:?}");
        }
    }

    /// The registry's broker flags are checked whenever they are given, the embedded registry
    /// too: a password in the URL is refused naming the registry's own flags, never printed.
    #[test]
    fn a_registry_url_with_a_password_or_a_missing_password_file_is_refused_whatever_the_registry()
    {
        let url = "mqtt://user:s3cret@127.0.0.1:1";
        for registry in ["embedded", "azure"] {
            let c = parse(&["--registry", registry, "--registry-mqtt-url", url]).unwrap();
            let e = c.settings().unwrap_err().to_string();
            assert!(e.contains("--registry-mqtt-username"), "{registry}: {e}");
            assert!(!e.contains("s3cret"), "{registry}: {e}");
        }
        let missing = "--registry-mqtt-password-file=/nonexistent/pw";
        let c = parse(&["--registry-mqtt-url", "mqtt://127.0.0.1:1", missing]).unwrap();
        let e = c.settings().unwrap_err().to_string();
        assert!(
            e.contains("cannot read password file /nonexistent/pw"),
            "{e}"
        );
    }
}
