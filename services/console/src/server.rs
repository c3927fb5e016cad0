//! The console's HTTP server: its routes, the state every handler shares, and serving until
//! shutdown.

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::{assets, headers, pages};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The three services.
    pub backend: Backend,
}

/// Every route of the console.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/streams") }))
        .route("/static/{name}", get(assets::file))
        .route(
            "/devices",
            get(pages::devices::list).post(pages::devices::save),
        )
        .route("/devices/new", get(pages::devices::new))
        .route("/devices/{name}", get(pages::devices::edit))
        .route("/devices/{name}/delete", post(pages::devices::delete))
        .route(
            "/assets",
            get(pages::assets::list).post(pages::assets::save),
        )
        .route("/assets/new", get(pages::assets::new))
        .route("/assets/{name}", get(pages::assets::edit))
        .route("/assets/{name}/delete", post(pages::assets::delete))
        .route("/streams", get(pages::streams::page))
        .route("/streams/live", get(pages::streams::live))
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
