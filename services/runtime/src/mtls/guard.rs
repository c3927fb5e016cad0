//! The access check in front of every gRPC route: with mTLS, the caller's certificate must name
//! a role the method's rule (`sse_contract::access`) allows; without mTLS, admin writes are
//! refused unless the server listens on loopback only.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use sse_contract::access::{self, Access, Role};
use tonic::body::Body;
use tower_service::Service;

use super::accept::PeerInfo;
use super::identity::Identities;

/// How a server decides who may call what.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Callers proved their certificate: the access table decides, by their identity.
    Mtls(Identities),
    /// Plaintext on loopback (local development): everything is open.
    Open,
    /// Plaintext on a reachable address: admin writes and payload reads are refused, the rest stays open.
    NoAdminWrites {
        /// The address the server listens on, for the message.
        listen: SocketAddr,
    },
}

impl Policy {
    /// The refusal of a call to `path` by a caller with `peer`, if any.
    pub fn check(&self, path: &str, peer: Option<&PeerInfo>) -> Result<(), tonic::Status> {
        match self {
            Policy::Open => Ok(()),
            Policy::NoAdminWrites { listen } => match access::rule(path) {
                Some(a) if a.needs_mtls_off_loopback() => {
                    Err(tonic::Status::permission_denied(format!(
                        "{path} is {a}, and admin writes and payload reads are off: this server listens on {listen} \
                     without mTLS (set --grpc-tls-ca, --grpc-tls-cert and --grpc-tls-key, or \
                     listen on loopback)"
                    )))
                }
                _ => Ok(()),
            },
            Policy::Mtls(ids) => {
                let Some(rule) = access::rule(path) else {
                    return Err(tonic::Status::permission_denied(format!(
                        "{path} has no access rule: refused"
                    )));
                };
                let names: &[String] = peer.map_or(&[], |p| &p.names);
                if rule.allows(&ids.roles(names)) {
                    return Ok(());
                }
                Err(tonic::Status::permission_denied(format!(
                    "{path} is {rule} ({}); the caller's certificate names {names:?}",
                    allowed(rule, ids)
                )))
            }
        }
    }
}

/// The identities a rule lets in, for the refusal's message.
fn allowed(rule: Access, ids: &Identities) -> String {
    let roles: Vec<Role> = Role::ALL
        .into_iter()
        .filter(|r| rule.allows(&[*r]))
        .collect();
    roles
        .iter()
        .map(|r| format!("{}={}", r.name(), ids.of(*r)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Puts a [`Policy`] in front of a server's routes.
#[derive(Debug, Clone)]
pub struct GuardLayer(pub Arc<Policy>);

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            policy: self.0.clone(),
        }
    }
}

/// A server's routes behind a [`Policy`].
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Service<http::Request<Body>> for Guarded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let peer = req.extensions().get::<PeerInfo>();
        match self.policy.check(req.uri().path(), peer) {
            Ok(()) => Box::pin(self.inner.call(req)),
            Err(status) => {
                tracing::info!(
                    method = req.uri().path(),
                    peer = ?peer.and_then(|p| p.remote),
                    "gRPC call refused: {}",
                    status.message()
                );
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(names: &[&str]) -> PeerInfo {
        PeerInfo {
            remote: None,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn refusals_name_the_rule_and_the_caller() {
        let ids = Identities {
            by_role: Role::ALL
                .iter()
                .map(|r| (*r, format!("sse-{}", r.name())))
                .collect(),
        };
        let p = Policy::Mtls(ids);
        let process = "/sseconnector.v1.SchemaService/Process";
        assert!(p.check(process, Some(&peer(&["sse-ingest"]))).is_ok());
        let e = p.check(process, Some(&peer(&["sse-console"]))).unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied);
        assert!(e.message().contains("only the ingest identity"), "{e}");
        assert!(e.message().contains("ingest=sse-ingest"), "{e}");
        assert!(e.message().contains("sse-console"), "{e}");
        assert!(p.check(process, None).is_err());
        let unknown = p.check("/x.Y/Z", Some(&peer(&["sse-console"])));
        assert!(unknown.unwrap_err().message().contains("no access rule"));

        let put = "/sseconnector.v1.SchemaService/PutSchema";
        let exposed = Policy::NoAdminWrites {
            listen: "0.0.0.0:1".parse().unwrap(),
        };
        let e = exposed.check(put, None).unwrap_err();
        assert!(
            e.message()
                .contains("admin writes and payload reads are off"),
            "{e}"
        );
        assert!(exposed.check(process, None).is_ok());
        assert!(Policy::Open.check(put, None).is_ok());
    }
}
