//! The three services as the console sees them: every address of each (the peer resolution of
//! sse-runtime, so a headless Service name yields one address per pod), one lazy gRPC link per
//! address, over mTLS with the console identity when it has one. Reads ask every address and
//! merge; writes go to the first ingest address (every replica watches the same directory).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sse_proto::v1::ingest_service_client::IngestServiceClient;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_runtime::link::Link;
use sse_runtime::peers::{Dialer, Peers};
use tonic::transport::Endpoint;

/// How long connecting to one address may take before that address counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one call may take: a page never hangs on one slow replica.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Every address of one service, with a link to each.
#[derive(Clone)]
pub struct Service {
    peers: Peers,
    dialer: Dialer,
    links: Arc<Mutex<HashMap<SocketAddr, Link>>>,
}

impl Service {
    /// The service at `peers`, reached through `dialer`.
    pub fn new(peers: Peers, dialer: Dialer) -> Self {
        Self {
            peers,
            dialer,
            links: Arc::default(),
        }
    }

    /// A link to each current address, in address order (empty until the first resolution).
    pub fn links(&self) -> Vec<(SocketAddr, Link)> {
        let current = self.peers.current();
        let mut cache = self.links.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|a, _| current.iter().any(|p| p.addr == *a));
        current
            .iter()
            .map(|p| {
                let link = cache.entry(p.addr).or_insert_with(|| {
                    let endpoint = Endpoint::from(p.uri.clone())
                        .connect_timeout(CONNECT_TIMEOUT)
                        .timeout(CALL_TIMEOUT);
                    self.dialer.connect_lazy(&endpoint, p.addr)
                });
                (p.addr, link.clone())
            })
            .collect()
    }

    /// Asks for a new resolution (after a failed call: a pod may have moved).
    pub fn refresh(&self) {
        self.peers.refresh();
    }
}

/// The three services.
#[derive(Clone)]
pub struct Backend {
    /// sse-ingest replicas.
    pub ingest: Service,
    /// sse-schema replicas.
    pub schema: Service,
    /// sse-publisher pods.
    pub publisher: Service,
}

impl Backend {
    /// An ingest client per replica.
    pub fn ingests(&self) -> Vec<(SocketAddr, IngestServiceClient<Link>)> {
        let l = self.ingest.links();
        l.into_iter()
            .map(|(a, l)| (a, IngestServiceClient::new(l)))
            .collect()
    }

    /// The ingest replica writes go to; `None` while no address is known.
    pub fn ingest_writer(&self) -> Option<(SocketAddr, IngestServiceClient<Link>)> {
        self.ingests().into_iter().next()
    }

    /// A schema client per replica.
    pub fn schemas(&self) -> Vec<(SocketAddr, SchemaServiceClient<Link>)> {
        let l = self.schema.links();
        l.into_iter()
            .map(|(a, l)| {
                // A page holding one large schema is up to the services' limit, above tonic's
                // default of 4 MiB.
                let c = SchemaServiceClient::new(l)
                    .max_decoding_message_size(sse_contract::limits::GRPC_MESSAGE_BYTES_MAX);
                (a, c)
            })
            .collect()
    }

    /// A publisher client per pod.
    pub fn publishers(&self) -> Vec<(SocketAddr, PublisherServiceClient<Link>)> {
        let l = self.publisher.links();
        l.into_iter()
            .map(|(a, l)| (a, PublisherServiceClient::new(l)))
            .collect()
    }
}
