//! The stream key and the URL as shown: everything ingest logs, reports (`ListStreams`, status)
//! or stores (checkpoints, CloudEvents ids) names a stream by `<device>/<endpoint>|<shown URL>`.
//!
//! A device URL may carry a password (`https://user:pw@host/`) or a token in its query
//! (`?token=...`). The shown URL has no user info, no fragment, and its query replaced by
//! `q=<16 hex digits of its SHA-256>`: two URLs differing only in a query value stay two streams
//! (a collision needs 2^32 queries on one path), and nothing secret is shown or stored. Only the
//! request itself carries the real query.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use url::Url;

/// The URL without user info, fragment or query values: safe to log, show and store.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_fragment(None);
    if let Some(query) = url.query() {
        shown.set_query(Some(&format!("q={}", query_hash(query))));
    }
    shown.into()
}

/// The stream key: `<device>/<endpoint>|<shown URL>`.
pub fn stream_key(device: &str, endpoint: &str, url: &Url) -> String {
    format!("{device}/{endpoint}|{}", shown_url(url))
}

/// The first 8 bytes of the query's SHA-256, as hex.
fn query_hash(query: &str) -> String {
    hex::encode(&Sha256::digest(query.as_bytes())[..8])
}

/// The key a stored key has today: keys written before the key lost its user info and query
/// values (`<device>/<endpoint>|<raw URL>`) map to today's form, so an upgrade resumes every
/// stream from its checkpoint instead of re-reading it. A key already in today's form, or not a
/// stream key at all, is kept (a legacy URL whose whole query was `q=<16 hex digits>` reads as
/// today's form: that one stream is read again from the server's start).
pub fn migrate(stored: &str) -> String {
    let Some((stream, url)) = stored.split_once('|') else {
        return stored.to_owned();
    };
    match Url::parse(url) {
        Ok(url) if !is_shown(&url) => format!("{stream}|{}", shown_url(&url)),
        _ => stored.to_owned(),
    }
}

/// Whether `url` is already a shown URL: no user info or fragment, the query a hash or absent.
fn is_shown(url: &Url) -> bool {
    let hashed = |q: &str| {
        q.strip_prefix("q=")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.query().is_none_or(hashed)
}

/// Stored checkpoints with every key in today's form. A key already in today's form wins over a
/// legacy one naming the same stream.
pub fn migrate_all<V>(stored: BTreeMap<String, V>) -> BTreeMap<String, V> {
    let mut out = BTreeMap::new();
    let mut legacy = Vec::new();
    for (key, id) in stored {
        let now = migrate(&key);
        if now == key {
            out.insert(key, id);
        } else {
            legacy.push((now, id));
        }
    }
    for (key, id) in legacy {
        out.entry(key).or_insert(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn shown_urls_carry_no_user_info_fragment_or_query_value() {
        let shown = shown_url(&url(
            "https://user:pa55@h.example:8443/p/s?token=secret&x=1#frag",
        ));
        assert!(
            shown.starts_with("https://h.example:8443/p/s?q="),
            "{shown}"
        );
        assert_eq!(shown.len(), "https://h.example:8443/p/s?q=".len() + 16);
        for secret in ["user", "pa55", "secret", "token", "frag"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(shown_url(&url("http://h/p")), "http://h/p");
    }

    #[test]
    fn keys_differing_only_in_a_query_value_stay_distinct_and_stable() {
        let a = stream_key("d", "e", &url("http://h/p?token=a"));
        let b = stream_key("d", "e", &url("http://h/p?token=b"));
        assert_ne!(a, b);
        assert_eq!(a, stream_key("d", "e", &url("http://h/p?token=a")));
        assert_eq!(
            stream_key("d", "e", &url("http://u:p@h/p")),
            "d/e|http://h/p"
        );
    }

    #[test]
    fn legacy_keys_migrate_and_todays_keys_stay() {
        let raw = "d/e|https://u:pw@h/p?token=t";
        let now = stream_key("d", "e", &url("https://u:pw@h/p?token=t"));
        assert_eq!(migrate(raw), now);
        assert_eq!(migrate(&now), now);
        assert_eq!(migrate("not a key"), "not a key");
        let stored = BTreeMap::from([
            (raw.to_string(), "41".to_string()),
            ("d/e|http://h/x".to_string(), "7".to_string()),
        ]);
        let migrated = migrate_all(stored);
        assert_eq!(migrated.get(&now).map(String::as_str), Some("41"));
        assert_eq!(migrated.len(), 2);
        assert!(
            migrated
                .keys()
                .all(|k| !k.contains("pw") && !k.contains("token"))
        );
        // A stream already saved under today's key keeps that (newer) record.
        let both = BTreeMap::from([
            (raw.to_string(), "41".to_string()),
            (now.clone(), "50".to_string()),
        ]);
        assert_eq!(migrate_all(both).get(&now).map(String::as_str), Some("50"));
    }
}
