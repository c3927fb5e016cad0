//! HTTPS for the console's pages (`--console-tls-cert`, `--console-tls-key`): rustls with the
//! ring provider, as everywhere in the project. Each handshake runs in its own task, bounded in
//! number and time like the gRPC servers', so a silent client never holds up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sse_runtime::mtls::accept::{HANDSHAKE_TIMEOUT, HANDSHAKES_MAX};
use sse_runtime::tls::{self, FileStamp, TlsError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// The server configuration of a certificate chain and its key (checked to belong together);
/// the files are read again when they change, so a rotated certificate (cert-manager's) is
/// served from the next handshake without a restart.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = Reloading::load(cert, key)?;
    let mut config = ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate and key of two files, checked to belong together.
fn certified(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = tls::load_certs(cert)?;
    let key_what = key.display().to_string();
    let pem = std::fs::read(key).map_err(|e| TlsError::Pem {
        path: key.to_path_buf(),
        reason: e.kind().to_string(),
    })?;
    let private = tls::parse_private_key(&pem, &key_what)?;
    tls::certified_key(chain, private, &cert.display().to_string(), &key_what)
}

/// The certificate of the files as they are at each handshake.
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Current>,
}

/// The certificate served, the files' stamps it was read at, and the last stamps tried.
struct Current {
    served: Arc<CertifiedKey>,
    stamp: [FileStamp; 2],
    tried: [FileStamp; 2],
}

impl Reloading {
    /// Reads the files now: an error here is a configuration error (exit 64).
    fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamp = [tls::file_stamp(cert), tls::file_stamp(key)];
        let served = Arc::new(certified(cert, key)?);
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(Current {
                served,
                stamp,
                tried: stamp,
            }),
        })
    }

    /// The certificate of the files now. A version that does not load (a rotation caught
    /// between the two files, a key that does not match) keeps the last good one, with one
    /// warning per version.
    fn current(&self) -> Arc<CertifiedKey> {
        let now = [tls::file_stamp(&self.cert), tls::file_stamp(&self.key)];
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now == s.stamp || now == s.tried {
            return s.served.clone();
        }
        s.tried = now;
        match certified(&self.cert, &self.key) {
            Ok(c) => {
                tracing::info!(cert = %self.cert.display(), "console TLS certificate reloaded");
                s.served = Arc::new(c);
                s.stamp = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "console TLS files changed but do not load; keeping the previous certificate");
            }
        }
        s.served.clone()
    }
}

impl std::fmt::Debug for Reloading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The connections whose handshake completed, for `axum::serve`.
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
