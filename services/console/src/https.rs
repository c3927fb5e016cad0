//! HTTPS for the console's pages (`--console-tls-cert`, `--console-tls-key`): rustls with the
//! ring provider, as everywhere in the project. ALPN offers `h2`, then `http/1.1`: a client that
//! asks for neither gets HTTP/1.1. Each handshake runs in its own task, bounded in
//! number and time like the gRPC servers', so a silent client never holds up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sse_runtime::mtls::accept::{HANDSHAKE_TIMEOUT, HANDSHAKES_MAX};
use sse_runtime::reload::Reloaded;
use sse_runtime::tls::{self, TlsError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The server configuration of a certificate chain and its key (checked to belong together);
/// the files are read again when they change, so a rotated certificate (cert-manager's) is
/// served from the next handshake without a restart.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let files = [cert.to_path_buf(), key.to_path_buf()];
    let certificate = Reloaded::load(files, "console TLS certificate", certified)?;
    let mut config = ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Current(certificate)));
    // HTTP/2 first: a browser's live pages then share one connection instead of waiting for
    // one of its six HTTP/1.1 connections to the host (connections.rs).
    config.alpn_protocols = vec![H2.to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The ALPN name of HTTP/2.
const H2: &[u8] = b"h2";

impl crate::connections::Negotiated for TlsStream<TcpStream> {
    fn is_h2(&self) -> bool {
        self.get_ref().1.alpn_protocol() == Some(H2)
    }
}

/// The certificate and key of the files `[cert, key]`, checked to belong together.
fn certified([cert, key]: &[PathBuf; 2]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = tls::load_certs(cert)?;
    let key_what = key.display().to_string();
    let pem = std::fs::read(key).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        reason: e.kind().to_string(),
    })?;
    let private = tls::parse_private_key(&pem, &key_what)?;
    let certified = tls::certified_key(chain, private, &cert.display().to_string(), &key_what)?;
    Ok(Arc::new(certified))
}

/// The certificate of the files as they are at each handshake.
#[derive(Debug)]
struct Current(Reloaded<Arc<CertifiedKey>, 2>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current(certified))
    }
}

/// The connections whose handshake completed, for [`crate::connections::serve`].
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` with `config` until `stop`.
    pub fn new(
        listener: TcpListener,
        config: Arc<ServerConfig>,
        stop: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), stop, tx));
        Ok(Self { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // Stopped: the graceful shutdown ends the server; accept nothing more meanwhile.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    stop: CancellationToken,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(HANDSHAKES_MAX));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "console: cannot accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%remote, "console: too many TLS handshakes in progress; connection closed");
            continue;
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(io)) => {
                    let _ = tx.send((io, remote)).await;
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "console: TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "console: TLS handshake timed out"),
            }
        });
    }
}
