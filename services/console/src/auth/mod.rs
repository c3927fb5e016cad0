//! Who is calling the console. Pages on loopback need no login; on any other address (or with
//! a token file on loopback) a login (a token checked against the token file) sets an HttpOnly,
//! SameSite cookie. Every form carries a CSRF token that is checked on every POST. See
//! docs/console.md, "Access".

pub mod attempts;
pub mod cookie;
pub mod guard;
pub mod host;
pub mod login;
pub mod secret;
pub mod session;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use maud::{Markup, html};

use crate::settings::AccessSettings;
use session::Sessions;

/// The name of the form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

/// The caller of a request, as the auth middleware found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The CSRF token this caller's forms must send back.
    pub csrf: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(|| Caller {
                csrf: String::new(),
            }))
    }
}

/// The hidden input every form must contain.
pub fn csrf_input(caller: &Caller) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(caller.csrf); }
}

/// The login side of [`Access`]: where the token is, the sessions, the attempt limit.
#[derive(Debug)]
pub struct Login {
    /// The token file, re-read at each login so that rotating it needs no restart.
    pub token_file: PathBuf,
    /// The logged-in sessions.
    pub sessions: Sessions,
    /// Login attempts, rate limited per client and over all.
    pub attempts: attempts::Attempts,
}

/// How the console decides who may call it; shared by the guard and the login pages.
#[derive(Debug)]
pub struct Access {
    /// The port the console listens on (a loopback `Host` must name it).
    pub port: u16,
    /// Listening on loopback: the `Host` must name loopback.
    pub loopback: bool,
    /// Serving HTTPS itself.
    pub https: bool,
    /// Per-process key the pre-session CSRF tokens derive from.
    key: [u8; 32],
    /// `Some`: a login is required.
    pub login: Option<Login>,
}

impl Access {
    /// The access rules of a console with `settings`, listening on `port`.
    pub fn new(settings: &AccessSettings, port: u16) -> Arc<Self> {
        let login = settings.token_file.clone().map(|token_file| Login {
            token_file,
            sessions: Sessions::new(settings.session_lifetime, settings.max_sessions as usize),
            attempts: attempts::Attempts::default(),
        });
        Arc::new(Self {
            port,
            loopback: settings.loopback,
            https: settings.tls.is_some(),
            key: secret::random_key(),
            login,
        })
    }

    /// Whether cookies must be `Secure`: served over HTTPS here or, behind a TLS-terminating
    /// ingress, as the ingress says (a forged header only makes the cookie unusable over HTTP).
    pub fn secure(&self, headers: &HeaderMap) -> bool {
        self.https
            || headers
                .get("x-forwarded-proto")
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"https"))
    }

    /// The session id and CSRF token of the request's live session, if it has one.
    pub fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let login = self.login.as_ref()?;
        let id = cookie::get(headers, cookie::SESSION)?;
        login.sessions.csrf(id).map(|csrf| (id.to_owned(), csrf))
    }

    /// The CSRF token of a caller without a session, bound to its pre-session cookie `pre`.
    pub fn pre_csrf(&self, pre: &str) -> String {
        hex::encode(secret::hmac(&self.key, pre.as_bytes()))
    }
}
