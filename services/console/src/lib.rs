//! `sse-console`: the web console of sse-connector. It talks only to the three services' gRPC
//! APIs (with the console identity under mTLS), fans out over every address of each, and serves
//! server-rendered pages with vendored htmx: devices and assets with their forms, streams,
//! schemas and their history, live events, discovered event types.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod assets;
pub mod auth;
pub mod backend;
pub mod connections;
pub mod forms;
pub mod headers;
pub mod https;
pub mod layout;
pub mod pages;
pub mod server;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use sse_runtime::link::Locals;
use sse_runtime::mtls::Mtls;
use sse_runtime::peers::{Dialer, Peers, RESOLVE_EVERY, Target, parse_targets};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use settings::{AccessSettings, Config, ConsoleArgs, SettingsError};

use backend::{Backend, Service};

/// Why the console stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is wrong (exit 64).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Serving failed.
    #[error("console: {0}")]
    Serve(#[from] std::io::Error),
}

impl sse_runtime::process::Fault for Error {
    fn is_config(&self) -> bool {
        matches!(self, Error::Settings(_))
    }
}

/// Where the three services are and how to reach them.
pub struct Services {
    /// sse-ingest's peer URL.
    pub ingest: String,
    /// sse-schema's peer URL.
    pub schema: String,
    /// sse-publisher's peer URL.
    pub publisher: String,
    /// The console identity's mTLS material; `None`: plaintext.
    pub mtls: Option<Arc<Mtls>>,
    /// Servers of this process (the embedded console calls them in-process).
    pub locals: Locals,
}

impl Services {
    /// The addresses of ingest, schema and publisher, parsed (by [`Checked::new`]).
    pub fn targets(&self) -> Result<[Vec<Target>; 3], SettingsError> {
        let parse = |flag: &'static str, url: &str| {
            parse_targets(url).map_err(|source| SettingsError::Peer { flag, source })
        };
        Ok([
            parse("ingest", &self.ingest)?,
            parse("schema", &self.schema)?,
            parse("publisher", &self.publisher)?,
        ])
    }
}

/// The console's flags and the services' addresses, checked: `sse-console` makes it before
/// binding its port and [`serve`]s with it, so nothing is checked (nor TLS files loaded) twice.
pub struct Checked {
    /// The console's own flags.
    pub args: ConsoleArgs,
    /// Its access rules and TLS configuration.
    pub access: AccessSettings,
    /// The addresses of ingest, schema and publisher.
    pub targets: [Vec<Target>; 3],
}

impl Checked {
    /// Checks `args` against the address the console listens on (`listen`; port 0 is fine) and
    /// parses the services' addresses: the one check of the console's configuration.
    pub fn new(
        args: ConsoleArgs,
        listen: SocketAddr,
        services: &Services,
    ) -> Result<Self, SettingsError> {
        let access = args.access(listen)?;
        let targets = services.targets()?;
        Ok(Self {
            args,
            access,
            targets,
        })
    }
}

/// Runs the console with a configuration already checked on `listener` until `stop`. Must be
/// called inside the Tokio runtime.
pub async fn serve(
    listener: TcpListener,
    checked: Checked,
    services: Services,
    stop: CancellationToken,
) -> Result<(), Error> {
    let addr = listener.local_addr()?;
    let Checked {
        args,
        access: settings,
        targets: [ingest, schema, publisher],
    } = checked;
    let dialer = Dialer::new(services.mtls, services.locals);
    let service = |targets| Service::new(Peers::spawn(targets, RESOLVE_EVERY), dialer.clone());
    let backend = Backend {
        ingest: service(ingest),
        schema: service(schema),
        publisher: service(publisher),
    };
    let live = pages::events::Live::new(
        args.console_live_views_max,
        args.console_event_payload_bytes,
        args.console_live_list_max,
    );
    let streams = Arc::new(pages::streams::LiveTable::new(
        args.console_stream_views_max,
    ));
    let state = server::AppState {
        backend,
        live,
        streams,
        stop: stop.clone(),
    };
    let access = auth::Access::new(&settings, addr.port());
    let scheme = if settings.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let login = if settings.token_file.is_some() {
        "login required"
    } else {
        "no login (loopback)"
    };
    tracing::info!(%addr, scheme, login, "console serving");
    let app = server::app(state, access);
    let h2_streams =
        connections::h2_streams_max(args.console_live_views_max + args.console_stream_views_max);
    server::serve(listener, app, settings.tls, h2_streams, stop).await?;
    Ok(())
}
