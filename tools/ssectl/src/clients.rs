//! Connections to the services: every address given, over mTLS with the console identity when
//! its files are given, through sse-runtime's dialer (the same handshake the services use).

use std::net::SocketAddr;
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

/// Connects to every address of `addrs`, in order, and to every address each name resolves to
/// (a headless Service name yields one per pod, as sse-runtime's peer resolution does); the
/// first that fails ends the command.
pub async fn links(dialer: &Dialer, addrs: &[String]) -> anyhow::Result<Vec<(String, Link)>> {
    let mut out = Vec::with_capacity(addrs.len());
    for raw in addrs.iter().map(|a| a.trim()).filter(|a| !a.is_empty()) {
        // What errors and labels show: an address given with a password does not print it.
        let a = &sse_runtime::shown_url::shown(raw);
        let hostport = raw
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let endpoint = Endpoint::from_shared(format!("http://{hostport}"))
            .with_context(|| format!("{a}: not an address"))?
            .connect_timeout(CONNECT_TIMEOUT);
        let mut socks: Vec<SocketAddr> = tokio::net::lookup_host(hostport)
            .await
            .with_context(|| format!("{a}: cannot resolve"))?
            .collect();
        socks.sort();
        socks.dedup();
        anyhow::ensure!(!socks.is_empty(), "{a}: no address");
        let many = socks.len() > 1;
        let mut failed = Vec::new();
        let before = out.len();
        for sock in socks {
            let label = if many {
                format!("{a} ({sock})")
            } else {
                a.to_owned()
            };
            match dialer.connect(&endpoint, sock).await {
                Ok(link) => out.push((label, link)),
                Err(e) => failed.push((
                    sock,
                    anyhow::Error::new(e).context(format!("{label}: cannot connect")),
                )),
            }
        }
        if out.len() == before {
            // Nothing of this name answered: that ends the command.
            if let Some((_, e)) = failed.pop() {
                return Err(e);
            }
        }
        // Some replica of the name answered: the others are reported, except the other loopback
        // family of `localhost` (a service listening on 127.0.0.1 only is not down on ::1).
        for (sock, e) in failed.into_iter().filter(|(s, _)| !s.ip().is_loopback()) {
            eprintln!(
                "warning: {} (skipped {sock})",
                sse_runtime::error_chain(e.as_ref())
            );
        }
    }
    anyhow::ensure!(!out.is_empty(), "no address given");
    Ok(out)
}

/// A server's refusal as the command's error: its message as it came (field errors included).
pub fn refused(addr: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{addr}: {:?}: {}", s.code(), s.message())
}
