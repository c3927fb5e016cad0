//! What a client needs to connect: the broker (address, TLS, credentials), which two clients of
//! one process can share, and the client's own session options and packet limit.

use std::path::PathBuf;
use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::{NetworkOptions, TlsConfiguration, Transport};

use super::{BrokerAddress, BrokerCredentials, TlsFiles};

/// A broker and who we are to it: everything a second client of the same broker can reuse
/// (`sse-connector` keeps its checkpoints on the publisher's broker this way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    /// Host, port, TLS or not.
    pub address: BrokerAddress,
    /// TLS material, for a TLS address.
    pub tls: Option<TlsFiles>,
    /// User name, password file, service account token file.
    pub credentials: BrokerCredentials,
}

impl Broker {
    /// A broker at `address` with system roots only (TLS) and no credentials.
    pub fn new(address: BrokerAddress) -> Self {
        let tls = address.tls.then(TlsFiles::default);
        Self {
            address,
            tls,
            credentials: BrokerCredentials::default(),
        }
    }
}

/// The broker credential and trust flags, declared once: the publisher's broker and ingest's
/// checkpoint store (the same broker in `sse-connector`) take the same names and variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct BrokerAuthFlags {
    /// MQTT user name.
    #[arg(long = "mqtt-username", env = "MQTT_USERNAME", value_parser = mqtt_string)]
    pub mqtt_username: Option<String>,
    /// File holding the MQTT password, read at each connect (so rotation needs no restart).
    #[arg(long = "mqtt-password-file", env = "MQTT_PASSWORD_FILE")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Service account token file for the `K8S-SAT` MQTT 5 enhanced authentication (Azure IoT
    /// Operations), read at each connect.
    #[arg(long = "mqtt-sat-file", env = "MQTT_SAT_FILE")]
    pub mqtt_sat_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) trusted for `mqtts://`, on top of the system roots.
    #[arg(long = "mqtt-ca-file", env = "MQTT_CA_FILE")]
    pub mqtt_ca_file: Option<PathBuf>,
}

/// A flag value that goes into CONNECT as an MQTT string: one a broker refuses (a control
/// character, say) would close every connection as a protocol error, retried forever.
fn mqtt_string(s: &str) -> Result<String, String> {
    sse_contract::mqtt_text::check(s)
        .map(|()| s.to_string())
        .map_err(|u| format!("the value {u}"))
}

impl BrokerAuthFlags {
    /// The credentials the flags name, with `sat_file` as the token file (an empty user name
    /// is none).
    pub fn credentials(&self, sat_file: Option<PathBuf>) -> BrokerCredentials {
        BrokerCredentials {
            username: self.mqtt_username.clone().filter(|u| !u.is_empty()),
            password_file: self.mqtt_password_file.clone(),
            sat_file,
        }
    }
}

/// One client's connection settings.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The broker.
    pub broker: Broker,
    /// MQTT client id (unique per broker: a second connection with it ends the first).
    pub client_id: String,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// Session expiry interval in seconds (`None`: the session ends with the connection).
    pub session_expiry: Option<u32>,
    /// Discard the previous session at connect.
    pub clean_start: bool,
    /// Most QoS 1 publishes in flight (`None`: rumqttc's default).
    pub max_inflight: Option<u16>,
    /// Largest packet accepted from the broker, announced in CONNECT: one of the `MQTT_*`
    /// limits of `sse_contract::limits`.
    pub max_incoming_packet: usize,
}

impl ClientSettings {
    /// Settings for a short-lived-session client (clean start, 30 s keep-alive, no expiry).
    pub fn new(broker: Broker, client_id: String, max_incoming_packet: usize) -> Self {
        Self {
            broker,
            client_id,
            keep_alive: Duration::from_secs(30),
            session_expiry: None,
            clean_start: true,
            max_inflight: None,
            max_incoming_packet,
        }
    }

    /// rumqttc options; credentials and TLS are filled in by [`ClientSettings::prepare`] before
    /// each connect.
    pub fn options(&self) -> MqttOptions {
        let a = &self.broker.address;
        let mut o = MqttOptions::new(&self.client_id, &a.host, a.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_start(self.clean_start)
            .set_connection_timeout(10)
            // Both the CONNECT Maximum Packet Size (the broker then discards larger messages for
            // this client) and rumqttc's own incoming limit.
            .set_max_packet_size(Some(
                u32::try_from(self.max_incoming_packet).unwrap_or(u32::MAX),
            ));
        if self.session_expiry.is_some() {
            o.set_session_expiry_interval(self.session_expiry);
        }
        if let Some(n) = self.max_inflight {
            o.set_outgoing_inflight_upper_limit(n);
        }
        // rumqttc leaves Nagle's algorithm on: a publish written while the broker has not yet
        // acknowledged the last small segment waits in the kernel for that ACK, which a broker
        // that has nothing to send back delays by up to its delayed-ACK timer (40 ms on Linux).
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        o.set_network_options(net);
        o
    }

    /// Reads the secrets and TLS files for the next connect into `o`. Errors name the file,
    /// never its content.
    pub async fn prepare(&self, o: &mut MqttOptions) -> Result<(), String> {
        self.broker.credentials.apply(o).await?;
        if let Some(files) = &self.broker.tls {
            let config = files.client_config().map_err(|e| e.to_string())?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service's parser with the group flattened, as the publisher's and ingest's are.
    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        broker: BrokerAuthFlags,
    }

    #[test]
    fn the_broker_flags_parse_once_for_every_service() {
        use clap::Parser;
        let f = Flags::try_parse_from(["x", "--mqtt-username", "u", "--mqtt-ca-file", "/ca"]);
        let f = f.unwrap().broker;
        assert_eq!(f.mqtt_ca_file, Some(PathBuf::from("/ca")));
        let c = f.credentials(Some(PathBuf::from("/sat")));
        assert_eq!(c.username.as_deref(), Some("u"));
        assert_eq!(c.sat_file, Some(PathBuf::from("/sat")));
        // A user name a broker refuses is bad usage, not a connection retried forever.
        let tab = Flags::try_parse_from(["x", "--mqtt-username", "us\ter"]).unwrap_err();
        assert!(tab.to_string().contains("holds U+0009"), "{tab}");
        // An empty user name (an unset variable in a manifest) is no user name.
        let empty = Flags::try_parse_from(["x", "--mqtt-username", ""]).unwrap();
        assert_eq!(empty.broker.credentials(None).username, None);
    }

    #[test]
    fn options_announce_the_packet_limit_and_the_session() {
        let broker = Broker::new(BrokerAddress::parse("mqtt://b:1").unwrap());
        let mut s = ClientSettings::new(broker, "c".into(), 65536);
        let o = s.options();
        assert_eq!(o.max_packet_size(), Some(65536));
        assert!(o.clean_start());
        assert_eq!(o.session_expiry_interval(), None);
        s.session_expiry = Some(60);
        s.clean_start = false;
        let o = s.options();
        assert_eq!(o.session_expiry_interval(), Some(60));
        assert!(!o.clean_start());
        assert_eq!(o.max_packet_size(), Some(65536));
    }
}
