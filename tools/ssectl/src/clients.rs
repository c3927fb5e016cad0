//! Connections to the services: every address given, over mTLS with the console identity when
//! its files are given, through sse-runtime's dialer (the same handshake the services use).
//! Reads ask every address and keep what answered ([`ask`]); `tail` and writes need every
//! address they use ([`links`]).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use sse_runtime::link::{Link, Locals};
use sse_runtime::mtls::{Mtls, MtlsFiles};
use sse_runtime::peers::Dialer;
use tonic::transport::Endpoint;

use crate::cli::Conn;
use crate::output::StdoutClosed;

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

/// One socket an address resolved to: a link to it, or why it could not be reached.
enum Socket {
    /// Connected; labelled as errors and answers name it.
    Up(String, Link),
    /// Not connected, and why.
    Down(SocketAddr, anyhow::Error),
}

/// The addresses of `addrs` as given, trimmed, blanks dropped.
fn given(addrs: &[String]) -> impl Iterator<Item = &str> {
    addrs.iter().map(|a| a.trim()).filter(|a| !a.is_empty())
}

/// Connects to every address `raw` resolves to (a headless Service name yields one per pod, as
/// sse-runtime's peer resolution does). An error when it does not resolve or none of them
/// answers; otherwise the sockets in order, without the other loopback family of `localhost`
/// when it failed (a service listening on 127.0.0.1 only is not down on ::1).
async fn dial(dialer: &Dialer, raw: &str) -> anyhow::Result<Vec<Socket>> {
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
    let mut out = Vec::with_capacity(socks.len());
    for sock in socks {
        let label = if many {
            format!("{a} ({sock})")
        } else {
            a.to_owned()
        };
        out.push(match dialer.connect(&endpoint, sock).await {
            Ok(link) => Socket::Up(label, link),
            Err(e) => Socket::Down(
                sock,
                anyhow::Error::new(e).context(format!("{label}: cannot connect")),
            ),
        });
    }
    if !out.iter().any(|s| matches!(s, Socket::Up(..))) {
        // Nothing of this name answered: one error names it.
        if let Some(Socket::Down(_, e)) = out.pop() {
            return Err(e);
        }
    }
    out.retain(|s| !matches!(s, Socket::Down(sock, _) if sock.ip().is_loopback()));
    Ok(out)
}

/// Connects to every address of `addrs`, in order, and to every address each name resolves to;
/// the first that fails ends the command (a pod of a name whose other pods answer is a
/// warning). For `tail` and the writes, which need every address they were given.
pub async fn links(dialer: &Dialer, addrs: &[String]) -> anyhow::Result<Vec<(String, Link)>> {
    let mut out = Vec::with_capacity(addrs.len());
    for raw in given(addrs) {
        for socket in dial(dialer, raw).await? {
            match socket {
                Socket::Up(label, link) => out.push((label, link)),
                Socket::Down(sock, e) => eprintln!(
                    "warning: {} (skipped {sock})",
                    sse_runtime::error_chain(e.as_ref())
                ),
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "no address given");
    Ok(out)
}

/// What the addresses a read asked answered: one replica that is down hides nothing the others
/// know, and is still reported.
pub struct Answers<T> {
    /// Each address that answered (as shown) with its answer, in the order given.
    pub got: Vec<(String, T)>,
    /// One error per address that could not be resolved or reached, or whose call failed.
    pub failed: Vec<anyhow::Error>,
}

/// Asks every address of `addrs` (and every address each name resolves to) with `call`, in
/// order, keeping each answer and each address's failure. When no address answers, the error
/// is [`Unanswered`] with every address's failure.
pub async fn ask<T, F, Fut>(
    dialer: &Dialer,
    addrs: &[String],
    mut call: F,
) -> anyhow::Result<Answers<T>>
where
    F: FnMut(Link) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let mut got = Vec::new();
    let mut failed = Vec::new();
    for raw in given(addrs) {
        let sockets = match dial(dialer, raw).await {
            Ok(sockets) => sockets,
            Err(e) => {
                failed.push(e);
                continue;
            }
        };
        for socket in sockets {
            match socket {
                Socket::Up(addr, link) => match call(link).await {
                    Ok(answer) => got.push((addr, answer)),
                    Err(s) => failed.push(refused(&addr, s)),
                },
                Socket::Down(_, e) => failed.push(e),
            }
        }
    }
    anyhow::ensure!(!got.is_empty() || !failed.is_empty(), "no address given");
    if got.is_empty() {
        return Err(Unanswered(failed).into());
    }
    Ok(Answers { got, failed })
}

/// Addresses a read could not get an answer from. `main` prints one `error:` line for each,
/// after whatever the others answered, and exits 1: the answer is partial, and scripts notice.
#[derive(Debug, thiserror::Error)]
#[error("{} addresses did not answer", .0.len())]
pub struct Unanswered(pub Vec<anyhow::Error>);

/// Ends a read whose answers were printed (`done`): `done` itself when every address answered;
/// otherwise [`Unanswered`] with the failed addresses, and `done`'s own error after them (a
/// closed standard output is no error of its own).
pub fn finish(mut failed: Vec<anyhow::Error>, done: anyhow::Result<()>) -> anyhow::Result<()> {
    if failed.is_empty() {
        return done;
    }
    if let Err(e) = done
        && !e.chain().any(|c| c.is::<StdoutClosed>())
    {
        failed.push(e);
    }
    Err(Unanswered(failed).into())
}

/// A server's refusal as the command's error: its message as it came (field errors included).
pub fn refused(addr: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{addr}: {:?}: {}", s.code(), s.message())
}
