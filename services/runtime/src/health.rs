//! Readiness: one helper every service uses to turn its `grpc.health.v1` status (overall `""`
//! and its own gRPC service name) SERVING or NOT_SERVING as a `watch` of its readiness says,
//! and the admin port's `/readyz` with it.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Sets the overall status and `service`'s (a generated `SERVICE_NAME`) to `ready`.
pub async fn set(health: &HealthReporter, service: &str, ready: bool) {
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    crate::readiness::set(service, ready);
    health.set_service_status("", status).await;
    health.set_service_status(service, status).await;
}

/// Follows `ready` until it closes or `token` is cancelled, then reports NOT_SERVING: health
/// says what the service can do now, in both directions.
pub async fn follow(
    health: HealthReporter,
    service: &'static str,
    mut ready: watch::Receiver<bool>,
    token: CancellationToken,
) {
    loop {
        let up = *ready.borrow_and_update();
        if token.is_cancelled() {
            break;
        }
        set(&health, service, up).await;
        tokio::select! {
            r = ready.changed() => if r.is_err() { break },
            () = token.cancelled() => break,
        }
    }
    set(&health, service, false).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_server::Health;
    use tonic_health::server::HealthService;

    /// The status `svc` reports for `name`; -1 while it knows no such service.
    async fn status(svc: &HealthService, name: &str) -> i32 {
        let req = tonic::Request::new(HealthCheckRequest {
            service: name.into(),
        });
        svc.check(req).await.map_or(-1, |r| r.into_inner().status)
    }

    /// Waits until `svc` reports `want` for `name` (the follower runs as its own task).
    async fn until(svc: &HealthService, name: &str, want: ServingStatus) {
        let want = want as i32;
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while status(svc, name).await != want {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn health_follows_readiness_both_ways_and_ends_not_serving() {
        let (reporter, _) = tonic_health::server::health_reporter();
        let svc = HealthService::from_health_reporter(reporter.clone());
        let (tx, rx) = watch::channel(false);
        let token = CancellationToken::new();
        let task = tokio::spawn(follow(reporter, "x.v1.X", rx, token.clone()));
        until(&svc, "x.v1.X", ServingStatus::NotServing).await;
        tx.send(true).unwrap();
        until(&svc, "", ServingStatus::Serving).await;
        until(&svc, "x.v1.X", ServingStatus::Serving).await;
        tx.send(false).unwrap();
        until(&svc, "", ServingStatus::NotServing).await;
        tx.send(true).unwrap();
        until(&svc, "", ServingStatus::Serving).await;
        token.cancel();
        task.await.unwrap();
        assert_eq!(status(&svc, "").await, ServingStatus::NotServing as i32);
    }
}
