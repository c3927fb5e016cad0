//! Test kit for the end-to-end tests and the local demo: a real Mosquitto on a free port, the
//! real service binaries, an SSE source, an MQTT 5 subscriber, an OTLP receiver (traces, metrics,
//! logs), an admin-port client, grpcurl and a headless Chromium.
//! Everything waits on signals or conditions with a deadline, never on a bare sleep.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod adr;
pub mod akri;
pub mod auth;
pub mod broker;
pub mod browser;
pub mod console;
pub mod flood;
pub mod fswatch;
pub mod grpcurl;
pub mod house;
pub mod listener;
pub mod meters;
pub mod mqtt;
pub mod mtls;
pub mod numbered;
pub mod oauth2;
pub mod openssl;
pub mod otlp;
pub mod pki;
pub mod procs;
pub mod prometheus;
pub mod resources;
pub mod schema_registry;
pub mod sockets;
pub mod source;
pub mod stack;
pub mod tinyproxy;

use std::time::{Duration, Instant};

/// How long an end-to-end wait may take before the test fails (generous: CI machines are loaded).
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `cond` until it returns `Some`, failing with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut cond: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = cond().await {
            return Ok(v);
        }
        if start.elapsed() > DEADLINE {
            anyhow::bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `text` to `dir/rel` (its directories made) and returns the file's path.
pub fn write_file(dir: &std::path::Path, rel: &str, text: &str) -> String {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    p.display().to_string()
}
