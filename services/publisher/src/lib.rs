//! sse-publisher: receives events from the schema service over a gRPC bidi stream, publishes
//! each to its MQTT 5 destination (topic with CloudEvents properties, or the broker state store),
//! and acknowledges it upstream once the broker has it.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod dead_letter;
pub mod error;
pub mod event;
pub mod grpc;
pub mod metrics;
pub mod mqtt;
pub mod properties;
pub mod state_store;
pub mod tail;

use std::time::Duration;

use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_proto::v1::publisher_service_server::{PublisherServiceServer, SERVICE_NAME};
use sse_proto::v1::{PublishRequest, PublishResponse};
use sse_runtime::link::{Local, Messages};
use sse_runtime::serve::ServeError;
use sse_runtime::{Serving, Shutdown};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::{Config, Settings};
pub use error::Error;

/// How long, after the gRPC server stops, the process waits for its tasks (publishes in flight
/// and their acks) before it exits anyway.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Serves `PublisherService` on `listener` until `shutdown` is cancelled, then drains.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: Shutdown,
) -> Result<(), Error> {
    start(settings, &shutdown).await?.serve(listener).await
}

/// The publisher connected (or connecting) to its broker, its gRPC service built but not yet
/// served: `sse-connector` hands [`Started::local`] to the schema service first.
pub struct Started {
    serving: Serving,
    token: CancellationToken,
}

/// Starts the broker connection and the health that follows it, and builds the gRPC service.
pub async fn start(settings: Settings, shutdown: &Shutdown) -> Result<Started, Error> {
    let Settings {
        flags,
        mqtt,
        security,
        tail,
    } = settings;
    let metrics = metrics::Metrics::from_global();
    let mqtt = mqtt::Mqtt::start(mqtt, shutdown, metrics.clone());
    let grpc = grpc::PublisherGrpc::new(
        mqtt.clone(),
        shutdown.clone(),
        flags.ack_delay,
        metrics,
        tail,
    );
    let in_process = grpc.clone();
    let serving = Serving::new(sse_proto::FILE_DESCRIPTOR_SET)
        .secure(security, "sse-publisher")
        // The contract's limit: schema encodes batches within it, so none is refused here.
        .add_service(
            PublisherServiceServer::new(grpc)
                .max_decoding_message_size(GRPC_MESSAGE_BYTES_MAX)
                .max_encoding_message_size(GRPC_MESSAGE_BYTES_MAX),
        )
        .add_in_process_stream(
            sse_proto::paths::PUBLISHER_PUBLISH,
            move |events: Messages<PublishRequest>| -> Messages<PublishResponse> {
                Box::pin(in_process.start(events))
            },
        );
    // Health follows the broker connection.
    let health = serving.health.clone();
    sse_runtime::health::set(&health, SERVICE_NAME, false).await;
    shutdown.tracker.spawn(sse_runtime::health::follow(
        health,
        SERVICE_NAME,
        mqtt.connection(),
        shutdown.token.clone(),
    ));
    Ok(Started {
        serving,
        token: shutdown.token.clone(),
    })
}

impl Started {
    /// The publisher as the schema service of this process calls it, with no socket between.
    pub fn local(&self) -> Result<Local, Error> {
        self.serving.local().map_err(serve_error)
    }

    /// Serves on `listener` until the shutdown token is cancelled.
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        self.serving
            .run(listener, self.token)
            .await
            .map_err(serve_error)
    }
}

/// A health listener that cannot bind is the operator's configuration; the rest is serving.
fn serve_error(e: ServeError) -> Error {
    match e {
        e @ ServeError::HealthBind { .. } => Error::Config(e.to_string()),
        e => Error::Serve(e.to_string()),
    }
}
