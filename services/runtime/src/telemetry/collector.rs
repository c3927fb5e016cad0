//! The connection to an OpenTelemetry collector, the same for every signal: TCP, plus TLS
//! (our one rustls with ring, the system roots and the target's CA file) for an `https`
//! endpoint; a tonic channel for OTLP/gRPC and opentelemetry-http's hyper client for OTLP/HTTP,
//! so neither tonic's TLS features nor reqwest bring a second TLS stack.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use opentelemetry_http::hyper::HyperClient;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::otlp_env::{Signal, Target};
use crate::tls::TlsError;

/// How long one export may take (the SDK's default too), so a stuck collector never piles up
/// batches.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A collector that cannot be reached as configured: its CA file. Names the file and the
/// signal, never key material.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The CA file for the signal's collector could not be used.
    #[error("{signal} collector CA file {path}: {source}")]
    Ca {
        /// The signal.
        signal: Signal,
        /// The file.
        path: PathBuf,
        /// Why.
        source: TlsError,
    },
}

/// TCP or TLS to one collector, per the target's URL.
#[derive(Clone, Debug)]
pub struct Connector {
    tls: Option<Arc<ClientConfig>>,
}

impl Connector {
    /// The connector for `target`: TLS (trusting the system roots and its CA file) for an
    /// `https` URL, offering `alpn` (`h2` for gRPC, `http/1.1` for HTTP).
    pub fn new(signal: Signal, target: &Target, alpn: &[u8]) -> Result<Self, CollectorError> {
        if !target.is_tls() {
            return Ok(Self { tls: None });
        }
        let ca_error = |path: &PathBuf, source| CollectorError::Ca {
            signal,
            path: path.clone(),
            source,
        };
        let extra = match &target.ca {
            Some(path) => crate::tls::load_certs(path).map_err(|e| ca_error(path, e))?,
            None => Vec::new(),
        };
        let mut config = crate::tls::client_config(extra).map_err(|e| {
            let path = target.ca.clone().unwrap_or_default();
            ca_error(&path, e)
        })?;
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Self {
            tls: Some(Arc::new(config)),
        })
    }

    async fn connect(tls: Option<Arc<ClientConfig>>, uri: Uri) -> io::Result<CollectorIo> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        let host = uri
            .host()
            .ok_or_else(|| invalid("collector URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = tls else {
            return Ok(CollectorIo::Plain(tcp));
        };
        let name =
            ServerName::try_from(host).map_err(|_| invalid("collector host is no TLS name"))?;
        let stream = TlsConnector::from(tls).connect(name, tcp).await?;
        Ok(CollectorIo::Tls(Box::new(stream)))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<CollectorIo>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        Box::pin(async move { Ok(TokioIo::new(Self::connect(tls, uri).await?)) })
    }
}

/// A lazily connecting gRPC channel to `target` (reconnects by itself).
pub fn grpc_channel(
    signal: Signal,
    target: &Target,
) -> Result<tonic::transport::Channel, CollectorError> {
    let connector = Connector::new(signal, target, b"h2")?;
    Ok(tonic::transport::Endpoint::from(target.url.clone())
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(EXPORT_TIMEOUT)
        .connect_with_connector_lazy(connector))
}

/// opentelemetry-http's hyper client over [`Connector`], for OTLP/HTTP to `target`.
pub fn http_client(
    signal: Signal,
    target: &Target,
) -> Result<HyperClient<Connector>, CollectorError> {
    let connector = Connector::new(signal, target, b"http/1.1")?;
    Ok(HyperClient::new(connector, EXPORT_TIMEOUT, None))
}

/// A connection to a collector: plain TCP (`http://`) or TLS (`https://`).
pub type CollectorIo = crate::client_io::ClientIo;
