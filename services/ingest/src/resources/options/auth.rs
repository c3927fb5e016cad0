//! `additionalConfiguration.authentication`: a bearer token or OAuth2 client credentials, for the
//! SSE endpoints that ask for more than ADR's Anonymous, UsernamePassword and Certificate.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    OptionValue, Path, object, only_keys, optional_str, present, required_str, secret_ref, value,
};
use crate::resources::SecretRef;

/// Extra HTTP authentication of an endpoint: sets `Authorization: Bearer <token>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpAuth {
    /// `{"method": "Bearer", "token": {"secretRef": ...}}`: the token file is re-read at every
    /// connect, so a rotated token applies on the next connection.
    Bearer {
        /// The token's secret.
        token: SecretRef,
    },
    /// `{"method": "OAuth2", ...}`: OAuth2 client credentials (RFC 6749 section 4.4).
    OAuth2(Box<OAuth2>),
}

/// OAuth2 client credentials: where to get a token and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    /// The token endpoint (`https` only: it receives the client secret).
    pub token_url: url::Url,
    /// The client id, inline or from a secret.
    pub client_id: OptionValue,
    /// The client secret (a secret reference only).
    pub client_secret: SecretRef,
    /// Scopes asked for (sent space-separated as `scope`; none when empty).
    pub scopes: Vec<String>,
    /// `audience`, which several providers (Auth0, Okta) require.
    pub audience: Option<String>,
    /// Extra form parameters of the token request (e.g. `resource` for Entra ID v1).
    pub parameters: BTreeMap<String, OptionValue>,
}

/// Token request parameters that the connector sets itself and an extra parameter may not replace.
const RESERVED_PARAMETERS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "scope",
    "audience",
];

/// Most extra token request parameters.
const MAX_PARAMETERS: usize = 32;

impl HttpAuth {
    /// Every secret it references, with the option naming it.
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        match self {
            Self::Bearer { token } => vec![("authentication.token".to_owned(), token)],
            Self::OAuth2(o) => {
                let mut refs = vec![("authentication.clientSecret".to_owned(), &o.client_secret)];
                if let Some(r) = o.client_id.secret() {
                    refs.push(("authentication.clientId".to_owned(), r));
                }
                for (name, v) in &o.parameters {
                    if let Some(r) = v.secret() {
                        refs.push((format!("authentication.parameters.{name}"), r));
                    }
                }
                refs
            }
        }
    }
}

/// Parses `authentication`.
pub(super) fn parse(v: &Value, at: &Path) -> Result<HttpAuth, String> {
    let obj = object(v, at)?;
    match required_str(obj, "method", at)? {
        "Bearer" => {
            only_keys(obj, &["method", "token"], at)?;
            let token =
                present(obj, "token").ok_or_else(|| at.key("token").error("is required"))?;
            Ok(HttpAuth::Bearer {
                token: secret_ref(token, &at.key("token"))?,
            })
        }
        "OAuth2" => oauth2(obj, at).map(|o| HttpAuth::OAuth2(Box::new(o))),
        other => Err(at
            .key("method")
            .error(&format!("unknown method {other:?} (Bearer or OAuth2)"))),
    }
}

fn oauth2(obj: &serde_json::Map<String, Value>, at: &Path) -> Result<OAuth2, String> {
    only_keys(
        obj,
        &[
            "method",
            "tokenUrl",
            "clientId",
            "clientSecret",
            "scopes",
            "audience",
            "parameters",
        ],
        at,
    )?;
    let token_url = url::Url::parse(required_str(obj, "tokenUrl", at)?)
        .map_err(|e| at.key("tokenUrl").error(&format!("not a URL: {e}")))?;
    if token_url.scheme() != "https" {
        return Err(at
            .key("tokenUrl")
            .error("must be https: the token request carries the client secret"));
    }
    if !token_url.username().is_empty() || token_url.password().is_some() {
        return Err(at.key("tokenUrl").error("must not hold credentials"));
    }
    let client_id = present(obj, "clientId")
        .ok_or_else(|| at.key("clientId").error("is required"))
        .and_then(|v| value(v, &at.key("clientId")))?;
    let client_secret = present(obj, "clientSecret")
        .ok_or_else(|| at.key("clientSecret").error("is required"))
        .and_then(|v| secret_ref(v, &at.key("clientSecret")))?;
    let scopes = match present(obj, "scopes") {
        None => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| match s.as_str() {
                Some(s) if !s.is_empty() && !s.contains(' ') => Ok(s.to_owned()),
                _ => Err(at
                    .key("scopes")
                    .error("must be a list of scope names without spaces")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(at.key("scopes").error("must be a list of scope names")),
    };
    let audience = optional_str(obj, "audience", at)?.map(str::to_owned);
    let parameters = parameters(obj, at)?;
    Ok(OAuth2 {
        token_url,
        client_id,
        client_secret,
        scopes,
        audience,
        parameters,
    })
}

/// `parameters`: extra form fields, inline or from secrets; none may replace one the connector sets.
fn parameters(
    obj: &serde_json::Map<String, Value>,
    at: &Path,
) -> Result<BTreeMap<String, OptionValue>, String> {
    let at = at.key("parameters");
    let Some(v) = present(obj, "parameters") else {
        return Ok(BTreeMap::new());
    };
    let map = object(v, &at)?;
    if map.len() > MAX_PARAMETERS {
        return Err(at.error(&format!("more than {MAX_PARAMETERS} parameters")));
    }
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if name.is_empty() || RESERVED_PARAMETERS.contains(&name.as_str()) {
            return Err(at.error(&format!(
                "parameter {name:?} is set by the connector (from the other fields)"
            )));
        }
        out.insert(name.clone(), value(v, &at.key(name))?);
    }
    Ok(out)
}
