//! The console's HTTP server: its routes, the state every handler shares, and serving until
//! shutdown.

use axum::Router;
use axum::response::Redirect;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::{assets, headers, pages};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The three services.
    pub backend: Backend,
    /// The live event views' bounds.
    pub live: pages::events::Live,
}

/// Every route of the console.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/streams") }))
        .route("/static/{name}", get(assets::file))
        .route("/streams", get(pages::streams::page))
        .route("/streams/live", get(pages::streams::live))
        .route("/events", get(pages::events::page))
        .route("/events/live", get(pages::events::live))
        .route("/discovered", get(pages::discovered::page))
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(state)
}

/// Serves `router` on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}
