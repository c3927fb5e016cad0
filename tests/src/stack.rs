//! The whole system on loopback: Mosquitto, an SSE source, the three real binaries wired
//! together, and optionally an OTLP receiver for their traces.

use std::time::Duration;

use crate::broker::Mosquitto;
use crate::otlp::OtlpReceiver;
use crate::procs::Service;
use crate::source::{Feed, SseSource};

/// Everything one end-to-end test runs against.
pub struct Stack {
    /// The broker.
    pub broker: Mosquitto,
    /// The SSE source.
    pub source: SseSource,
    /// The trace receiver.
    pub otlp: OtlpReceiver,
    /// `sse-publisher`.
    pub publisher: Service,
    /// `sse-schema`.
    pub schema: Service,
    /// `sse-ingest`.
    pub ingest: Service,
    /// Resources, secrets and schema data.
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// Starts the stack. `resources` gets the SSE source's base URL (`http://127.0.0.1:PORT`) and
    /// returns the YAML written to `resources/resources.yaml`.
    pub async fn start(feed: Feed, resources: impl Fn(&str) -> String) -> anyhow::Result<Self> {
        let broker = Mosquitto::start().await?;
        let otlp = OtlpReceiver::start().await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let source = SseSource::start(listener, feed)?;
        let dir = tempfile::tempdir()?;
        let res_dir = dir.path().join("resources");
        std::fs::create_dir_all(&res_dir)?;
        std::fs::create_dir_all(dir.path().join("secrets"))?;
        std::fs::create_dir_all(dir.path().join("trust"))?;
        std::fs::write(
            res_dir.join("resources.yaml"),
            resources(&source.base_url()),
        )?;
        let otel = |name: &str| {
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.endpoint()),
                ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "100".to_string()),
                ("OTEL_SERVICE_NAME".to_string(), name.to_string()),
            ]
        };
        let s = |x: &str| x.to_string();
        let publisher = Service::start(
            "sse-publisher",
            &[s("--mqtt-url"), broker.url()],
            &otel("sse-publisher"),
        )
        .await?;
        let schema = Service::start(
            "sse-schema",
            &[
                s("--publisher"),
                publisher.url(),
                s("--data-dir"),
                dir.path().join("schemas").display().to_string(),
            ],
            &otel("sse-schema"),
        )
        .await?;
        let ingest = Service::start(
            "sse-ingest",
            &[
                s("--schema"),
                schema.url(),
                s("--resources"),
                res_dir.display().to_string(),
                s("--secrets-dir"),
                dir.path().join("secrets").display().to_string(),
                s("--trust-dir"),
                dir.path().join("trust").display().to_string(),
            ],
            &otel("sse-ingest"),
        )
        .await?;
        Ok(Self {
            broker,
            source,
            otlp,
            publisher,
            schema,
            ingest,
            dir,
        })
    }

    /// Stops every service with SIGTERM and returns their exit statuses (ingest first).
    pub async fn terminate_all(
        &mut self,
    ) -> anyhow::Result<Vec<(String, std::process::ExitStatus)>> {
        let mut out = Vec::new();
        for svc in [&mut self.ingest, &mut self.schema, &mut self.publisher] {
            let st = svc.terminate(Duration::from_secs(20)).await?;
            out.push((svc.name.clone(), st));
        }
        Ok(out)
    }
}
