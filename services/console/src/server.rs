//! The console's HTTP server: its routes, the state every handler shares, and serving until
//! shutdown.

use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Access, guard, login};
use crate::backend::Backend;
use crate::{assets, connections, headers, https, pages};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The three services.
    pub backend: Backend,
    /// The live event views' bounds.
    pub live: pages::events::Live,
    /// The live streams table, shared by the pages that follow it.
    pub streams: Arc<pages::streams::LiveTable>,
    /// Cancelled when the console stops: live views end then, so their connections can close
    /// gracefully instead of holding the shutdown.
    pub stop: CancellationToken,
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
        .route(pages::assets::ENDPOINTS_PATH, get(pages::assets::endpoints))
        .route("/assets/{name}", get(pages::assets::edit))
        .route("/assets/{name}/delete", post(pages::assets::delete))
        .route("/streams", get(pages::streams::page))
        .route("/streams/live", get(pages::streams::live))
        .route("/schemas", get(pages::schemas::list))
        .route("/schemas/view", get(pages::schemas::view))
        .route("/events", get(pages::events::page))
        .route("/events/live", get(pages::events::live))
        .route("/discovered", get(pages::discovered::page))
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(state)
}

/// The console as served: [`router`], the login routes, and the auth guard in front of all of
/// them. The security headers are applied again outermost, so the guard's refusals carry them.
pub fn app(state: AppState, access: Arc<Access>) -> Router {
    router(state)
        .route("/login", get(login::page).post(login::submit))
        .route("/logout", post(login::logout))
        .layer(axum::middleware::from_fn_with_state(access, guard::guard))
        .layer(axum::middleware::from_fn(headers::secure))
}

/// Serves `router` on `listener` until `stop`: over HTTPS with `tls`, else plain HTTP; an HTTP/2
/// connection takes `h2_streams` requests at once.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    h2_streams: u32,
    stop: CancellationToken,
) -> std::io::Result<()> {
    match tls {
        Some(config) => {
            let listener = https::TlsListener::new(listener, config, stop.clone())?;
            connections::serve(listener, router, h2_streams, stop).await;
        }
        None => connections::serve(listener, router, h2_streams, stop).await,
    }
    Ok(())
}
