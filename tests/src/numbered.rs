//! An SSE source that numbers its events (`id: N`, `data: {"n":N,...}`) from 1 to a total,
//! honours `Last-Event-ID` (it resumes after it) and can drop the connection every N events:
//! the fault tests count what reaches the broker against it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::TcpListener;

use crate::source::{Reply, SeenRequest, SseSource, block};

/// How a [`NumberedSource`] emits.
#[derive(Debug, Clone, Copy)]
pub struct Numbering {
    /// The last event number; after it the stream stays open with keep-alive comments.
    pub total: u64,
    /// Pause before each event (the pace of the stream).
    pub interval: Duration,
    /// End the response after this many events of one connection (the client reconnects
    /// with `Last-Event-ID`); `None` keeps the connection.
    pub drop_every: Option<u64>,
}

/// A running numbered SSE source; every path serves the same numbered stream.
pub struct NumberedSource {
    /// The underlying HTTP server (requests seen, address).
    pub source: SseSource,
    /// How it emits.
    pub numbering: Numbering,
}

impl NumberedSource {
    /// Serves on a free loopback port until dropped.
    pub async fn start(numbering: Numbering) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let feed = Arc::new(move |req: &SeenRequest| {
            let after: u64 = req
                .header("last-event-id")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            Reply::Sse(Box::pin(numbered_stream(numbering, after)))
        });
        Ok(Self {
            source: SseSource::start(listener, feed)?,
            numbering,
        })
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        self.source.base_url()
    }

    /// The `Last-Event-ID` of every request so far (None for a fresh start).
    pub fn resumed_from(&self) -> Vec<Option<String>> {
        self.source
            .seen()
            .iter()
            .map(|r| r.header("last-event-id").map(str::to_string))
            .collect()
    }
}

/// Resources for a numbered source at `base`: device `counter`, asset `numbers` whose dataset
/// `all` reads `/numbers` and publishes it to `topic` at QoS 1.
pub fn resources(base: &str, topic: &str) -> String {
    resources_with(base, &[("all", "/numbers", topic)])
}

/// Like [`resources`], with one dataset per `(name, data source path, topic)`: each path is
/// its own SSE stream of the same numbered events.
pub fn resources_with(base: &str, datasets: &[(&str, &str, &str)]) -> String {
    let datasets: String = datasets
        .iter()
        .map(|(name, path, topic)| {
            format!(
                "    - {{ name: {name}, dataSource: {path}, destinations: [ {{ target: Mqtt, configuration: {{ topic: {topic}, qos: Qos1 }} }} ] }}\n"
            )
        })
        .collect();
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: counter }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{base}" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: numbers }}
spec:
  deviceRef: {{ deviceName: counter, endpointName: sse-0 }}
  datasets:
{datasets}"#
    )
}

/// A fresh test directory whose `resources/` holds [`resources`] for the source at `base`
/// (pass `<dir>/resources` as `--resources`); the rest of the directory is the test's.
pub fn resources_dir(base: &str, topic: &str) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res)?;
    std::fs::write(res.join("numbers.yaml"), resources(base, topic))?;
    Ok(dir)
}

/// The SSE text of event `n`.
pub fn numbered_event(n: u64) -> String {
    block(
        Some(&n.to_string()),
        None,
        &format!(r#"{{"n":{n},"station":"numbered","reading":{}}}"#, n % 97),
    )
}

/// The event number in a payload `{"n":N,...}`.
pub fn number_of(payload: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()?
        .get("n")?
        .as_u64()
}

/// The event numbers of the messages on `topic` (payloads `{"n":N,...}`), in arrival order.
pub fn numbers_on(msgs: &[crate::mqtt::Received], topic: &str) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m.topic == topic)
        .filter_map(|m| number_of(&m.payload))
        .collect()
}

fn numbered_stream(
    numbering: Numbering,
    after: u64,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    let first = after + 1;
    let last = match numbering.drop_every {
        Some(k) => numbering.total.min(after.saturating_add(k.max(1))),
        None => numbering.total,
    };
    let hello = futures::stream::once(async { Bytes::from_static(b"retry: 200\n\n") });
    let interval = numbering.interval;
    let events = futures::stream::iter(first..=last).then(move |n| async move {
        if !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        Bytes::from(numbered_event(n))
    });
    let dropping = numbering.drop_every.is_some() && last < numbering.total;
    let hold = futures::stream::unfold((), move |()| async move {
        if dropping {
            return None; // end the response: the client reconnects
        }
        tokio::time::sleep(Duration::from_secs(15)).await;
        Some((Bytes::from_static(b": keep-alive\n\n"), ()))
    });
    hello.chain(events).chain(hold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resumes_after_last_event_id_and_drops_every_n() {
        let n = Numbering {
            total: 5,
            interval: Duration::ZERO,
            drop_every: Some(2),
        };
        let text: Vec<Bytes> = numbered_stream(n, 2).collect().await;
        let text: String = text.iter().map(|b| String::from_utf8_lossy(b)).collect();
        assert!(text.contains("id: 3\n") && text.contains("id: 4\n"));
        assert!(!text.contains("id: 5\n") && !text.contains("id: 2\n"));
        assert_eq!(number_of(br#"{"n":42,"x":1}"#), Some(42));
    }
}
