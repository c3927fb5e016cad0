//! `sse-connector`: ingest, schema and publisher in one process, for a laptop or a small edge box
//! where three processes would be three times the wake-ups for every event.
//!
//! Each service runs exactly as its own binary does (same library, same gRPC streams between
//! them, each with its own gRPC server, health and reflection), on one tokio thread; each service
//! is handed the next one's server and calls its gRPC routes in-process (`sse_runtime::link`; the
//! event streams with their messages as they are, not encoded), so an event crosses no socket or
//! process boundary before the broker. Shutdown goes in the order of the stream: ingest stops
//! reading and drains first, then schema, then the publisher, so what ingest sent out is
//! published and acknowledged before its consumer stops.

pub mod args;
pub mod embedded;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::{ArgMatches, FromArgMatches};
use sse_runtime::Shutdown;
use sse_runtime::link::Locals;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use args::Part;

/// The three services' configurations, parsed by their own parsers.
#[derive(Debug)]
pub struct Configs {
    /// Ingest's; its `schema` address is set when the schema service is bound.
    pub ingest: sse_ingest::Settings,
    /// The schema service's; its `publisher` address is set when the publisher is bound.
    pub schema: sse_schema::Settings,
    /// The publisher's.
    pub publisher: sse_publisher::Settings,
    /// The embedded console's; it runs when `console_listen` is set.
    pub console: sse_console::ConsoleArgs,
    /// The embedded console's access settings, checked once at parse time (`None`: no console).
    pub console_access: Option<sse_console::AccessSettings>,
}

/// Why the connector could not start or stopped with an error; each names its service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A service's flags (or environment variables) did not parse.
    #[error("{0}: {1}")]
    Args(&'static str, String),
    /// `sse-ingest` failed.
    #[error("sse-ingest: {0}")]
    Ingest(#[from] sse_ingest::Error),
    /// `sse-schema` failed.
    #[error("sse-schema: {0}")]
    Schema(#[from] sse_schema::Error),
    /// `sse-publisher` failed.
    #[error("sse-publisher: {0}")]
    Publisher(#[from] sse_publisher::Error),
    /// A service's listen address could not be bound.
    #[error("{part}: cannot listen on {addr}: {source}")]
    Bind {
        /// Which service.
        part: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded console failed.
    #[error("sse-console: {0}")]
    Console(#[from] sse_console::Error),
    /// A service's task ended without a result (it panicked).
    #[error("{0}: task failed: {1}")]
    Task(&'static str, String),
}

impl Error {
    /// Whether the error is the operator's configuration (the binary exits with code 64).
    pub fn is_config(&self) -> bool {
        match self {
            Error::Args(..) | Error::Bind { .. } => true,
            Error::Ingest(e) => e.is_config(),
            Error::Schema(e) => e.is_config(),
            Error::Publisher(e) => matches!(e, sse_publisher::Error::Config(_)),
            Error::Console(e) => matches!(e, sse_console::Error::Settings(_)),
            Error::Task(..) => false,
        }
    }
}

/// The embedded console's name in errors and logs.
const CONSOLE: &str = "sse-console";

/// A placeholder peer address while parsing; replaced by the bound one before anything connects.
const PLACEHOLDER: &str = "127.0.0.1:1";

/// The scheme of the peer URLs inside the process: `https` when the services have mTLS
/// certificates (the links are in-process all the same, but each service checks its peer URL
/// against its own TLS settings).
fn scheme(ingest: &sse_ingest::Config) -> &'static str {
    if ingest.grpc.is_mtls() {
        "https"
    } else {
        "http"
    }
}

impl Configs {
    /// Reads each service's configuration from the connector's matches ([`args::parse`]) with
    /// the service's own derived parser, and checks what each service checks before it starts.
    pub fn parse(matches: &ArgMatches) -> Result<Self, Error> {
        let clap_err = |part: Part, e: clap::Error| Error::Args(part.name(), e.to_string());
        let mut ingest = sse_ingest::Config::from_arg_matches(matches)
            .map_err(|e| clap_err(Part::Ingest, e))?
            .with_aliases(|k| std::env::var(k).ok());
        let mut schema = sse_schema::Config::from_arg_matches(matches)
            .map_err(|e| clap_err(Part::Schema, e))?
            .with_env(|k| std::env::var(k).ok());
        let mut publisher = sse_publisher::Config::from_arg_matches(matches)
            .map_err(|e| clap_err(Part::Publisher, e))?;
        let console = sse_console::ConsoleArgs::from_arg_matches(matches)
            .map_err(|e| Error::Args(CONSOLE, e.to_string()))?;
        // A console that could not serve safely stops the process before anything binds; what
        // the check makes is what it serves with.
        let console_access = console
            .console_listen
            .map(|at| console.access(at))
            .transpose()
            .map_err(sse_console::Error::from)?;
        let listen = |part: Part| matches.get_one::<SocketAddr>(part.listen_id()).copied();
        schema.listen = listen(Part::Schema).unwrap_or(schema.listen);
        publisher.listen = listen(Part::Publisher).unwrap_or(publisher.listen);
        // SCHEMA_ADDR / PUBLISHER_ADDR in the environment mean nothing here: the peers are in
        // this process.
        // One health-only port for the process (ingest's), whatever HEALTH_LISTEN says.
        schema.grpc.health_listen = None;
        publisher.grpc.health_listen = None;
        let placeholder = format!("{}://{PLACEHOLDER}", scheme(&ingest));
        let placeholder: http::Uri = placeholder
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Args(Part::Schema.name(), e.to_string()))?;
        schema.publisher = placeholder.clone();
        ingest.schema = placeholder;
        // ADR authorises by the client id CONNECTOR_ID gives, which the publisher would take
        // too by default: one id, two connections, each would evict the other.
        let files = ingest.resource_source == sse_ingest::source::ResourceSource::Files;
        if let (Some(Ok(Some(c))), None, false) =
            (&ingest.akri_contract, &publisher.client_id, files)
        {
            publisher.client_id = Some(sse_contract::akri::client_id(&c.connector_id, "publisher"));
        }
        let publisher = publisher.settings()?;
        // Resume is on by default: without --checkpoint-store, checkpoints are kept on the
        // publisher's broker, with its URL, TLS and credentials (`--checkpoint-store none`:
        // off); ADR is reached on it too unless --adr-broker says otherwise.
        ingest.publisher_broker = Some(publisher.mqtt.client.broker.clone());
        // The Azure schema registry too (`--registry auto` picks it under the Akri contract),
        // as `{CONNECTOR_ID}-schema` unless --registry-mqtt-url / -client-id say otherwise.
        schema.publisher_broker = Some(publisher.mqtt.client.broker.clone());
        Ok(Self {
            ingest: ingest.settings()?,
            schema: schema.settings()?,
            publisher,
            console,
            console_access,
        })
    }
}

/// Binds the three services, runs them until `stop` is cancelled (or one of them ends), then
/// stops them in the order of the stream. Returns the first error of any of them.
pub async fn run(configs: Configs, stop: CancellationToken) -> Result<(), Error> {
    let Configs {
        mut ingest,
        mut schema,
        publisher,
        console,
        console_access,
    } = configs;
    let pl = bind(publisher.flags.listen, Part::Publisher).await?;
    let sl = bind(schema.flags.listen, Part::Schema).await?;
    let scheme = scheme(&ingest.flags);
    let publisher_at = peer_addr(&pl, publisher.flags.listen, Part::Publisher)?;
    schema.flags.publisher = peer_uri(publisher_at, Part::Publisher, scheme)?;
    let il = bind(ingest.flags.listen, Part::Ingest).await?;
    let schema_at = peer_addr(&sl, schema.flags.listen, Part::Schema)?;
    ingest.flags.schema = peer_uri(schema_at, Part::Schema, scheme)?;
    let ingest_at = peer_addr(&il, ingest.flags.listen, Part::Ingest)?;
    let at = [ingest_at, schema_at, publisher_at];
    let console = embedded::bind(console, console_access, at).await?;

    let parts = [Shutdown::new(), Shutdown::new(), Shutdown::new()];
    // Each service is handed the next one's server before anything serves, so every call
    // between them is in-process from the first.
    let started = async {
        let publisher = sse_publisher::start(publisher, &parts[2]).await?;
        let to_publisher = Locals::default().with(publisher_at, publisher.local()?);
        let schema = sse_schema::start(schema, &parts[1], to_publisher).await?;
        let to_schema = Locals::default().with(schema_at, schema.local()?);
        Ok::<_, Error>((publisher, schema, to_schema))
    };
    let (publisher, schema, to_schema) = match started.await {
        Ok(started) => started,
        Err(e) => {
            parts.iter().for_each(|p| p.token.cancel());
            return Err(e);
        }
    };
    let servers = [schema.local()?, publisher.local()?];
    let publisher_task = spawn(publisher.serve(pl), stop.clone());
    let schema_task = spawn(schema.serve(sl), stop.clone());
    let (expose, exposed) = tokio::sync::oneshot::channel();
    let ingest = sse_ingest::run_exposed(il, ingest, parts[0].clone(), to_schema, Some(expose));
    let ingest_task = spawn(ingest, stop.clone());
    let console_task = console.map(|c| spawn(c.run(exposed, servers, stop.clone()), stop.clone()));
    stop.cancelled().await;
    // The console goes first: it only reads, and its pages would fail once ingest stops.
    let console = match console_task {
        Some(task) => task
            .await
            .unwrap_or_else(|e| Err(Error::Task(CONSOLE, e.to_string()))),
        None => Ok(()),
    };
    let services = stop_in_order(
        [
            (Part::Ingest, ingest_task, sse_ingest::SHUTDOWN_DRAIN),
            (Part::Schema, schema_task, sse_schema::SHUTDOWN_DRAIN),
            (
                Part::Publisher,
                publisher_task,
                sse_publisher::SHUTDOWN_DRAIN,
            ),
        ],
        &parts,
    )
    .await;
    services.and(console)
}

/// Stops each service in turn (its token, then its task, then its drain), in the order of the
/// stream; the first error of any of them.
async fn stop_in_order(
    order: [(Part, Task, std::time::Duration); 3],
    parts: &[Shutdown; 3],
) -> Result<(), Error> {
    tracing::info!("stopping: ingest, then schema, then publisher");
    let mut first: Option<Error> = None;
    for ((part, task, drain), shutdown) in order.into_iter().zip(parts) {
        shutdown.token.cancel();
        let result = task
            .await
            .unwrap_or_else(|e| Err(Error::Task(part.name(), e.to_string())));
        if !shutdown.drain(drain).await {
            tracing::warn!(
                service = part.name(),
                "shutdown: tasks still running after {drain:?}"
            );
        }
        if let Err(e) = result {
            tracing::error!(service = part.name(), error = %e, "stopped with an error");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// A service running as a task.
type Task = JoinHandle<Result<(), Error>>;

/// Runs a service as a task; when it ends on its own, `stop` takes the others down with it.
fn spawn<E: Into<Error>>(
    service: impl Future<Output = Result<(), E>> + Send + 'static,
    stop: CancellationToken,
) -> Task {
    tokio::spawn(async move {
        let r = service.await.map_err(Into::into);
        stop.cancel();
        r
    })
}

/// Binds `addr`, printing `sse-connector <service> listening on <addr>` (ingest, the front door,
/// prints `sse-connector listening on <addr>`).
async fn bind(addr: SocketAddr, part: Part) -> Result<TcpListener, Error> {
    let label = match part {
        Part::Ingest => "sse-connector",
        Part::Schema => "sse-connector schema",
        Part::Publisher => "sse-connector publisher",
    };
    sse_runtime::bind(addr, label)
        .await
        .map_err(|source| Error::Bind {
            part: part.name(),
            addr,
            source,
        })
}

/// Where a service in this process reaches `part`, bound on `listener` (asked for `addr`): a
/// wildcard address is reached through loopback.
fn peer_addr(listener: &TcpListener, addr: SocketAddr, part: Part) -> Result<SocketAddr, Error> {
    let local = listener.local_addr().map_err(|source| Error::Bind {
        part: part.name(),
        addr,
        source,
    })?;
    let ip = match local.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, local.port()))
}

/// The peer URL of `part` at `at`.
fn peer_uri(at: SocketAddr, part: Part, scheme: &str) -> Result<http::Uri, Error> {
    format!("{scheme}://{at}")
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::Bind {
            part: part.name(),
            addr: at,
            source: std::io::Error::other(e),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn local(l: &TcpListener) -> SocketAddr {
        l.local_addr().unwrap()
    }

    #[tokio::test]
    async fn a_peer_bound_on_a_wildcard_is_reached_through_loopback() {
        let any = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = any.local_addr().unwrap().port();
        let at = peer_addr(&any, local(&any), Part::Schema).unwrap();
        assert_eq!(at, SocketAddr::from(([127, 0, 0, 1], port)));
        let uri = peer_uri(at, Part::Schema, "http").unwrap();
        assert_eq!(uri.to_string(), format!("http://127.0.0.1:{port}/"));
        let lo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = lo.local_addr().unwrap();
        assert_eq!(peer_addr(&lo, addr, Part::Publisher).unwrap(), addr);
    }

    #[test]
    fn only_configuration_errors_exit_64() {
        assert!(Error::Args("sse-ingest", "x".into()).is_config());
        let bind = Error::Bind {
            part: "sse-schema",
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert!(bind.is_config());
        assert!(
            bind.to_string()
                .starts_with("sse-schema: cannot listen on 127.0.0.1:1")
        );
        assert!(!Error::Task("sse-ingest", "panicked".into()).is_config());
        let broker = Error::Publisher(sse_publisher::Error::Unavailable);
        assert!(!broker.is_config());
    }

    fn configs(extra: &[&str]) -> Configs {
        let dir = tempfile::tempdir().unwrap();
        let res = dir.path().display().to_string();
        let mut args = vec!["--mqtt-url", "mqtts://broker:8884", "--mqtt-username", "u"];
        args.extend_from_slice(&["--resources", &res]);
        args.extend_from_slice(extra);
        let all = std::iter::once("sse-connector").chain(args.iter().copied());
        let Ok(args::Parsed::Run(matches)) = args::parse(all.map(std::ffi::OsString::from)) else {
            panic!("parses")
        };
        Configs::parse(&matches).unwrap()
    }

    /// #19 point 8: one process resumes by default, on the publisher's broker.
    #[test]
    fn checkpoints_are_kept_on_the_publishers_broker_unless_turned_off() {
        use sse_ingest::checkpoint::StoreConfig;
        let StoreConfig::Mqtt {
            broker,
            prefix,
            client_id: None,
        } = configs(&[]).ingest.flags.checkpoint_store().unwrap()
        else {
            panic!("checkpoints on the broker by default")
        };
        assert_eq!(broker.address.to_string(), "mqtts://broker:8884");
        assert!(broker.tls.is_some());
        assert_eq!(broker.credentials.username.as_deref(), Some("u"));
        assert_eq!(prefix, sse_ingest::checkpoint::DEFAULT_PREFIX);
        let off = configs(&["--checkpoint-store", "none"]);
        assert_eq!(
            off.ingest.flags.checkpoint_store().unwrap(),
            StoreConfig::None
        );
        let file = configs(&["--checkpoint-store", "/tmp/c.json"]);
        assert!(matches!(
            file.ingest.flags.checkpoint_store().unwrap(),
            StoreConfig::File(_)
        ));
    }
}
