//! The vendored static files (htmx, its SSE extension, the style sheet), compiled into the
//! binary: edge boxes are offline, and one binary has nothing to lose.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (name, content type, bytes) of every static file.
const FILES: [(&str, &str, &[u8]); 3] = [
    (
        "htmx.min.js",
        "text/javascript",
        include_bytes!("../static/htmx.min.js"),
    ),
    (
        "htmx-ext-sse.js",
        "text/javascript",
        include_bytes!("../static/htmx-ext-sse.js"),
    ),
    (
        "console.css",
        "text/css",
        include_bytes!("../static/console.css"),
    ),
];

/// Serves `/static/{name}`; anything else under `/static` is 404.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, ..)| *n == name) {
        Some((_, ty, body)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(ty)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("max-age=3600"),
                ),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
