//! A minimal HTTP/1.1 client for the services' admin port (`--admin-listen`): one request per
//! connection, the reply read to its end.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An admin port's answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `content-type` header (empty when absent).
    pub content_type: String,
    /// The body, as text.
    pub body: String,
}

/// Sends `method path` to the admin port at `addr` and reads the whole reply.
pub async fn request(addr: SocketAddr, method: &str, path: &str) -> anyhow::Result<Reply> {
    send(addr, method, path, "").await
}

/// [`request`] with `headers` (each line ending in CRLF) added to the request head.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
) -> anyhow::Result<Reply> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    // A server refusing a large head may answer and close before reading it all.
    let _ = tcp.write_all(req.as_bytes()).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(crate::DEADLINE, tcp.read_to_end(&mut raw))
        .await
        .context("admin port reply in time")?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("no end of head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok(Reply {
        status,
        content_type,
        body: body.to_string(),
    })
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
    request(addr, "GET", path).await
}
