//! Mutual TLS between the services: the flags every service shares, the reloading certificate
//! files, the authenticated accept loop, caller identities and the per-method access check.
//! Without the flags, servers speak plaintext (local development) and refuse admin writes on any
//! address but loopback.

pub mod accept;
pub mod connect;
pub mod files;
pub mod guard;
pub mod identity;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sse_contract::access::Role;
use tonic::transport::Uri;

pub use files::{Mtls, MtlsFiles};
pub use guard::Policy;
pub use identity::Identities;

/// The gRPC security flags of every service (flattened into each one's configuration).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct GrpcSecurityArgs {
    /// CA certificates (PEM) that sign every service's certificate; with --grpc-tls-cert and
    /// --grpc-tls-key, turns on mTLS for this service's server and its calls to peers.
    #[arg(long, env = "GRPC_TLS_CA")]
    pub grpc_tls_ca: Option<PathBuf>,
    /// This service's certificate chain (PEM), presented as server and as client; re-read when
    /// it changes.
    #[arg(long, env = "GRPC_TLS_CERT")]
    pub grpc_tls_cert: Option<PathBuf>,
    /// This service's private key (PEM); re-read when it changes.
    #[arg(long, env = "GRPC_TLS_KEY")]
    pub grpc_tls_key: Option<PathBuf>,
    /// A plaintext listener that serves only grpc.health.v1, for probes that present no client
    /// certificate (the kubelet's).
    #[arg(long, env = "HEALTH_LISTEN")]
    pub health_listen: Option<SocketAddr>,
    /// The certificate identity (DNS or URI SAN) of sse-ingest.
    #[arg(long, env = "GRPC_INGEST_IDENTITY", default_value = identity::DEFAULT_INGEST)]
    pub ingest_identity: String,
    /// The certificate identity (DNS or URI SAN) of sse-schema.
    #[arg(long, env = "GRPC_SCHEMA_IDENTITY", default_value = identity::DEFAULT_SCHEMA)]
    pub schema_identity: String,
    /// The certificate identity (DNS or URI SAN) of sse-publisher.
    #[arg(long, env = "GRPC_PUBLISHER_IDENTITY", default_value = identity::DEFAULT_PUBLISHER)]
    pub publisher_identity: String,
    /// The certificate identity (DNS or URI SAN) of operators' tools: the only caller of admin
    /// writes under mTLS.
    #[arg(long, env = "GRPC_CONSOLE_IDENTITY", default_value = identity::DEFAULT_CONSOLE)]
    pub console_identity: String,
}

/// Why the gRPC security settings cannot be used; names the flag.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Only some of the three TLS files were given.
    #[error(
        "--grpc-tls-ca, --grpc-tls-cert and --grpc-tls-key (GRPC_TLS_CA, GRPC_TLS_CERT, GRPC_TLS_KEY) go together: {0} missing"
    )]
    Partial(&'static str),
    /// The TLS files do not load.
    #[error("gRPC TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// An identity is empty.
    #[error("--{0}-identity is empty")]
    EmptyIdentity(&'static str),
    /// A peer URL's scheme does not match whether mTLS is on.
    #[error("{reason}")]
    PeerScheme {
        /// What is wrong.
        reason: &'static str,
    },
}

/// A service's gRPC security, loaded.
#[derive(Debug, Clone)]
pub struct Security {
    /// The service's mTLS material; `None`: plaintext.
    pub mtls: Option<Arc<Mtls>>,
    /// Who is who, by certificate identity.
    pub identities: Identities,
    /// Where the plaintext health-only listener goes, if anywhere.
    pub health_listen: Option<SocketAddr>,
}

impl GrpcSecurityArgs {
    /// Checks the flags and loads the TLS files.
    pub fn load(&self) -> Result<Security, SecurityError> {
        let files = match (&self.grpc_tls_ca, &self.grpc_tls_cert, &self.grpc_tls_key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(MtlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            (None, ..) => return Err(SecurityError::Partial("--grpc-tls-ca")),
            (_, None, _) => return Err(SecurityError::Partial("--grpc-tls-cert")),
            (_, _, None) => return Err(SecurityError::Partial("--grpc-tls-key")),
        };
        let by_role: Vec<(Role, String)> = Role::ALL
            .into_iter()
            .zip([
                &self.ingest_identity,
                &self.schema_identity,
                &self.publisher_identity,
                &self.console_identity,
            ])
            .map(|(r, id)| (r, id.trim().to_string()))
            .collect();
        if let Some((r, _)) = by_role.iter().find(|(_, id)| id.is_empty()) {
            return Err(SecurityError::EmptyIdentity(r.name()));
        }
        Ok(Security {
            mtls: files.map(Mtls::load).transpose()?.map(Arc::new),
            identities: Identities { by_role },
            health_listen: self.health_listen,
        })
    }

    /// Whether the TLS files are given (mTLS is on).
    pub fn is_mtls(&self) -> bool {
        self.grpc_tls_ca.is_some() || self.grpc_tls_cert.is_some() || self.grpc_tls_key.is_some()
    }

    /// Checks that the peer URL `uri` is `https://` exactly when mTLS is on: a plaintext call
    /// from a service that has certificates is a mistake, and so is an `https://` peer without
    /// them.
    pub fn check_peer(&self, uri: &Uri) -> Result<(), SecurityError> {
        match (uri.scheme_str(), self.is_mtls()) {
            (Some("https"), true) | (Some("http"), false) => Ok(()),
            (Some("https"), false) => Err(SecurityError::PeerScheme {
                reason: "https:// needs --grpc-tls-ca, --grpc-tls-cert and --grpc-tls-key",
            }),
            (Some("http"), true) => Err(SecurityError::PeerScheme {
                reason: "mTLS is on (--grpc-tls-*): the peer must be https://",
            }),
            _ => Err(SecurityError::PeerScheme {
                reason: "expected http://host:port or https://host:port",
            }),
        }
    }
}

impl Security {
    /// Plaintext with the default identities: a server that was given no flags.
    pub fn plaintext() -> Self {
        Security {
            mtls: None,
            identities: Identities::defaults(),
            health_listen: None,
        }
    }

    /// The access policy of a server listening on `listen`; warns loudly when admin writes are
    /// turned off for want of mTLS.
    pub fn policy(&self, listen: SocketAddr, service: &str) -> Policy {
        if self.mtls.is_some() {
            return Policy::Mtls(self.identities.clone());
        }
        if listen.ip().is_loopback() {
            return Policy::Open;
        }
        let off = sse_contract::access::refused_without_mtls(service).join(", ");
        tracing::warn!(
            %listen,
            "{service} listens on a non-loopback address WITHOUT mTLS: any client that reaches \
             it can call it; {off} are OFF. Set --grpc-tls-ca, --grpc-tls-cert and \
             --grpc-tls-key (docs/security.md)"
        );
        Policy::NoAdminWrites { listen }
    }
}
