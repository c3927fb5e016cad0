//! `GET /login`, `POST /login` and `POST /logout`. The token is compared in constant time with
//! the token file, re-read at each attempt (rotation needs no restart); attempts are rate
//! limited per client and over all ([`super::attempts`]); the token never reaches a log or a
//! page (the field is a password input, never filled back).

use std::sync::Arc;

use axum::Extension;
use axum::extract::Form;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::attempts::{Client, Refused};
use super::{Access, Caller, cookie, csrf_input, secret};
use crate::layout;

/// Largest token file read: a token is a line, not a document.
pub const TOKEN_FILE_BYTES_MAX: u64 = 4096;
/// Shortest token accepted: 16 random bytes in hex are 32 characters; a short or dictionary
/// word would fall to the guesses the rate limits still allow.
pub const TOKEN_CHARS_MIN: usize = 16;

/// The login form's fields (the CSRF field is checked by the guard).
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The token typed by the user.
    #[serde(default)]
    pub token: String,
}

/// `GET /login`: the form, or (logged in) a logout button; on an open loopback console, `/`.
pub async fn page(
    Extension(access): Extension<Arc<Access>>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    if access.login.is_none() {
        return Redirect::to("/").into_response();
    }
    if access.session(&headers).is_some() {
        let body = html! {
            p { "You are logged in." }
            (logout_form(&caller))
        };
        return layout::page("Log in", "", body).into_response();
    }
    login_page(StatusCode::OK, &caller, None)
}

/// `POST /login`: a session cookie for the right token; "wrong token" (401) otherwise.
pub async fn submit(
    Extension(access): Extension<Arc<Access>>,
    caller: Caller,
    Client(client): Client,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let Some(login) = &access.login else {
        return Redirect::to("/").into_response();
    };
    let from = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if let Err(refused) = login.attempts.try_take(client) {
        let msg = match refused {
            Refused::Client => "Too many login attempts from here: wait a minute and try again.",
            Refused::All => "Too many login attempts: wait a minute and try again.",
        };
        // Debug: a flood of refusals must not flood the log (the wrong tokens that were
        // checked are logged, within the rate limit).
        tracing::debug!(?refused, client = %from, "console login attempt refused by the rate limit");
        return login_page(StatusCode::TOO_MANY_REQUESTS, &caller, Some(msg));
    }
    let expected = match read_token_file(&login.token_file) {
        Ok(t) => t,
        Err(reason) => {
            tracing::warn!(file = %login.token_file.display(), %reason, "console login: cannot read the token file");
            let msg = "The console cannot read its token file: see its log.";
            return login_page(StatusCode::INTERNAL_SERVER_ERROR, &caller, Some(msg));
        }
    };
    if !secret::same(form.token.trim().as_bytes(), expected.as_bytes()) {
        tracing::warn!(client = %from, "console login refused: wrong token");
        return login_page(StatusCode::UNAUTHORIZED, &caller, Some("Wrong token."));
    }
    login.attempts.succeeded(client);
    let (id, _) = login.sessions.create();
    tracing::info!(client = %from, sessions = login.sessions.len(), "console login");
    let lifetime = Some(login.sessions.lifetime());
    let set = cookie::set(cookie::SESSION, &id, access.secure(&headers), lifetime);
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().append(SET_COOKIE, set);
    resp
}

/// `POST /logout`: ends the session and removes its cookie.
pub async fn logout(Extension(access): Extension<Arc<Access>>, headers: HeaderMap) -> Response {
    let (Some(login), Some((id, _))) = (&access.login, access.session(&headers)) else {
        return Redirect::to("/").into_response();
    };
    login.sessions.remove(&id);
    let mut resp = Redirect::to("/login").into_response();
    cookie::clear(resp.headers_mut(), cookie::SESSION, access.secure(&headers));
    resp
}

/// Reads a token file, trimmed: at each login and at start-up (to refuse a bad one early). An
/// empty or unreadable file is an error (an empty token opens nothing); errors name the problem,
/// never the content. A blocking read, as the file is a line on a local disk.
pub fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    // An I/O error's text is the system's ("No such file or directory (os error 2)") or a
    // fixed one ("stream did not contain valid UTF-8"): never the file's content.
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > TOKEN_FILE_BYTES_MAX {
        return Err(format!("larger than {TOKEN_FILE_BYTES_MAX} bytes"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("empty".to_owned());
    }
    if token.chars().count() < TOKEN_CHARS_MIN {
        return Err(format!(
            "shorter than {TOKEN_CHARS_MIN} characters: use a random one (`openssl rand -hex 16`)"
        ));
    }
    Ok(token.to_owned())
}

fn login_page(status: StatusCode, caller: &Caller, message: Option<&str>) -> Response {
    let body = html! {
        @if let Some(m) = message { p.problem.login-error role="alert" { (m) } }
        form id="login" method="post" action="/login" {
            (csrf_input(caller))
            label for="token" { "Console token" }
            input id="token" type="password" name="token" autocomplete="current-password" required autofocus;
            button id="login" type="submit" { "Log in" }
        }
    };
    (status, layout::page("Log in", "", body)).into_response()
}

/// The logout button (a form: logging out is a POST, CSRF-checked).
pub fn logout_form(caller: &Caller) -> Markup {
    html! {
        form id="logout" method="post" action="/logout" {
            (csrf_input(caller))
            button id="logout" type="submit" { "Log out" }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_error_names_the_problem_and_never_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name);
        assert_eq!(
            read_token_file(&at("missing")).unwrap_err(),
            "No such file or directory (os error 2)"
        );
        std::fs::write(at("empty"), " \n").unwrap();
        assert_eq!(read_token_file(&at("empty")).unwrap_err(), "empty");
        std::fs::write(at("short"), "s3cret\n").unwrap();
        let e = read_token_file(&at("short")).unwrap_err();
        assert!(
            e.starts_with("shorter than 16") && !e.contains("s3cret"),
            "{e}"
        );
        std::fs::write(at("binary"), b"s3cret-token-long-enough\xff").unwrap();
        let e = read_token_file(&at("binary")).unwrap_err();
        assert!(e.contains("UTF-8") && !e.contains("s3cret"), "{e}");
        assert!(read_token_file(dir.path()).is_err(), "a directory");
        std::fs::write(at("token"), "s3cret-token-long-enough\n").unwrap();
        assert_eq!(
            read_token_file(&at("token")).unwrap(),
            "s3cret-token-long-enough"
        );
    }
}
