//! sse-publisher: receives events from the schema service over a gRPC bidi stream, publishes
//! each to its MQTT 5 destination (topic with CloudEvents properties, or the broker state store),
//! and acknowledges it upstream once the broker has it.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod config;
pub mod error;
pub mod event;
pub mod grpc;
pub mod mqtt;
pub mod properties;
pub mod state_store;

use std::time::Duration;

use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_proto::v1::publisher_service_server::{PublisherServiceServer, SERVICE_NAME};
use sse_proto::v1::{PublishRequest, PublishResponse};
use sse_runtime::link::Messages;
use sse_runtime::serve::ServeError;
use sse_runtime::{Serving, Shutdown};
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;

/// How long, after the gRPC server stops, the process waits for its tasks (publishes in flight
/// and their acks) before it exits anyway.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);

/// Serves `PublisherService` on `listener` until `shutdown` is cancelled, then drains.
pub async fn run(listener: TcpListener, config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let security = config
        .grpc
        .load()
        .map_err(|e| Error::Config(e.to_string()))?;
    let settings = config.mqtt_settings()?;
    let mqtt = mqtt::Mqtt::start(settings, &shutdown);
    let grpc = grpc::PublisherGrpc::new(mqtt.clone(), shutdown.clone(), config.ack_delay);
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
    drop(mqtt);
    serving
        .run(listener, shutdown.token.clone())
        .await
        .map_err(|e| match e {
            e @ ServeError::HealthBind { .. } => Error::Config(e.to_string()),
            e => Error::Serve(e.to_string()),
        })
}
