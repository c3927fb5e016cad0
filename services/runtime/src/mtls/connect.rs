//! The client side of mTLS: a connection to one peer address, plaintext or TLS with this
//! service's certificate, verifying the peer's certificate against the CA bundle and the name in
//! the peer's URL.

use std::io;
use std::net::SocketAddr;

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::Uri;

use super::files::Mtls;

/// A connection to a peer service: plaintext (mTLS off) or TLS authenticated both ways.
pub type PeerIo = crate::client_io::ClientIo;

/// Connects to `addr`; with `mtls`, completes a TLS handshake in which the peer proves the name
/// of `uri`'s host and this service presents its own certificate.
pub async fn connect(addr: SocketAddr, uri: &Uri, mtls: Option<&Mtls>) -> io::Result<PeerIo> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let Some(mtls) = mtls else {
        return Ok(PeerIo::Plain(tcp));
    };
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "peer host is no TLS name"))?;
    let tls = TlsConnector::from(mtls.client()).connect(name, tcp).await?;
    Ok(PeerIo::Tls(Box::new(tls)))
}
