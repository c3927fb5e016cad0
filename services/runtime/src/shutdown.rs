//! One shutdown signal for the whole process: SIGTERM or Ctrl-C cancels a token every task watches.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The shutdown token and the tracker of every long-lived task, handed to each part of a service.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled when the process must stop.
    pub token: CancellationToken,
    /// Every long-lived task, so shutdown can wait for them to drain.
    pub tracker: TaskTracker,
}

impl Shutdown {
    /// A new, not yet cancelled, shutdown.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shutdown that is cancelled on SIGTERM or Ctrl-C.
    pub fn on_signals() -> Self {
        let s = Self::new();
        let token = s.token.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received");
            token.cancel();
        });
        s
    }

    /// Closes the tracker and waits for every task, at most `timeout`. Returns false on timeout.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
