//! The service's configuration: flags with environment fallbacks.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tonic::transport::Uri;

use crate::error::Error;

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
    /// The publisher service (`http://host:port`).
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
}

impl Config {
    /// Checks what clap cannot: the publisher URL, the namespace and the limits.
    pub fn validate(&self) -> Result<(), Error> {
        match self.publisher.scheme_str() {
            Some("http") if self.publisher.host().is_some() => {}
            _ => {
                return Err(Error::Config {
                    field: "--publisher (PUBLISHER_ADDR)",
                    reason: "expected http://host:port".into(),
                });
            }
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
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::Config {
                field: "--data-dir (SCHEMA_DATA_DIR)",
                reason: "must not be empty".into(),
            });
        }
        Ok(())
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
        c.validate().unwrap();
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
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 0);
        assert_eq!(c.max_payload_bytes, 10);
        c.validate().unwrap();
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
        ] {
            let c = parse(args).unwrap();
            assert!(c.validate().unwrap_err().is_config(), "{args:?}");
        }
    }
}
