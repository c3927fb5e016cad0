//! Broker URLs: `mqtt://host[:port]` and `mqtts://host[:port]` (TLS), with the `tcp://` and
//! `ssl://` spellings other MQTT clients accept.

use super::MqttError;

/// Where a broker listens and whether the connection uses TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (1883 by default, 8883 with TLS).
    pub port: u16,
    /// Whether the URL asked for TLS (`mqtts://`, `ssl://`).
    pub tls: bool,
}

impl BrokerAddress {
    /// Whether `raw` names a broker by its scheme (any case, as URLs allow), for settings that
    /// take either a broker URL or something else (a checkpoint file); [`BrokerAddress::parse`]
    /// then checks the rest.
    pub fn is_broker_url(raw: &str) -> bool {
        raw.split_once("://")
            .is_some_and(|(name, _)| scheme(name).is_some())
    }

    /// Parses a broker URL. User info is refused (credentials have their own flags, read from
    /// files) and never shown in the error.
    pub fn parse(raw: &str) -> Result<Self, MqttError> {
        Self::parse_for(raw, "--mqtt")
    }

    /// [`BrokerAddress::parse`] for a client whose credential flags start with `flags`
    /// (`--registry-mqtt`): a URL with user info is refused naming `<flags>-username` and
    /// `<flags>-password-file`.
    pub fn parse_for(raw: &str, flags: &str) -> Result<Self, MqttError> {
        let parsed = url::Url::parse(raw);
        let bad = |why: &str| MqttError::Url {
            url: crate::shown_url::shown(raw),
            why: why.to_string(),
        };
        let url = parsed.as_ref().map_err(|e| bad(&e.to_string()))?;
        let Some((tls, default_port)) = scheme(url.scheme()) else {
            return Err(bad(&format!(
                "unsupported scheme {:?} (use mqtt or mqtts)",
                url.scheme()
            )));
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(&format!(
                "a broker URL carries no credentials (use {flags}-username and \
                 {flags}-password-file)"
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(bad("no host")),
        };
        if !(url.path().is_empty() || url.path() == "/") {
            return Err(bad("a broker URL has no path"));
        }
        if url.query().is_some() {
            return Err(bad("a broker URL has no query"));
        }
        Ok(Self {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
        })
    }
}

impl std::fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        match self.host.contains(':') {
            true => write!(f, "{scheme}://[{}]:{}", self.host, self.port),
            false => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

/// The one set of broker URL schemes: whether each means TLS, and its default port.
const SCHEMES: &[(&str, bool, u16)] = &[
    ("mqtt", false, 1883),
    ("tcp", false, 1883),
    ("mqtts", true, 8883),
    ("ssl", true, 8883),
];

/// TLS and default port of the scheme `name` (any case), if it is a broker scheme.
fn scheme(name: &str) -> Option<(bool, u16)> {
    SCHEMES
        .iter()
        .find(|(s, ..)| s.eq_ignore_ascii_case(name))
        .map(|&(_, tls, port)| (tls, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(u: &str) -> (String, u16, bool) {
        let a = BrokerAddress::parse(u).unwrap();
        (a.host, a.port, a.tls)
    }

    #[test]
    fn parses_every_scheme_with_default_ports() {
        assert_eq!(
            parse("mqtt://127.0.0.1:1883"),
            ("127.0.0.1".into(), 1883, false)
        );
        assert_eq!(
            parse("mqtts://broker.local"),
            ("broker.local".into(), 8883, true)
        );
        assert_eq!(parse("mqtt://broker"), ("broker".into(), 1883, false));
        assert_eq!(parse("tcp://b:1"), ("b".into(), 1, false));
        assert_eq!(parse("ssl://b"), ("b".into(), 8883, true));
        assert_eq!(parse("mqtts://[::1]:18883"), ("::1".into(), 18883, true));
        assert_eq!(
            BrokerAddress::parse("mqtts://[::1]:18883")
                .unwrap()
                .to_string(),
            "mqtts://[::1]:18883"
        );
    }

    #[test]
    fn one_set_of_schemes_tells_broker_urls_apart() {
        for u in ["mqtt://b", "MQTTS://b:1", "tcp://b", "Ssl://b"] {
            assert!(BrokerAddress::is_broker_url(u), "{u}");
            assert!(BrokerAddress::parse(u).is_ok(), "{u}");
        }
        for u in ["http://b", "file:///x", "data/c.json", "mqtt:/b"] {
            assert!(!BrokerAddress::is_broker_url(u), "{u}");
        }
    }

    #[test]
    fn rejects_bad_urls_without_showing_secrets() {
        for u in [
            "not a url",
            "http://x:1",
            "mqtt://x:1/path",
            "mqtt:///",
            "mqtt://x?a=1",
        ] {
            assert!(BrokerAddress::parse(u).is_err(), "{u}");
        }
        let e = BrokerAddress::parse("mqtt://user:hunter2@b:1883").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = BrokerAddress::parse("http://b/?token=hunter2").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
