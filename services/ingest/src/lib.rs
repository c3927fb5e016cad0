//! sse-ingest: loads Device and Asset resources, reads one SSE stream per distinct URL, routes
//! each event to the datasets and asset events it belongs to, and streams the routed events to
//! the schema service over one `SchemaService.Process` stream (acks flowing back).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod adr;
pub mod adr_cache;
pub mod adr_source;
pub mod adr_status;
pub mod akri;
pub mod auth;
pub mod budget;
pub mod checkpoint;
pub mod config;
pub mod discovery;
pub mod error;
pub mod event;
pub mod forward;
pub mod grpc;
pub mod metrics;
pub mod reload;
pub mod report;
pub mod resource_write;
pub mod resources;
pub mod routing;
pub mod secret_access;
pub mod shard;
pub mod source;
pub mod span;
pub mod sse;
pub mod status;
pub mod stream_key;
pub mod streams;
pub mod supervisor;
mod text;
pub mod watch;

use std::sync::Arc;
use std::time::Duration;

use sse_proto::v1::ingest_service_server::{IngestServiceServer, SERVICE_NAME};
use sse_runtime::link::Locals;
use sse_runtime::peers::Dialer;
use sse_runtime::{Serving, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use config::{Config, Settings};
pub use error::Error;

/// Routed events queued between the stream readers and the forwarder.
const EVENT_QUEUE: usize = 1024;
/// How long, after the gRPC server stops, the process waits for its tasks (the forwarder's
/// final acks, checkpoints) before it exits anyway.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(10);
/// How long shutdown waits for in-flight events to be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs ingest on an already-bound listener until `shutdown` is cancelled: loads resources,
/// starts one reader per stream and the forwarder (under the shutdown tracker) and serves
/// `IngestService` with health and reflection. Returns when the gRPC server has stopped; the
/// caller drains the tracker for the forwarder's final acks.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: Shutdown,
) -> Result<(), Error> {
    run_linked(listener, settings, shutdown, Locals::default()).await
}

/// [`run`], calling the schema service through `locals` where they name one of its addresses
/// (`sse-connector` hands over the schema service of its own process).
pub async fn run_linked(
    listener: TcpListener,
    settings: Settings,
    shutdown: Shutdown,
    locals: Locals,
) -> Result<(), Error> {
    run_exposed(listener, settings, shutdown, locals, None).await
}

/// [`run_linked`], also handing ingest's own server to `expose` once it is built (before it
/// serves): `sse-connector` gives it to its embedded console, which then calls it in-process.
pub async fn run_exposed(
    listener: TcpListener,
    settings: Settings,
    shutdown: Shutdown,
    locals: Locals,
    expose: Option<tokio::sync::oneshot::Sender<sse_runtime::link::Local>>,
) -> Result<(), Error> {
    let config = &settings.flags;
    let status = Arc::new(new_status(config));
    let access = Arc::new(access_file(config)?);
    let last_good = Arc::new(resources::LastGood::default());
    // From ADR, the first resources arrive once the ADR client is connected (below).
    let first = match settings.adr {
        None => Some(reload::load(&settings, &status, &access, &last_good, None).await?),
        Some(_) => None,
    };
    // No plan yet from ADR: the checkpoints drop no record before the first one.
    let (res, plans) = first.map(|f| (f.resources, f.plans)).unwrap_or_default();

    let dialer = Dialer::new(settings.security.mtls.clone(), locals);
    let serving = server(&settings, &status, &access, expose)?;
    let health = serving.health.clone();
    sse_runtime::health::set(&health, SERVICE_NAME, false).await;
    let token = shutdown.token.clone();
    let Some(checkpoints) = open_checkpoints(config, &token).await? else {
        return Ok(()); // shut down while waiting for the store
    };
    let checkpoints = save_checkpoints(config, checkpoints, settings.adr.is_some(), &shutdown);
    let (open_tx, open_rx) = tokio::sync::watch::channel(false);
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let mut stream_settings = stream_settings(config);
    let forwarder = forwarder(
        config,
        dialer,
        &stream_settings,
        &status,
        &checkpoints,
        open_tx,
    );
    register_metrics(config, &status, &stream_settings, &forwarder, &checkpoints);
    let forwarder_token = token.clone();
    shutdown.tracker.spawn(async move {
        forwarder.run(events_rx, forwarder_token).await;
        tracing::debug!("forwarder stopped");
    });
    // The Akri mounts' other layouts come with the ADR resource source.
    stream_settings.akri_layouts = settings.adr.is_some();
    if let Some(reporter) = reporter(&settings, &status, &events_tx) {
        shutdown.tracker.spawn(reporter.run(token.clone()));
    }
    if let Some(topic) = discovery_topic(&settings, &status, &events_tx) {
        shutdown.tracker.spawn(topic.run(token.clone()));
    }
    let mut streams = supervisor::Supervisor::new(
        stream_settings,
        status.clone(),
        events_tx,
        shutdown.tracker.clone(),
        token.clone(),
        checkpoints,
    );
    if let Some(plans) = plans {
        streams.apply(plans).await;
    }
    let watched = reload::Watched { res, last_good };
    follow(settings, streams, status, access, watched, &shutdown)?;
    // Health follows the Process stream to schema (resources are loaded before it starts).
    shutdown.tracker.spawn(sse_runtime::health::follow(
        health,
        SERVICE_NAME,
        open_rx,
        token.clone(),
    ));

    serving.run(listener, token).await?;
    Ok(())
}

/// Ingest's gRPC server, not yet serving; handed to `expose` (the embedded console) first.
fn server(
    settings: &Settings,
    status: &Arc<status::Status>,
    access: &Arc<secret_access::AccessFile>,
    expose: Option<tokio::sync::oneshot::Sender<sse_runtime::link::Local>>,
) -> Result<Serving, Error> {
    let serving = Serving::new(sse_proto::FILE_DESCRIPTOR_SET)
        .secure(settings.security.clone(), "sse-ingest")
        .add_service(api(settings, status, access));
    if let Some(tx) = expose {
        // The console may have stopped already: then no one needs it.
        let _ = tx.send(serving.local()?);
    }
    Ok(serving)
}

/// `IngestService`, its resource writes included.
fn api(
    settings: &Settings,
    status: &Arc<status::Status>,
    access: &Arc<secret_access::AccessFile>,
) -> IngestServiceServer<grpc::IngestApi> {
    let writes = writes(settings, access);
    let api = grpc::IngestApi::new(status.clone()).with_writes(Arc::new(writes));
    // The largest request is a PutResource document; a larger one is refused from its frame
    // header, before it is decoded.
    IngestServiceServer::new(api).max_decoding_message_size(resource_write::REQUEST_BYTES_MAX)
}

/// The resource write API over `--resources` (refusing every write in ADR mode).
fn writes(
    settings: &Settings,
    access: &Arc<secret_access::AccessFile>,
) -> resource_write::grpc::Writes {
    let config = &settings.flags;
    let store = resource_write::Store::new(
        config.resources.clone(),
        usize::try_from(config.max_resource_file_bytes).unwrap_or(usize::MAX),
        settings.adr.is_some(),
    )
    .with_secrets(resource_write::secrets::Secrets {
        dir: config.secrets_dir.clone(),
        access: access.clone(),
    });
    resource_write::grpc::Writes::new(
        store,
        config.resource_writes_per_second,
        config.resource_write_burst,
    )
}

/// The status every part of ingest shares, keeping discovered types within the flags' limits.
fn new_status(config: &Config) -> status::Status {
    let discovery = discovery::Discovery::new(discovery::Limits {
        max_types: config.discovery_max_types,
        sample_bytes: config.discovery_sample_bytes,
    });
    status::Status::default().with_discovery(Arc::new(discovery))
}

/// Makes ingest's instruments, which read the status, budget, window and checkpoints when
/// collected.
fn register_metrics(
    config: &Config,
    status: &Arc<status::Status>,
    streams: &streams::StreamSettings,
    forwarder: &forward::Forwarder,
    checkpoints: &Arc<checkpoint::Checkpoints>,
) {
    metrics::register(
        &sse_runtime::metrics::meter(),
        &metrics::Sources {
            status: status.clone(),
            budget: streams.budget.clone(),
            max_in_flight: config.max_in_flight,
            forward: forwarder.meters.clone(),
            checkpoints: checkpoints.clone(),
        },
    );
}

/// Keeps the streams following their resources: the ADR source when configured, else the
/// resources directory (`watched`: what was loaded from it at start).
fn follow(
    settings: Settings,
    streams: supervisor::Supervisor,
    status: Arc<status::Status>,
    access: Arc<secret_access::AccessFile>,
    watched: reload::Watched,
    shutdown: &Shutdown,
) -> Result<(), Error> {
    if let Some(source) = settings.adr.clone() {
        let follower = adr_source::Follower {
            settings,
            source,
            streams,
            status,
            access,
        };
        return follower.start(shutdown);
    }
    let token = shutdown.token.clone();
    let follow = reload::follow_resources(settings, streams, status, access, watched, token);
    shutdown.tracker.spawn(follow);
    Ok(())
}

/// The forwarder to the schema service, within the configured in-flight limits.
fn forwarder(
    config: &Config,
    dialer: Dialer,
    streams: &streams::StreamSettings,
    status: &Arc<status::Status>,
    checkpoints: &Arc<checkpoint::Checkpoints>,
    open: tokio::sync::watch::Sender<bool>,
) -> forward::Forwarder {
    forward::Forwarder {
        endpoint: schema_endpoint(config),
        dialer,
        max_in_flight: usize::try_from(config.max_in_flight).unwrap_or(usize::MAX),
        max_in_flight_bytes: usize::try_from(config.max_in_flight_bytes).unwrap_or(usize::MAX),
        budget: streams.budget.clone(),
        drain_timeout: DRAIN_TIMEOUT,
        status: status.clone(),
        checkpoints: checkpoints.clone(),
        open,
        meters: metrics::ForwardMeters::new(&sse_runtime::metrics::meter()),
    }
}

/// The schema service as the forwarder dials it: its URL with timeouts and keep-alives.
fn schema_endpoint(config: &Config) -> tonic::transport::Endpoint {
    config
        .schema_endpoint()
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
}

/// The secret allow-list (`--secret-access`), bounded like a resource file.
fn access_file(config: &Config) -> Result<secret_access::AccessFile, Error> {
    secret_access::AccessFile::open(
        config.secret_access.clone(),
        usize::try_from(config.max_resource_file_bytes).unwrap_or(usize::MAX),
        config.secrets_dir.as_deref(),
    )
}

/// How each stream reader connects and reads, from the flags.
fn stream_settings(config: &Config) -> streams::StreamSettings {
    streams::StreamSettings {
        secrets_dir: config.secrets_dir.clone(),
        trust_dir: config.trust_dir.clone(),
        read_timeout: config.read_timeout,
        max_event_bytes: config.max_event_bytes,
        min_reconnect_delay: config.min_reconnect_delay,
        budget: budget::Budget::new(
            usize::try_from(config.max_in_flight_bytes).unwrap_or(usize::MAX),
        ),
        per_stream: usize::try_from(config.max_in_flight_per_stream).unwrap_or(usize::MAX),
        trust_bundle: config.trust_bundle.clone(),
        system_roots: !config.no_system_roots,
        akri_layouts: false,
    }
}

/// The status reporter, unless status reports are off. Several replicas each report the part
/// they read; the first reports the rest too.
fn reporter(
    settings: &Settings,
    status: &Arc<status::Status>,
    out: &mpsc::Sender<event::RoutedEvent>,
) -> Option<report::Reporter> {
    let prefix = settings.status_prefix.clone()?;
    if settings.shard.replicas() > 1 {
        status.set_partial(settings.shard.ordinal() == 0);
    }
    Some(report::Reporter {
        status: status.clone(),
        prefix,
        interval: settings.flags.status_interval,
        out: out.clone(),
    })
}

/// The discovery topic's publisher, when `--discovery-topic` is set; with several replicas each
/// publishes the endpoints it reads under its ordinal, as the status reports do.
fn discovery_topic(
    settings: &Settings,
    status: &Arc<status::Status>,
    out: &mpsc::Sender<event::RoutedEvent>,
) -> Option<discovery::topic::TopicPublisher> {
    let root = settings.flags.discovery_topic.trim_end_matches('/');
    if root.is_empty() {
        return None;
    }
    let prefix = match settings.shard.replicas() {
        1 => root.to_string(),
        _ => format!("{root}/{}", settings.shard.ordinal()),
    };
    Some(discovery::topic::TopicPublisher {
        discovery: status.discovery().clone(),
        prefix,
        out: out.clone(),
    })
}

/// Opens the checkpoint store, waiting with backoff while it is unreachable (a broker not up
/// yet); `None` when shut down meanwhile. Reading starts only after the checkpoints are loaded,
/// so no stream restarts from its live end by mistake. A file store whose path cannot work (a
/// directory, under a file, not writable) is a configuration error: waiting would not fix it.
/// The checkpoints with their retention, saved every `--checkpoint-interval` until shutdown.
fn save_checkpoints(
    config: &Config,
    checkpoints: checkpoint::Checkpoints,
    adr: bool,
    shutdown: &Shutdown,
) -> Arc<checkpoint::Checkpoints> {
    let retention = checkpoint::Policy {
        retention: config.checkpoint_retention,
        absent_max: usize::try_from(config.checkpoint_absent_max).unwrap_or(usize::MAX),
    };
    // ADR allocates other pods other assets: their streams are in no plan of this one.
    let checkpoints = Arc::new(checkpoints.with_retention(retention, adr));
    let token = shutdown.token.clone();
    shutdown
        .tracker
        .spawn(checkpoints.clone().run(config.checkpoint_interval, token));
    checkpoints
}

async fn open_checkpoints(
    config: &Config,
    token: &tokio_util::sync::CancellationToken,
) -> Result<Option<checkpoint::Checkpoints>, Error> {
    let store = config.checkpoint_store()?;
    let mut backoff = sse_runtime::Backoff::standard();
    loop {
        match checkpoint::Checkpoints::open(&store, token.clone()).await {
            Ok(c) => return Ok(Some(c)),
            Err(e) if e.is_config() => {
                return Err(Error::Config(format!(
                    "--checkpoint-store (CHECKPOINT_STORE): {e}"
                )));
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot load the checkpoints; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = token.cancelled() => return Ok(None),
                }
            }
        }
    }
}
