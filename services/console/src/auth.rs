//! Who is calling the console. Pages on loopback need no login; on any other address a login
//! (a token checked against the token file) sets an HttpOnly, SameSite cookie. Every form carries
//! a CSRF token that is checked on every POST.
//!
//! (Skeleton: the login and the checks are filled in by the auth work; handlers already take a
//! [`Caller`] and put [`csrf_input`] in their forms.)

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use maud::{Markup, html};

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
