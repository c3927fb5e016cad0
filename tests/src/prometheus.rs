//! A real Prometheus server (Debian's `prometheus`) on a free loopback port, scraping the given
//! targets every second with a generated configuration, and a client of its HTTP query API.
//! Stopped when dropped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::process::{Child, Command};

use crate::broker::free_port;

/// One sample of an instant query: its labels (with `__name__` when the query keeps it) and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// A running Prometheus.
pub struct Prometheus {
    /// Its HTTP address.
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, address)` at `/metrics` every second, and waits
    /// until it is ready.
    pub async fn start(targets: &[(&str, SocketAddr)]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut conf = String::from(
            "global: { scrape_interval: 1s, evaluation_interval: 1s }\nscrape_configs:\n",
        );
        for (job, addr) in targets {
            conf.push_str(&format!(
                "  - job_name: {job}\n    static_configs: [{{ targets: [\"{addr}\"] }}]\n"
            ));
        }
        let conf_path = dir.path().join("prometheus.yml");
        std::fs::write(&conf_path, conf)?;
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", conf_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("prometheus (apt: prometheus; `just setup` installs it) must be on PATH")?;
        let mut p = Self {
            addr,
            child,
            _dir: dir,
        };
        p.wait_ready().await?;
        Ok(p)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = get(self.addr, "/-/ready").await {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("prometheus exited with {status}: {}", self.log());
            }
            if start.elapsed() > crate::DEADLINE {
                bail!("prometheus not ready: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its log, for a failure message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The samples of the instant query `promql`, now.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = get(self.addr, &path).await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if status != 200 || v["status"] != "success" {
            bail!("query {promql}: HTTP {status}: {v}");
        }
        let mut out = Vec::new();
        for r in v["data"]["result"].as_array().into_iter().flatten() {
            let labels = r["metric"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let value = r["value"][1].as_str().unwrap_or("NaN").parse::<f64>()?;
            out.push((labels, value));
        }
        Ok(out)
    }

    /// The single value of `promql` (a query that sums to one sample), or `None` while it has none.
    pub async fn value(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        let samples = self.query(promql).await?;
        Ok(match samples.as_slice() {
            [(_, v)] => Some(*v),
            [] => None,
            more => bail!("{promql} gave {} samples, not one: {more:?}", more.len()),
        })
    }

    /// Waits until `promql` has a single value satisfying `ok`, returning it; fails naming the
    /// query and the last value after [`crate::DEADLINE`].
    pub async fn wait_for(&self, promql: &str, ok: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
        let start = Instant::now();
        loop {
            let v = self.value(promql).await?;
            match v {
                Some(v) if ok(v) => return Ok(v),
                _ if start.elapsed() > crate::DEADLINE => {
                    bail!("{promql} is {v:?} after {:?}", crate::DEADLINE)
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Every metric name Prometheus has scraped.
    pub async fn metric_names(&self) -> anyhow::Result<Vec<String>> {
        let (status, body) = get(self.addr, "/api/v1/label/__name__/values").await?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if status != 200 {
            bail!("label values: HTTP {status}: {v}");
        }
        Ok(v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect())
    }
}

/// `GET http://addr{path}`: the status and body.
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Bytes)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// Percent-encodes a query value (everything but unreserved characters).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The metric names a PromQL expression (a dashboard panel's, an alert rule's) reads: every
/// identifier of ours (`sse_connector_*`, `messaging_*`) with a histogram's `_bucket`, `_sum` or
/// `_count` suffix kept, as Prometheus stores it.
pub fn metric_names_in(promql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = promql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start_ok = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if start_ok
            && (promql[i..].starts_with("sse_connector_") || promql[i..].starts_with("messaging_"))
        {
            let end = promql[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(promql.len(), |n| i + n);
            // A label of that name (`sse_device`) is not a metric: metrics are followed by `{`,
            // `[`, `)`, whitespace or the end, never by `=`/`!=`/`=~`.
            let next = promql[end..].trim_start();
            if !(next.starts_with('=') || next.starts_with("!=")) {
                out.push(promql[i..end].to_string());
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_from_promql() {
        let q = r#"histogram_quantile(0.99, sum by (le) (rate(sse_connector_event_latency_seconds_bucket{job=~"$job"}[5m]))) + sum by (error_type) (messaging_client_sent_messages_total{error_type!=""})"#;
        assert_eq!(
            metric_names_in(q),
            [
                "messaging_client_sent_messages_total",
                "sse_connector_event_latency_seconds_bucket"
            ]
        );
    }
}
