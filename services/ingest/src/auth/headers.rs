//! The endpoint's own request headers (`headers`, inline or from secrets) and the proxy's
//! credentials (`proxy.username` / `proxy.password`), read at every connection attempt so a
//! rotated secret applies on the next connect. A value from a secret is marked sensitive, so it
//! never shows in a Debug output; errors name the header and the secret, never a value.

use std::path::Path;

use http::header::{HeaderMap, HeaderValue, PROXY_AUTHORIZATION};

use super::{basic_value, read_option_value, read_secret_text};
use crate::resources::options::{MAX_HEADER_VALUE_BYTES, OptionValue, Proxy, RequestOptions};

/// Adds the endpoint's headers, and `Proxy-Authorization` for its proxy (the SSE client takes
/// that one out and sends it to the proxy only), to `headers`.
pub fn append(
    headers: &mut HeaderMap,
    options: &RequestOptions,
    dir: Option<&Path>,
) -> Result<(), String> {
    for (name, value) in &options.headers {
        let v = match value {
            OptionValue::Literal(text) => HeaderValue::from_str(text)
                .map_err(|_| format!("header {name}: not a valid header value"))?,
            OptionValue::Secret(r) => {
                let text = read_secret_text(dir, r, None)?;
                if text.len() > MAX_HEADER_VALUE_BYTES {
                    return Err(format!(
                        "header {name}: secret {r} is longer than {MAX_HEADER_VALUE_BYTES} bytes"
                    ));
                }
                let mut v = HeaderValue::from_str(&text).map_err(|_| {
                    format!("header {name}: secret {r} is not a valid header value")
                })?;
                v.set_sensitive(true);
                v
            }
        };
        headers.append(name.clone(), v);
    }
    if let Proxy::Via {
        username: Some(user),
        password: Some(password),
        ..
    } = &options.proxy
    {
        let user = read_option_value(dir, user)?;
        let password = read_secret_text(dir, password, None)?;
        let value = basic_value(&user, &password)
            .map_err(|_| "proxy credentials do not make a valid header".to_owned())?;
        headers.insert(PROXY_AUTHORIZATION, value);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::resources::options::parse;

    fn options(json: &str) -> RequestOptions {
        parse(Some(&serde_yaml_ng::Value::String(json.to_owned())))
            .unwrap()
            .request
    }

    #[test]
    fn inline_and_secret_headers_with_rotation_and_proxy_credentials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("s")).unwrap();
        std::fs::write(dir.path().join("s/key"), "first-secret\n").unwrap();
        std::fs::write(dir.path().join("s/pass"), "pw").unwrap();
        let opts = options(
            r#"{"headers": {"X-Tenant": "t1", "X-Api-Key": {"secretRef": "s/key"}},
                "proxy": {"url": "http://p:3128", "username": "u", "password": {"secretRef": "s/pass"}}}"#,
        );
        let mut h = HeaderMap::new();
        append(&mut h, &opts, Some(dir.path())).unwrap();
        assert_eq!(h["x-tenant"], "t1");
        assert_eq!(h["x-api-key"], "first-secret");
        assert!(h["x-api-key"].is_sensitive());
        assert!(!h["x-tenant"].is_sensitive());
        assert_eq!(h[PROXY_AUTHORIZATION], basic_value("u", "pw").unwrap());
        assert!(h[PROXY_AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("first-secret"));
        std::fs::write(dir.path().join("s/key"), "second").unwrap();
        let mut h = HeaderMap::new();
        append(&mut h, &opts, Some(dir.path())).unwrap();
        assert_eq!(h["x-api-key"], "second");
        std::fs::write(dir.path().join("s/key"), "bad\u{1}value").unwrap();
        let e = append(&mut HeaderMap::new(), &opts, Some(dir.path())).unwrap_err();
        assert_eq!(
            e,
            "header x-api-key: secret s/key is not a valid header value"
        );
        std::fs::remove_file(dir.path().join("s/key")).unwrap();
        let e = append(&mut HeaderMap::new(), &opts, Some(dir.path())).unwrap_err();
        assert!(e.contains("secret s/key is missing"), "{e}");
    }
}
