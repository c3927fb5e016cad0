//! The middleware in front of every route: the `Host` check on loopback, the login check
//! (page loads go to `/login`, live streams and POSTs get 401), and on every POST the
//! cross-site and CSRF checks. It puts the [`Caller`] (with its CSRF token) and the
//! [`Access`] in the request's extensions for the handlers.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::{Access, CSRF_FIELD, Caller, cookie, host, secret};

/// Largest POST body the guard reads to find the CSRF field: far above any console form.
pub const FORM_BYTES_MAX: usize = 1 << 20;
/// Largest body of a POST to a path open without a login (the login form: a token and the CSRF
/// field): anyone may send it, so it must cost next to nothing.
pub const OPEN_FORM_BYTES_MAX: usize = 4096;
/// How long a client may take to send a POST body.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Who the request comes from, as far as the guard can tell.
struct Identity {
    csrf: String,
    logged_in: bool,
    /// A pre-session cookie minted for this request, to set on the response.
    new_pre: Option<String>,
}

/// The middleware: see the module documentation.
pub async fn guard(State(access): State<Arc<Access>>, req: Request, next: Next) -> Response {
    if access.loopback {
        let authority = host::authority(req.uri(), req.headers()).unwrap_or_default();
        if !host::is_loopback(authority, access.port, access.https) {
            return refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "this console listens on loopback and answers only to localhost, 127.0.0.1 or [::1] with its port in the Host header (a page of another site cannot reach it under its own name)",
            );
        }
    }
    let who = identify(&access, req.headers());
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD);
    if !who.logged_in && !open(req.uri().path()) {
        return if unsafe_method || is_live(&req) {
            refuse(
                StatusCode::UNAUTHORIZED,
                "login required: open /login and give the console token",
            )
        } else {
            let resp = Redirect::to("/login").into_response();
            match &who.new_pre {
                Some(pre) => add_pre(resp, pre, access.secure(req.headers())),
                None => resp,
            }
        };
    }
    let mut req = req;
    if unsafe_method {
        if !host::same_origin(req.uri(), req.headers()) {
            return refuse(StatusCode::FORBIDDEN, "cross-site request refused");
        }
        let max = if who.logged_in {
            FORM_BYTES_MAX
        } else {
            OPEN_FORM_BYTES_MAX
        };
        req = match checked(req, &who.csrf, max).await {
            Ok(r) => r,
            Err(refusal) => return refusal,
        };
    }
    let secure = access.secure(req.headers());
    req.extensions_mut().insert(Caller {
        csrf: who.csrf.clone(),
    });
    req.extensions_mut().insert(access.clone());
    let resp = next.run(req).await;
    if let Some(pre) = &who.new_pre {
        return add_pre(resp, pre, secure);
    }
    resp
}

/// The caller's session, or its pre-session cookie (minted if it has none).
fn identify(access: &Access, headers: &axum::http::HeaderMap) -> Identity {
    if let Some((_, csrf)) = access.session(headers) {
        return Identity {
            csrf,
            logged_in: true,
            new_pre: None,
        };
    }
    let (pre, new_pre) = match cookie::get(headers, cookie::PRE).filter(|v| secret::is_token(v)) {
        Some(v) => (v.to_owned(), None),
        None => {
            let v = secret::random_token();
            (v.clone(), Some(v))
        }
    };
    Identity {
        csrf: access.pre_csrf(&pre),
        logged_in: access.login.is_none(),
        new_pre,
    }
}

/// Paths served without a login: the login itself and the static files it uses.
fn open(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

/// Whether the request is a live stream (`EventSource` cannot follow a redirect to a form).
fn is_live(req: &Request) -> bool {
    req.uri().path().ends_with("/live")
        || req
            .headers()
            .get(ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"))
}

/// The request again, after its form's CSRF field matched `csrf`; else the refusal (also for a
/// body over `max` bytes, or not sent within [`BODY_READ_TIMEOUT`]).
async fn checked(req: Request, csrf: &str, max: usize) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    let read = tokio::time::timeout(BODY_READ_TIMEOUT, axum::body::to_bytes(body, max));
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) if max == FORM_BYTES_MAX => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "form larger than 1 MiB refused",
            ));
        }
        Ok(Err(_)) => {
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "form larger than 4 KiB refused before login",
            ));
        }
        Err(_) => {
            return Err(refuse(
                StatusCode::REQUEST_TIMEOUT,
                "form not received within 10 s",
            ));
        }
    };
    let sent = is_form
        .then(|| {
            url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == CSRF_FIELD)
                .map(|(_, v)| v.into_owned())
        })
        .flatten();
    match sent {
        Some(s) if !csrf.is_empty() && secret::same(s.as_bytes(), csrf.as_bytes()) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(refuse(
            StatusCode::FORBIDDEN,
            "CSRF check failed: reload the page and submit the form again",
        )),
    }
}

/// Sets the pre-session cookie minted for this caller.
fn add_pre(mut resp: Response, pre: &str, secure: bool) -> Response {
    resp.headers_mut()
        .append(SET_COOKIE, cookie::set(cookie::PRE, pre, secure, None));
    resp
}

/// A plain-text refusal (the security headers are added by the outer layer).
fn refuse(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
