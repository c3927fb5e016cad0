//! The guard in front of a small router: the CSRF round trip of a form, refusals by status.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::header::{CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::{Request, StatusCode};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use tower_service::Service;

use super::attempts::{ClientAddr, PER_CLIENT_BURST};
use super::{Access, Caller, csrf_input, guard, login};
use crate::settings::AccessSettings;

async fn form(caller: Caller) -> Markup {
    html! { form method="post" { (csrf_input(&caller)) } }
}

fn app(token_file: Option<std::path::PathBuf>) -> Router {
    let settings = AccessSettings {
        loopback: true,
        token_file,
        session_lifetime: Duration::from_secs(60),
        max_sessions: 4,
        tls: None,
    };
    Router::new()
        .route("/form", get(form).post(|| async { "posted" }))
        .route("/x/live", get(|| async { "live" }))
        .route("/login", get(login::page).post(login::submit))
        .layer(axum::middleware::from_fn_with_state(
            Access::new(&settings, 8080),
            guard::guard,
        ))
}

async fn send(app: &mut Router, method: &str, path: &str, cookie: &str, body: &str) -> Response {
    // The client's address, as `axum::serve` with connect info records it.
    let client = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "127.0.0.1:8080")
        .header(COOKIE, cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .extension(axum::extract::ConnectInfo(ClientAddr(client)))
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.call(req).await.unwrap()
}

async fn text(r: Response) -> String {
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(b.to_vec()).unwrap()
}

#[tokio::test]
async fn a_form_posts_back_with_its_csrf_token_and_only_with_it() {
    let mut app = app(None);
    let page = send(&mut app, "GET", "/form", "", "").await;
    assert_eq!(page.status(), StatusCode::OK);
    let set = page.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let html = text(page).await;
    let at = html.find(r#"value=""#).unwrap() + 7;
    let csrf = &html[at..at + 64];

    let ok = send(
        &mut app,
        "POST",
        "/form",
        &cookie,
        &format!("a=1&csrf={csrf}"),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(text(ok).await, "posted");
    let other = format!("sse_console_pre={}", "b".repeat(64));
    let bad = send(&mut app, "POST", "/form", &other, &format!("csrf={csrf}")).await;
    assert_eq!(bad.status(), StatusCode::FORBIDDEN);
    let none = send(&mut app, "POST", "/form", &cookie, "a=1").await;
    assert_eq!(none.status(), StatusCode::FORBIDDEN);
    let big = "a".repeat(super::guard::FORM_BYTES_MAX + 1);
    let big = send(&mut app, "POST", "/form", &cookie, &big).await;
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn with_a_login_pages_redirect_and_streams_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = app(Some(dir.path().join("token")));
    let page = send(&mut app, "GET", "/form", "", "").await;
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()[LOCATION], "/login");
    let live = send(&mut app, "GET", "/x/live", "", "").await;
    assert_eq!(live.status(), StatusCode::UNAUTHORIZED);
    let post = send(&mut app, "POST", "/form", "", "").await;
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
    let forged = format!("sse_console_session={}", "c".repeat(64));
    let page = send(&mut app, "GET", "/form", &forged, "").await;
    assert_eq!(
        page.status(),
        StatusCode::SEE_OTHER,
        "an unknown session is none"
    );
}

/// The pre-session cookie and CSRF token a page hands out.
async fn pre_and_csrf(app: &mut Router, path: &str) -> (String, String) {
    let page = send(app, "GET", path, "", "").await;
    let set = page.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let cookie = set.split(';').next().unwrap().to_owned();
    let html = text(page).await;
    let at = html.find(r#"name="csrf" value=""#).unwrap() + 19;
    (cookie, html[at..at + 64].to_owned())
}

#[tokio::test]
async fn the_token_file_is_read_at_each_login_and_attempts_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "first-token-0123456789\n").unwrap();
    let mut app = app(Some(file.clone()));
    let (cookie, csrf) = pre_and_csrf(&mut app, "/login").await;
    let mut login = async |token: &str| {
        let body = format!("csrf={csrf}&token={token}");
        send(&mut app, "POST", "/login", &cookie, &body).await
    };
    let ok = login("first-token-0123456789").await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert!(
        ok.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .starts_with("sse_console_session=")
    );
    // Rotated: the old token is wrong now, the new one works, without a restart.
    std::fs::write(&file, "second-token-0123456789").unwrap();
    let old = login("first-token-0123456789").await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let page = text(old).await;
    assert!(
        page.contains("Wrong token.") && !page.contains("second-token"),
        "{page}"
    );
    assert_eq!(
        login("second-token-0123456789").await.status(),
        StatusCode::SEE_OTHER
    );
    // Three attempts spent; the rest of the burst is refused as wrong, then rate limited.
    for _ in 3..PER_CLIENT_BURST {
        assert_eq!(login("guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = login("second-token-0123456789").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(text(limited).await.contains("Too many login attempts"));
}

/// A POST as hyper hands over an HTTP/2 request: the authority in the URI, no `Host`.
async fn post_h2(app: &mut Router, cookie: &str, origin: &str, body: &str) -> Response {
    let client = std::net::SocketAddr::from(([127, 0, 0, 1], 40000));
    let req = Request::builder()
        .method("POST")
        .uri("http://127.0.0.1:8080/form")
        .version(axum::http::Version::HTTP_2)
        .header(COOKIE, cookie)
        .header(ORIGIN, origin)
        .header("sec-fetch-site", "same-origin")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .extension(axum::extract::ConnectInfo(ClientAddr(client)))
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.call(req).await.unwrap()
}

#[tokio::test]
async fn over_http2_a_same_origin_post_passes_and_another_origin_is_refused() {
    let mut app = app(None);
    let (cookie, csrf) = pre_and_csrf(&mut app, "/form").await;
    let body = format!("csrf={csrf}");
    let ok = post_h2(&mut app, &cookie, "http://127.0.0.1:8080", &body).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(text(ok).await, "posted");
    let other = post_h2(&mut app, &cookie, "http://evil.example:8080", &body).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
}
