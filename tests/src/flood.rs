//! A device that floods beside a calm one: an SSE source whose `/flood` sends numbered events as
//! fast as the connection takes them, forever, and whose `/calm` sends what the caller writes,
//! with the resources that route both. Shared by the flood tests and the `flood_latency`
//! measurement.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::resources::{asset, device};
use crate::source::{Chunks, Feed, Reply, SeenRequest, block};

/// Events in each chunk the flood writes.
const FLOOD_CHUNK: u64 = 100;

/// The flood: numbered events (`{"n":N}`), written as fast as the connection takes them.
fn flood() -> Chunks {
    Box::pin(futures::stream::unfold(0u64, |next| async move {
        let text: String = (next..next + FLOOD_CHUNK)
            .map(|n| block(Some(&n.to_string()), None, &format!(r#"{{"n":{n}}}"#)))
            .collect();
        Some((Bytes::from(text), next + FLOOD_CHUNK))
    }))
}

/// The source's feed: `/flood` floods; `/calm` sends what is written to the returned sender (on
/// its first connection; a later one gets an empty stream that stays open).
pub fn feed() -> (Feed, mpsc::UnboundedSender<Bytes>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let calm = Mutex::new(Some(rx));
    let feed: Feed = Arc::new(move |req: &SeenRequest| match req.path.as_str() {
        "/flood" => Reply::Sse(flood()),
        "/calm" => match calm.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(rx) => Reply::Sse(Box::pin(UnboundedReceiverStream::new(rx))),
            None => Reply::Sse(Box::pin(futures::stream::pending())),
        },
        _ => Reply::not_found(),
    });
    (feed, tx)
}

/// The calm stream's event number `n` (`{"calm":N}`), as the source writes it.
pub fn calm_event(n: u64) -> Bytes {
    Bytes::from(block(
        Some(&n.to_string()),
        None,
        &format!(r#"{{"calm":{n}}}"#),
    ))
}

/// Resources in a new `resources/` directory: device `dev` at `base`, asset `flooded` reading
/// `/flood` to `e2e/flood` and asset `calm` reading `/calm` to `e2e/calm`.
pub fn resources(base: &str) -> std::io::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res)?;
    let yaml = device(base)
        + &asset("flooded", &[("all", "/flood", "e2e/flood")])
        + &asset("calm", &[("all", "/calm", "e2e/calm")]);
    std::fs::write(res.join("dev.yaml"), yaml)?;
    Ok(dir)
}
