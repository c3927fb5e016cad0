//! sse-ingest: loads Device and Asset resources, reads one SSE stream per distinct URL, routes
//! each event to the datasets and asset events it belongs to, and streams the routed events to
//! the schema service over one `SchemaService.Process` stream (acks flowing back).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod config;
pub mod error;
pub mod event;
pub mod forward;
pub mod grpc;
pub mod resources;
pub mod routing;
pub mod sse;
pub mod status;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use sse_proto::v1::ingest_service_server::IngestServiceServer;
use sse_runtime::{Serving, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

pub use config::Config;
pub use error::Error;

/// Routed events queued between the stream readers and the forwarder.
const EVENT_QUEUE: usize = 1024;
/// How long shutdown waits for in-flight events to be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs ingest on an already-bound listener until `shutdown` is cancelled: loads resources,
/// starts one reader per stream and the forwarder (under the shutdown tracker) and serves
/// `IngestService` with health and reflection. Returns when the gRPC server has stopped; the
/// caller drains the tracker for the forwarder's final acks.
pub async fn run(listener: TcpListener, config: Config, shutdown: Shutdown) -> Result<(), Error> {
    let endpoint = config
        .schema_endpoint()?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    let res = resources::load_dir(&config.resources)?;
    for e in &res.errors {
        tracing::warn!(resource = %e.resource, file = %e.file, error = %e.message, "resource cannot be served");
    }
    let plans = routing::plan(&res);
    tracing::info!(
        dir = %config.resources.display(),
        devices = res.devices.len(),
        assets = res.assets.len(),
        streams = plans.len(),
        errors = res.errors.len(),
        "resources loaded"
    );
    let status = Arc::new(status::Status::new(&plans, res.errors));

    let api = IngestServiceServer::new(grpc::IngestApi::new(status.clone()));
    let serving = Serving::new(sse_proto::FILE_DESCRIPTOR_SET).add_service(api);
    let health = serving.health.clone();
    set_health(&health, false).await;

    let token = shutdown.token.clone();
    let (open_tx, open_rx) = watch::channel(false);
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let forwarder = forward::Forwarder {
        endpoint,
        max_in_flight: usize::try_from(config.max_in_flight).unwrap_or(usize::MAX),
        drain_timeout: DRAIN_TIMEOUT,
        status: status.clone(),
        open: open_tx,
    };
    let forwarder_token = token.clone();
    shutdown.tracker.spawn(async move {
        forwarder.run(events_rx, forwarder_token).await;
        tracing::debug!("forwarder stopped");
    });
    let settings = streams::StreamSettings {
        secrets_dir: config.secrets_dir.clone(),
        trust_dir: config.trust_dir.clone(),
        read_timeout: config.read_timeout,
        max_event_bytes: config.max_event_bytes,
    };
    for plan in plans {
        tracing::info!(stream = %plan.key, routes = ?plan.subjects(), "reading stream");
        let task = streams::StreamTask::new(
            Arc::new(plan),
            settings.clone(),
            status.clone(),
            events_tx.clone(),
        );
        shutdown.tracker.spawn(task.run(token.clone()));
    }
    drop(events_tx);
    shutdown
        .tracker
        .spawn(follow_health(health, open_rx, token.clone()));

    serving.run(listener, token).await?;
    Ok(())
}

/// Sets overall and `IngestService` health.
async fn set_health(health: &HealthReporter, serving: bool) {
    let s = if serving {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", s).await;
    health
        .set_service_status("sseconnector.v1.IngestService", s)
        .await;
}

/// Health follows the Process stream to schema (resources are loaded before it starts).
async fn follow_health(
    health: HealthReporter,
    mut open: watch::Receiver<bool>,
    token: tokio_util::sync::CancellationToken,
) {
    loop {
        let up = *open.borrow_and_update();
        if token.is_cancelled() {
            break;
        }
        set_health(&health, up).await;
        tokio::select! {
            r = open.changed() => if r.is_err() { break },
            _ = token.cancelled() => break,
        }
    }
    set_health(&health, false).await;
}
