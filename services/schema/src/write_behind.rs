//! Writes what the registry holds in memory only ([`Registry::flush`]) every second, and once
//! more when the service stops: new subjects of a stored version reach the disk in one write per
//! version per second, however many arrive.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::registry::Registry;

/// How often the registry's pending writes are made.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Flushes `registry` every [`FLUSH_EVERY`] until `token` is cancelled, then once more.
pub async fn run<R: Registry>(registry: Arc<R>, token: CancellationToken) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = tick.tick() => registry.flush().await,
        }
    }
    registry.flush().await;
}
