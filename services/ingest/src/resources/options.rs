//! An SSE endpoint's `additionalConfiguration`: the device-wide options Azure Device Registry has
//! no field for (extra authentication, request headers, proxy, compression, the request method and
//! body, a dead-letter destination). ADR keeps the field as a JSON string; a YAML mapping is taken
//! too. Keys this connector does not know are ignored at the top level, so configuration written
//! for another connector stays valid; inside our own objects an unknown key is an error, so a typo
//! is reported rather than silently ignored. The JSON Schema is `docs/schemas/endpoint-configuration.schema.json`.

use serde_json::{Map, Value};

use super::model::{MqttDestination, SecretRef};

mod auth;
mod request;

pub use auth::{HttpAuth, OAuth2};
pub use request::{MAX_HEADER_VALUE_BYTES, Method, Proxy, RequestOptions};

/// Longest `additionalConfiguration` accepted, in bytes: it is read from a resource file or ADR.
pub const MAX_OPTIONS_BYTES: usize = 64 * 1024;

/// The validated options of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointOptions {
    /// `allowInsecureCredentials`: credentials may go over plain `http://` (off by default).
    pub allow_insecure_credentials: bool,
    /// `authentication`: a bearer token or OAuth2 client credentials, on top of ADR's method.
    pub auth: Option<HttpAuth>,
    /// What the stream request carries and how it travels.
    pub request: RequestOptions,
    /// `deadLetter`: where events that fail permanently go, for every asset of the device that
    /// has no dead-letter destination of its own.
    pub dead_letter: Option<MqttDestination>,
}

/// A string option that may be written inline or read from a secret file at every connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionValue {
    /// Written in the resource.
    Literal(String),
    /// `{"secretRef": "<secret>/<key>"}`: read from the secrets directory at every connect.
    Secret(SecretRef),
}

impl OptionValue {
    /// The secret it references, if any.
    pub fn secret(&self) -> Option<&SecretRef> {
        match self {
            Self::Secret(r) => Some(r),
            Self::Literal(_) => None,
        }
    }
}

impl EndpointOptions {
    /// Every secret the options reference, with the option naming it (for the allow-list and
    /// for the plain-`http://` refusal).
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        let mut refs = Vec::new();
        if let Some(auth) = &self.auth {
            refs.extend(auth.secret_refs());
        }
        refs.extend(self.request.secret_refs());
        refs
    }

    /// Whether anything here puts a credential on the wire (a token, a secret header, proxy
    /// credentials): refused over plain `http://` unless `allowInsecureCredentials`.
    pub fn sends_credentials(&self) -> bool {
        self.auth.is_some() || !self.request.secret_refs().is_empty()
    }
}

/// Parses and validates an endpoint's `additionalConfiguration` (absent or empty: defaults).
/// Errors name the option (`additionalConfiguration.headers.X-Api-Key: ...`), never a value.
pub fn parse(
    additional_configuration: Option<&serde_yaml_ng::Value>,
) -> Result<EndpointOptions, String> {
    let Some(root) = to_json(additional_configuration)? else {
        return Ok(EndpointOptions::default());
    };
    let at = Path::root();
    let obj = object(&root, &at)?;
    let mut options = EndpointOptions {
        allow_insecure_credentials: optional_bool(obj, "allowInsecureCredentials", &at)?
            .unwrap_or(false),
        ..EndpointOptions::default()
    };
    if let Some(v) = present(obj, "authentication") {
        options.auth = Some(auth::parse(v, &at.key("authentication"))?);
    }
    options.request = request::parse(obj, &at)?;
    if let Some(v) = present(obj, "deadLetter") {
        options.dead_letter = Some(dead_letter(v, &at.key("deadLetter"))?);
    }
    Ok(options)
}

/// `deadLetter`: an MQTT destination (`topic`, `qos` Qos0|Qos1, `retain` Keep|Never, `ttl`);
/// the topic must be under the connector's owned dead-letter prefix
/// (`sse_contract::dead_letter::check_topic`), so no route or `PublishMessage` can forge one.
pub fn dead_letter(v: &Value, at: &Path) -> Result<MqttDestination, String> {
    let obj = object(v, at)?;
    only_keys(obj, &["topic", "qos", "retain", "ttl"], at)?;
    let topic = required_str(obj, "topic", at)?;
    sse_contract::dead_letter::check_topic(topic)
        .map_err(|e| at.key("topic").error(&format!("{e} (topic {topic:?})")))?;
    let qos = super::validate::qos_named(optional_str(obj, "qos", at)?)
        .map_err(|e| at.key("qos").error(&e))?;
    let retain = super::validate::retain_named(optional_str(obj, "retain", at)?)
        .map_err(|e| at.key("retain").error(&e))?;
    let ttl_seconds = match present(obj, "ttl") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| at.key("ttl").error("must be a whole number of seconds"))?,
        ),
    };
    Ok(MqttDestination {
        topic: topic.to_owned(),
        qos,
        retain,
        ttl_seconds,
    })
}

/// The configuration as JSON: ADR's JSON string, or a YAML mapping; `None` when absent or empty.
fn to_json(config: Option<&serde_yaml_ng::Value>) -> Result<Option<Value>, String> {
    use serde_yaml_ng::Value as Y;
    match config {
        None | Some(Y::Null) => Ok(None),
        Some(Y::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Y::String(text)) => {
            if text.len() > MAX_OPTIONS_BYTES {
                return Err(format!(
                    "additionalConfiguration is larger than {MAX_OPTIONS_BYTES} bytes"
                ));
            }
            serde_json::from_str(text)
                .map(Some)
                .map_err(|e| format!("additionalConfiguration is not valid JSON: {e}"))
        }
        Some(other) => serde_json::to_value(other)
            .map(Some)
            .map_err(|_| "additionalConfiguration is not a JSON object".to_owned()),
    }
}

/// Where in the configuration a value is, for error messages.
#[derive(Debug, Clone)]
pub struct Path(String);

impl Path {
    /// The configuration itself.
    pub fn root() -> Self {
        Self("additionalConfiguration".to_owned())
    }

    /// Another configuration field (an asset's `defaultDatasetsConfiguration`).
    pub fn named(root: &str) -> Self {
        Self(root.to_owned())
    }

    /// A key under this path.
    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}.{key}", self.0))
    }

    /// An error about the value at this path.
    pub fn error(&self, what: &str) -> String {
        format!("{}: {what}", self.0)
    }
}

/// The value of `key`, unless absent or null.
pub(crate) fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// `v` as an object.
pub(crate) fn object<'a>(v: &'a Value, at: &Path) -> Result<&'a Map<String, Value>, String> {
    v.as_object().ok_or_else(|| at.error("must be an object"))
}

/// Refuses keys other than `known`, naming the first unknown one.
pub(crate) fn only_keys(obj: &Map<String, Value>, known: &[&str], at: &Path) -> Result<(), String> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(at.error(&format!("unknown key {k:?} (known: {})", known.join(", ")))),
    }
}

/// An optional boolean.
pub(crate) fn optional_bool(
    obj: &Map<String, Value>,
    key: &str,
    at: &Path,
) -> Result<Option<bool>, String> {
    present(obj, key)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| at.key(key).error("must be true or false"))
        })
        .transpose()
}

/// An optional string.
pub(crate) fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &Path,
) -> Result<Option<&'a str>, String> {
    present(obj, key)
        .map(|v| {
            v.as_str()
                .ok_or_else(|| at.key(key).error("must be a string"))
        })
        .transpose()
}

/// A required, non-empty string.
pub(crate) fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    at: &Path,
) -> Result<&'a str, String> {
    optional_str(obj, key, at)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| at.key(key).error("is required"))
}

/// A string written inline or `{"secretRef": "<secret>/<key>"}`.
pub(crate) fn value(v: &Value, at: &Path) -> Result<OptionValue, String> {
    match v {
        Value::String(s) => Ok(OptionValue::Literal(s.clone())),
        Value::Object(_) => secret_ref(v, at).map(OptionValue::Secret),
        _ => Err(at.error("must be a string or {\"secretRef\": \"<secret>/<key>\"}")),
    }
}

/// `{"secretRef": "<secret>/<key>"}` only: credentials are never written in a resource, where
/// anyone who can read the resource (a ConfigMap, a Git repository) reads them too.
pub(crate) fn secret_ref(v: &Value, at: &Path) -> Result<SecretRef, String> {
    let shape =
        "must be {\"secretRef\": \"<secret>/<key>\"} (credentials are never written in a resource)";
    let obj = v.as_object().ok_or_else(|| at.error(shape))?;
    only_keys(obj, &["secretRef"], at)?;
    let r = optional_str(obj, "secretRef", at)?.ok_or_else(|| at.error(shape))?;
    SecretRef::parse(r).map_err(|e| at.error(&e))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
