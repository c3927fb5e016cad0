//! The whole system on loopback: Mosquitto, an SSE source, the three real binaries wired
//! together, and optionally an OTLP receiver for their traces.

use std::time::Duration;

use crate::broker::Mosquitto;
use crate::mqtt::Subscriber;
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
    /// returns the YAML written to `resources/resources.yaml`. With it comes a subscriber on
    /// `e2e/#`, subscribed before the services start, so it sees every event they publish.
    pub async fn start(
        feed: Feed,
        resources: impl Fn(&str) -> String,
    ) -> anyhow::Result<(Self, Subscriber)> {
        Self::start_with_schema_env(feed, resources, Vec::new()).await
    }

    /// [`Stack::start`], with `schema_env` added to the environment of `sse-schema` (its flags'
    /// variables, e.g. `SCHEMA_MAX_VERSIONS`), for a test of a schema setting.
    pub async fn start_with_schema_env(
        feed: Feed,
        resources: impl Fn(&str) -> String,
        schema_env: Vec<(String, String)>,
    ) -> anyhow::Result<(Self, Subscriber)> {
        let broker = Mosquitto::start().await?;
        let sub = Subscriber::connect(broker.port, "e2e/#").await?;
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
            let mut env = vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.endpoint()),
                ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "100".to_string()),
                ("OTEL_SERVICE_NAME".to_string(), name.to_string()),
            ];
            if name == "sse-schema" {
                env.extend(schema_env.iter().cloned());
            }
            env
        };
        let dirs = |name: &str| dir.path().join(name).display().to_string();
        let s = |x: &str| x.to_string();
        let services = Pipeline::start(PipelineArgs {
            mqtt_url: broker.url(),
            data_dir: dirs("schemas"),
            resources: res_dir.display().to_string(),
            publisher: vec![],
            ingest: vec![
                s("--secrets-dir"),
                dirs("secrets"),
                s("--trust-dir"),
                dirs("trust"),
            ],
            env: Some(&otel),
        })
        .await?;
        let Pipeline {
            publisher,
            schema,
            ingest,
        } = services;
        Ok((
            Self {
                broker,
                source,
                otlp,
                publisher,
                schema,
                ingest,
                dir,
            },
            sub,
        ))
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

/// Environment variables for a service, by its name.
pub type EnvOf<'a> = dyn Fn(&str) -> Vec<(String, String)> + 'a;

/// What the three services of one pipeline are started with.
pub struct PipelineArgs<'a> {
    /// Broker URL for the publisher.
    pub mqtt_url: String,
    /// Schema service data directory.
    pub data_dir: String,
    /// Ingest resources directory.
    pub resources: String,
    /// Extra publisher arguments.
    pub publisher: Vec<String>,
    /// Extra ingest arguments.
    pub ingest: Vec<String>,
    /// Environment per service name (e.g. OTLP settings), if any.
    pub env: Option<&'a EnvOf<'a>>,
}

impl PipelineArgs<'_> {
    /// A pipeline with no extra flags: `broker` for the publisher, the schema service's data in
    /// `<dir>/schemas`, ingest reading `resources`.
    pub fn plain(broker: String, dir: &std::path::Path, resources: &std::path::Path) -> Self {
        Self {
            mqtt_url: broker,
            data_dir: dir.join("schemas").display().to_string(),
            resources: resources.display().to_string(),
            publisher: vec![],
            ingest: vec![],
            env: None,
        }
    }
}

/// The three real binaries wired together: publisher, then schema pointing at it, then ingest
/// pointing at schema.
pub struct Pipeline {
    /// `sse-publisher`.
    pub publisher: Service,
    /// `sse-schema`.
    pub schema: Service,
    /// `sse-ingest`.
    pub ingest: Service,
}

impl Pipeline {
    /// Starts the three services, each on a free port.
    pub async fn start(args: PipelineArgs<'_>) -> anyhow::Result<Self> {
        let env = |name: &str| args.env.map(|f| f(name)).unwrap_or_default();
        let s = |x: &str| x.to_string();
        let mut publisher_args = vec![s("--mqtt-url"), args.mqtt_url.clone()];
        publisher_args.extend(args.publisher.iter().cloned());
        let publisher =
            Service::start("sse-publisher", &publisher_args, &env("sse-publisher")).await?;
        let schema = Service::start(
            "sse-schema",
            &[
                s("--publisher"),
                publisher.url(),
                s("--data-dir"),
                args.data_dir.clone(),
            ],
            &env("sse-schema"),
        )
        .await?;
        let mut ingest_args = vec![
            s("--schema"),
            schema.url(),
            s("--resources"),
            args.resources.clone(),
        ];
        ingest_args.extend(args.ingest.iter().cloned());
        let ingest = Service::start("sse-ingest", &ingest_args, &env("sse-ingest")).await?;
        Ok(Self {
            publisher,
            schema,
            ingest,
        })
    }
}
