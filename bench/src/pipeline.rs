//! The system under test: the three release binaries (sse-ingest, sse-schema, sse-publisher)
//! wired together, with Device and Asset resources generated for K streams of the load source.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mtls::Identity;
use sse_e2e::procs::Service;

use crate::procstat;
use crate::source::LoadSource;

/// The binaries of the pipeline, in the order they start.
pub const BINARIES: [&str; 3] = ["sse-publisher", "sse-schema", "sse-ingest"];

/// Datasets per generated asset.
const DATASETS_PER_ASSET: u32 = 100;

/// Resources for `streams` streams of the source at `base`: one device, assets of up to 100
/// datasets, dataset `i` reading `/s/<i>` and publishing to `<prefix>/s<i>` at QoS `qos`.
pub fn resources_yaml(base: &str, streams: u32, prefix: &str, qos: u8) -> String {
    let mut y = format!(
        "apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: bench-source }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: {base}
        authentication: {{ method: Anonymous }}
"
    );
    for asset in 0..streams.div_ceil(DATASETS_PER_ASSET) {
        let _ = write!(
            y,
            "---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: bench-{asset} }}
spec:
  deviceRef: {{ deviceName: bench-source, endpointName: sse-0 }}
  datasets:
"
        );
        let first = asset * DATASETS_PER_ASSET;
        for i in first..streams.min(first + DATASETS_PER_ASSET) {
            let _ = writeln!(
                y,
                "    - {{ name: s{i}, dataSource: {path}, destinations: [ {{ target: Mqtt, configuration: {{ topic: {prefix}/s{i}, qos: Qos{qos}, retain: Never }} }} ] }}",
                path = LoadSource::path(i)
            );
        }
    }
    y
}

/// One test CA for every mTLS pipeline and skeleton of a run.
static PKI: std::sync::OnceLock<Option<sse_e2e::pki::Pki>> = std::sync::OnceLock::new();

/// The run's test CA, made on first use, that signs every mTLS contender's certificates.
pub fn test_ca() -> anyhow::Result<&'static sse_e2e::pki::Pki> {
    let pki = PKI.get_or_init(|| sse_e2e::pki::Pki::new().ok());
    pki.as_ref().context("test CA")
}

/// The three services, running; killed when dropped.
pub struct Pipeline {
    /// `sse-ingest`.
    pub ingest: Service,
    /// `sse-schema`.
    pub schema: Service,
    /// `sse-publisher`.
    pub publisher: Service,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    /// Starts publisher, schema and ingest (in that order), the binaries in `bin_dir`, for
    /// `streams` streams of `source`; with `mtls`, each with its own certificate of one test CA
    /// and `https://` peers.
    pub async fn start(
        bin_dir: &Path,
        broker: &Mosquitto,
        source: &LoadSource,
        streams: u32,
        prefix: &str,
        mtls: bool,
    ) -> anyhow::Result<Self> {
        let dir = resources_dir(source, streams, prefix)?;
        let start = |name: &str, args: Vec<String>| start_service(bin_dir.join(name), args);
        let [publisher_bin, schema_bin, ingest_bin] = BINARIES;
        let tls = |name: &str| -> anyhow::Result<Vec<String>> {
            if !mtls {
                return Ok(Vec::new());
            }
            let pki = test_ca()?;
            let id = Identity::issue(&dir.path().join("tls"), pki, name, &pki.ca_pem)?;
            Ok(id.flags())
        };
        let url = |svc: &Service| {
            let scheme = if mtls { "https" } else { "http" };
            format!("{scheme}://{}", svc.addr)
        };
        let mut publisher_args = vec![s("--mqtt-url"), broker.url()];
        publisher_args.extend(tls(publisher_bin)?);
        let publisher = start(publisher_bin, publisher_args).await?;
        let mut schema_args = vec![s("--publisher"), url(&publisher)];
        schema_args.extend(schema_dir_args(&dir));
        schema_args.extend(tls(schema_bin)?);
        let schema = start(schema_bin, schema_args).await?;
        let mut ingest_args = vec![s("--schema"), url(&schema)];
        // Checkpoints on the broker, as the Kubernetes manifests deploy ingest (and as
        // `sse-connector` does by default), so their saves are in what is measured; a
        // `CHECKPOINT_STORE` in the bench's environment, which every service inherits, wins.
        if std::env::var_os("CHECKPOINT_STORE").is_none() {
            ingest_args.extend([s("--checkpoint-store"), broker.url()]);
        }
        ingest_args.extend(ingest_dir_args(&dir));
        ingest_args.extend(tls(ingest_bin)?);
        let ingest = start(ingest_bin, ingest_args).await?;
        Ok(Self {
            ingest,
            schema,
            publisher,
            _dir: dir,
        })
    }

    /// CPU time used so far by ingest, schema and publisher.
    pub fn cpu(&self) -> [Duration; 3] {
        [&self.ingest, &self.schema, &self.publisher].map(|s| procstat::cpu_time_or_zero(s.pid()))
    }

    /// Resident memory of ingest, schema and publisher, KiB.
    pub fn rss_kib(&self) -> [u64; 3] {
        [&self.ingest, &self.schema, &self.publisher].map(|s| {
            s.pid()
                .and_then(|p| procstat::rss_kib(p).ok())
                .unwrap_or_default()
        })
    }

    /// The last log lines of every service (for a failed run).
    pub fn log_tail(&self) -> String {
        log_tails([&self.ingest, &self.schema, &self.publisher].map(|s| (s.name.clone(), s)))
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

/// A directory with `resources/bench.yaml` for `streams` streams of `source`, and empty
/// `secrets/` and `trust/`.
fn resources_dir(
    source: &LoadSource,
    streams: u32,
    prefix: &str,
) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    for d in ["resources", "secrets", "trust"] {
        std::fs::create_dir_all(dir.path().join(d))?;
    }
    std::fs::write(
        dir.path().join("resources/bench.yaml"),
        resources_yaml(&source.base_url(), streams, prefix, crate::dataset_qos()),
    )?;
    Ok(dir)
}

fn ingest_dir_args(dir: &tempfile::TempDir) -> Vec<String> {
    let path = |d: &str| dir.path().join(d).display().to_string();
    vec![
        s("--resources"),
        path("resources"),
        s("--secrets-dir"),
        path("secrets"),
        s("--trust-dir"),
        path("trust"),
    ]
}

fn schema_dir_args(dir: &tempfile::TempDir) -> Vec<String> {
    vec![
        s("--data-dir"),
        dir.path().join("schemas").display().to_string(),
    ]
}

/// Starts `path` on a free loopback port at the services' default log level (set, so that a
/// `RUST_LOG` in the shell cannot change what is measured).
async fn start_service(path: PathBuf, args: Vec<String>) -> anyhow::Result<Service> {
    let env = [(s("RUST_LOG"), s("info"))];
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    Service::start_at(&path, any_port, &args, &env).await
}

/// `sse-connector`: the same three services in one process, joined inside it.
pub struct Connector {
    process: Service,
    _dir: tempfile::TempDir,
}

impl Connector {
    /// The connector's binary, installed next to the pipeline's.
    pub const BINARY: &str = "sse-connector";

    /// Starts `sse-connector` from `bin_dir` with the pipeline's flags (every service on a free
    /// port) for `streams` streams of `source`.
    pub async fn start(
        bin_dir: &Path,
        broker: &Mosquitto,
        source: &LoadSource,
        streams: u32,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let dir = resources_dir(source, streams, prefix)?;
        let mut args = vec![
            s("--schema-listen"),
            s("127.0.0.1:0"),
            s("--publisher-listen"),
            s("127.0.0.1:0"),
            s("--mqtt-url"),
            broker.url(),
        ];
        args.extend(schema_dir_args(&dir));
        args.extend(ingest_dir_args(&dir));
        let process = start_service(bin_dir.join(Self::BINARY), args).await?;
        Ok(Self { process, _dir: dir })
    }

    /// CPU time used so far.
    pub fn cpu(&self) -> Duration {
        procstat::cpu_time_or_zero(self.process.pid())
    }

    /// The last log lines (for a failed run).
    pub fn log_tail(&self) -> String {
        log_tails([(s("connector"), &self.process)])
    }
}

/// The last five log lines of each process, under its label (for a failed run).
pub fn log_tails<'a>(processes: impl IntoIterator<Item = (String, &'a Service)>) -> String {
    processes
        .into_iter()
        .map(|(label, s)| {
            let text = s.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join("\n  ");
            format!("{label}:\n  {tail}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_split_streams_into_assets_of_100() {
        let y = resources_yaml("http://127.0.0.1:9", 250, "bench/p", 1);
        assert_eq!(y.matches("kind: Asset").count(), 3);
        assert_eq!(y.matches("dataSource: /s/").count(), 250);
        assert!(y.contains("{ name: s249, dataSource: /s/249,"));
        assert!(y.contains("topic: bench/p/s249, qos: Qos1"));
        let qos0 = resources_yaml("http://127.0.0.1:9", 2, "bench/p", 0);
        assert!(qos0.contains("topic: bench/p/s1, qos: Qos0"), "{qos0}");
        for doc in y.split("---\n") {
            let v: serde_json::Value = serde_yaml_ng::from_str(doc).expect("yaml");
            assert_eq!(
                v["apiVersion"],
                "namespaces.deviceregistry.microsoft.com/v1"
            );
        }
        let last: serde_json::Value =
            serde_yaml_ng::from_str(y.rsplit("---\n").next().expect("doc")).expect("yaml");
        assert_eq!(last["spec"]["datasets"].as_array().map(Vec::len), Some(50));
        assert_eq!(
            last["spec"]["datasets"][0]["destinations"][0]["configuration"]["qos"],
            "Qos1"
        );
    }
}
