//! Configuration: flags with environment fallbacks, validated into the settings the MQTT
//! connection needs before anything starts (bad values exit with code 64 in `main`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rand::Rng;

use crate::error::Error;

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
    /// Broker URL: `mqtt://host:port`, or `mqtts://host:port` for TLS.
    #[arg(long, env = "MQTT_URL", default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt_url: String,
    /// MQTT client id (default: CONNECTOR_ID, else `sse-publisher-<random>`).
    #[arg(long, env = "MQTT_CLIENT_ID")]
    pub mqtt_client_id: Option<String>,
    /// Connector id, the client id when `--mqtt-client-id` is not given (Azure IoT Operations).
    #[arg(long = "connector-id", env = "CONNECTOR_ID", hide = true)]
    pub connector_id: Option<String>,
    /// MQTT user name.
    #[arg(long, env = "MQTT_USERNAME")]
    pub mqtt_username: Option<String>,
    /// File holding the MQTT password, read at each connect (so rotation needs no restart).
    #[arg(long, env = "MQTT_PASSWORD_FILE")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for `mqtts://`, on top of the system roots.
    #[arg(long, env = "MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,
    /// MQTT keep-alive in seconds (at least 5).
    #[arg(long, env = "MQTT_KEEP_ALIVE", default_value_t = 30)]
    pub mqtt_keep_alive: u64,
    /// Most QoS 1 publishes awaiting the broker's PUBACK at once.
    #[arg(long, env = "MQTT_MAX_INFLIGHT", default_value_t = 100)]
    pub max_inflight: u16,
}

/// Validated MQTT connection settings.
#[derive(Clone)]
pub struct MqttSettings {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TLS client configuration, for `mqtts://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// MQTT client id.
    pub client_id: String,
    /// User name, if any.
    pub username: Option<String>,
    /// Password file, read at connect time.
    pub password_file: Option<PathBuf>,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Most QoS 1 publishes in flight.
    pub max_inflight: u16,
}

impl std::fmt::Debug for MqttSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("keep_alive", &self.keep_alive)
            .field("max_inflight", &self.max_inflight)
            .finish()
    }
}

impl Config {
    /// Validates the flags into connection settings; reads the CA file, if any.
    pub fn mqtt_settings(&self) -> Result<MqttSettings, Error> {
        let (host, port, tls) = parse_url(&self.mqtt_url)?;
        let tls = if tls {
            let extra = match &self.mqtt_ca_file {
                Some(path) => sse_runtime::tls::load_certs(path)
                    .map_err(|e| Error::Config(format!("--mqtt-ca-file: {e}")))?,
                None => Vec::new(),
            };
            let cfg = sse_runtime::tls::client_config(extra)
                .map_err(|e| Error::Config(format!("tls: {e}")))?;
            Some(Arc::new(cfg))
        } else {
            None
        };
        if self.mqtt_keep_alive < 5 {
            return Err(Error::Config(format!(
                "--mqtt-keep-alive must be at least 5 seconds, got {}",
                self.mqtt_keep_alive
            )));
        }
        if self.max_inflight == 0 {
            return Err(Error::Config("--max-inflight must be at least 1".into()));
        }
        Ok(MqttSettings {
            host,
            port,
            tls,
            client_id: client_id(self.mqtt_client_id.as_deref(), self.connector_id.as_deref()),
            username: self.mqtt_username.clone().filter(|u| !u.is_empty()),
            password_file: self.mqtt_password_file.clone(),
            keep_alive: Duration::from_secs(self.mqtt_keep_alive),
            max_inflight: self.max_inflight,
        })
    }
}

/// The client id: the flag, else the connector id, else `sse-publisher-<random>`.
fn client_id(flag: Option<&str>, connector: Option<&str>) -> String {
    if let Some(id) = flag.filter(|s| !s.is_empty()) {
        return id.to_string();
    }
    if let Some(id) = connector.filter(|s| !s.is_empty()) {
        return id.to_string();
    }
    let n: u64 = rand::rng().random();
    format!("sse-publisher-{n:016x}")
}

/// Host, port and whether TLS is used, from an `mqtt://` / `mqtts://` URL.
fn parse_url(raw: &str) -> Result<(String, u16, bool), Error> {
    let bad = |why: &str| Error::Config(format!("--mqtt-url {raw:?}: {why}"));
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    let (tls, default_port) = match url.scheme() {
        "mqtt" | "tcp" => (false, 1883),
        "mqtts" | "ssl" => (true, 8883),
        other => {
            return Err(bad(&format!(
                "unsupported scheme {other:?} (use mqtt or mqtts)"
            )));
        }
    };
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(bad("no host")),
    };
    if !(url.path().is_empty() || url.path() == "/") {
        return Err(bad("a broker URL has no path"));
    }
    Ok((host, url.port().unwrap_or(default_port), tls))
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
    fn parses_plain_and_tls_urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883, false)
        );
        assert_eq!(
            parse_url("mqtts://broker.local").unwrap(),
            ("broker.local".into(), 8883, true)
        );
        assert_eq!(
            parse_url("mqtt://broker").unwrap(),
            ("broker".into(), 1883, false)
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for u in ["not a url", "http://x:1", "mqtt://x:1/path", "mqtt:///"] {
            assert!(parse_url(u).is_err(), "{u}");
        }
    }

    #[test]
    fn client_id_precedence() {
        assert_eq!(client_id(Some("a"), Some("b")), "a");
        assert_eq!(client_id(None, Some("b")), "b");
        assert_eq!(client_id(Some(""), Some("b")), "b");
        assert!(client_id(None, None).starts_with("sse-publisher-"));
    }

    #[test]
    fn validates_numbers() {
        assert!(config(&["--mqtt-keep-alive", "2"]).mqtt_settings().is_err());
        assert!(config(&["--max-inflight", "0"]).mqtt_settings().is_err());
        let s = config(&["--mqtt-client-id", "pub-1"])
            .mqtt_settings()
            .unwrap();
        assert_eq!(s.client_id, "pub-1");
        assert_eq!(s.keep_alive, Duration::from_secs(30));
        assert_eq!(s.max_inflight, 100);
        assert!(s.tls.is_none());
    }
}
