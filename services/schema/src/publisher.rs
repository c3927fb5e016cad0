//! The connection to the publisher: one lazily connected gRPC channel shared by every stream, a
//! reachability probe (the publisher's `grpc.health.v1` Check) with backoff, and the health
//! watcher that turns this service SERVING once the publisher has been reached.

use std::time::Duration;

use sse_runtime::Backoff;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::server::HealthReporter;

/// The gRPC service name this process reports health for, besides the overall `""`.
pub const SERVICE_NAME: &str = "sseconnector.v1.SchemaService";

/// A channel to the publisher; it connects on first use and reconnects by itself.
pub fn channel(uri: &Uri) -> Channel {
    Endpoint::from(uri.clone())
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect_lazy()
}

/// Probes the publisher once: true when it answered the health check at all.
pub async fn reachable(channel: &Channel) -> bool {
    let mut client = HealthClient::new(channel.clone());
    let req = HealthCheckRequest {
        service: String::new(),
    };
    match tokio::time::timeout(Duration::from_secs(5), client.check(req)).await {
        Ok(Ok(_)) => true,
        Ok(Err(status)) => {
            tracing::debug!(error = %status.message(), "publisher not reachable yet");
            false
        }
        Err(_) => false,
    }
}

/// Waits, with backoff, until the publisher is reachable. False when `token` was cancelled first.
pub async fn wait_reachable(channel: &Channel, token: &CancellationToken) -> bool {
    let mut backoff = Backoff::standard().with_healthy_after(Duration::from_secs(30));
    let mut attempts = 0u32;
    loop {
        tokio::select! {
            _ = token.cancelled() => return false,
            ok = reachable(channel) => if ok { return true },
        }
        attempts += 1;
        if attempts == 5 {
            tracing::warn!("publisher still not reachable; retrying");
        }
        tokio::select! {
            _ = token.cancelled() => return false,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// Reports NOT_SERVING until the publisher has been reached once, then SERVING (overall and
/// for [`SERVICE_NAME`]). Returns when done or when `token` is cancelled.
pub async fn watch_health(channel: Channel, health: HealthReporter, token: CancellationToken) {
    if wait_reachable(&channel, &token).await && !token.is_cancelled() {
        tracing::info!("publisher reached; serving");
        health.set_service_status("", ServingStatus::Serving).await;
        health
            .set_service_status(SERVICE_NAME, ServingStatus::Serving)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_publisher_waits_until_cancelled() {
        // A port nothing listens on: bind, learn the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let uri: Uri = format!("http://127.0.0.1:{port}").parse().unwrap();
        let ch = channel(&uri);
        assert!(!reachable(&ch).await);
        let token = CancellationToken::new();
        let t = token.clone();
        let waiter = tokio::spawn(async move { wait_reachable(&ch, &t).await });
        token.cancel();
        assert!(!waiter.await.unwrap());
    }
}
