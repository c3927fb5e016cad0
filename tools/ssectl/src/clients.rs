//! Connections to the services: every address given, over mTLS with the console identity when
//! its files are given, through sse-runtime's dialer (the same handshake the services use).

use std::sync::Arc;

use anyhow::Context as _;
use sse_runtime::link::{Link, Locals};
use sse_runtime::mtls::{Mtls, MtlsFiles};
use sse_runtime::peers::Dialer;
use tonic::transport::Endpoint;

use crate::cli::Conn;

/// How long connecting to one address may take before the command gives up on it.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A dialer for the command's connections.
pub fn dialer(conn: &Conn) -> anyhow::Result<Dialer> {
    let mtls = match (&conn.tls_ca, &conn.tls_cert, &conn.tls_key) {
        (Some(ca), Some(cert), Some(key)) => {
            let files = MtlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            };
            Some(Arc::new(
                Mtls::load(files).context("loading the TLS files")?,
            ))
        }
        _ => None,
    };
    Ok(Dialer::new(mtls, Locals::default()))
}

/// Connects to every address of `addrs`, in order; the first that fails ends the command.
pub async fn links(dialer: &Dialer, addrs: &[String]) -> anyhow::Result<Vec<(String, Link)>> {
    let mut out = Vec::with_capacity(addrs.len());
    for a in addrs.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        out.push((a.to_owned(), link(dialer, a).await?));
    }
    anyhow::ensure!(!out.is_empty(), "no address given");
    Ok(out)
}

/// Connects to one `host:port` (a scheme, if written, is ignored: TLS follows the flags).
async fn link(dialer: &Dialer, addr: &str) -> anyhow::Result<Link> {
    let hostport = addr
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
        .with_context(|| format!("{addr}: not an address"))?
        .connect_timeout(CONNECT_TIMEOUT);
    let sock = tokio::net::lookup_host(hostport)
        .await
        .with_context(|| format!("{addr}: cannot resolve"))?
        .next()
        .with_context(|| format!("{addr}: no address"))?;
    dialer
        .connect(&endpoint, sock)
        .await
        .with_context(|| format!("{addr}: cannot connect"))
}

/// A server's refusal as the command's error: its message as it came (field errors included).
pub fn refused(addr: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{addr}: {:?}: {}", s.code(), s.message())
}
