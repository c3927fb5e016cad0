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

use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_proto::v1::publisher_service_server::PublisherServiceServer;
use sse_proto::v1::{PublishRequest, PublishResponse};
use sse_runtime::link::Messages;
use sse_runtime::serve::ServeError;
use sse_runtime::{Serving, Shutdown};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic_health::ServingStatus;

pub use config::Config;
pub use error::Error;

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
    let health = serving.health.clone();
    for name in ["", PUBLISHER_SERVICE] {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    // Health follows the broker connection.
    let mut connection = mqtt.connection();
    let token = shutdown.token.clone();
    shutdown.tracker.spawn(async move {
        loop {
            let status = if *connection.borrow_and_update() && !token.is_cancelled() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for name in ["", PUBLISHER_SERVICE] {
                health.set_service_status(name, status).await;
            }
            tokio::select! {
                changed = connection.changed() => if changed.is_err() { break },
                _ = token.cancelled() => break,
            }
        }
        for name in ["", PUBLISHER_SERVICE] {
            health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    });
    drop(mqtt);
    serving
        .run(listener, shutdown.token.clone())
        .await
        .map_err(|e| match e {
            e @ ServeError::HealthBind { .. } => Error::Config(e.to_string()),
            e => Error::Serve(e.to_string()),
        })
}

/// The gRPC service name health reports on.
const PUBLISHER_SERVICE: &str = <PublisherServiceServer<grpc::PublisherGrpc> as NamedService>::NAME;
