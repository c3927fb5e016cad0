//! `sse-schema`: infers a JSON Schema (draft-07) per dataset and event from the payloads it sees,
//! registers a new version when a shape changes (embedded registry, durable on disk), tags each
//! event with its `dataschema`, and forwards the events to the publisher, relaying acks back.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acks;
pub mod admin_writes;
pub mod any_registry;
pub mod azure;
pub mod canonical;
pub mod caps;
pub mod config;
pub mod draft07;
pub mod error;
pub mod grpc;
pub mod history;
pub mod infer;
pub mod metrics;
pub mod paging;
pub mod pipeline;
pub mod publisher;
pub mod registry;
pub mod relay;
pub mod subjects;
pub mod write_behind;

use std::sync::Arc;
use std::time::Duration;

use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_proto::v1::schema_service_server::{SERVICE_NAME, SchemaServiceServer};
use sse_proto::v1::{ProcessRequest, ProcessResponse};
use sse_runtime::link::{Local, Locals, Messages};
use sse_runtime::peers::Dialer;
use sse_runtime::{Serving, Shutdown};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, Settings};
pub use error::Error;

/// How long, on shutdown, each stream keeps relaying acks for events already forwarded.
pub const STREAM_DRAIN: Duration = Duration::from_secs(10);

/// How long, after the gRPC server stops, the process waits for its tasks: every stream's
/// [`STREAM_DRAIN`], with room to spare.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(STREAM_DRAIN.as_secs() + 5);

/// Serves the schema service on `listener` until `shutdown.token` is cancelled and every stream
/// has ended.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: Shutdown,
) -> Result<(), Error> {
    start(settings, &shutdown, Locals::default())
        .await?
        .serve(listener)
        .await
}

/// The schema service with its registry open and its gRPC service built, not yet served:
/// `sse-connector` hands [`Started::local`] to ingest first.
pub struct Started {
    serving: Serving,
    token: CancellationToken,
}

impl Started {
    /// The schema service as ingest in this process calls it, with no socket between.
    pub fn local(&self) -> Result<Local, Error> {
        Ok(self.serving.local()?)
    }

    /// Serves on `listener` until the shutdown token is cancelled and every stream has ended.
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        Ok(self.serving.run(listener, self.token).await?)
    }
}

/// Opens the embedded registry, or the Azure one with its local mirror, on a blocking thread.
async fn open_registry(
    config: &Config,
    azure: Option<azure::AzureSettings>,
    shutdown: &Shutdown,
) -> Result<any_registry::AnyRegistry, Error> {
    let dir = config.data_dir.clone();
    let namespace = config.registry_namespace.clone();
    let max_bytes = config.max_registry_bytes;
    let mirror = azure.is_some();
    let file = tokio::task::spawn_blocking(move || {
        if mirror {
            registry::FileRegistry::open_mirror(&dir, &namespace)
        } else {
            registry::FileRegistry::open(&dir, &namespace)
        }
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??
    .with_max_bytes(max_bytes);
    Ok(match azure {
        None => any_registry::AnyRegistry::File(file),
        Some(settings) => {
            any_registry::AnyRegistry::Azure(azure::AzureRegistry::new(&settings, file, shutdown))
        }
    })
}

/// Opens the registry and builds the service; the publisher is called through `locals` where
/// it names one of its addresses (`sse-connector`), over the network otherwise.
pub async fn start(
    settings: Settings,
    shutdown: &Shutdown,
    locals: Locals,
) -> Result<Started, Error> {
    let Settings {
        flags: config,
        security,
        azure,
    } = settings;
    let registry = open_registry(&config, azure, shutdown).await?;
    let pipeline = Arc::new(
        pipeline::Pipeline::new(
            Arc::new(registry),
            &config.registry_namespace,
            config.limits(),
        )
        .with_caps(config.caps())
        .with_max_subjects(config.max_subjects)
        .with_metrics(metrics::Metrics::from_global()),
    );
    let dialer = Dialer::new(security.mtls.clone(), locals);
    let channel = publisher::channel(&config.publisher, dialer);
    let relay = relay::Relay::new(
        pipeline.clone(),
        channel.clone(),
        shutdown.clone(),
        STREAM_DRAIN,
    );
    let in_process = relay.clone();
    let written_behind = pipeline.registry().clone();
    // The contract's limit, which ingest's encoder and the publisher's decoder use too.
    let svc = SchemaServiceServer::new(grpc::SchemaGrpc::new(pipeline, relay))
        .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX);
    let bucket = sse_runtime::admin_rate::TokenBucket::new(
        config.admin_writes_per_second,
        config.admin_write_burst,
    );
    let svc = admin_writes::AdminWrites::new(svc, Arc::new(bucket));
    let serving = Serving::new(sse_proto::FILE_DESCRIPTOR_SET)
        .secure(security, "sse-schema")
        .add_service(svc)
        .add_in_process_stream(
            sse_proto::paths::SCHEMA_PROCESS,
            move |events: Messages<ProcessRequest>| -> Messages<ProcessResponse> {
                Box::pin(in_process.start(events))
            },
        );
    // Ready while a publisher is reachable.
    let health = serving.health.clone();
    sse_runtime::health::set(&health, SERVICE_NAME, false).await;
    let (ready, readiness) = tokio::sync::watch::channel(false);
    let token = shutdown.token.clone();
    shutdown
        .tracker
        .spawn(publisher::follow_reachable(channel, ready, token.clone()));
    shutdown
        .tracker
        .spawn(write_behind::run(written_behind, token.clone()));
    shutdown.tracker.spawn(sse_runtime::health::follow(
        health,
        SERVICE_NAME,
        readiness,
        token,
    ));
    Ok(Started {
        serving,
        token: shutdown.token.clone(),
    })
}
